"""Converters on real corpus files, and clear errors for bad input."""

from __future__ import annotations

import json
import random

import pymupdf
import pytest

from conftest import CORPUS, TLDR
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


def test_conversion_is_deterministic():
    for name in ("pdf/test-3820.pdf", "formats/test_open2.epub", "md/tldr/common/git-commit.md"):
        assert convert_file(CORPUS / name, "d") == convert_file(CORPUS / name, "d")


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


def test_every_corpus_pdf_converts_or_fails_cleanly(tmp_path):
    for path in sorted((CORPUS / "pdf").glob("*.pdf")):
        try:
            convert_file(path, "d")
        except ConversionError:
            pass
