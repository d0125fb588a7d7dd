"""`openkb search`: offline full-text search of the wiki pages of HEAD.

The index is a cache in `.openkb/openkb-git/search.sqlite` (untracked, SQLite FTS5): it names
the commit it reflects, and every search first brings it to HEAD. When HEAD moved (our commits,
another process's, a `git pull`, a `git reset`), only the pages whose blobs differ between the
indexed tree and HEAD's are read again — the tree diff reads only the subtrees whose ids
differ, so one ingest costs a handful of rows however large the wiki is. A missing, foreign or
damaged file is rebuilt from HEAD's tree; the tree is the truth, never the index: a hit whose
blob is not the one HEAD holds makes the index be rebuilt and the query run again.

Updating lazily (at the next search, from the diff) rather than inside the commit protocol keeps
the cost and the failure modes of an index out of every ingest, and notices commits made by any
other means, which a hook in the commit path would not.

Which ingest last changed a page is found for the hits only (`git log -- <paths>`, stopped once
every hit is named) and remembered per page until a commit touches the page again.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OpenKBError
from ..frontmatter import parts as frontmatter_parts
from ..fsutil import makedirs, remove_file
from ..history import entry_of
from ..kb import KB

INDEX_FILE = "search.sqlite"
SCHEMA = "1"
WIKI = "wiki/"
# Words are stemmed (Porter) after Unicode folding: "archives" finds "archive", "é" finds "e".
TOKENIZER = "porter unicode61 remove_diacritics 2"


class SearchQueryError(OpenKBError):
    """The search text has nothing to search for."""


@dataclass
class Hit:
    path: str
    title: str
    snippet: str
    score: float
    last: dict | None = None  # the ingest that last changed the page: commit, op, doc, subject, time

    def to_json(self) -> dict:
        return {"path": self.path, "title": self.title, "score": round(self.score, 4), "snippet": self.snippet,
                "last_changed": self.last}


@dataclass
class SearchResult:
    query: str
    commit: str | None
    hits: list[Hit]
    total: int
    index: dict = field(default_factory=dict)  # how the index was brought to HEAD

    def to_json(self) -> dict:
        return {"query": self.query, "commit": self.commit, "total": self.total,
                "hits": [h.to_json() for h in self.hits], "index": self.index}


@dataclass
class HistoryHit:
    commit: str
    time: int
    op: str
    doc: str | None
    subject: str
    change: str  # "introduced", "removed" or "changed" (as many occurrences before as after)
    paths: list[str]

    def to_json(self) -> dict:
        return {"commit": self.commit, "time": self.time, "op": self.op, "doc": self.doc, "subject": self.subject,
                "change": self.change, "paths": self.paths}


# -- the index ------------------------------------------------------------------


def index_path(kb: KB) -> Path:
    return kb.own_dir / INDEX_FILE


def _is_page(path: str) -> bool:
    return path.startswith(WIKI) and path.endswith(".md")


_TITLE = re.compile(r"^title:[ \t]*(.+)$", re.M)


def page_text(path: str, data: bytes) -> tuple[str, str]:
    """(title, body) of one page: the frontmatter's title, else the first `# ` heading, else the file name."""
    text = data.decode("utf-8", "replace")
    found = frontmatter_parts(text)
    block, body = found if found is not None else ("", text)
    match = _TITLE.search(block)  # a regex, not YAML: thousands of pages are read per rebuild
    title = match.group(1).strip().strip("'\"") if match else ""
    if not title:
        match = re.search(r"^#\s+(.+)$", body, re.M)
        title = match.group(1).strip() if match else path.rsplit("/", 1)[-1][:-3]
    return title.strip(), body


