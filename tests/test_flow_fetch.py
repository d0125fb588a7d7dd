"""Issue #18 items 3 and 4: `openkb add URL` and Office files.

URLs are fetched from a real HTTP server on 127.0.0.1 started here (http.server in a thread,
a free port): a corpus PDF, an HTML page, a Markdown file, a redirect chain, a redirect loop,
a 404, a slow endpoint, huge endpoints, unsupported content. Office files are real .docx /
.pptx / .xlsx / .csv files made here (python-pptx, openpyxl; a .docx written as the zip of
the XML parts Word writes; no .xls writer is installed, so .xls is not added here). The message for a missing markitdown is checked in a real
subprocess whose PYTHONPATH holds a `markitdown` package that raises ImportError.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import CORPUS, TLDR, assert_consistent, git, run_openkb

PDF = CORPUS / "pdf" / "github_sample.pdf"
ARTICLE = """<!DOCTYPE html>
<html><head><title>Tar archives explained</title><meta charset="utf-8"></head>
<body>
<nav><a href="/">Home</a> | <a href="/blog">Blog</a> | <a href="/about">About us</a> | Cookie settings</nav>
<article>
<h1>Tar archives explained</h1>
<p>The tar utility bundles many files into one archive while keeping permissions, owners and
modification times. Archives are usually compressed with gzip, bzip2 or xz afterwards.</p>
<p>To create an archive from a directory, run tar with the create flag and name the output file;
to extract it again, use the extract flag. Listing an archive shows its members without unpacking.</p>
<h2>Compression</h2>
<p>Compression reduces the size of the archive considerably, at the cost of random access: a
compressed tarball must be read from the start to reach a member near its end.</p>
</article>
<footer>Copyright 2024 Example Corp. All rights reserved. Subscribe to our newsletter.</footer>
</body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            return self._send(404, b"<html><body>not found</body></html>", "text/html")
        route(self)

    def _send(self, code, body, ctype, headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    """A real HTTP server on 127.0.0.1 (free port) whose routes a test sets: {path: handler}."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.routes, httpd.hits = {}, []
    httpd.content = {}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def serve(server, path, body, ctype, code=200, headers=()):
    server.routes[path] = lambda h: h._send(code, body() if callable(body) else body, ctype, headers)


def redirect(server, path, to, code=302):
    def handle(h):
        h.send_response(code)
        h.send_header("Location", to)
        h.send_header("Content-Length", "0")
        h.end_headers()
    server.routes[path] = handle


def record(kb: Path, doc: str) -> dict:
    return json.loads((kb / ".openkb" / "registry" / f"{doc}.json").read_text())


def set_config(kb: Path, **settings) -> None:
    path = kb / ".openkb" / "config.yaml"
    path.write_text(path.read_text() + "".join(f"{k}: {v}\n" for k, v in settings.items()))
    git(kb, "commit", "-qam", "config")


# ---------------------------------------------------------------------------
# URLs
# ---------------------------------------------------------------------------


def test_url_pdf_html_and_markdown_are_added_from_a_local_server(kb, server):
    """The reported bug: `openkb add https://arxiv.org/pdf/1706.03762` lost a slash and said "no such file".
    A PDF served without an extension (and as octet-stream) is a PDF by its bytes; the page is
    Markdown of its main text, titled by the page; each is one commit whose record keeps the URL."""
    serve(server, "/pdf/1706.03762", PDF.read_bytes(), "application/octet-stream")
    serve(server, "/blog/tar-explained", ARTICLE.encode(), "text/html; charset=utf-8")
    serve(server, "/raw/notes.md", (TLDR / "common" / "tar.md").read_bytes(), "text/plain; charset=utf-8")
    before = int(git(kb, "rev-list", "--count", "HEAD"))
    urls = [f"{server.base}/pdf/1706.03762", f"{server.base}/blog/tar-explained", f"{server.base}/raw/notes.md"]
    proc = run_openkb("add", *urls, "--json", cwd=kb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {f["path"]: f for f in json.loads(proc.stdout)["files"]}
    assert [files[u]["status"] for u in urls] == ["added"] * 3, files
    assert int(git(kb, "rev-list", "--count", "HEAD")) == before + 3

    pdf, page, notes = (files[u]["doc"] for u in urls)
    assert pdf == "1706-03762"  # the last path segment, made a safe name
    assert record(kb, pdf)["type"] == "pdf" and (kb / "raw" / f"{pdf}.pdf").read_bytes() == PDF.read_bytes()
    assert record(kb, pdf)["url"] == urls[0] and record(kb, pdf)["path"] == urls[0]

    assert page == "Tar-archives-explained"  # the page's title
    rec = record(kb, page)
    assert rec["type"] == "md" and rec["url"] == urls[1] and rec["title"] == "Tar archives explained"
    source = (kb / rec["source_path"]).read_text()
    assert "bundles many files into one archive" in source and "## Compression" in source
    assert "Cookie settings" not in source and "newsletter" not in source  # trafilatura kept the main text only
    assert (kb / "raw" / f"{page}.md").read_text() == source

    assert notes == "notes" and record(kb, notes)["type"] == "md"  # text/plain, but Markdown (a .md URL)
    log = git(kb, "log", "-3", "--format=%(trailers:key=OpenKB-Source,valueonly)")
    assert all(u in log for u in urls)
    assert_consistent(kb)
    fsck = run_openkb("fsck", cwd=kb)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_same_url_again_is_the_same_document_and_refetch_updates_it(kb, server):
    body = {"text": ARTICLE}
    serve(server, "/post", lambda: body["text"].encode(), "text/html")
    url = f"{server.base}/post"
    first = json.loads(run_openkb("add", url, "--json", cwd=kb, check=True).stdout)["files"][0]
    again = json.loads(run_openkb("add", url, "--json", cwd=kb, check=True).stdout)["files"][0]
    assert again["status"] == "skipped" and again["doc"] == first["doc"]
    body["text"] = ARTICLE.replace("considerably", "a great deal, often by a factor of five or more")
    updated = json.loads(run_openkb("add", url, "--json", cwd=kb, check=True).stdout)["files"][0]
    assert updated["status"] == "added" and updated["doc"] == first["doc"]
    assert git(kb, "log", "-1", "--format=%s").startswith("update: ")
    assert "factor of five" in (kb / "wiki" / "sources" / f"{first['doc']}.md").read_text()
    assert len(list((kb / ".openkb" / "registry").glob("*.json"))) == 1
    assert_consistent(kb)


def test_redirect_chain_is_followed_and_recorded(kb, server):
    serve(server, "/files/paper.pdf", PDF.read_bytes(), "application/pdf")
    redirect(server, "/doi/1", "/doi/2", 301)
    redirect(server, "/doi/2", "/doi/3", 302)
    redirect(server, "/doi/3", f"{server.base}/files/paper.pdf", 307)
    url = f"{server.base}/doi/1"
    out = json.loads(run_openkb("add", url, "--json", cwd=kb, check=True).stdout)["files"][0]
    assert out["status"] == "added" and out["doc"] == "paper"  # named from the final URL
    rec = record(kb, "paper")
    assert rec["url"] == url and rec["redirected_to"] == f"{server.base}/files/paper.pdf"
    assert_consistent(kb)


def _failure(kb, url, *more):
    proc = run_openkb("add", url, *more, cwd=kb)
    return proc


def test_per_url_failures_are_clear_and_the_batch_goes_on(kb, server, tmp_path):
    """404, too many redirects, a redirect loop, unsupported content, a PDF that is not one:
    each fails with its reason, the file and the good URL of the batch are added, exit 1."""
    serve(server, "/ok.pdf", PDF.read_bytes(), "application/pdf")
    for i in range(12):
        redirect(server, f"/hop/{i}", f"/hop/{i + 1}")
    redirect(server, "/loop/a", "/loop/b")
    redirect(server, "/loop/b", "/loop/a")
    serve(server, "/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "image/png")
    serve(server, "/fake.pdf", b"<p>Please log in to download this paper</p>", "application/pdf")
    serve(server, "/gone", b"", "text/html", code=410)
    src = tmp_path / "src"
    src.mkdir()
    (src / "tar.md").write_bytes((TLDR / "common" / "tar.md").read_bytes())
    urls = {"missing": f"{server.base}/no/such/page", "hops": f"{server.base}/hop/0", "loop": f"{server.base}/loop/a",
            "png": f"{server.base}/logo.png", "fake": f"{server.base}/fake.pdf", "gone": f"{server.base}/gone",
            "ok": f"{server.base}/ok.pdf"}
    proc = run_openkb("add", urls["missing"], src / "tar.md", *[urls[k] for k in ("hops", "loop", "png", "fake",
                                                                                   "gone", "ok")], cwd=kb)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = {line.split()[1].rstrip(":"): line for line in proc.stdout.splitlines() if line.startswith(("failed", "added"))}
    assert "HTTP 404 Not Found" in lines[urls["missing"]] and "check the URL" in lines[urls["missing"]]
    assert "too many redirects (more than 10), the last to" in lines[urls["hops"]]
    assert "too many redirects (a loop)" in lines[urls["loop"]]
    assert "unsupported content (image/png" in lines[urls["png"]]
    assert "unsupported content (application/pdf, starts with" in lines[urls["fake"]]
    assert "HTTP 410 Gone" in lines[urls["gone"]]
    assert lines[urls["ok"]].startswith("added") and any(k.endswith("tar.md") and v.startswith("added")
                                                          for k, v in lines.items())
    assert "2 added, 0 skipped, 6 failed" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (kb / "raw").iterdir()) == ["ok.pdf", "tar.md"]
    assert_consistent(kb)


def test_read_timeout_on_a_slow_endpoint(kb, server):
    def slow(h):
        time.sleep(3)
        h._send(200, b"late", "text/plain")
    server.routes["/slow"] = slow
    set_config(kb, fetch_timeout=0.5)
    started = time.monotonic()
    proc = run_openkb("add", f"{server.base}/slow", cwd=kb)
    assert proc.returncode == 1
    assert "read timeout: 127.0.0.1:" in proc.stdout and "sent nothing for 0.5 s" in proc.stdout, proc.stdout
    assert "fetch_timeout" in proc.stdout
    assert time.monotonic() - started < 3 + 10  # not waiting for the server
    assert_consistent(kb)


def test_connect_timeout(kb):
    """A listener whose accept queue is full takes no connection: the SYN goes unanswered."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):  # fill the accept queue (never accepted)
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            pytest.skip("this kernel accepts connections past a full listen queue")
        except (TimeoutError, socket.timeout):
            pass
        finally:
            probe.close()
        set_config(kb, fetch_timeout=1)
        proc = run_openkb("add", f"http://127.0.0.1:{port}/paper.pdf", cwd=kb)
        assert proc.returncode == 1
        assert f"connect timeout: no connection to 127.0.0.1:{port} within 1 s" in proc.stdout, proc.stdout
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert_consistent(kb)


def test_size_limit_declared_and_while_streaming(kb, server):
    """max_fetch_mb refuses an answer that declares more, and one that sends more without saying
    so (stopped once past the limit, not read to its end)."""
    set_config(kb, max_fetch_mb=1)
    big = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024)
    serve(server, "/declared.pdf", big, "application/pdf")
    sent = {"bytes": 0}

    def endless(h):  # no Content-Length: 64 KB chunks until the client hangs up (at most 200 MB)
        h.send_response(200)
        h.send_header("Content-Type", "application/pdf")
        h.send_header("Connection", "close")
        h.end_headers()
        try:
            h.wfile.write(b"%PDF-1.4\n")
            for _ in range(3200):
                h.wfile.write(b"0" * 65536)
                sent["bytes"] += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
    server.routes["/endless.pdf"] = endless
    proc = run_openkb("add", f"{server.base}/declared.pdf", f"{server.base}/endless.pdf", cwd=kb)
    assert proc.returncode == 1
    out = proc.stdout
    assert "larger than max_fetch_mb (3.0 MB declared > 1 MB)" in out, out
    assert "larger than max_fetch_mb (more than 1 MB received; stopped)" in out, out
    assert sent["bytes"] < 50 * 1024 * 1024  # the client stopped reading
    assert not (kb / "raw").exists() or not any((kb / "raw").iterdir())
    assert_consistent(kb)


