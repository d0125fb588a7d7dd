"""Conversion of input files into Markdown or per-page JSON sources (see docs/CONTRACTS.md).

    conv = convert_file(path, doc_name, pageindex_threshold=20, limits=Limits.from_config(kb.config))

PDF, EPUB, XPS, MOBI, FB2 and SVG go through PyMuPDF (`pdf.py`); Markdown, text and
HTML are read directly (`text.py`; text not in UTF-8 is decoded by detection). Output is
deterministic: the same bytes always give the same result. Anything that cannot be
converted raises ConversionError with the reason (the caller names the file); a file that
would expand past a limit (`limits.py`) raises LimitError, naming the limit.
"""

from __future__ import annotations

from pathlib import Path

from .base import ConversionError, Converted
from .limits import LimitError, Limits, memory_limit
from .pdf import PYMUPDF_SUFFIXES, convert_paged
from .text import TEXT_SUFFIXES, convert_text

SUPPORTED_SUFFIXES = frozenset(PYMUPDF_SUFFIXES | TEXT_SUFFIXES)


def unsupported_reason(path: Path) -> str:
    """Why ``path`` is not converted: its type (`.xyz`), or that its name has no extension
    (`README`), naming the types that are."""
    suffix = path.suffix.lower()
    if not suffix:
        return (f"no file extension, so no known type (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}); "
                f"rename it, e.g. {path.name}.md for Markdown or {path.name}.txt for plain text")
    return f"unsupported file type '{suffix}'"


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
    return convert_paged(data, suffix, path.stem, doc_name, pageindex_threshold, limits)


__all__ = ["ConversionError", "Converted", "LimitError", "Limits", "SUPPORTED_SUFFIXES", "convert_file",
           "memory_limit"]
