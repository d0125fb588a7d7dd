"""A web page (HTML fetched by `openkb add URL`) as Markdown: its main text and title.

trafilatura extracts the main content of the page — the article, not the navigation,
cookie banners, footers and sidebars around it — as Markdown with its headings, lists,
tables and links, and reads the page's title from its metadata (``<title>``, OpenGraph,
JSON-LD). It is what OpenKB uses for URLs, is well kept (frequent releases, used by
large web-corpus projects) and runs offline on the bytes given. Saving the whole page
instead would put every site's menus into the summaries and concept pages.

The result is Markdown, headed by the title (``# Title``) when the extract does not start
with it; it is saved as the document's raw ``.md`` file (as OpenKB does) and then goes
through the Markdown converter. The URL is kept in the document's registry record.
"""

from __future__ import annotations

import re

from .base import ConversionError
from .text import decode_text

SHORT_EXTRACT = 300  # characters: less than this is probably a page rendered by JavaScript or a login wall


class WebExtractorMissingError(ConversionError):
    """trafilatura cannot be imported (a broken installation)."""


def _trafilatura():
    try:
        import trafilatura
    except ImportError as exc:
        raise WebExtractorMissingError(
            f"converting a web page needs trafilatura, which cannot be imported ({exc}); reinstall openkb-git "
            "(`pip install --force-reinstall openkb-git`) or add a saved copy of the page as a file") from None
    return trafilatura


def decode_page(data: bytes, charset: str | None = None) -> str:
    """The text of an HTML page: in the charset its Content-Type names, when Python knows it
    and it reads the bytes; else detected (`text.decode_text`)."""
    if charset:
        try:
            return data.decode(charset).lstrip("\ufeff").replace("\r\n", "\n")
        except (LookupError, UnicodeDecodeError):
            pass
    text, _encoding = decode_text(data)
    return text


def page_to_markdown(html: str, url: str) -> tuple[str, str, list[str]]:
    """(title, Markdown document headed by the title, warnings) of the page
    ``html`` fetched from ``url``. Raises ConversionError when no main text is found."""
    trafilatura = _trafilatura()
    try:
        body = trafilatura.extract(html, url=url, output_format="markdown", include_links=True,
                                   include_tables=True, include_comments=False, deduplicate=False)
        metadata = trafilatura.extract_metadata(html, default_url=url)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConversionError(f"not a readable HTML page ({type(exc).__name__}: {exc})") from None
    if not body or not body.strip():
        raise ConversionError("no main text found in the page (it may be empty, rendered by JavaScript, or "
                              "behind a login); save the page from a browser and add the file instead")
    body = body.replace("\r\n", "\n").strip() + "\n"
    title = " ".join(((metadata.title if metadata else None) or "").split())
    if not title:
        first = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", body, re.M)
        title = first.group(1).strip() if first else url
    warnings = []
    if len(body) < SHORT_EXTRACT:
        warnings.append(f"only {len(body)} characters of main text found in the page (rendered by JavaScript, "
                        "or behind a login?); check the document, `openkb revert` it if it is empty")
    first = re.match(r"#\s+(.+?)\s*#*\s*$", body.split("\n", 1)[0])
    if not (first and " ".join(first.group(1).split()) == title):
        body = f"# {title}\n\n{body}"
    return title, body, warnings