def test_unreachable_and_malformed_urls(kb):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    proc = run_openkb("add", f"http://127.0.0.1:{port}/x.pdf", "http://127.0.0.1:99999/x", "https:///nohost",
                      "ftp://127.0.0.1/paper.pdf", cwd=kb)
    assert proc.returncode == 1
    assert f"connection refused by 127.0.0.1:{port}" in proc.stdout, proc.stdout
    assert "failed   ftp://127.0.0.1/paper.pdf: not an http(s) URL (ftp:)" in proc.stdout
    assert "0 added, 0 skipped, 4 failed" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert_consistent(kb)


# ---------------------------------------------------------------------------
# Office files
# ---------------------------------------------------------------------------

_DOCX_PARTS = {
    "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.'
    'openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
    'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
    'wordprocessingml.document.main+xml"/></Types>',
    "_rels/.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.'
    'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.'
    'org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
}


def make_docx(path: Path, title: str, paragraphs: list[str]) -> Path:
    """A .docx as Word writes its minimal parts: content types, relationships, the document body."""
    para = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    body = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.'
            f'openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:pPr><w:pStyle w:val="Heading1"/>'
            f"</w:pPr><w:r><w:t>{title}</w:t></w:r></w:p>{para}</w:body></w:document>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in _DOCX_PARTS.items():
            archive.writestr(name, xml)
        archive.writestr("word/document.xml", body)
    return path


