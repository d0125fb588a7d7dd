"""Reading the history: commits as operations (op, doc, trailers), newest first.

Parsing a commit out of a pack costs about 100 µs in dulwich, so walking 10,000 ingests
would take a second. The commits the history reads are
memoized in `.openkb/commit-objects.cache`, their bytes by id, each checked against its id when
loaded (git/memo.py: the rule of every memo), so a forged or garbled entry is never shown,
only read again from the object store. A commit never changes, so an entry is never stale:
the walk still starts at HEAD and follows parents, and a commit that was reset away is
simply never reached again. The file is a cache, not state, and safe to delete. An entry is
the commit's own bytes, so every parent of a merge is read from it (no parsed row is stored
that an older version could have written differently).

The walk follows every parent (merges from `git pull`, `git merge` of a branch): each commit
once, newest first by commit date, a commit never before one of its children (`git log
--date-order`); ties go to the commit that became ready first, first parents before second
ones, so the order is deterministic. (Git's default walk, without `--date-order`, can show a
parent before a child when their times tie, as a group commit's and a fast `init`'s do.) A
linear stretch is walked commit by commit, as a first-parent walk would; below the first
merge the rest of the history is read once to know how many children each commit has.
"""

from __future__ import annotations

import heapq
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
    parent: str | None = None  # the first parent
    author: str = ""
    parents: tuple[str, ...] = ()  # every parent, the first one first

    @property
    def short(self) -> str:
        return self.sha[:7]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


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
    [id, parents, time, tz, author, subject, trailers] once per process."""

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


def tree_of(kb: KB, sha: str) -> bytes:
    """The tree id (hex, bytes) of commit ``sha``, from the memo's bytes (a commit's first line
    is `tree <id>`), without a parse of the commit."""
    memo = commit_memo(kb)
    memo.row(kb, sha)  # loads (and memoizes) the commit when it is not there yet
    raw = memo.raw[sha.encode("ascii")]
    if not raw.startswith(b"tree ") or raw[45:46] != b"\n":
        raise kb.objects.damaged(sha, ValueError("a commit whose first line is not its tree"))
    return raw[5:45]


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
    parents = []  # the `parent` lines follow the tree line, one after another
    at = header.find(b"\nparent ")
    while at >= 0:
        stop = header.find(b"\n", at + 8)
        parents.append(header[at + 8:stop if stop >= 0 else len(header)].decode("ascii"))
        at = stop if stop >= 0 and header.startswith(b"\nparent ", stop) else -1
    author, committer = _header(header, b"\nauthor "), _header(header, b"\ncommitter ")
    when, tz = _time_of(committer)
    cut = author.rfind(b"> ")
    person = author[:cut + 1] if cut >= 0 else author
    message = raw[end + 2:].decode("utf-8", "replace") if end >= 0 else ""
    return [sha, tuple(parents), when, tz, person.decode("utf-8", "replace"), message.split("\n", 1)[0],
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
    sha, parents, time, tz, author, subject, trailers = row
    # A merge is a merge whatever its message says: it has no single parent to be reverted to.
    op = "merge" if len(parents) > 1 else trailers.get("OpenKB-Op", "commit")
    return Entry(sha=sha, time=time, tz=tz, subject=subject, op=op, doc=trailers.get("OpenKB-Doc"),
                 trailers=dict(trailers), parent=parents[0] if parents else None, author=author, parents=parents)


def entry_of(kb: KB, sha: bytes) -> Entry:
    """The operation of one commit, parsed from it (loading the memo costs more than that)."""
    return _entry(_parse_commit(sha.decode(), kb.objects.raw_object(sha, b"commit")))


def first_parents(kb: KB, head: bytes) -> Iterator[Entry]:
    """The commits from ``head`` back through first parents only (`HEAD~N`, as in git)."""
    memo = commit_memo(kb)
    key = head.decode()
    try:
        while key:
            row = memo.row(kb, key)
            yield _entry(row)
            key = row[1][0] if row[1] else None
    finally:
        memo.flush()


def iter_entries(kb: KB, head: bytes | None = None) -> Iterator[Entry]:
    """Operations from ``head`` (default HEAD) back to the first commit, through every parent:
    each commit once, newest first, children before parents (see the module's docstring)."""
    return Walk(kb, head)


class Walk:
    """The history walk, an iterator of entries. ``cut`` is True when every commit not yet
    yielded is an ancestor of the entry just yielded (a linear stretch, or the commit below
    which merged lines of history have joined): what follows it is then exactly the walk from
    that commit (views.py appends to log.md from such a point)."""

    def __init__(self, kb: KB, head: bytes | None = None):
        self.kb = kb
        self.cut = True
        self._gen = self._walk(head)  # nothing is read (HEAD, the memo) before the first entry

    def __iter__(self) -> Iterator[Entry]:
        return self._gen  # a `for` loop steps the generator itself (no method call per entry)

    def __next__(self) -> Entry:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def _walk(self, head: bytes | None) -> Iterator[Entry]:
        kb = self.kb
        sha = head if head is not None else kb.head()
        key = sha.decode() if sha else None
        memo = commit_memo(kb)
        try:
            # A linear stretch: one commit ready at a time, as a first-parent walk.
            while key:
                row = memo.row(kb, key)
                if len(row[1]) > 1:
                    break
                yield _entry(row)
                key = row[1][0] if row[1] else None
            if not key:
                return
            # Below a merge: count each commit's children within the history, then yield a
            # commit once all its children are out, newest first (ties: the first made ready).
            children: dict[str, int] = {key: 0}
            rows: dict[str, list] = {}
            stack = [key]
            while stack:
                sha = stack.pop()
                row = rows[sha] = memo.row(kb, sha)
                for parent in row[1]:
                    if parent in children:
                        children[parent] += 1
                    else:
                        children[parent] = 1
                        stack.append(parent)
            row = rows[key]
            ready = [(-row[2], 0, key)]
            count = 1
            while ready:
                _when, _order, sha = heapq.heappop(ready)
                row = rows[sha]
                for parent in row[1]:
                    left = children[parent] - 1
                    children[parent] = left
                    if not left:
                        heapq.heappush(ready, (-rows[parent][2], count, parent))
                        count += 1
                self.cut = all(waiting[2] in row[1] for waiting in ready)
                yield _entry(row)
        finally:
            memo.flush()
