"""Office documents (.docx, .pptx, .xlsx, .xls) through markitdown, and .csv through the
standard library's csv module.

markitdown is what OpenKB converts these files with; it is heavy (its file-type detector
loads a neural model), so it is an optional extra (`pip install 'openkb-git[office]'`), and
its converter for the type is called directly (the type is known from the suffix: no
detection model loaded, and the same bytes always take the same converter). Images embedded
in the document become files under ``wiki/sources/images/<doc>/img_NNN.<ext>``, linked as
OpenKB links them (``sources/images/<doc>/img_NNN.<ext>``).

A .csv is text: it becomes one Markdown table in markitdown's shape (header row, ``---``
separator, rows padded to the widest, pipes escaped, line breaks in a cell as spaces) with
no extra installed, and its encoding is detected as for any text file (`text.decode_text`).
"""

from __future__ import annotations

import base64
import csv
import io
import re

from .base import ConversionError, Converted
from .limits import Limits
from .text import decode_text, markdown_document, markdown_headings

MARKITDOWN_SUFFIXES = frozenset({".docx", ".pptx", ".xlsx", ".xls"})
CSV_SUFFIXES = frozenset({".csv"})
OFFICE_SUFFIXES = MARKITDOWN_SUFFIXES | CSV_SUFFIXES
_ZIPPED = {".docx": "Word document", ".pptx": "PowerPoint presentation", ".xlsx": "Excel workbook"}
INSTALL_HINT = "pip install 'openkb-git[office]'"
_BASE64_IMAGE = re.compile(r"!\[([^\]]*)\]\(data:image/([A-Za-z0-9.+-]{1,20});base64,([^)]+)\)")
_IMAGE_EXT = {"jpeg": "jpg", "svg+xml": "svg", "x-emf": "emf", "x-wmf": "wmf"}


class OfficeExtraMissingError(ConversionError):
    """markitdown (the `office` extra) is not installed."""


def _converter(suffix: str):
    """markitdown's converter for ``suffix``; OfficeExtraMissingError when it cannot be imported."""
    try:
        from markitdown import StreamInfo  # noqa: F401 (checks the package as a whole)
        from markitdown.converters import DocxConverter, PptxConverter, XlsConverter, XlsxConverter
    except ImportError as exc:
        raise OfficeExtraMissingError(
            f"converting {suffix} files needs markitdown, which is not installed ({exc}); "
            f"install the office extra: {INSTALL_HINT}") from None
    return {".docx": DocxConverter, ".pptx": PptxConverter, ".xlsx": XlsxConverter, ".xls": XlsConverter}[suffix]()


def preload() -> None:
    """Import markitdown now (before a memory limit or a fork), if it is installed."""
    try:
        import markitdown.converters  # noqa: F401
    except ImportError:
        pass


def convert_office(data: bytes, suffix: str, stem: str, doc: str, limits: Limits | None = None) -> Converted:
    """Convert a .docx/.pptx/.xlsx/.xls (markitdown) or .csv (csv module) for ``doc``."""
    limits = limits or Limits()
    if suffix in CSV_SUFFIXES:
        table, encoding = csv_to_markdown(data, limits)
        return _finish(table, "csv", stem, doc, {}, limits, encoding=encoding)
    if suffix in _ZIPPED:
        limits.check_archive(data, _ZIPPED[suffix], reflowable=True)
    converter = _converter(suffix)
    from markitdown import StreamInfo

    try:
        result = converter.convert(io.BytesIO(data), StreamInfo(extension=suffix), keep_data_uris=True)
    except MemoryError:
        raise
    except Exception as exc:  # the libraries raise anything on a corrupt file (BadZipFile, KeyError, XLRDError...)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"cannot read this {suffix} file (corrupt, encrypted or not a {suffix[1:]} file: "
                              f"{detail[:200]})") from None
    markdown = (result.markdown or "").replace("\r\n", "\n").replace("\r", "\n")
    limits.check_text_size(len(markdown.encode("utf-8")))
    markdown, images = _extract_images(markdown, doc)
    return _finish(markdown, suffix[1:], stem, doc, images, limits, title=getattr(result, "title", None))


def _finish(text: str, doc_type: str, stem: str, doc: str, images: dict[str, bytes], limits: Limits,
            title: str | None = None, encoding: str | None = None) -> Converted:
    headings = markdown_headings(text)
    title = (title or "").strip() or next((h for lvl, h in headings if lvl == 1), None) or stem
    return markdown_document(text.strip("\n") + "\n", doc_type=doc_type, title=title, headings=headings, doc=doc,
                             limits=limits, encoding=encoding, files=images)


def _extract_images(markdown: str, doc: str) -> tuple[str, dict[str, bytes]]:
    """Embedded ``data:image`` links as files (OpenKB's ``img_NNN.<ext>`` names, in order)."""
    images: dict[str, bytes] = {}

    def keep(match: re.Match) -> str:
        alt, kind, b64 = match.group(1), match.group(2).lower(), match.group(3)
        try:
            content = base64.b64decode(b64, validate=True)
        except ValueError:
            return match.group(0)
        ext = re.sub(r"[^a-z0-9]", "", _IMAGE_EXT.get(kind, kind))[:8] or "bin"
        name = f"img_{len(images) + 1:03d}.{ext}"
        images[f"wiki/sources/images/{doc}/{name}"] = content
        return f"![{alt}](sources/images/{doc}/{name})"

    return _BASE64_IMAGE.sub(keep, markdown), images


def _cell(value: str) -> str:
    value = re.sub(r"(?<!\\)(\\*)\|", lambda m: m.group(1) * 2 + r"\|", value)
    return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def csv_to_markdown(data: bytes, limits: Limits | None = None) -> tuple[str, str | None]:
    """(one Markdown table in markitdown's shape, "" for a file with no rows; the encoding it
    was decoded from when not UTF-8)."""
    if limits:
        limits.check_text_size(len(data))
    text, encoding = decode_text(data)
    # Commas, as markitdown reads it; a first line with no comma but semicolons or tabs (the
    # export of a spreadsheet in a locale whose decimal mark is a comma) is split at those.
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    delimiter = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ConversionError(f"not a readable CSV file ({exc})") from None
    while rows and not any(rows[0]):
        rows.pop(0)
    while rows and not any(rows[-1]):
        rows.pop()
    if not rows:
        return "", encoding
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(_cell(c) for c in rows[0] + [""] * (width - len(rows[0]))) + " |",
             "| " + " | ".join(["---"] * width) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row + [""] * (width - len(row))) + " |"
              for row in rows[1:] if any(row)]
    return "\n".join(lines) + "\n", encoding
