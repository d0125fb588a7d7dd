"""Conversion of input files into Markdown or per-page JSON sources (see docs/CONTRACTS.md).

    conv = convert_file(path, doc_name, pageindex_threshold=20, limits=Limits.from_config(kb.config))

PDF, EPUB, XPS, MOBI, FB2 and SVG go through PyMuPDF (`pdf.py`); Markdown, text and
HTML are read directly (`text.py`; text not in UTF-8 is decoded by detection); Word,
PowerPoint and Excel files go through markitdown (`office.py`, the optional `office` extra),
CSV through the csv module. A web page fetched by `openkb add URL` is made Markdown first
(`web.py`, trafilatura). Output is
deterministic: the same bytes always give the same result. Anything that cannot be
converted raises ConversionError with the reason (the caller names the file); a file that
would expand past a limit (`limits.py`) raises LimitError, naming the limit.
"""

from __future__ import annotations

from pathlib import Path

from .base import ConversionError, Converted
from .limits import LimitError, Limits, memory_limit
from .office import OFFICE_SUFFIXES, convert_office
from .pdf import PYMUPDF_SUFFIXES, convert_paged
from .text import TEXT_SUFFIXES, convert_text

SUPPORTED_SUFFIXES = frozenset(PYMUPDF_SUFFIXES | TEXT_SUFFIXES | OFFICE_SUFFIXES)
# What "unsupported file type" lists: the types by name, as the user knows them.
SUPPORTED_TYPES = ("PDF, EPUB, XPS, MOBI, FB2, SVG, Markdown (.md, .markdown), text (.txt), HTML (.html, .htm), "
                   "Word (.docx), PowerPoint (.pptx), Excel (.xlsx, .xls), CSV (.csv), and http(s) URLs")


def unsupported_reason(path: Path, *, listed: bool = True) -> str:
    """Why ``path`` is not converted: its type (`.xyz`), or that its name has no extension
    (`README`); with ``listed``, followed by the types that are."""
    suffix = path.suffix.lower()
    if not suffix:
        what = "no file extension, so no known type"
        return (f"{what} (supported: {SUPPORTED_TYPES}); rename it, e.g. {path.name}.md for Markdown or "
                f"{path.name}.txt for plain text") if listed else what
    what = f"unsupported file type '{suffix}'"
    return f"{what}; supported: {SUPPORTED_TYPES}" if listed else what


def convert_file(path: Path, doc_name: str, *, pageindex_threshold: int = 20, data: bytes | None = None,
                 limits: Limits | None = None) -> Converted:
    """Convert ``path`` (or ``data``, its bytes, when given) for document ``doc_name``,
    within ``limits`` (default: Limits(); the memory cap is the caller's: memory_limit).

    Returns a Converted; raises ConversionError for empty, corrupt, encrypted, binary or
    unsupported input, LimitError (a ConversionError) for input past a limit."""
    path = Path(path)
    suffix = path.suffix.lower()
    limits = limits or Limits()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ConversionError(unsupported_reason(path))
    if data is None:
        limits.check_input(suffix, path.stat().st_size)
        data = path.read_bytes()
    if not data:
        raise ConversionError("empty file")
    limits.check_input(suffix, len(data))
    if suffix in TEXT_SUFFIXES:
        return convert_text(data, suffix, path.stem, doc_name, limits)
    if suffix in OFFICE_SUFFIXES:
        return convert_office(data, suffix, path.stem, doc_name, limits)
    return convert_paged(data, suffix, path.stem, doc_name, pageindex_threshold, limits)


__all__ = ["ConversionError", "Converted", "LimitError", "Limits", "SUPPORTED_SUFFIXES", "SUPPORTED_TYPES",
           "convert_file", "memory_limit", "unsupported_reason"]
