"""Markdown, plain text and HTML, read directly.

Text in UTF-8 (or UTF-16/32 with a byte-order mark) is read as is; other text is decoded
with the encoding charset-normalizer detects, and the Converted names it (the registry
record keeps it as "encoding"). Bytes no encoding reads as text are refused.
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

from ..frontmatter import split as split_frontmatter
from .base import ConversionError, Converted
from .limits import Limits

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def decode_text(data: bytes) -> tuple[str, str | None]:
    """(text, encoding) of a text file: UTF-8 (a BOM is dropped), UTF-16/32 with a
    byte-order mark, else the encoding charset-normalizer detects (``encoding`` is None for
    UTF-8). Raises ConversionError for binary content or bytes no encoding reads as text."""
    encoding = None
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise ConversionError(f"not valid {codec.upper()} text (invalid byte at offset {exc.start})") from None
            if "\0" in text:
                raise ConversionError("binary content, not text")
            return _newlines(text), codec
    if b"\0" in data:
        raise ConversionError("binary content, not text (NUL bytes); if it is UTF-16 text without a "
                              "byte-order mark, save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        encoding = detect_encoding(data)
        if encoding is None:
            raise ConversionError(f"not text: not valid UTF-8 (invalid byte at offset {exc.start}) and no other "
                                  "encoding reads it as text; if it is text, save it as UTF-8") from None
        text = data.decode(encoding)
    return _newlines(text), encoding


# Detection reads a sample of a large file first (the whole file is then decoded with the
# result, and detected again in full only if that fails).
_DETECT_SAMPLE = 4 * 1024 * 1024
# charset-normalizer ranks single-byte code pages by "chaos" measured on the text; on short
# Western texts several read equally well and its first is often an unlikely one (cp1006,
# cp775). windows-1252, the usual legacy encoding (and the WHATWG default), is taken when
# it reads the text about as well as the best.
_PREFERRED = "cp1252"
_MARGIN = 0.1


def detect_encoding(data: bytes) -> str | None:
    """The Python codec name of the encoding ``data`` is most likely in, or None when no
    encoding reads it as text (binary content)."""
    if len(data) > _DETECT_SAMPLE:
        cut = data.rfind(b"\n", 0, _DETECT_SAMPLE)
        found = _detect(data[: cut + 1 if cut > 0 else _DETECT_SAMPLE])
        if found is not None:
            try:
                codecs.decode(data, found)
                return found
            except UnicodeDecodeError:
                pass
    return _detect(data)


def _detect(data: bytes) -> str | None:
    import charset_normalizer  # here: only files that are not UTF-8 pay for the import

    results = charset_normalizer.from_bytes(data)
    best = results.best()
    if best is None:
        return None
    for match in results:
        if _PREFERRED in match.could_be_from_charset and match.chaos <= best.chaos + _MARGIN \
                and match.coherence >= best.coherence - _MARGIN:
            return codecs.lookup(_PREFERRED).name
    return codecs.lookup(best.encoding).name


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def markdown_headings(text: str) -> list[tuple[int, str]]:
    headings = []
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        match = None if in_code else _MD_HEADING.match(line)
        if match:
            headings.append((len(match.group(1)), match.group(2).strip()))
    return headings


def _frontmatter_title(text: str) -> str | None:
    data, _body = split_frontmatter(text)
    if data and isinstance(data.get("title"), str) and data["title"].strip():
        return data["title"].strip()
    return None


def convert_text(data: bytes, suffix: str, stem: str, doc: str, limits: Limits | None = None) -> Converted:
    limits = limits or Limits()
    limits.check_text_size(len(data))
    text, encoding = decode_text(data)
    if suffix in (".html", ".htm"):
        title, text = html_to_markdown(text)
        doc_type = "html"
    else:
        title = None
        doc_type = "txt" if suffix == ".txt" else "md"
    headings = markdown_headings(text) if doc_type != "txt" else []
    title = title or (_frontmatter_title(text) if doc_type == "md" else None)
    if not title:
        first = next((h for lvl, h in headings if lvl == 1), None) or (headings[0][1] if headings else None)
        title = first or stem
    return markdown_document(text, doc_type=doc_type, title=title, headings=headings, doc=doc, limits=limits,
                             encoding=encoding)


def markdown_document(text: str, *, doc_type: str, title: str, headings: list[tuple[int, str]], doc: str,
                      limits: Limits, encoding: str | None = None, files: dict[str, bytes] | None = None) -> Converted:
    """The document whose source page is the Markdown ``text`` (plus ``files``, e.g. images):
    the last steps of every converter to text (text, HTML, Office, CSV)."""
    if not text.endswith("\n"):
        text += "\n"
    warnings = [] if text.strip() else ["no text in the document"]
    if encoding:
        warnings.append(f"decoded as {encoding} (not UTF-8); the source page is in UTF-8")
    source = text.encode("utf-8")
    limits.check_text_size(len(source))
    return Converted(doc_type=doc_type, title=title, text=text, pages=None, headings=headings, tree=None,
                     files={f"wiki/sources/{doc}.md": source, **(files or {})}, warnings=warnings, encoding=encoding)


class _HTMLToMarkdown(HTMLParser):
    BLOCK = {"p", "div", "section", "article", "br", "tr", "table", "ul", "ol", "blockquote", "pre", "hr"}
    SKIP = {"script", "style", "head", "noscript", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title = ""
        self._in_title = False
        self._skip = 0
        self._heading: int | None = None

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = int(tag[1])
            self.out.append("\n\n" + "#" * self._heading + " ")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag):
            self._heading = None
            self.out.append("\n\n")
        elif tag in self.BLOCK:
            self.out.append("\n\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_markdown(html: str) -> tuple[str | None, str]:
    """(title, Markdown text) of an HTML document, using the standard library's parser."""
    parser = _HTMLToMarkdown()
    parser.feed(html)
    parser.close()
    text = "".join(parser.out)
    lines = [line.strip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
    title = " ".join(parser.title.split()) or None
    return title, text
