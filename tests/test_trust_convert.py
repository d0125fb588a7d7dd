"""Issue #14, cases 16 and 20 (encoding): limits on what one file may expand to, checked
before and while converting, and text that is not UTF-8 decoded by detection.

The bombs are built at test time, small on disk: an EPUB whose one chapter inflates to
200 MB, a PDF of many pages, a 60 MB Markdown file. Each run also holds a good file,
which must still be added; nothing of the refused file may reach the KB; the run exits 1;
time and memory (the largest RSS of the openkb process and its workers) stay bounded.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pymupdf
import yaml

from conftest import TLDR, assert_consistent, git, run_openkb

# The largest resident set of a command and all its descendants (workers included), in MB.
MEASURE = ("import json, resource, subprocess, sys\n"
           "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
           "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
           "print(json.dumps({'rc': proc.returncode, 'out': proc.stdout, 'err': proc.stderr, 'rss': rss}))\n")


def measured_add(kb, *args, timeout=120) -> tuple[dict, float, float, dict | None]:
    """`openkb add --json *args` in a subprocess: (result, seconds, max RSS in MB, report)."""
    start = time.monotonic()
    # In a session of its own: on a timeout the whole group (openkb and its workers) is killed.
    proc = subprocess.Popen([sys.executable, "-c", MEASURE, sys.executable, "-m", "openkb_git", "add", "--json",
                             *map(str, args)], cwd=kb, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, _stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"openkb add did not finish in {timeout} s") from None
    seconds = time.monotonic() - start
    result = json.loads(stdout)
    report = json.loads(result["out"]) if result["out"].strip().startswith("{") else None
    return result, seconds, result["rss"], report


def set_config(kb, **values) -> None:
    path = kb / ".openkb" / "config.yaml"
    config = yaml.safe_load(path.read_text()) or {}
    config.update(values)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    git(kb, "commit", "-qam", f"config: {values}")


def by_name(report) -> dict[str, dict]:
    return {os.path.basename(f["path"]): f for f in report["files"]}


def make_epub(path, chapter_mb: float, *, text=None) -> None:
    """An EPUB with one XHTML chapter of about ``chapter_mb`` MB, streamed into the zip."""
    para = text or "<p>The quick brown fox jumps over the lazy dog, again and again.</p>\n"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml",
                   '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:'
                   'container"><rootfiles><rootfile full-path="OEBPS/content.opf" '
                   'media-type="application/oebps-package+xml"/></rootfiles></container>')
        z.writestr("OEBPS/content.opf",
                   '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="2.0" '
                   'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Bomb'
                   '</dc:title><dc:identifier id="id">x</dc:identifier></metadata><manifest><item id="c" '
                   'href="c.xhtml" media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c"/>'
                   '</spine></package>')
        with z.open("OEBPS/c.xhtml", "w", force_zip64=True) as chapter:
            chapter.write(b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>Bomb'
                          b'</title></head><body>')
            block = (para * max(1, (1 << 20) // len(para))).encode()
            for _ in range(int(chapter_mb * (1 << 20) / len(block))):
                chapter.write(block)
            chapter.write(b"</body></html>")


def random_paragraphs(n: int, seed: int = 16) -> str:
    """Text that compresses like prose (about 3x), not like a bomb."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    return "".join("<p>" + " ".join(rng.choice(words) for _ in range(80)) + ".</p>\n" for _ in range(n))


def assert_not_in_kb(kb, doc: str) -> None:
    tracked = git(kb, "ls-files").split()
    assert not [p for p in tracked if f"/{doc}." in p or p.endswith(f"/{doc}.json")], tracked
    assert not list((kb / "raw").glob(f"{doc}.*"))


def good_file(src):
    shutil.copy(TLDR / "common" / "tar.md", src / "z-good.md")


def refused(kb, result, report, bad: str, good: str = "z-good.md") -> str:
    """The add failed (exit 1) for ``bad`` alone: ``good`` was added, nothing of ``bad`` is in the
    KB, the KB is consistent. Returns ``bad``'s reason, for the test to check."""
    assert result["rc"] == 1, result
    files = by_name(report)
    assert files[good]["status"] == "added", files
    assert files[bad]["status"] == "failed", files
    assert_not_in_kb(kb, bad.rsplit(".", 1)[0])
    assert_consistent(kb)
    return files[bad]["reason"]


