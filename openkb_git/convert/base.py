"""What a converter returns, and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import OpenKBError


class ConversionError(OpenKBError):
    """The file cannot be converted; the message is the reason only."""


@dataclass(frozen=True)
class Converted:
    doc_type: str  # OpenKB's registry type: pdf, long_pdf, epub, xps, mobi, fb2, svg, md, txt, html
    title: str
    text: str  # the whole document as Markdown / plain text
    pages: int | None
    headings: list[tuple[int, str]]
    tree: list[dict] | None  # long documents: nested {"title", "page", "children"}
    files: dict[str, bytes]  # KB-relative path -> content
    warnings: list[str] = field(default_factory=list)
    encoding: str | None = None  # text decoded from an encoding other than UTF-8 (e.g. "cp1252")
