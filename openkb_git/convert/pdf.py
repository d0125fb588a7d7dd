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


# Headings that name a part of a document, never the document itself.
GENERIC_TITLES = frozenset("""
abstract acknowledgement acknowledgements acknowledgment acknowledgments appendix appendices background
bibliography chapter conclusion conclusions contents content contributors copyright cover dedication
disclaimer document executive summary foreword glossary index introduction news notes overview page part
preface prologue references related work section summary table of contents title toc untitled
abbreviations acronyms abbreviations and acronyms glossary of terms list of figures list of tables
""".split("\n")) | frozenset(w for w in """abstract acknowledgement acknowledgements acknowledgment acknowledgments
appendix appendices background bibliography chapter conclusion conclusions contents contributors copyright cover
dedication disclaimer document foreword glossary index introduction news notes overview page part preface
prologue references section summary title toc untitled""".split())
_GENERIC_PHRASES = frozenset({"table of contents", "executive summary", "related work", "list of figures",
                              "list of tables", "abbreviations and acronyms", "glossary of terms", "about this document",
                              "about this book", "front matter", "title page"})
_FILE_NAME = re.compile(r"\.(indd|pdf|docx?|pptx?|xlsx?|eps|ps|qxd|tex|dvi|txt|rtf|odt|pages|html?|md)$", re.I)
_JOINERS = frozenset("a an and as at by for from in into of on or the to with".split())
TITLE_SCAN_PAGES = 2
MAX_TITLE_CHARS = 250


def is_generic_title(text: str, stem: str = "") -> bool:
    """True for a title that names no document: a section name (Introduction, Preface,
    Contents …), a bare or numbered section ("1", "2.1 collapsed", "IV"), a file name, the
    file's own stem, text with too few letters."""
    text = " ".join(text.split())
    low = text.lower().strip(" .:;-–—")
    if len(re.findall(r"[^\W\d_]", text)) < 3 or _FILE_NAME.search(low):
        return True
    if re.match(r"^(?:\d{1,3}(?:\.\d+)*|[ivxlc]+)\.?(?:\s|$)|^(?:table|figure|fig\.?)\s+\d", low):  # "1", "2.1 collapsed", "IV. Results"
        return True
    words = re.sub(r"^(?:chapter|part|section|appendix)\s+\w+\.?\s*", "", low)
    if low in GENERIC_TITLES or low in _GENERIC_PHRASES or words in _GENERIC_PHRASES or (words != low and (
            not words or words in GENERIC_TITLES)):
        return True
    if low.startswith(("microsoft word", "microsoft powerpoint", "microsoft excel", "untitled", "slide ")) \
            or low in ("none", "null", "unknown", "title", "document", "doc"):
        return True
    squash = re.sub(r"[\W_]+", "", low)
    if stem and squash == re.sub(r"[\W_]+", "", stem.lower()):
        return True
    if " " not in text and (text.count("_") >= 1 or re.search(r"\d", text)):  # RUBRIK_Editorial_01-06
        return True
    return text.count("_") >= 2  # Dossier III_Appendix A_BOZ1-1_…: a file name


def _is_sentence(text: str) -> bool:
    """A line of running text (a notice, a caption), not a title."""
    return len(text.split()) > 20 or (text.endswith(".") and len(text.split()) > 8)


def _plausible_line(text: str, strict: bool = True) -> bool:
    if not text or len(text) > MAX_TITLE_CHARS or re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd]", text):
        return False
    if re.match(r"(?i)^arxiv:\S+", text) or "@" in text or re.match(r"(?i)^(?:https?://|www\.)", text):
        return False
    letters = re.findall(r"[^\W\d_]", text)
    if not strict:
        return len(letters) >= 3
    words = re.findall(r"[^\W\d_]{2,}", text)
    return (len(letters) >= 3 and len(letters) >= 0.4 * len(text.replace(" ", ""))
            and (len(words) >= 2 or any(len(w) >= 4 for w in words)))