def make_office(folder: Path) -> Path:
    pptx = pytest.importorskip("pptx")
    openpyxl = pytest.importorskip("openpyxl")
    folder.mkdir(parents=True, exist_ok=True)
    make_docx(folder / "report.docx", "Quarterly Report",
              ["Revenue grew strongly in the northern region during the third quarter.",
               "Operating costs fell after the warehouse consolidation."])
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Product Roadmap"
    slide.placeholders[1].text = "Ship the offline search index before the spring release"
    deck.save(folder / "roadmap.pptx")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    for row in (["region", "amount"], ["north", 1200], ["south", 800]):
        sheet.append(row)
    book.save(folder / "sales.xlsx")
    (folder / "inventory.csv").write_text("item,quantity,note\nwidget,3,blue\ngadget,7,\"red | large\"\n")
    return folder


def test_office_files_are_added_through_markitdown(kb, tmp_path):
    """The reported bug: .docx, .pptx, .xlsx, .xls, .csv were "unsupported file type"."""
    pytest.importorskip("markitdown")
    src = make_office(tmp_path / "office")
    proc = run_openkb("add", src, "--json", cwd=kb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {Path(f["path"]).name: f for f in json.loads(proc.stdout)["files"]}
    assert {n: f["status"] for n, f in files.items()} == {
        "report.docx": "added", "roadmap.pptx": "added", "sales.xlsx": "added", "inventory.csv": "added"}

    def source(doc):
        return (kb / "wiki" / "sources" / f"{doc}.md").read_text()

    assert record(kb, "report")["type"] == "docx" and record(kb, "report")["title"] == "Quarterly Report"
    assert source("report").startswith("# Quarterly Report\n") and "warehouse consolidation" in source("report")
    assert record(kb, "roadmap")["type"] == "pptx" and record(kb, "roadmap")["title"] == "Product Roadmap"
    assert "# Product Roadmap" in source("roadmap") and "offline search index" in source("roadmap")
    assert record(kb, "sales")["type"] == "xlsx"
    assert "## Sales" in source("sales") and "| north | 1200 |" in source("sales")
    assert record(kb, "inventory")["type"] == "csv"
    assert source("inventory") == ("| item | quantity | note |\n| --- | --- | --- |\n| widget | 3 | blue |\n"
                                   "| gadget | 7 | red \\| large |\n")
    for name, doc in (("report.docx", "report"), ("roadmap.pptx", "roadmap"), ("sales.xlsx", "sales")):
        assert (kb / "raw" / name).read_bytes() == (src / name).read_bytes()
    assert_consistent(kb)


def test_corrupt_office_file_fails_with_reason_and_the_rest_goes_on(kb, tmp_path):
    pytest.importorskip("markitdown")
    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.docx").write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    (src / "tar.md").write_bytes((TLDR / "common" / "tar.md").read_bytes())
    proc = run_openkb("add", src, cwd=kb)
    assert proc.returncode == 1
    assert "failed   src/broken.docx: cannot read this .docx file" in proc.stdout.replace(str(tmp_path) + "/", ""), \
        proc.stdout
    assert "1 added, 0 skipped, 1 failed" in proc.stdout and "Traceback" not in proc.stderr
    assert_consistent(kb)


def test_missing_markitdown_names_the_file_and_the_extra(kb, tmp_path):
    """With markitdown not importable (a real package on PYTHONPATH that raises ImportError), a
    .docx fails naming itself and `pip install 'openkb-git[office]'`; a .csv needs no extra."""
    blocker = tmp_path / "blocker" / "markitdown"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named markitdown (blocked by the test)')\n")
    src = tmp_path / "src"
    make_docx((src.mkdir() or src) / "report.docx", "Report", ["Some text of the report."])
    (src / "table.csv").write_text("a,b\n1,2\n")
    import os

    env = {"PYTHONPATH": os.pathsep.join([str(blocker.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = run_openkb("add", src, cwd=kb, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(l for l in proc.stdout.splitlines() if "report.docx" in l)
    assert line.startswith("failed") and "needs markitdown, which is not installed" in line
    assert "pip install 'openkb-git[office]'" in line
    assert any(l.startswith("added") and "table.csv" in l for l in proc.stdout.splitlines()), proc.stdout
    assert "Traceback" not in proc.stderr
    assert_consistent(kb)


def test_unsupported_type_lists_the_supported_ones(kb, tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("hello")
    proc = run_openkb("add", path, cwd=kb)
    assert proc.returncode == 1
    assert "unsupported file type '.xyz'; supported: PDF," in proc.stdout
    assert "Word (.docx)" in proc.stdout and "CSV (.csv)" in proc.stdout and "http(s) URLs" in proc.stdout


def test_pdf_named_by_content_disposition(kb, server):
    """A download endpoint without a file name in its path: the name is the one the server gives."""
    serve(server, "/download", PDF.read_bytes(), "application/pdf",
          headers=[("Content-Disposition", 'attachment; filename="Attention Is All You Need.pdf"')])
    out = json.loads(run_openkb("add", f"{server.base}/download?id=7", "--json", cwd=kb, check=True).stdout)
    assert out["files"][0]["doc"] == "Attention-Is-All-You-Need"
    assert (kb / "raw" / "Attention-Is-All-You-Need.pdf").read_bytes() == PDF.read_bytes()
    assert_consistent(kb)
