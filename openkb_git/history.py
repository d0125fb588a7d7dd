"""Reading the history: commits as operations (op, doc, trailers), newest first.

Parsing a commit out of a pack costs about 100 µs in dulwich, so walking 10,000 ingests
would take a second. What the history needs of a commit (parent, time, author, subject,
trailers) is memoized in `.openkb/commits.cache`, one JSON line per commit keyed by its id.
A commit never changes, so an entry is never stale: the walk still starts at HEAD and
follows parents, and a commit that was reset away is simply never reached again. The file is
a cache, not state: appended to without fsync by whichever command parsed new commits (a
torn or garbled line is skipped and parsed again from the object store), and safe to delete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterator

from .kb import KB

TRAILER_PREFIX = "OpenKB-"
MEMO_FILE = "commits.cache"


@dataclass
class Entry:
    sha: str
    time: int
    tz: int
    subject: str
    op: str
    doc: str | None
    trailers: dict[str, str] = field(default_factory=dict)
    parent: str | None = None
    author: str = ""

    @property
    def short(self) -> str:
        return self.sha[:7]


def parse_trailers(message: str) -> dict[str, str]:
    """The `OpenKB-*: value` trailers of a commit message (last paragraph)."""
    trailers: dict[str, str] = {}
    paragraphs = message.strip().split("\n\n")
    for line in paragraphs[-1].splitlines() if paragraphs else []:
        key, sep, value = line.partition(": ")
        if sep and key.startswith(TRAILER_PREFIX):
            trailers[key] = value.strip()
    return trailers


class CommitMemo:
    """The parsed commits of `.openkb/commits.cache`: id -> [id, parent, time, tz, author, subject, trailers]."""

    def __init__(self, path: os.PathLike):
        self.path = path
        self.rows: dict[str, list] = {}
        self.new: list[list] = []
        self._ends_cleanly = True
        try:
            data = open(path, "rb").read()
        except OSError:  # missing or unreadable: start empty
            return
        text = data.decode("utf-8", "replace")
        *lines, tail = text.split("\n")
        self._ends_cleanly = tail == ""
        try:
            rows = json.loads("[" + ",".join(lines) + "]")
        except ValueError:  # a torn or garbled line somewhere: keep every line that parses
            rows = []
            for line in lines:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue
        for row in rows:
            if _valid_row(row):
                self.rows[row[0]] = row

    def get(self, sha: str) -> list | None:
        return self.rows.get(sha)

    def add(self, row: list) -> None:
        self.rows[row[0]] = row
        self.new.append(row)

    def flush(self) -> None:
        """Append the rows parsed since the last flush (best effort: a cache need not be written)."""
        if not self.new:
            return
        text = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in self.new)
        if not self._ends_cleanly:
            text = "\n" + text
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError:
            return
        self.new = []
        self._ends_cleanly = True


def _valid_row(row) -> bool:
    # Rows are written only by this module; this catches a garbled line that still parses.
    return type(row) is list and len(row) == 7 and type(row[0]) is str and type(row[6]) is dict


def commit_memo(kb: KB) -> CommitMemo:
    """The KB's commit memo, loaded once per open KB."""
    memo = getattr(kb, "_commit_memo", None)
    if memo is None:
        memo = kb._commit_memo = CommitMemo(kb.openkb_dir / MEMO_FILE)
    return memo


def check_memo(kb: KB) -> list[str]:
    """Ids of the commits reachable from HEAD whose memoized row differs from the commit (fsck)."""
    memo = commit_memo(kb)
    bad = []
    head = kb.head()
    key = head.decode() if head else None
    while key:
        row = _parse_row(kb, key)
        cached = memo.get(key)
        if cached is not None and cached != row:
            bad.append(key)
        key = row[1]
    return bad


def drop_memo(kb: KB) -> None:
    """Delete the memo (it is rebuilt by the next read of the history)."""
    kb._commit_memo = None
    try:
        os.unlink(kb.openkb_dir / MEMO_FILE)
    except FileNotFoundError:
        pass


def _parse_row(kb: KB, sha: str) -> list:
    commit = kb.objects.get(sha.encode())
    message = commit.message.decode("utf-8", "replace")
    return [sha, commit.parents[0].decode() if commit.parents else None, commit.commit_time,
            commit.commit_timezone, commit.author.decode("utf-8", "replace"), message.split("\n", 1)[0],
            parse_trailers(message)]


def _entry(row: list) -> Entry:
    sha, parent, time, tz, author, subject, trailers = row
    return Entry(sha=sha, time=time, tz=tz, subject=subject, op=trailers.get("OpenKB-Op", "commit"),
                 doc=trailers.get("OpenKB-Doc"), trailers=dict(trailers), parent=parent, author=author)


def entry_of(kb: KB, sha: bytes) -> Entry:
    """The operation of one commit, parsed from it (loading the memo costs more than that)."""
    return _entry(_parse_row(kb, sha.decode()))


def iter_entries(kb: KB, head: bytes | None = None) -> Iterator[Entry]:
    """Operations from ``head`` (default HEAD) back to the first commit, following first parents."""
    sha = head if head is not None else kb.head()
    memo = commit_memo(kb)
    key = sha.decode() if sha else None
    try:
        while key:
            row = memo.get(key)
            if row is None:
                row = _parse_row(kb, key)
                memo.add(row)
            yield _entry(row)
            key = row[1]
    finally:
        memo.flush()
