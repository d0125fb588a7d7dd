"""Conversion of input files into Markdown or per-page JSON sources (see docs/CONTRACTS.md).

    conv = convert_file(path, doc_name, pageindex_threshold=20)

PDF, EPUB, XPS, MOBI, FB2 and SVG go through PyMuPDF (`pdf.py`); Markdown, text and
HTML are read directly (`text.py`). Output is deterministic: the same bytes always give
the same result. Anything that cannot be converted raises ConversionError with the
reason (the caller names the file).
"""

from __future__ import annotations

from pathlib import Path

from .base import ConversionError, Converted
from .pdf import PYMUPDF_SUFFIXES, convert_paged
from .text import TEXT_SUFFIXES, convert_text

SUPPORTED_SUFFIXES = frozenset(PYMUPDF_SUFFIXES | TEXT_SUFFIXES)


def convert_file(path: Path, doc_name: str, *, pageindex_threshold: int = 20, data: bytes | None = None) -> Converted:
    """Convert ``path`` (or ``data``, its bytes, when given) for document ``doc_name``.

    Returns a Converted; raises ConversionError for empty, corrupt, encrypted, binary or
    unsupported input."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ConversionError(f"unsupported file type '{suffix or path.name}'")
    if data is None:
        data = path.read_bytes()
    if not data:
        raise ConversionError("empty file")
    if suffix in TEXT_SUFFIXES:
        return convert_text(data, suffix, path.stem, doc_name)
    return convert_paged(data, suffix, path.stem, doc_name, pageindex_threshold)


__all__ = ["ConversionError", "Converted", "SUPPORTED_SUFFIXES", "convert_file"]
