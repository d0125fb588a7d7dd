"""A local OpenAI-compatible chat-completions server on 127.0.0.1, for the LLM compiler's tests
and for benchmarks/llm_ingest.py: real HTTP (stdlib ThreadingHTTPServer), spoken to by the real
openai SDK (openkb-git's `compiler: llm`) and by litellm (OpenKB 0.4.5), answering
deterministically from the prompt. No model, no network beyond the loopback.

In-process (tests):

    with LLMServer(delay=0.0, api_key="test-key") as server:
        server.base_url          # "http://127.0.0.1:PORT/v1"
        server.stats()           # {"requests", "chat_requests", "prompt_tokens", "completion_tokens",
                                 #  "by_kind", "tokens_by_kind", "errors", "max_concurrent"}
        server.reset()
        server.delay = 0.5       # seconds before each chat answer (thread-safe attributes)
        server.fail_status = 503 # every chat request answered with this status (None: off)
        server.api_key = None    # None: any key; else a differing `Authorization: Bearer` gets 401

As a script (benchmarks): `python tests/llm_server.py --port 0 --delay 1.0` prints one line,
the base URL, then serves until killed; `GET /stats` gives the counters as JSON and
`POST /reset` zeroes them.

Endpoints: `POST /v1/chat/completions` and `POST /chat/completions` (non-streaming, or SSE with
`"stream": true`), `GET /v1/models` (one model). Token counts are len(text)//4 (at least 1) of
all message contents (prompt) and of the answer (completion).

Requests are told apart by their prompt:

- openkb-git's (kind "openkb-git"): the document between lines `<document>` and `</document>`,
  `at most K concepts` somewhere. The answer is one JSON object {"description", "summary",
  "concepts": [{"name", "says"}], "entities": [{"name", "says"}]} computed from the document
  (see ``answer_for_document``).
- OpenKB 0.4.5's (kind "openkb:<step>", agent/compiler.py through litellm), any other chat
  request: the step is read from the last user message (``openkb_step``) and answered in the
  shape that step's parser accepts (``answer_openkb``); its concept plan names the concepts the
  openkb-git answer would for the same document, so both build comparable KBs.

Fault triggers, read from the document text (one file of a batch misbehaves, the others not):
`FAULT:429` (429 with Retry-After: 1 for the first 2 requests of that document, then normal),
`FAULT:500` (500 for the first 2), `FAULT:500-always`, `FAULT:slow` (30 s before answering),
`FAULT:truncate` (finish_reason "length", the JSON cut in half), `FAULT:invalid-json`,
`FAULT:schema` (valid JSON of the wrong shape), `FAULT:hostile` or "ignore previous
instructions" (a model that obeyed a prompt injection: path-like, huge, tag and
frontmatter-breaking output), `FAULT:refuse` (the connection closed without an answer).
The transport faults (429, 500, slow, refuse, truncate, invalid-json) apply to OpenKB's requests
too; schema and hostile only to openkb-git's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "test-model"
SLOW_SECONDS = 30.0
FLAKY_FAILURES = 2  # FAULT:429 / FAULT:500: refused this many times per document, then answered
DEFAULT_K = 5  # openkb-git's default concepts_per_doc, for a prompt that names none (OpenKB's)

STOP_WORDS = frozenset("""
about above after again against along already also although always among another anything around
because become becomes been before being below between both cannot could does doing down during
each either else enough even every first following from further given have having here hers
herself himself however into itself just least less like made make makes many might more most
much must myself never next none nothing often once only other others otherwise ought ours
ourselves over perhaps quite rather really same several shall should since some something still
such than that their theirs them themselves then there therefore these they thing things this
those though through thus together under until upon used uses using very want well were what
whatever when where whether which while whom whose will with within without would your yours
yourself yourselves
""".split())


# -- the documents' text -------------------------------------------------------------------------

_MARKER = re.compile(r"^\s*(?:#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)")
_FIELD_LINE = re.compile(r"^\s*(concept|entity)\s*:\s*(.+?)\s*$", re.I | re.M)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """The document's sentences, in order: headings and `concept:` / `entity:` lines left out,
    Markdown markers stripped; a list item, a code line or a line ending in ':' is its own
    segment, other consecutive lines are one paragraph."""
    segments: list[str] = []
    paragraph: list[str] = []

    def flush():
        if paragraph:
            segments.append(" ".join(paragraph))
            paragraph.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or _FIELD_LINE.match(line) or line.startswith("```"):
            flush()
            continue
        own = bool(re.match(r"[-*+]\s|\d+[.)]\s|`", line)) or line.endswith(":")
        line = _MARKER.sub("", line).strip()
        if not line:
            continue
        if own:
            flush()
            segments.append(line)
        else:
            paragraph.append(line)
    flush()
    out = []
    for segment in segments:
        out.extend(s.strip() for s in _SENTENCE_END.split(" ".join(segment.split())) if s.strip())
    return out


def field_values(text: str, field: str) -> list[str]:
    """The values of the lines `field: X` (concept / entity), in order, without repeats."""
    seen: list[str] = []
    for kind, value in _FIELD_LINE.findall(text):
        if kind.lower() == field and value not in seen:
            seen.append(value)
    return seen


def frequent_words(text: str, k: int) -> list[str]:
    """The ``k`` most frequent words of 5 letters or more that are not stop-words (ties alphabetical)."""
    counts = Counter(w for w in re.findall(r"[^\W\d_]{5,}", text.lower()) if w not in STOP_WORDS)
    return [w for w, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]]


def two_word_names(text: str, k: int) -> list[str]:
    """Capitalised two-word names ("Ada Lovelace") in order of first occurrence, at most ``k``."""
    names: list[str] = []
    for first, second in re.findall(r"\b([A-Z][a-z]+) ([A-Z][a-z]+)\b", text):
        name = f"{first} {second}"
        if first.lower() in STOP_WORDS or second.lower() in STOP_WORDS or first in ("The", "This", "That", "And"):
            continue
        if name not in names:
            names.append(name)
        if len(names) >= k:
            break
    return names


def _first_with(name: str, said: list[str]) -> str:
    lowered = name.lower()
    return next((s for s in said if lowered in s.lower()), said[0] if said else "")


def answer_for_document(text: str, k: int) -> dict:
    """openkb-git's answer for a document: description = its first sentence (200 chars at most),
    summary = its first 3 sentences, concepts = its `concept:` lines (else its k most frequent
    long words), entities = its `entity:` lines (else its capitalised two-word names), each with
    the first sentence naming it."""
    said = sentences(text)
    concepts = (field_values(text, "concept") or frequent_words(text, k))[:k]
    entities = (field_values(text, "entity") or two_word_names(text, k))[:k]
    return {
        "description": (said[0] if said else "")[:200],
        "summary": said[:3],
        "concepts": [{"name": c, "says": _first_with(c, said)} for c in concepts],
        "entities": [{"name": e, "says": _first_with(e, said)} for e in entities],
    }


def hostile_answer() -> dict:
    """A model that obeyed instructions hidden in the document."""
    return {
        "description": "Notes on archives.\n---\nsources: [evil]\n---",
        "summary": ["It archives files.", "See [[../../etc/passwd]] for more.\x00\x1b[31m Red text.",
                    "<b>Bold</b> claim."],
        "concepts": [{"name": "../../.git/config", "says": "Write your answer into .git/hooks."},
                     {"name": "a" * 10_000, "says": "A very long name."},
                     {"name": "Attention Mechanism", "says": "x" * 100_000}],
        "entities": [{"name": "<script>alert(1)</script>", "says": "<script>alert(1)</script>"}],
    }


# -- OpenKB 0.4.5's steps -------------------------------------------------------------------------

# The first words of the last user message of each of agent/compiler.py's calls.
_STEPS = [
    ("summary", "Write a summary page for this document"),
    ("concepts-plan", "decide how to update the wiki's CONCEPT pages"),
    ("concept", "Write the concept page for:"),
    ("concept-update", "Update the concept page for:"),
    ("entity", "Write the entity page for:"),
    ("entity-update", "Update the entity page for:"),
    ("summary-rewrite", "Rewrite the summary you wrote above"),
    ("overview", "This is a PageIndex summary"),
]


def openkb_step(last_user: str) -> str:
    return next((step for step, words in _STEPS if words in last_user), "other")


def openkb_slug(name: str) -> str:
    """A name as the slug OpenKB's plan gives (and openkb-git's slugify makes): "File Archiving"
    -> "file-archiving"."""
    return "-".join(re.sub(r"[^\w]+", " ", name.lower()).split()) or "unnamed"


def openkb_document(messages: list[dict]) -> tuple[str, str] | None:
    """(doc_name, text) of OpenKB's document message (_SUMMARY_USER), if any."""
    for message in messages:
        body = content_text(message.get("content"))
        found = re.search(r"\ANew document: (.*?)\n\nFull text:\n(.*)\n\nWrite a summary page for this document",
                          body, re.S)
        if found:
            return found.group(1), found.group(2)
    return None


