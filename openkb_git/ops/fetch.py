"""`openkb add URL`: download an http(s) URL into the add run's staging, as a file the
normal pipeline takes.

    fetched = fetch_url(url, run_dir / "fetched" / "0", FetchSettings.from_config(kb.config))
    fetched.path      # .openkb/staging/<run>/fetched/0/<name>.pdf | .md | .txt

The type is decided by the content, the server's Content-Type only a hint: a PDF by its
magic bytes (``%PDF-``), an HTML page by its markup (made Markdown by trafilatura, as
OpenKB does: convert/web.py), anything else that reads as text is Markdown (declared
text/markdown, a ``.md`` URL, or Markdown headings) or plain text. Other content is
refused, naming what the server said it is. The name comes from the Content-Disposition
file name or the last segment of the (final) URL, for a page its title; the URL is the
document's source key, so the same URL again is the same document (re-fetched: updated
when its content changed, skipped when not).

Failures raise FetchError with the reason (connect timeout, read timeout, too many
redirects, larger than max_fetch_mb, an HTTP status other than 2xx, unsupported content):
the caller reports it for that URL and goes on with the others. Nothing is written outside
the folder given (staging): the live KB is touched only by the commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlsplit

from .. import __version__
from ..convert.base import ConversionError
from ..errors import OpenKBError
from ..fsutil import makedirs, write_bytes
from ..registry import sanitize_stem

URL_PREFIXES = ("http://", "https://")
MAX_REDIRECTS = 10
_CHUNK = 64 * 1024
_SNIFF = 4096
MB = 1024 * 1024
_USER_AGENT = f"openkb-git/{__version__} (+https://github.com/VectifyAI/OpenKB)"
_MARKDOWN_TYPES = ("text/markdown", "text/x-markdown")
_MARKDOWN_SUFFIXES = (".md", ".markdown")
_MD_SIGNS = re.compile(r"^(?:#{1,6}\s+\S|```|\* \S|- \S|\d+\. \S|> \S)|\]\([^)\s]+\)", re.M)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str) -> bool:
    """True for an http(s) URL (as `openkb add` takes it instead of a path)."""
    return isinstance(text, str) and text[:8].lower().startswith(URL_PREFIXES)


def looks_like_url(text: str) -> bool:
    """True for anything written as a URL (``scheme://``), http(s) or not: not a path."""
    return isinstance(text, str) and _SCHEME.match(text) is not None


class FetchError(OpenKBError):
    """A URL could not be fetched or is not a document openkb reads; the message is the reason."""


@dataclass(frozen=True)
class FetchSettings:
    """``max_mb``: the most one answer may be (checked against Content-Length and while
    receiving); ``timeout``: seconds to connect, and to wait for each part of the answer."""

    max_mb: float | None = 100
    timeout: float = 30
    max_redirects: int = MAX_REDIRECTS

    @classmethod
    def from_config(cls, config: Mapping) -> "FetchSettings":
        max_mb = config.get("max_fetch_mb", cls.max_mb)
        timeout = config.get("fetch_timeout", cls.timeout)
        return cls(max_mb=max_mb or None, timeout=timeout or cls.timeout)


@dataclass
class Fetched:
    url: str  # as given: the document's source key
    final_url: str  # after redirects
    path: Path  # the staged file
    kind: str  # pdf | html | md | txt
    content_type: str = ""
    warnings: list[str] = field(default_factory=list)

    def origin(self) -> dict:
        """What the registry record keeps of where the document came from."""
        out = {"url": self.url}
        if self.final_url != self.url:
            out["redirected_to"] = self.final_url
        return out


def fetch_url(url: str, dest: Path, settings: FetchSettings | None = None) -> Fetched:
    """Download ``url`` into the folder ``dest`` (created) as one file named for the document.
    Raises FetchError with the reason."""
    settings = settings or FetchSettings()
    where = _checked_host(url)
    data, final_url, content_type, disposition = _download(url, settings, where)
    kind = sniff(data[:_SNIFF], content_type, final_url)
    if kind is None:
        declared = content_type.split(";")[0].strip() or "no Content-Type"
        raise FetchError(f"unsupported content ({declared}, {_first_bytes(data)}): openkb reads PDF, HTML, Markdown "
                         "and text from URLs; download the file and add it by its path instead")
    warnings: list[str] = []
    if kind == "pdf":
        stem, suffix = _pdf_stem(final_url, disposition), ".pdf"
        body = data
    elif kind == "html":
        from ..convert.web import decode_page, page_to_markdown

        try:
            title, markdown, warnings = page_to_markdown(decode_page(data, _charset(content_type)), final_url)
        except ConversionError as exc:
            raise FetchError(str(exc)) from None
        stem, suffix = title, ".md"
        body = markdown.encode("utf-8")
    else:
        stem = _last_segment(final_url, (*_MARKDOWN_SUFFIXES, ".txt", ".text"))
        suffix = ".md" if kind == "md" else ".txt"
        body = data
    makedirs(dest, sync=False)
    path = dest / f"{sanitize_stem(stem)}{suffix}"
    write_bytes(path, body)
    return Fetched(url=url, final_url=final_url, path=path, kind=kind, content_type=content_type, warnings=warnings)


def sniff(head: bytes, content_type: str, url: str = "") -> str | None:
    """"pdf", "html", "md", "txt" for the first bytes of an answer (its content decides; the
    declared type and the URL's suffix only tell Markdown from text), or None."""
    declared = content_type.split(";")[0].strip().lower()
    if head.startswith(b"%PDF-"):
        return "pdf"
    start = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    lowered = start[:1024].lower()
    markup = re.sub(rb"^(?:<\?xml[^>]*>\s*|<!--.*?-->\s*)*", b"", lowered, flags=re.S)
    if markup.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or \
            (start.startswith(b"<") and declared in ("text/html", "application/xhtml+xml")):
        return "html"
    # Text: no NUL byte, UTF-8 (or, when declared text/*, some other encoding the converter detects).
    textual = declared.startswith("text/") or declared.endswith(("json", "xml")) or \
        declared in ("", "application/octet-stream")
    if b"\0" in head or not textual:
        return None  # binary, or a type openkb does not read (application/pdf without being a PDF: an error page)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4 and not declared.startswith("text/"):  # not just a character cut by the sample
            return None
        text = head[: exc.start].decode("utf-8")
    path = urlsplit(url).path.lower()
    if declared in _MARKDOWN_TYPES or path.endswith(_MARKDOWN_SUFFIXES) or _MD_SIGNS.search(text):
        return "md"
    return "txt"


def _download(url: str, settings: FetchSettings, where: str) -> tuple[bytes, str, str, str]:
    """(body, final URL, Content-Type, Content-Disposition)."""
    import http.client  # here: `openkb add` of files only does not pay for the network modules
    import socket
    import urllib.error
    import urllib.request

    opener = _opener(settings)
    limit = settings.max_mb * MB if settings.max_mb else None
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept": "*/*",
                                                       "Accept-Encoding": "identity"})
        response = opener.open(request, timeout=settings.timeout)
    except _TooManyRedirects as exc:
        raise FetchError(str(exc)) from None
    except urllib.error.HTTPError as exc:
        exc.close()
        raise FetchError(f"the server answered HTTP {exc.code} {exc.reason or http.client.responses.get(exc.code, '')}"
                         .rstrip() + f" for {_shown(exc.url or url)}" + _status_hint(exc.code)) from None
    except urllib.error.URLError as exc:
        raise FetchError(_connect_problem(exc.reason, where, settings)) from None
    except (TimeoutError, socket.timeout):
        raise FetchError(_read_timeout(where, settings, "the answer's headers")) from None
    except (http.client.HTTPException, ConnectionError, OSError, ValueError) as exc:
        raise FetchError(_broken(exc, where)) from None
    with response:
        final_url = response.geturl() or url
        headers = response.headers
        declared = headers.get("Content-Length")
        if limit and declared and declared.strip().isdigit() and int(declared) > limit:
            raise FetchError(f"larger than max_fetch_mb ({int(declared) / MB:.1f} MB declared > {settings.max_mb:g} MB); "
                             "raise max_fetch_mb in .openkb/config.yaml to add it")
        chunks, size = [], 0
        try:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if limit and size > limit:
                    raise FetchError(f"larger than max_fetch_mb (more than {settings.max_mb:g} MB received; stopped); "
                                     "raise max_fetch_mb in .openkb/config.yaml to add it")
                chunks.append(chunk)
        except (TimeoutError, socket.timeout):
            raise FetchError(_read_timeout(where, settings, f"more after {size} bytes")) from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise FetchError(_broken(exc, where, size)) from None
    data = b"".join(chunks)
    if not data:
        raise FetchError(f"the server sent an empty answer for {_shown(final_url)}")
    return data, final_url, headers.get("Content-Type", "") or "", headers.get("Content-Disposition", "") or ""


class _TooManyRedirects(Exception):
    """Raised by the redirect handler (through urllib, unchanged): the message is the reason."""


def _opener(settings: FetchSettings):
    """A urllib opener for http(s) only (no file:, ftp: or data: URLs, also not by a redirect),
    following at most ``settings.max_redirects`` redirects."""
    import http.client
    import ssl
    import urllib.request

    timeout = settings.timeout

    class Redirects(urllib.request.HTTPRedirectHandler):
        max_redirections = settings.max_redirects
        max_repeats = 1

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not is_url(newurl) and urlsplit(newurl).scheme:
                raise _TooManyRedirects(f"redirected to {_shown(newurl)}, not an http(s) URL; refused")
            visited = getattr(req, "redirect_dict", {})
            if len(visited) >= self.max_redirections or newurl in visited:
                what = (f"(a loop): back to {_shown(newurl)}" if newurl in visited else
                        f"(more than {self.max_redirections}), the last to {_shown(newurl)}")
                raise _TooManyRedirects(f"too many redirects {what}; check the URL in a browser")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    def timed(base):
        class Connection(base):
            def connect(self):
                self.timeout = timeout  # to connect (and, for https, the TLS handshake)...
                super().connect()
                self.sock.settimeout(timeout)  # ...then for each read

        return Connection

    http_conn, https_conn = timed(http.client.HTTPConnection), timed(http.client.HTTPSConnection)

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(http_conn, req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(https_conn, req, context=self._context)

    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), HTTP(), HTTPS(context=ssl.create_default_context()),
                    Redirects(), urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPErrorProcessor(), urllib.request.UnknownHandler()):
        opener.add_handler(handler)
    return opener


def _connect_problem(reason, where: str, settings: FetchSettings) -> str:
    import socket
    import ssl

    if isinstance(reason, (TimeoutError, socket.timeout)):
        return (f"connect timeout: no connection to {where} within {settings.timeout:g} s; check the address and "
                "your network, or raise fetch_timeout in .openkb/config.yaml")
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused by {where} (nothing listens there); check the URL"
    if isinstance(reason, socket.gaierror):
        return f"cannot resolve the host of {where} ({reason.strerror or reason}); check the URL and your network"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"the TLS certificate of {where} is not valid ({reason.verify_message or reason}); refused"
    if isinstance(reason, str) and reason.startswith("unknown url type"):
        return f"not an http(s) URL ({reason})"
    if isinstance(reason, str):
        return f"cannot fetch from {where}: {reason}"
    return f"cannot connect to {where}: {getattr(reason, 'strerror', None) or reason}"


def _read_timeout(where: str, settings: FetchSettings, what: str) -> str:
    return (f"read timeout: {where} sent nothing for {settings.timeout:g} s (waiting for {what}); try again "
            "later, or raise fetch_timeout in .openkb/config.yaml")


def _broken(exc: BaseException, where: str, size: int | None = None) -> str:
    import http.client

    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection to {where} closed before the whole answer arrived ({size or 0} bytes); try again"
    if isinstance(exc, ValueError):
        return f"not a valid URL ({exc})"
    return f"the connection to {where} failed ({type(exc).__name__}: {exc}); try again"


def _status_hint(code: int) -> str:
    if code in (401, 403):
        return " (it needs a login or refuses robots; download it in a browser and add the file)"
    if code == 404:
        return " (no such page; check the URL)"
    if code == 429 or code >= 500:
        return " (the server's problem; try again later)"
    return ""


def _checked_host(url: str) -> str:
    """"host[:port]" of ``url``; FetchError when it is not a valid http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"not a valid URL ({exc}); check it") from None
    if not parts.hostname:
        raise FetchError("not a valid URL (no host name); check it")
    if any(not c.isprintable() or c.isspace() for c in url):
        raise FetchError("not a valid URL (it contains spaces or control characters; write them %-escaped)")
    return f"{parts.hostname}:{port}" if port else parts.hostname


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", content_type, re.I)
    return match.group(1) if match else None


def _pdf_stem(url: str, disposition: str) -> str:
    """The name of a PDF: Content-Disposition's file name, else the URL's last segment."""
    name = None
    match = re.search(r"filename\*\s*=\s*(?:[\w-]+'[\w-]*')?([^;]+)", disposition, re.I)
    if match:
        name = unquote(match.group(1).strip().strip('"'))
    else:
        match = re.search(r'filename\s*=\s*"([^"]+)"', disposition, re.I) or \
            re.search(r"filename\s*=\s*([^\s;]+)", disposition, re.I)
        name = match.group(1) if match else None
    if name:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        return name[:-4] if name.lower().endswith(".pdf") else name
    return _last_segment(url, (".pdf",))


def _last_segment(url: str, suffixes: tuple[str, ...]) -> str:
    """The URL's last path segment (decoded, a known suffix dropped), else its host."""
    parts = urlsplit(url)
    last = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1])
    for suffix in suffixes:
        if last.lower().endswith(suffix) and len(last) > len(suffix):
            last = last[: -len(suffix)]
            break
    return last or parts.hostname or "document"


def _first_bytes(data: bytes) -> str:
    head = data[:8]
    return "starts with " + (repr(head)[1:] if head else "nothing")


def _shown(url: str) -> str:
    """A URL printable on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in url)
