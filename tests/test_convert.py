"""Converters on real corpus files, and clear errors for bad input."""

from __future__ import annotations

import json
import random

import pymupdf
import pytest

from conftest import CORPUS, TLDR
from crossprocess import outputs_under_hash_seeds
from openkb_git.convert import ConversionError, convert_file


@pytest.mark.parametrize("name,doc_type", [
    ("formats/test_open2.epub", "epub"), ("formats/test_open2.xps", "xps"), ("formats/test_open2.mobi", "mobi"),
    ("formats/test_open2.fb2", "fb2"), ("formats/test_open2.svg", "svg"), ("formats/test_open2.html", "html"),
    ("formats/simple_toc.txt", "txt"), ("pdf/attention-is-all-you-need.pdf", "pdf"),
    ("md/tldr/common/tar.md", "md"),
])
def test_each_format_converts(name, doc_type):
    conv = convert_file(CORPUS / name, "doc")
    assert conv.doc_type == doc_type
    assert list(conv.files) == ["wiki/sources/doc.md"]
    assert conv.title


def test_long_pdf_gives_pages_and_outline_tree():
    conv = convert_file(CORPUS / "pdf" / "2.pdf", "two", pageindex_threshold=20)
    assert conv.doc_type == "long_pdf" and conv.pages == 47
    pages = json.loads(conv.files["wiki/sources/two.json"])
    assert [p["page"] for p in pages] == list(range(1, 48))
    assert conv.tree[0]["title"] == "The PyMuPDF Documentation" and conv.tree[0]["children"]
    short = convert_file(CORPUS / "pdf" / "2.pdf", "two", pageindex_threshold=100)
    assert short.doc_type == "pdf" and "wiki/sources/two.md" in short.files


_CONVERT_DIGESTS = """
import hashlib, sys
from pathlib import Path
from openkb_git.convert import convert_file
for name in sys.argv[1:]:
    conv = convert_file(Path(name), "d")
    print(Path(name).name, hashlib.sha256(repr(conv).encode()).hexdigest())
"""


def test_conversion_is_deterministic_across_processes():
    """The same file converts to the same result (every field, in order) in separate
    processes with different hash seeds: nothing depends on the order of a set."""
    names = ["pdf/2.pdf", "pdf/test_4751.pdf", "pdf/test_open2.pdf", "formats/test_open2.epub",
             "formats/test_open2.html", "md/tldr/common/git-commit.md"]
    outputs = outputs_under_hash_seeds(_CONVERT_DIGESTS, *(str(CORPUS / name) for name in names))
    assert len(set(outputs.values())) == 1, outputs
    assert len(outputs["0"].splitlines()) == len(names)


def test_markdown_title_from_heading_and_frontmatter(tmp_path):
    assert convert_file(TLDR / "common" / "tar.md", "tar").title == "tar"
    page = tmp_path / "p.md"
    page.write_text("---\ntitle: 'Front: matter'\n---\n# Heading\n")
    assert convert_file(page, "p").title == "Front: matter"


@pytest.mark.parametrize("name,content,reason", [
    ("empty.pdf", b"", "empty file"),
    ("noise.pdf", bytes(range(256)) * 4, "not a valid PDF"),
    ("noise.md", b"\x00\x01\x02binary" * 10, "binary content, not text"),
    # Latin-1 text is decoded by detection now (tests/test_trust_convert.py); bytes that no
    # encoding reads as text are still refused.
    ("garbage.md", bytes(b for b in random.Random(14).randbytes(3000) if b)[:2048], "not text: not valid UTF-8"),
    ("notes.xyz", b"hello", "unsupported file type '.xyz'"),
])
def test_bad_input_raises_conversion_error(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConversionError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        convert_file(path, "d")


def test_truncated_and_encrypted_pdf(tmp_path):
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes((CORPUS / "pdf" / "attention-is-all-you-need.pdf").read_bytes()[:1000])
    with pytest.raises(ConversionError):
        convert_file(truncated, "t")
    source = pymupdf.open(CORPUS / "pdf" / "test_4505.pdf")
    locked = tmp_path / "locked.pdf"
    source.save(locked, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="x", owner_pw="y")
    with pytest.raises(ConversionError, match="encrypted PDF"):
        convert_file(locked, "l")


def test_image_only_pdf_is_kept_with_a_warning():
    conv = convert_file(CORPUS / "pdf" / "img-regular.pdf", "img")
    assert conv.warnings == ["no text extracted (image-only pages?)"]


# The corpus PDFs that convert with no text, and why (each gets the warning and an empty source).
IMAGE_ONLY = {
    "img-regular.pdf": "one scanned image, no text layer",
    "test_2885.pdf": "a scanned label, no text layer",
    "test_toc_count.pdf": "an outline over six pages without text",
}
# The corpus PDFs that fail to convert, and the reason they fail with (none do today: a new
# failure, or a reason changing, is caught here).
EXPECTED_FAILURES: dict[str, str] = {}


def test_every_corpus_pdf_converts_or_fails_cleanly():
    seen = set()
    for path in sorted((CORPUS / "pdf").glob("*.pdf")):
        seen.add(path.name)
        try:
            conv = convert_file(path, "d")
        except ConversionError as exc:
            assert path.name in EXPECTED_FAILURES, f"{path.name} fails to convert: {exc}"
            assert str(exc) == EXPECTED_FAILURES[path.name] and "Traceback" not in str(exc)
            continue
        assert path.name not in EXPECTED_FAILURES, f"{path.name} converts now: update EXPECTED_FAILURES"
        with pymupdf.open(path) as document:
            pages = document.page_count
        assert conv.pages == pages, path.name
        assert conv.title.strip() and "\n" not in conv.title, path.name
        assert conv.doc_type == ("long_pdf" if pages >= 20 else "pdf"), path.name
        if conv.doc_type == "long_pdf":
            assert list(conv.files) == ["wiki/sources/d.json"], path.name
            assert [p["page"] for p in json.loads(conv.files["wiki/sources/d.json"])] == list(range(1, pages + 1))
        else:
            assert list(conv.files) == ["wiki/sources/d.md"], path.name
        if path.name in IMAGE_ONLY:
            assert conv.text.strip() == "" and conv.warnings == ["no text extracted (image-only pages?)"], path.name
        else:
            assert conv.text.strip() and conv.warnings == [], path.name
            if conv.doc_type == "pdf":
                assert conv.text.strip() in conv.files["wiki/sources/d.md"].decode(), path.name
    assert set(IMAGE_ONLY) | set(EXPECTED_FAILURES) <= seen
