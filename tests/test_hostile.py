"""Hostile input: every bad file is named with its reason, the others are committed,
nothing is half-written, and the exit code says something failed."""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata

import pymupdf
import pytest

from conftest import CORPUS, TLDR, assert_consistent, git, run_openkb


def listed(kb) -> dict[str, dict]:
    return {d["doc"]: d for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)}


def add_json(kb, *args):
    proc = run_openkb("add", "--json", "--jobs", "2", *args, cwd=kb)
    return proc, json.loads(proc.stdout)


def by_name(report) -> dict[str, dict]:
    return {os.path.basename(f["path"]): f for f in report["files"]}


def test_bad_files_next_to_good_ones(kb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "good.md")
    pdf = (CORPUS / "pdf" / "attention-is-all-you-need.pdf").read_bytes()
    (src / "truncated.pdf").write_bytes(pdf[: len(pdf) // 50])
    (src / "corrupt.pdf").write_bytes(pdf[:2000] + os.urandom(5000))
    (src / "empty.pdf").write_bytes(b"")
    (src / "random.pdf").write_bytes(os.urandom(4096))
    (src / "random.md").write_bytes(os.urandom(4096))
    (src / "latin1.md").write_bytes("# Caf\xe9\n\nd\xe9j\xe0 vu\n".encode("latin-1"))
    locked = pymupdf.open(CORPUS / "pdf" / "test_4505.pdf")
    locked.save(src / "encrypted.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="u", owner_pw="o")
    proc, report = add_json(kb, src)
    assert proc.returncode == 1
    files = by_name(report)
    assert files["good.md"]["status"] == "added"
    for name in ("truncated.pdf", "corrupt.pdf", "empty.pdf", "random.pdf", "random.md", "encrypted.pdf"):
        assert files[name]["status"] == "failed" and files[name]["reason"], name
    assert files["encrypted.pdf"]["reason"] == "encrypted PDF (needs a password)"
    assert files["empty.pdf"]["reason"] == "empty file"
    # Latin-1 text is read (issue #14, case 20): decoded by detection, the encoding noted.
    assert files["latin1.md"]["status"] == "added"
    assert any("decoded as cp1252" in w for w in files["latin1.md"]["warnings"])
    assert sorted(listed(kb)) == ["good", "latin1"]
    assert sorted(os.listdir(kb / "raw")) == ["good.md", "latin1.md"]
    assert_consistent(kb)


def test_file_above_max_file_mb(kb, tmp_path):
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text().replace("max_file_mb: 200", "max_file_mb: 0.01"))
    git(kb, "commit", "-qam", "smaller limit")
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(CORPUS / "pdf" / "attention-is-all-you-need.pdf", src / "big.pdf")
    shutil.copy(TLDR / "common" / "tar.md", src / "small.md")
    proc, report = add_json(kb, src)
    assert proc.returncode == 1
    assert "larger than max_file_mb" in by_name(report)["big.pdf"]["reason"]
    assert list(listed(kb)) == ["small"]


def test_unreadable_and_special_files(kb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "ok.md")
    os.mkfifo(src / "pipe.md")
    (src / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    secret = src / "secret.md"
    secret.write_text("# secret\n")
    secret.chmod(0o000)
    proc, report = add_json(kb, src)
    files = by_name(report)
    assert files["pipe.md"]["status"] == "failed" and files["pipe.md"]["reason"] == "not a regular file"
    assert files["dangling.md"]["status"] == "failed" and files["dangling.md"]["reason"] == "no such file"
    if os.geteuid() != 0:  # root reads anything: permission bits cannot make a file unreadable
        assert files["secret.md"]["status"] == "failed" and "permission denied" in files["secret.md"]["reason"]
    assert proc.returncode == 1 and "ok" in listed(kb)
    assert_consistent(kb)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch to nobody")
def test_unreadable_file_as_another_user():
    """Run as `nobody` so that permission bits apply, even when the tests run as root."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    tmp_path = Path(tempfile.mkdtemp(prefix="openkb-nobody-"))
    tmp_path.chmod(0o755)
    kb = tmp_path / "kb"
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "ok.md")
    secret = src / "secret.md"
    secret.write_text("# secret\n\nnot for you\n")
    secret.chmod(0o000)
    run_openkb("init", kb, check=True)
    subprocess.run(["chown", "-R", "nobody:nogroup", str(kb)], check=True)
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-m", "openkb_git"]
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run([*as_nobody, "--kb-dir", str(kb), "add", "--json", str(src)], capture_output=True,
                          text=True, env=env)
    report = json.loads(proc.stdout)
    files = by_name(report)
    assert proc.returncode == 1
    assert files["secret.md"]["status"] == "failed"
    assert files["secret.md"]["reason"] == "permission denied (cannot read the file)"
    assert files["ok.md"]["status"] == "added"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_symlink_loop_and_links_into_the_kb(kb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "ok.md")
    (src / "loop-a.md").symlink_to(src / "loop-b.md")
    (src / "loop-b.md").symlink_to(src / "loop-a.md")
    (src / "dirloop").symlink_to(src, target_is_directory=True)
    (src / "head.md").symlink_to(kb / ".git" / "HEAD")
    (src / "config.md").symlink_to(kb / ".openkb" / "config.yaml")
    proc, report = add_json(kb, src)
    files = by_name(report)
    assert files["loop-a.md"]["reason"] == "symbolic link loop"
    assert "own .git or .openkb" in files["head.md"]["reason"]
    assert "own .git or .openkb" in files["config.md"]["reason"]
    assert proc.returncode == 1 and list(listed(kb)) == ["ok"]
    # Naming the KB's own folders directly is refused too.
    proc = run_openkb("add", kb / ".openkb", cwd=kb)
    assert proc.returncode == 1 and "own .git or .openkb" in proc.stdout
    assert_consistent(kb)


def test_awkward_file_names(kb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    text = (TLDR / "common" / "tar.md").read_text()
    nfc = unicodedata.normalize("NFC", "café.md")
    nfd = unicodedata.normalize("NFD", "café.md")
    names = ["with space.md", nfc, nfd, "new\nline.md", "-leading-dash.md"]
    for i, name in enumerate(names + ["..dots.md"]):
        (src / name).write_text(text + f"\nvariant {i} adds words about archives and tapes\n")
    proc, report = add_json(kb, src)
    assert proc.returncode == 0, report
    docs = listed(kb)
    assert len(docs) == len(names) and len(set(docs)) == len(names)
    assert "with-space" in docs and "leading-dash" in docs and "new-line" in docs
    assert {"café", } <= set(docs) and any(d.startswith("café-") for d in docs)
    assert "dots" not in docs  # hidden files (leading dot) are skipped in directory scans ...
    assert run_openkb("add", src / "..dots.md", cwd=kb).returncode == 0  # ... and taken when named
    assert "dots" in listed(kb)
    # A path with `..` components and a leading dash given on the command line.
    proc = run_openkb("add", "--", str(src / ".." / "src" / "-leading-dash.md"), cwd=kb)
    assert proc.returncode == 0 and "duplicate of leading-dash" in proc.stdout
    assert_consistent(kb)


WORDS = sorted(set(re.findall(r"[a-z]{6,}", (TLDR / "common" / "tar.md").read_text() + (TLDR / "common" / "git.md").read_text()
                                  + (TLDR / "linux" / "systemctl.md").read_text())))[:100]


def test_directory_of_2000_files_some_failing(kb, tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    bad = set(range(0, 2000, 97))
    for i in range(2000):
        if i in bad:
            (src / f"doc{i:04d}.md").write_bytes(b"\xff\xfe\x00broken" * 3)
        else:
            # three words per file, each shared by a few dozen files, as concepts are in a real corpus
            words = [WORDS[(i * k) % len(WORDS)] for k in (1, 7, 13)]
            (src / f"doc{i:04d}.md").write_text(f"# {words[0]} {i}\n\nOn {words[1]} and {words[2]}: "
                                                 f"{words[1]} {words[2]} {words[0]}.\n")
    proc, report = add_json(kb, src)
    assert proc.returncode == 1
    assert report["added"] == 2000 - len(bad) and report["failed"] == len(bad)
    failed = sorted(os.path.basename(f["path"]) for f in report["files"] if f["status"] == "failed")
    assert failed == sorted(f"doc{i:04d}.md" for i in bad)
    assert int(git(kb, "rev-list", "--count", "HEAD")) == 1 + 2000 - len(bad)
    assert_consistent(kb)
