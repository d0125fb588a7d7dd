"""Markdown, plain text and HTML, read directly."""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

import yaml

from .base import ConversionError, Converted

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def decode_text(data: bytes) -> str:
    """Text in UTF-8 (or UTF-16/32 with a byte-order mark; a BOM is dropped); raises
    ConversionError for binary content or bytes that are not valid UTF-8."""
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                data = data.decode(codec).encode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConversionError(f"not valid {codec.upper()} text (invalid byte at offset {exc.start})") from None
            break
    if b"\0" in data:
        raise ConversionError("binary content, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConversionError(f"not valid UTF-8 text (invalid byte at offset {exc.start})") from None
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
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---", 4)
    if end == -1:
        return None
    try:
        data = yaml.safe_load(text[4:end])
    except yaml.YAMLError:
        return None
    if isinstance(data, dict) and isinstance(data.get("title"), str) and data["title"].strip():
        return data["title"].strip()
    return None


def convert_text(data: bytes, suffix: str, stem: str, doc: str) -> Converted:
    text = decode_text(data)
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
    if not text.endswith("\n"):
        text += "\n"
    warnings = [] if text.strip() else ["no text in the document"]
    return Converted(doc_type=doc_type, title=title, text=text, pages=None, headings=headings, tree=None,
                     files={f"wiki/sources/{doc}.md": text.encode("utf-8")}, warnings=warnings)


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
