"""PDF, EPUB, XPS, MOBI, FB2 and SVG through PyMuPDF: text per page, outline, page count.

PDFs with at least `pageindex_threshold` pages are long documents: their source is a
JSON list of {"page", "content"} (OpenKB's format) and they get an outline tree, from
the document's outline or, when it has none, from headings found by font size.
Images are not extracted (the text, outline and page count are).

Limits (limits.py) are checked before and while converting: a zip-based document's
declared sizes before it is opened (an EPUB is laid out as a whole when opened: the
layout of a bomb is what costs), the page count before any page is read, the text
extracted so far after each page. A failed allocation in MuPDF is raised as MemoryError.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from .base import ConversionError, Converted
from .limits import Limits, is_alloc_failure

PYMUPDF_SUFFIXES = frozenset({".pdf", ".epub", ".xps", ".oxps", ".mobi", ".fb2", ".svg"})
ZIP_SUFFIXES = frozenset({".epub", ".xps", ".oxps"})  # zip archives: their sizes are declared
KIND = {".pdf": "PDF", ".epub": "EPUB", ".xps": "XPS", ".oxps": "XPS", ".mobi": "MOBI", ".fb2": "FB2", ".svg": "SVG"}
MAX_TOC = 2000
HEADING_SCAN_PAGES = 60
MAX_HEADINGS = 300



def _pymupdf():
    """PyMuPDF, imported on first use (it takes a noticeable part of a second), quiet."""
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    return pymupdf


def convert_paged(data: bytes, suffix: str, stem: str, doc: str, threshold: int,
                  limits: Limits | None = None) -> Converted:
    kind = KIND[suffix]
    limits = limits or Limits()
    if suffix in ZIP_SUFFIXES:
        limits.check_archive(data, kind, reflowable=suffix == ".epub")
    pymupdf = _pymupdf()
    try:
        document = pymupdf.open(stream=data, filetype=suffix[1:])
    except Exception as exc:  # PyMuPDF raises several types for bad input
        if is_alloc_failure(exc):
            raise MemoryError(_reason(exc)) from None
        raise ConversionError(f"not a valid {kind}: {_reason(exc)}") from None
    try:
        return _convert_open(document, kind, suffix, stem, doc, threshold, limits)
    except ConversionError:
        raise
    except Exception as exc:
        if is_alloc_failure(exc):
            raise MemoryError(_reason(exc)) from None
        raise ConversionError(f"cannot read this {kind}: {_reason(exc)}") from None
    finally:
        document.close()


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _convert_open(document, kind: str, suffix: str, stem: str, doc: str, threshold: int,
                  limits: Limits) -> Converted:
    if document.needs_pass:
        raise ConversionError(f"encrypted {kind} (needs a password)")
    if document.page_count == 0:
        raise ConversionError(f"the {kind} has no pages")
    limits.check_pages(document.page_count)
    pages = []
    size = 0
    for number in range(document.page_count):
        try:
            pages.append(_clean(document[number].get_text("text")))
        except Exception as exc:
            if is_alloc_failure(exc):
                raise MemoryError(_reason(exc)) from None
            raise ConversionError(f"cannot read page {number + 1}: {_reason(exc)}") from None
        size += len(pages[-1].encode("utf-8"))
        if limits.max_expanded_mb and size > limits.max_expanded_mb * 1024 * 1024:
            limits.check_text_size(size, f"text (by page {number + 1} of {document.page_count})")
    warnings = []
    toc = _toc(document, warnings)
    headings = [(level, title) for level, title, _page in toc]
    if not toc:
        toc = _headings_by_font(document)
        headings = [(level, title) for level, title, _page in toc]
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        warnings.append("no text extracted (image-only pages?)")
    title = _title(document, headings, stem)
    is_long = suffix == ".pdf" and document.page_count >= threshold
    if is_long:
        source = [{"page": i + 1, "content": content} for i, content in enumerate(pages)]
        files = {f"wiki/sources/{doc}.json": (json.dumps(source, ensure_ascii=False, indent=2) + "\n").encode("utf-8")}
        limits.check_text_size(len(files[f"wiki/sources/{doc}.json"]), "source (JSON pages)")
        tree = build_tree(toc)
        doc_type = "long_pdf"
    else:
        files = {f"wiki/sources/{doc}.md": (text.rstrip("\n") + "\n").encode("utf-8")}
        tree = None
        doc_type = suffix[1:] if suffix != ".oxps" else "xps"
    return Converted(doc_type=doc_type, title=title, text=text, pages=document.page_count, headings=headings,
                     tree=tree, files=files, warnings=warnings)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _toc(document, warnings: list[str]) -> list[tuple[int, str, int]]:
    """The outline as (level, title, page), levels made consistent; [] if none or broken."""
    try:
        raw = document.get_toc(simple=True)
    except Exception as exc:
        warnings.append(f"outline unreadable ({_reason(exc)}); headings taken from the text")
        return []
    out: list[tuple[int, str, int]] = []
    previous = 0
    for item in raw[:MAX_TOC]:
        if len(item) < 3:
            continue
        level, title, page = int(item[0]), " ".join(str(item[1]).split()), int(item[2])
        if not title:
            continue
        level = max(1, min(level, previous + 1))
        out.append((level, title, page))
        previous = level
    return out


def _headings_by_font(document) -> list[tuple[int, str, int]]:
    """Headings guessed from font size: short lines set larger than the body text."""
    lines: list[tuple[float, str, int]] = []
    sizes: Counter = Counter()
    for number in range(min(document.page_count, HEADING_SCAN_PAGES)):
        try:
            blocks = document[number].get_text("dict")["blocks"]
        except Exception:
            continue
        for block in blocks:
            for line in block.get("lines", []):
                spans = [s for s in line.get("spans", []) if s.get("text", "").strip()]
                if not spans:
                    continue
                text = " ".join(" ".join(s["text"] for s in spans).split())
                size = round(max(s["size"] for s in spans), 1)
                sizes[size] += len(text)
                lines.append((size, text, number + 1))
    if not sizes:
        return []
    body = sizes.most_common(1)[0][0]
    big = sorted({size for size, text, _ in lines if size >= body * 1.2}, reverse=True)[:3]
    level_of = {size: i + 1 for i, size in enumerate(big)}
    out = []
    for size, text, page in lines:
        if size in level_of and 2 < len(text) <= 100 and re.search(r"[^\W\d_]", text):
            if out and out[-1][2] == page and out[-1][0] == level_of[size]:
                continue  # a heading wrapped over two lines: keep the first
            out.append((level_of[size], text, page))
            if len(out) >= MAX_HEADINGS:
                break
    return out


def _title(document, headings: list[tuple[int, str]], stem: str) -> str:
    meta = " ".join(str((document.metadata or {}).get("title") or "").split())
    junk = meta.lower() in ("none", "untitled", "title") or meta.lower().startswith(("microsoft word", "untitled")) \
        or re.search(r"\.(indd|pdf|docx?|eps|ps|qxd|tex|dvi|txt|rtf)$", meta.lower())
    if len(re.findall(r"[^\W\d_]", meta)) >= 3 and not junk:
        return meta
    if headings:
        return headings[0][1]
    return stem


def build_tree(toc: list[tuple[int, str, int]]) -> list[dict]:
    """Nested {"title", "page", "children"} from (level, title, page) in document order."""
    root: list[dict] = []
    stack: list[tuple[int, list[dict]]] = [(0, root)]
    for level, title, page in toc:
        while stack and stack[-1][0] >= level:
            stack.pop()
        if not stack:
            stack = [(0, root)]
        node = {"title": title, "page": page, "children": []}
        stack[-1][1].append(node)
        stack.append((level, node["children"]))
    return root