class Index:
    """The SQLite file (or an in-memory one where `.openkb/` cannot be written)."""

    def __init__(self, kb: KB):
        self.kb = kb
        self.where = index_path(kb)
        self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        for attempt in (1, 2):
            try:
                makedirs(self.where.parent, sync=False)
                db = sqlite3.connect(self.where, timeout=30, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")  # a cache: a torn file is found damaged and rebuilt
                self._check(db)
                return db
            except sqlite3.DatabaseError:  # damaged, not SQLite at all, or read-only: a cache, made again
                if attempt == 1 and self.discard():
                    continue
                break
            except OSError:
                break
        return self.in_memory()

    def in_memory(self) -> sqlite3.Connection:
        """Where `.openkb/` cannot be written (a read-only KB): an index for this command only."""
        self.where = None
        return self._fresh(sqlite3.connect(":memory:", isolation_level=None))

    def discard(self) -> bool:
        """Delete the index file; False when it cannot be deleted."""
        if self.where is None:
            return False
        try:
            self._discard()
            return True
        except OSError:
            return False

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            remove_file(self.where.with_name(self.where.name + suffix), sync=False)

    @staticmethod
    def _fresh(db: sqlite3.Connection) -> sqlite3.Connection:
        Index._create(db)
        return db

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        db.execute("DROP TABLE IF EXISTS meta")
        db.execute("DROP TABLE IF EXISTS pages")
        db.execute("DROP TABLE IF EXISTS text")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("CREATE TABLE pages (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, blob TEXT NOT NULL, "
                   "last TEXT)")
        db.execute(f"CREATE VIRTUAL TABLE text USING fts5(title, body, tokenize='{TOKENIZER}')")
        db.execute("INSERT INTO meta VALUES ('schema', ?), ('commit', '')", (SCHEMA,))

    def _check(self, db: sqlite3.Connection) -> None:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        schema = None
        if {"meta", "pages", "text"} <= tables:
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            schema = row[0] if row else None
        if schema != SCHEMA:
            db.execute("BEGIN IMMEDIATE")
            self._create(db)
            db.execute("COMMIT")

    def indexed_commit(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key='commit'").fetchone()
        return row[0] if row else ""

    def bring_to(self, head: bytes | None, *, full: bool = False) -> dict:
        """Make the index reflect ``head``; returns {"rebuilt": bool, "updated": pages read}."""
        kb = self.kb
        want = head.decode() if head else ""
        if not full and self.indexed_commit() == want:
            return {"rebuilt": False, "updated": 0}
        self.db.execute("BEGIN IMMEDIATE")  # one updater at a time; a second one finds it done
        try:
            old = "" if full else self.indexed_commit()
            if old == want:
                self.db.execute("COMMIT")
                return {"rebuilt": False, "updated": 0}
            new_tree = kb.head_tree(head) if head else None
            old_tree = None
            rebuilt = True
            if old:
                try:
                    old_tree = kb.head_tree(old.encode())
                    rebuilt = False
                except Exception:  # the indexed commit is gone (a reset and a gc): start over
                    old_tree = None
            if rebuilt:
                self.db.execute("DELETE FROM pages")
                self.db.execute("DELETE FROM text")
                changes = {path: (None, blob) for path, (_, blob) in
                           kb.objects.changed_files(None, new_tree).items() if blob is not None}
            else:
                changes = kb.objects.changed_files(old_tree, new_tree)
                self._forget_last(old, want)
            pages = {path: blob for path, (_, blob) in changes.items() if _is_page(path)}
            if not rebuilt:
                for path in pages:
                    row = self.db.execute("SELECT id FROM pages WHERE path=?", (path,)).fetchone()
                    if row is not None:
                        self.db.execute("DELETE FROM text WHERE rowid=?", (row[0],))
                        self.db.execute("DELETE FROM pages WHERE id=?", (row[0],))
            wanted = {path: blob for path, blob in pages.items() if blob is not None}
            contents = _read_blobs(kb, wanted)
            rows = []
            for n, (path, blob) in enumerate(sorted(wanted.items())):
                title, body = page_text(path, contents[blob])
                rows.append((path, blob.decode(), title, body))
            start = self.db.execute("SELECT coalesce(max(id), 0) FROM pages").fetchone()[0] + 1
            self.db.executemany("INSERT INTO pages (id, path, blob) VALUES (?, ?, ?)",
                                [(start + i, r[0], r[1]) for i, r in enumerate(rows)])
            self.db.executemany("INSERT INTO text (rowid, title, body) VALUES (?, ?, ?)",
                                [(start + i, r[2], r[3]) for i, r in enumerate(rows)])
            updated = len(pages)
            self.db.execute("UPDATE meta SET value=? WHERE key='commit'", (want,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return {"rebuilt": rebuilt, "updated": updated}

    def _forget_last(self, old: str, new: str) -> None:
        """Drop the remembered last-changing ingest of every page a commit in old..new touched
        (a page changed and changed back has a new last ingest and the same blob); when
        ``new`` does not descend from ``old`` (a reset, a rewrite), of every page."""
        if not new:
            self.db.execute("UPDATE pages SET last=NULL")
            return
        ancestor = _git(self.kb, "merge-base", "--is-ancestor", old, new, check=False).returncode == 0
        if not ancestor:
            self.db.execute("UPDATE pages SET last=NULL")
            return
        out = _git(self.kb, "log", "-z", "-m", "--no-renames", "--format=", "--name-only", f"{old}..{new}",
                   "--", WIKI).stdout
        touched = {p for p in out.split("\0") if p.strip()}
        for path in touched:
            self.db.execute("UPDATE pages SET last=NULL WHERE path=?", (path.strip("\n"),))

    def close(self) -> None:
        self.db.close()


def _read_blobs(kb: KB, blobs: dict[str, bytes]) -> dict[bytes, bytes]:
    """{blob id: content}; many at once through one `git cat-file --batch` (C, no per-object
    Python), a few through the object store."""
    ids = sorted(set(blobs.values()))
    if len(ids) < 200:
        return {sha: kb.objects.blob_bytes(sha) for sha in ids}
    import threading

    proc = subprocess.Popen(["git", "-C", str(kb.root), "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def feed():
        try:
            proc.stdin.write(b"".join(sha + b"\n" for sha in ids))
            proc.stdin.close()
        except OSError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    out: dict[bytes, bytes] = {}
    try:
        for sha in ids:
            header = proc.stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob" or header[0] != sha:
                raise OpenKBError(f"git cat-file could not read blob {sha.decode()} ({b' '.join(header).decode()}); "
                                  "run `openkb fsck`")
            size = int(header[2])
            out[sha] = proc.stdout.read(size)
            proc.stdout.read(1)
    finally:
        proc.stdout.close()
        proc.wait()
        feeder.join()
    return out


def _git(kb: KB, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "-C", str(kb.root), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, errors="surrogateescape")
    if check and proc.returncode != 0:
        raise OpenKBError(f"git {args[0]} failed: {proc.stderr.strip() or proc.returncode}; "
                          "run `openkb fsck` to check the repository")
    return proc


# -- queries --------------------------------------------------------------------

_TERM = re.compile(r'"([^"]*)"|(\S+)')


def fts_query(text: str) -> str:
    """The user's words as an FTS5 query: every word (or "quoted phrase") must occur; a word
    ending in `*` is a prefix. FTS5 operators in the text are taken as plain words."""
    terms = []
    for phrase, word in _TERM.findall(text):
        value = phrase if phrase else word
        prefix = bool(word) and word.endswith("*") and len(word) > 1
        value = value.rstrip("*") if prefix else value
        tokens = re.findall(r"\w+", value)
        if not tokens:
            continue
        quoted = '"' + " ".join(tokens) + '"'
        terms.append(quoted + ("*" if prefix else ""))
    if not terms:
        raise SearchQueryError(f"nothing to search for in {text!r}: give at least one word "
                               "(e.g. `openkb search archive`)")
    return " AND ".join(terms)


def search(kb: KB, text: str, *, limit: int = 10) -> SearchResult:
    """The pages of HEAD matching ``text``, best first (BM25, title words weigh 5x)."""
    query = fts_query(text)
    head = kb.head()
    index = Index(kb)
    try:
        try:
            state, hits, total = _run(kb, head, index, query, limit)
        except sqlite3.DatabaseError:  # damaged under us, or not writable: once more, from HEAD's tree
            index.close()
            index = Index(kb) if index.discard() else _memory_index(kb)
            try:
                state, hits, total = _run(kb, head, index, query, limit)
            except sqlite3.DatabaseError:
                index.close()
                index = _memory_index(kb)
                state, hits, total = _run(kb, head, index, query, limit)
    finally:
        index.close()
    return SearchResult(query=text, commit=head.decode() if head else None, hits=hits, total=total, index=state)


def _memory_index(kb: KB) -> Index:
    index = Index.__new__(Index)
    index.kb = kb
    index.db = index.in_memory()
    return index


def _run(kb: KB, head: bytes | None, index: Index, query: str, limit: int) -> tuple[dict, list[Hit], int]:
    state = index.bring_to(head)
    hits, total = _query(index, query, limit)
    if not _hits_agree(kb, head, index, hits):  # the cache lied: the tree wins
        state = index.bring_to(head, full=True)
        hits, total = _query(index, query, limit)
    _name_last_changes(kb, head, index, hits)
    return state, hits, total


def _query(index: Index, query: str, limit: int) -> tuple[list[Hit], int]:
    db = index.db
    # A DatabaseError here is damage: search() rebuilds the index and asks again.
    total = db.execute("SELECT count(*) FROM text WHERE text MATCH ?", (query,)).fetchone()[0]
    rows = db.execute(
        "SELECT p.path, text.title, snippet(text, 1, '**', '**', '…', 16), bm25(text, 5.0, 1.0), p.blob, p.last "
        "FROM text JOIN pages p ON p.id = text.rowid WHERE text MATCH ? ORDER BY bm25(text, 5.0, 1.0), p.path "
        "LIMIT ?", (query, limit)).fetchall()
    hits = []
    for path, title, snippet, score, blob, last in rows:
        hit = Hit(path=path, title=title, snippet=" ".join(snippet.split()), score=-score)
        hit._blob = blob  # type: ignore[attr-defined]
        hit._last = last  # type: ignore[attr-defined]
        hits.append(hit)
    return hits, total


def _hits_agree(kb: KB, head: bytes | None, index: Index, hits: list[Hit]) -> bool:
    tree = kb.head_tree(head) if head else None
    for hit in hits:
        entry = kb.objects.lookup(tree, hit.path)
        if entry is None or entry[1].decode() != hit._blob:  # type: ignore[attr-defined]
            return False
    return True


def _name_last_changes(kb: KB, head: bytes | None, index: Index, hits: list[Hit]) -> None:
    wanted = {h.path for h in hits if not h._last}  # type: ignore[attr-defined]
    found: dict[str, str] = {h.path: h._last for h in hits if h._last}  # type: ignore[attr-defined]
    if wanted and head:
        proc = subprocess.Popen(["git", "-C", str(kb.root), "log", "-z", "--no-renames", "--format=%x01%H",
                                 "--name-only", head.decode(), "--", *sorted(wanted)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            buffer = b""
            current = None
            while wanted:
                chunk = proc.stdout.read1(65536) if proc.stdout else b""
                if not chunk:
                    break
                buffer += chunk
                parts = buffer.split(b"\0")
                buffer = parts.pop()
                for part in parts:
                    part = part.strip(b"\n")
                    if part.startswith(b"\x01"):
                        lines = part[1:].split(b"\n")
                        current = lines[0].decode()
                        part = lines[1] if len(lines) > 1 else b""
                    path = part.decode("utf-8", "surrogateescape")
                    if current and path in wanted:
                        wanted.discard(path)
                        found[path] = current
        finally:
            proc.kill()
            proc.wait()
        for path, sha in found.items():
            try:
                index.db.execute("UPDATE pages SET last=? WHERE path=?", (sha, path))
            except sqlite3.OperationalError:  # another search holds the write lock: remember next time
                break
    entries: dict[str, dict] = {}
    for hit in hits:
        sha = found.get(hit.path)
        if sha is None:
            continue
        if sha not in entries:
            try:
                e = entry_of(kb, sha.encode())
            except Exception:  # a remembered commit gone after a rewrite: not named
                continue
            entries[sha] = {"commit": e.sha, "op": e.op, "doc": e.doc, "subject": e.subject, "time": e.time}
        hit.last = entries[sha]


# -- history --------------------------------------------------------------------


def search_history(kb: KB, text: str, *, limit: int | None = None) -> list[HistoryHit]:
    """The operations that changed how often ``text`` occurs in a wiki page (as `git log -S`),
    newest first, each with whether it introduced or removed the text."""
    if not text.strip():
        raise SearchQueryError("nothing to search for: give the text whose history to find "
                               "(e.g. `openkb search --history \"tar archive\"`)")
    head = kb.head()
    if head is None:
        return []
    args = ["log", "-z", "--no-renames", "--format=%x01%H", "--name-only", f"-S{text}"]
    if limit:
        args.append(f"-n{limit}")
    out = _git(kb, *args, head.decode(), "--", WIKI).stdout
    hits = []
    needle = text.encode("utf-8", "surrogateescape")
    for record in out.split("\x01")[1:]:
        parts = [p.strip("\n") for p in record.split("\0")]
        first = parts[0].split("\n")
        sha = first[0]
        paths = [p for p in ([first[1]] if len(first) > 1 else []) + parts[1:] if p]
        entry = entry_of(kb, sha.encode())
        tree = kb.head_tree(sha.encode())
        parent_tree = kb.head_tree(entry.parent.encode()) if entry.parent else None
        before = after = 0
        for path in paths:
            old = kb.objects.read_path(parent_tree, path)
            new = kb.objects.read_path(tree, path)
            before += old.count(needle) if old else 0
            after += new.count(needle) if new else 0
        change = "introduced" if after > before else "removed" if after < before else "changed"
        hits.append(HistoryHit(commit=entry.sha, time=entry.time, op=entry.op, doc=entry.doc, subject=entry.subject,
                               change=change, paths=paths))
    return hits