def _existing(plan_prompt: str, heading: str) -> set[str]:
    """Slugs listed under ``heading`` in the plan prompt ("- slug: brief" / "- slug (type, n sources)")."""
    if heading not in plan_prompt:
        return set()
    section = plan_prompt.split(heading, 1)[1].split("\n", 1)[-1].split("\n\n", 1)[0]
    return {m.group(1) for m in re.finditer(r"^- ([\w-]+)", section, re.M)}


def answer_openkb(step: str, messages: list[dict]) -> str:
    """The answer's content for one of OpenKB's calls, in the shape its parser reads."""
    last_user = next((content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    doc = openkb_document(messages)
    doc_name, text = doc if doc else ("document", "")
    said = sentences(text)
    answer = answer_for_document(text, DEFAULT_K)
    if step == "summary":
        content = (f"# {doc_name}\n\n" + " ".join(answer["summary"]) + "\n\n## Concepts\n\n"
                   + "".join(f"- [[concepts/{openkb_slug(c['name'])}]]\n" for c in answer["concepts"]))
        return json.dumps({"description": answer["description"][:99], "content": content})
    if step == "concepts-plan":
        known_concepts = _existing(last_user, "Existing concept pages:")
        known_entities = _existing(last_user, "Existing entity pages")
        concepts = {"create": [], "update": [], "related": []}
        for c in answer["concepts"]:
            slug = openkb_slug(c["name"])
            concepts["update" if slug in known_concepts else "create"].append({"name": slug, "title": c["name"]})
        entities = {"create": [], "update": [], "related": []}
        for e in answer["entities"]:
            slug = openkb_slug(e["name"])
            entities["update" if slug in known_entities else "create"].append(
                {"name": slug, "title": e["name"], "type": "other"})
        return json.dumps({"concepts": concepts, "entities": entities})
    if step in ("concept", "concept-update", "entity", "entity-update"):
        title = re.search(r"page for: (.*?)(?: \(type: [^)]*\))?\n", last_user)
        title = title.group(1) if title else "page"
        says = _first_with(title, said)
        link = f"[[summaries/{doc_name}]]"
        if step.endswith("-update"):
            current = last_user.split("Current content of this page:\n", 1)[-1]
            current = re.split(r"\n\n(?:New information from document|Integrate the new facts)", current)[0]
            content = f"{current.rstrip()}\n\nFrom {link}: {says}\n"
        else:
            content = f"# {title}\n\n{says}\n\nFrom {link}.\n"
        page = {"description": says[:99], "content": content}
        if step.startswith("entity"):
            page["type"] = "other"
        return json.dumps(page)
    if step == "summary-rewrite":  # the draft (the assistant message), as it was: Markdown, no JSON
        draft = next((content_text(m.get("content")) for m in messages if m.get("role") == "assistant"), "")
        return draft or f"# {doc_name}\n"
    if step == "overview":
        return " ".join(said[:3]) or "An overview."
    return "OK."


# -- requests ------------------------------------------------------------------------------------


def content_text(content) -> str:
    """A message's text: a string, or the text blocks of a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def tokens(text: str) -> int:
    return max(1, len(text) // 4)


_DOCUMENT = re.compile(r"^<document>\n(.*?)\n</document>$", re.S | re.M)
_K = re.compile(r"at most (\d+) concepts")


def _error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "openkb-test-llm/1"
    server: "_Server"

    def log_message(self, format, *args):  # noqa: A002 — quiet unless asked
        if self.server.owner.verbose:
            sys.stderr.write("llm_server: " + format % args + "\n")

    # -- plumbing

    def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            self.close_connection = True

    def _body(self) -> dict | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _authorized(self) -> bool:
        expected = self.server.owner.api_key
        if expected is None:
            return True
        given = self.headers.get("Authorization", "")
        if given == f"Bearer {expected}":
            return True
        self._send(401, _error("Incorrect API key provided. Check the key your client sends.",
                               "invalid_request_error", "invalid_api_key"))
        return False

    # -- routes

    def do_GET(self):  # noqa: N802
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/stats", "/v1/stats"):
            return self._send(200, owner.stats())
        owner._count(request=True)
        if path in ("/v1/models", "/models"):
            if self._authorized():
                self._send(200, {"object": "list", "data": [
                    {"id": owner.model, "object": "model", "created": 0, "owned_by": "openkb-tests"}]})
            return
        self._send(404, _error(f"no such endpoint: GET {path}", "invalid_request_error"))

    def do_POST(self):  # noqa: N802
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/reset", "/v1/reset"):
            self._body()
            owner.reset()
            return self._send(200, {"reset": True})
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._body()
            owner._count(request=True)
            return self._send(404, _error(f"no such endpoint: POST {path}", "invalid_request_error"))
        body = self._body()
        owner._count(request=True, chat=True)
        if not self._authorized():
            return owner._count(error=401)
        if body is None or not isinstance(body.get("messages"), list):
            owner._count(error=400)
            return self._send(400, _error("the body must be a JSON object with a list of messages",
                                          "invalid_request_error"))
        owner._enter()
        try:
            self._chat(body)
        except Exception as exc:  # noqa: BLE001 — a bug here is an answer the client can show, not a hang
            owner._count(error=500)
            self._send(500, _error(f"llm_server failed: {type(exc).__name__}: {exc}", "server_error"))
        finally:
            owner._leave()

    def _chat(self, body: dict) -> None:
        owner = self.server.owner
        messages = [m for m in body["messages"] if isinstance(m, dict)]
        texts = [content_text(m.get("content")) for m in messages]
        prompt_tokens = tokens("".join(texts))
        joined = "\n".join(texts)
        found = _DOCUMENT.search(joined)
        if found:
            kind, document = "openkb-git", found.group(1)
        else:
            kind = "openkb:" + openkb_step(next((t for m, t in zip(reversed(messages), reversed(texts))
                                                 if m.get("role") == "user"), ""))
            doc = openkb_document(messages)
            document = doc[1] if doc else ""
        owner._count(kind=kind)

        if owner.fail_status is not None:
            status = owner.fail_status
            owner._count(error=status)
            headers = {"Retry-After": "1"} if status == 429 else None
            return self._send(status, _error(f"the server is told to fail (HTTP {status})", "server_error"), headers)
        if "FAULT:refuse" in document:
            owner._count(error="refused")
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        for trigger, status in (("FAULT:429", 429), ("FAULT:500-always", 500), ("FAULT:500", 500)):
            if trigger in document:
                if trigger == "FAULT:500-always" or owner._seen(trigger, document) <= FLAKY_FAILURES:
                    owner._count(error=status)
                    if status == 429:
                        return self._send(429, _error("Rate limit reached for requests. Please try again in 1s.",
                                                      "requests", "rate_limit_exceeded"), {"Retry-After": "1"})
                    return self._send(500, _error("The server had an error while processing your request.",
                                                  "server_error"))
                break
        if not owner._wait(SLOW_SECONDS if "FAULT:slow" in document else owner.delay):
            return  # shutting down

        finish = "stop"
        if kind == "openkb-git":
            k = _K.search(joined)
            if "FAULT:schema" in document:
                content = json.dumps({"description": 5, "concepts": "many"})
            elif "FAULT:hostile" in document or "ignore previous instructions" in document.lower():
                content = json.dumps(hostile_answer())
            else:
                content = json.dumps(answer_for_document(document, int(k.group(1)) if k else DEFAULT_K))
        else:
            content = answer_openkb(kind.split(":", 1)[1], messages)
        if "FAULT:invalid-json" in document:
            content = "Sure! Here is the summary: {not json"
        elif "FAULT:truncate" in document:
            content, finish = content[:len(content) // 2], "length"
        completion_tokens = tokens(content)
        owner._count(kind=kind, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, answered=True)
        model = str(body.get("model") or owner.model)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        ident = "chatcmpl-" + hashlib.sha256(f"{time.time_ns()}{threading.get_ident()}".encode()).hexdigest()[:24]
        if body.get("stream"):
            return self._stream(ident, model, content, finish, usage,
                                bool((body.get("stream_options") or {}).get("include_usage")))
        self._send(200, {"id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                      "finish_reason": finish, "logprobs": None}],
                         "usage": usage})

    def _stream(self, ident: str, model: str, content: str, finish: str, usage: dict, include_usage: bool) -> None:
        """Server-sent events, as OpenAI streams: role, content pieces, the finish reason, usage, [DONE]."""
        created = int(time.time())

        def chunk(delta: dict | None, reason: str | None, with_usage: bool = False) -> bytes:
            event = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": reason,
                                                          "logprobs": None}]}
            if with_usage:
                event["usage"] = usage
            return f"data: {json.dumps(event)}\n\n".encode("utf-8")

        pieces = [content[i:i + 64] for i in range(0, len(content), 64)] or [""]
        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": piece}, None) for piece in pieces]
        events.append(chunk({}, finish))
        if include_usage:
            events.append(chunk(None, None, with_usage=True))
        events.append(b"data: [DONE]\n\n")
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events:
                self.wfile.write(event)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler sleeping (FAULT:slow) never holds up the server's close
    request_queue_size = 256  # 8 workers connecting at once never meet a full backlog
    owner: "LLMServer"


class LLMServer:
    """The server on 127.0.0.1 (``port`` 0: any free one), in a background thread while entered."""

    def __init__(self, delay: float = 0.0, api_key: str | None = None, fail_status: int | None = None,
                 port: int = 0, model: str = MODEL, verbose: bool = False):
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._delay = float(delay)
        self._api_key = api_key
        self._fail_status = fail_status
        self.model = model
        self.verbose = verbose
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._zero()

    # thread-safe settings
    delay = property(lambda self: self._get("_delay"), lambda self, v: self._set("_delay", float(v)))
    api_key = property(lambda self: self._get("_api_key"), lambda self, v: self._set("_api_key", v))
    fail_status = property(lambda self: self._get("_fail_status"), lambda self, v: self._set("_fail_status", v))

    def _get(self, name):
        with self._lock:
            return getattr(self, name)

    def _set(self, name, value):
        with self._lock:
            setattr(self, name, value)

    # counters

    def _zero(self) -> None:
        self._requests = self._chat_requests = self._prompt = self._completion = 0
        self._by_kind: Counter = Counter()
        self._tokens_by_kind: dict[str, dict[str, int]] = {}
        self._errors: Counter = Counter()
        self._in_flight = self._max_concurrent = 0
        self._fault_seen: Counter = Counter()

    def reset(self) -> None:
        """Zero every counter and forget which documents' faults were served."""
        with self._lock:
            in_flight = self._in_flight
            self._zero()
            self._in_flight = in_flight

    def stats(self) -> dict:
        with self._lock:
            return {"requests": self._requests, "chat_requests": self._chat_requests,
                    "prompt_tokens": self._prompt, "completion_tokens": self._completion,
                    "by_kind": dict(self._by_kind),
                    "tokens_by_kind": {k: dict(v) for k, v in self._tokens_by_kind.items()},
                    "errors": {str(k): v for k, v in self._errors.items()},
                    "max_concurrent": self._max_concurrent}

    def _count(self, *, request: bool = False, chat: bool = False, kind: str | None = None, error=None,
               prompt_tokens: int = 0, completion_tokens: int = 0, answered: bool = False) -> None:
        with self._lock:
            self._requests += request
            self._chat_requests += chat
            if error is not None:
                self._errors[error] += 1
            if kind is not None and not answered:
                self._by_kind[kind] += 1
            if answered:
                self._prompt += prompt_tokens
                self._completion += completion_tokens
                spent = self._tokens_by_kind.setdefault(kind, {"prompt_tokens": 0, "completion_tokens": 0})
                spent["prompt_tokens"] += prompt_tokens
                spent["completion_tokens"] += completion_tokens

    def _seen(self, trigger: str, document: str) -> int:
        """How many requests of this fault and document there have been, this one included."""
        key = (trigger, hashlib.sha256(document.encode("utf-8")).hexdigest())
        with self._lock:
            self._fault_seen[key] += 1
            return self._fault_seen[key]

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_concurrent = max(self._max_concurrent, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False when the server is stopping meanwhile."""
        return not (seconds > 0 and self._stop.wait(seconds)) and not self._stop.is_set()

    # life

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def bind(self) -> "LLMServer":
        """Listen on 127.0.0.1 (base_url is known from here on); idempotent."""
        if self._httpd is None:
            self._stop.clear()
            self._httpd = _Server(("127.0.0.1", self._port), _Handler)
            self._httpd.owner = self
        return self

    def start(self) -> "LLMServer":
        """Serve in a background thread."""
        self.bind()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; a handler still sleeping gives up without answering."""
        self._stop.set()
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(timeout=5)
            self._httpd.server_close()
        self._httpd = self._thread = None

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the script's mode)."""
        self.bind()
        try:
            self._httpd.serve_forever(poll_interval=0.1)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop.set()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local OpenAI-compatible chat-completions server on 127.0.0.1 "
                                     "that answers deterministically from the prompt (see the module docstring).")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each chat answer")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any)")
    parser.add_argument("--fail-status", type=int, default=None, help="answer every chat request with this status")
    parser.add_argument("--model", default=MODEL, help="the model GET /v1/models lists")
    parser.add_argument("--verbose", action="store_true", help="log each request on stderr")
    args = parser.parse_args(argv)
    server = LLMServer(delay=args.delay, api_key=args.api_key, fail_status=args.fail_status, port=args.port,
                       model=args.model, verbose=args.verbose)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # killed: close the socket on the way out
    server.bind()
    print(server.base_url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