def _first_page_lines(document) -> list[tuple[float, bool, float, str]]:
    """(size, bold, top, text) of the horizontal text lines of the first page with text."""
    for number in range(min(document.page_count, TITLE_SCAN_PAGES)):
        try:
            blocks = document[number].get_text("dict")["blocks"]
        except Exception:
            continue
        out = []
        for block in blocks:
            for line in block.get("lines", []):
                direction = line.get("dir", (1.0, 0.0))
                spans = [s for s in line.get("spans", []) if s.get("text")]
                if abs(direction[1]) > 0.01 or not spans:
                    continue  # rotated text: an arXiv stamp, a margin note
                text = " ".join("".join(s["text"] for s in spans).split())
                if not text:
                    continue
                size = round(max(s["size"] for s in spans if s["text"].strip()), 1)
                bold = all(s.get("flags", 0) & 16 for s in spans if s["text"].strip())
                out.append((size, bold, float(line["bbox"][1]), text))
        if out:
            return out
    return []


def _largest_text(document, headings: list[tuple[int, str]], stem: str) -> str | None:
    """The first page's title: its largest text (consecutive lines of that size joined),
    not a section name; a lead line ending in "on", "of" … joins it."""
    lines = _first_page_lines(document)
    groups: list[list] = []  # [size, bold, first index, texts, bottom]
    for index, (size, bold, top, text) in enumerate(lines):
        last = groups[-1] if groups else None
        if last and abs(last[0] - size) <= 0.3 and 0.5 * size <= top - last[4] <= 2.2 * size and len(last[3]) < 6:
            last[3].append(text)
            last[4] = top
        else:
            groups.append([size, bold, index, [text], top])
    candidates = []
    for group in groups:
        text = " ".join(group[3])
        if _plausible_line(text) and not is_generic_title(text) and not _is_sentence(text) \
                and (len(group[3]) == 1 or group[4] - lines[group[2]][2] >= 0.5 * group[0] * (len(group[3]) - 1)):
            candidates.append((group, text))
    if not candidates:
        return None
    body = max(((size, sum(len(t) for s, _b, _t, t in lines if s == size)) for size, *_ in lines),
               key=lambda item: item[1])[0]
    biggest = max(group[0] for group, _text in candidates)
    group, text = next((g, t) for g, t in candidates if g[0] == biggest)
    heading_texts = {" ".join(h.split()).lower() for _level, h in headings}
    if text.lower() in heading_texts and group[2] > 0:
        # The largest text is one of the document's section headings ("Pixmap"); a bold,
        # title-like first line above it is the title.
        first = next(((g, t) for g, t in candidates if g[2] == 0), None)
        if first and first[0][1] and len(first[1].split()) <= 16 and not first[1].endswith((".", ":")):
            return first[1]
    if biggest <= body and not group[1]:
        return None  # nothing set larger or bolder than the body text
    at = groups.index(group)
    if at > 0:
        lead = groups[at - 1]
        lead_text = " ".join(lead[3])
        if lead[0] >= 0.5 * biggest and lines[group[2]][2] - lead[4] <= 2.5 * biggest and _plausible_line(lead_text) \
                and lead_text.split()[-1].lower() in _JOINERS:
            text = lead_text + " " + text
    return text


def _title(document, headings: list[tuple[int, str]], stem: str) -> str:
    """The document's title: its metadata title when meaningful, else the largest text on
    its first page, else its first heading that is no section name, else the file's stem."""
    meta = " ".join(str((document.metadata or {}).get("title") or "").split())
    if _plausible_line(meta, strict=False) and not is_generic_title(meta, stem):
        return meta
    found = _largest_text(document, headings, stem)
    if found:
        return found
    for _level, heading in headings:
        if _plausible_line(heading, strict=False) and not is_generic_title(heading, stem):
            return " ".join(heading.split())
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