# ---------------------------------------------------------------------------
# case 16: limits on expanded content
# ---------------------------------------------------------------------------


def test_epub_bomb_refused_before_it_is_opened(kb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_epub(src / "bomb.epub", 200)
    assert (src / "bomb.epub").stat().st_size < 2 * 1024 * 1024
    good_file(src)
    result, seconds, rss, report = measured_add(kb, "--jobs", "2", src)
    reason = refused(kb, result, report, "bomb.epub")
    assert "max_expansion_ratio" in reason and "200.0 MB" in reason and ".openkb/config.yaml" in reason, reason
    assert seconds < 60 and rss < 500, (seconds, rss)


def test_epub_markup_above_max_expanded_mb(kb, tmp_path):
    set_config(kb, max_expanded_mb=1)
    src = tmp_path / "src"
    src.mkdir()
    make_epub(src / "big.epub", 2.5, text=random_paragraphs(400))
    good_file(src)
    result, seconds, rss, report = measured_add(kb, "--jobs", "1", src)
    reason = refused(kb, result, report, "big.epub")
    assert "max_expanded_mb" in reason and "> 1 MB" in reason, reason
    assert seconds < 30, seconds  # the 2.5 MB chapter is never laid out (that takes ~1 s per 2 MB)


def make_pdf(path, pages: int, lines: int = 1) -> None:
    document = pymupdf.open()
    for number in range(pages):
        page = document.new_page()
        if not lines:
            continue
        text = "\n".join(f"Page {number + 1} line {line}: some words on the page here." for line in range(lines))
        page.insert_textbox(page.rect + (40, 40, -40, -40), text, fontsize=8)
    document.save(path)
    document.close()


def test_pdf_with_too_many_pages_refused_before_reading_them(kb, tmp_path):
    set_config(kb, max_pages=200)
    src = tmp_path / "src"
    src.mkdir()
    make_pdf(src / "many.pdf", 1000, lines=0)
    make_pdf(src / "few.pdf", 3)
    result, seconds, rss, report = measured_add(kb, "--jobs", "2", src)
    reason = refused(kb, result, report, "many.pdf", good="few.pdf")
    assert "1000 pages" in reason and "max_pages (200)" in reason, reason


def test_pdf_text_limit_checked_page_by_page(kb, tmp_path):
    set_config(kb, max_expanded_mb=0.05)  # 50 KB of text
    src = tmp_path / "src"
    src.mkdir()
    make_pdf(src / "wordy.pdf", 100, lines=60)  # ~3 KB per page, ~300 KB in all
    good_file(src)
    result, seconds, rss, report = measured_add(kb, "--jobs", "1", src)
    reason = refused(kb, result, report, "wordy.pdf")
    assert "max_expanded_mb" in reason, reason
    stopped_at = int(reason.split("by page ")[1].split()[0])
    assert stopped_at < 30, reason  # stopped as soon as the text passed the limit, not after all 100 pages


def test_large_markdown_refused_without_being_read(kb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    page = (TLDR / "common" / "tar.md").read_bytes()
    with open(src / "huge.md", "wb") as out:  # 60 MB: above the default max_expanded_mb (50)
        for _ in range(60 * 1024 * 1024 // len(page) + 1):
            out.write(page)
    good_file(src)
    result, seconds, rss, report = measured_add(kb, "--jobs", "2", src)
    reason = refused(kb, result, report, "huge.md")
    assert "max_expanded_mb" in reason and "> 50 MB" in reason, reason
    assert seconds < 30 and rss < 300, (seconds, rss)  # converting it took > 60 s and > 1 GB


def test_memory_cap_fails_the_file_not_the_run(kb, tmp_path):
    # The size checks are switched off: the memory cap alone must stop the bomb.
    set_config(kb, max_expanded_mb=0, max_expansion_ratio=0, max_pages=0, max_worker_memory_mb=150)
    src = tmp_path / "src"
    src.mkdir()
    make_epub(src / "a-bomb.epub", 40)
    good_file(src)
    for jobs in ("2", "1"):  # in worker processes, and in the command's own process
        result, seconds, rss, report = measured_add(kb, "--jobs", jobs, src)
        assert result["rc"] == 1 and "Traceback" not in result["err"], result
        files = by_name(report)
        reason = files["a-bomb.epub"]["reason"]
        assert files["a-bomb.epub"]["status"] == "failed", files
        assert "exceeds the memory limit" in reason and "max_worker_memory_mb: 150 MB" in reason, reason
        assert files["z-good.md"]["status"] == ("added" if jobs == "2" else "skipped")
        assert seconds < 60 and rss < 900, (seconds, rss)
        assert_not_in_kb(kb, "a-bomb")
    assert_consistent(kb)


def test_a_limit_that_is_not_a_number_is_named(kb, tmp_path):
    set_config(kb, max_pages="many")
    good_file(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "openkb_git", "add", tmp_path / "z-good.md"], cwd=kb,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "max_pages: 'many' is not a whole number" in proc.stderr and "config.yaml" in proc.stderr, proc.stderr
    assert run_openkb("list", "--json", cwd=kb, check=True).stdout.strip() == "[]"  # nothing committed


# ---------------------------------------------------------------------------
# case 20: text that is not UTF-8
# ---------------------------------------------------------------------------

FRENCH = ("# Caf\xe9 de la gare\n\nLe th\xe9\xe2tre est \xe0 c\xf4t\xe9 de l'\xe9glise; "
          "\u201cd\xe9j\xe0 vu\u201d \u2014 na\xefve r\xe9sum\xe9.\n")
JAPANESE = "# 日本語のテキスト\n\nこれは日本語で書かれた文書です。東京は日本の首都です。\n"


def record(kb, doc) -> dict:
    return json.loads((kb / ".openkb" / "registry" / f"{doc}.json").read_text(encoding="utf-8"))


def test_non_utf8_text_is_decoded_and_the_encoding_noted(kb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "cp1252.md").write_bytes(FRENCH.encode("cp1252"))
    (src / "latin1.txt").write_bytes("# Gr\xfc\xdfe\n\nDie Stra\xdfe ist sch\xf6n.\n".encode("latin-1"))
    (src / "sjis.md").write_bytes(JAPANESE.encode("shift_jis"))
    (src / "utf16.md").write_bytes("# Wide\n\nUTF-16 with a byte-order mark: \xe9t\xe9.\n".encode("utf-16"))
    (src / "page.html").write_bytes(f"<html><head><title>Caf\xe9</title></head><body><p>{FRENCH}</p></body></html>"
                                    .encode("cp1252"))
    good_file(src)
    (src / "random.md").write_bytes(os.urandom(4096))
    (src / "garbage.md").write_bytes(bytes(b for b in random.Random(14).randbytes(3000) if b)[:2048])
    proc = subprocess.run([sys.executable, "-m", "openkb_git", "add", "--jobs", "2", src], cwd=kb,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    status = {os.path.basename(line.split()[1].rstrip(":")): line.split()[0]
              for line in out.splitlines() if line.startswith(("added", "failed", "skipped"))}
    assert status == {"cp1252.md": "added", "latin1.txt": "added", "sjis.md": "added", "utf16.md": "added",
                      "page.html": "added", "z-good.md": "added", "random.md": "failed", "garbage.md": "failed"}, out
    assert f"added    {src / 'cp1252.md'} -> cp1252" in out and "\n         warning: decoded as cp1252" in out, out
    assert record(kb, "cp1252")["encoding"] == "cp1252"
    assert record(kb, "latin1")["encoding"] == "cp1252"
    assert record(kb, "sjis")["encoding"] in ("cp932", "shift_jis")
    assert record(kb, "utf16")["encoding"] == "utf-16"
    assert record(kb, "page")["encoding"] == "cp1252"
    assert "encoding" not in record(kb, "z-good")
    assert (kb / "wiki" / "sources" / "cp1252.md").read_text(encoding="utf-8") == FRENCH
    assert "Straße ist schön" in (kb / "wiki" / "sources" / "latin1.md").read_text(encoding="utf-8")
    assert (kb / "wiki" / "sources" / "sjis.md").read_text(encoding="utf-8") == JAPANESE
    assert "été" in (kb / "wiki" / "sources" / "utf16.md").read_text(encoding="utf-8")
    assert "Café de la gare" in (kb / "wiki" / "summaries" / "cp1252.md").read_text(encoding="utf-8")
    # the raw file is kept as given
    assert (kb / "raw" / "cp1252.md").read_bytes() == FRENCH.encode("cp1252")
    assert "binary content" in out and "not text: not valid UTF-8" in out, out
    assert_not_in_kb(kb, "random")
    assert_not_in_kb(kb, "garbage")
    assert_consistent(kb)
