"""Reading the history: commits as operations (op, doc, trailers), newest first.

Parsing a commit out of a pack costs about 100 µs in dulwich, so walking 10,000 ingests
would take a second. The commits the history reads are
memoized in `.openkb/commit-objects.cache`, their bytes by id, each checked against its id when
loaded (git/memo.py: the rule of every memo), so a forged or garbled entry is never shown,
only read again from the object store. A commit never changes, so an entry is never stale:
the walk still starts at HEAD and follows parents, and a commit that was reset away is
simply never reached again. The file is a cache, not state, and safe to delete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

from dulwich.objects import parse_timezone

from .git.memo import ObjectMemo
from .kb import KB

TRAILER_PREFIX = "OpenKB-"
MEMO_FILE = "commit-objects.cache"
LEGACY_MEMO = "commits.cache"  # parsed rows, unchecked (before one rule for every memo): no longer read


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
    for line in message.strip().rpartition("\n\n")[2].splitlines():  # the last paragraph
        key, sep, value = line.partition(": ")
        if sep and key.startswith(TRAILER_PREFIX):
            trailers[key] = value.strip()
    return trailers


class CommitMemo(ObjectMemo):
    """The commits memoized in `.openkb/commit-objects.cache` (their bytes, each checked against its
    id when loaded: git/memo.py, the rule of every memo), parsed into rows
    [id, parent, time, tz, author, subject, trailers] once per process."""

    def __init__(self, path: os.PathLike):
        super().__init__(path, b"commit")
        self.rows: dict[str, list] = {}

    def row(self, kb: KB, sha: str) -> list:
        """The row of commit ``sha``: from the memo, else from the object store (then memoized)."""
        row = self.rows.get(sha)
        if row is None:
            key = sha.encode("ascii")
            raw = self.raw.get(key)
            if raw is None:
                raw = kb.objects.raw_object(key, b"commit")
                self.add(key, raw)
            row = self.rows[sha] = _parse_commit(sha, raw)
        return row


def commit_memo(kb: KB) -> CommitMemo:
    """The KB's commit memo, loaded once per open KB."""
    memo = getattr(kb, "_commit_memo", None)
    if memo is None:
        memo = kb._commit_memo = CommitMemo(kb.openkb_dir / MEMO_FILE)
    return memo


def check_memo(kb: KB) -> str | None:
    """What is wrong with the commit memo (a part that is not whole entries matching their ids,
    which readers ignore), or None (fsck)."""
    ignored = CommitMemo(kb.openkb_dir / MEMO_FILE).ignored
    return (f"{ignored} byte(s) are not whole commits matching their ids (forged, garbled or torn; "
            "readers ignore them and read the commits)") if ignored else None


def drop_memo(kb: KB) -> None:
    """Delete the memo (it is rebuilt by the next read of the history)."""
    kb._commit_memo = None
    for name in (MEMO_FILE, LEGACY_MEMO):
        try:
            os.unlink(kb.openkb_dir / name)
        except FileNotFoundError:
            pass


def _parse_commit(sha: str, raw: bytes) -> list:
    """The row of the commit ``sha`` from its raw bytes: its headers until the first blank line
    (each after a newline, the tree first; continuation lines, as of a signature, start with a
    space, so never match), then its message."""
    end = raw.find(b"\n\n")
    header = raw[:end] if end >= 0 else raw
    parent = _header(header, b"\nparent ").decode("ascii") or None  # the first parent
    author, committer = _header(header, b"\nauthor "), _header(header, b"\ncommitter ")
    when, tz = _time_of(committer)
    cut = author.rfind(b"> ")
    person = author[:cut + 1] if cut >= 0 else author
    message = raw[end + 2:].decode("utf-8", "replace") if end >= 0 else ""
    return [sha, parent, when, tz, person.decode("utf-8", "replace"), message.split("\n", 1)[0],
            parse_trailers(message)]


def _header(header: bytes, key: bytes) -> bytes:
    """The value of the first header line ``key`` (b"\\nauthor ") of a commit, or b""."""
    at = header.find(key)
    if at < 0:
        return b""
    stop = header.find(b"\n", at + 1)
    return header[at + len(key):stop if stop >= 0 else len(header)]


def _time_of(value: bytes) -> tuple[int, int]:
    """(time, tz offset in seconds) of an author/committer value `Name <email> 1700000000 +0100`."""
    try:
        _person, timetext, tztext = value.rsplit(b" ", 2)
        return int(timetext), parse_timezone(tztext)[0]
    except (ValueError, IndexError):
        return 0, 0


def _entry(row: list) -> Entry:
    sha, parent, time, tz, author, subject, trailers = row
    return Entry(sha=sha, time=time, tz=tz, subject=subject, op=trailers.get("OpenKB-Op", "commit"),
                 doc=trailers.get("OpenKB-Doc"), trailers=dict(trailers), parent=parent, author=author)


def entry_of(kb: KB, sha: bytes) -> Entry:
    """The operation of one commit, parsed from it (loading the memo costs more than that)."""
    return _entry(_parse_commit(sha.decode(), kb.objects.raw_object(sha, b"commit")))


def iter_entries(kb: KB, head: bytes | None = None) -> Iterator[Entry]:
    """Operations from ``head`` (default HEAD) back to the first commit, following first parents."""
    sha = head if head is not None else kb.head()
    memo = commit_memo(kb)
    key = sha.decode() if sha else None
    try:
        while key:
            row = memo.row(kb, key)
            yield _entry(row)
            key = row[1]
    finally:
        memo.flush()
