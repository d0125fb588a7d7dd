"""Read-only verbs: log, status, list. They take no lock and read one commit.

What they report about the working tree (hand edits, journals) is read while no writer is
active (`at_rest`): a writer's in-flight changes are never reported as hand edits.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, TypeVar

from ..errors import EXIT_USAGE, OpenKBError
from ..git.objects import PathFollower
from ..history import Entry, iter_entries, tree_of
from ..kb import KB
from ..registry import Registry


def entry_json(entry: Entry, position: int | None = None) -> dict:
    return {"commit": entry.sha, "short": entry.short, "position": position,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.time)),
            "op": entry.op, "doc": entry.doc, "subject": entry.subject,
            "source": entry.trailers.get("OpenKB-Source"), "parents": list(entry.parents),
            "trailers": entry.trailers}


# The kinds of operation a commit can be (history.py: the OpenKB-Op trailer; `merge` for a
# merge commit, `commit` for a plain `git commit` without trailers): `openkb log --op` takes these.
LOG_OPS = ("add", "recompile", "remove", "revert", "edit", "init", "merge", "rebuild", "sync", "commit")


class NoSuchDocumentError(OpenKBError):
    """`openkb log DOC` for a name no operation of the history has."""

    exit_code = EXIT_USAGE


def log_entries(kb: KB, *, doc: str | None = None, op: str | None = None, path: str | None = None,
                limit: int | None = None, revisions: str | None = None) -> list[tuple[int | None, Entry]]:
    """Operations newest first as (position, entry); position 0 is HEAD, then each line of
    the walk (HEAD~N while the history is linear; `openkb show N` names it). With
    ``revisions`` `A..B` (select.py `resolve_range`): the operations reachable from B and
    not from A, without positions (they are not HEAD's)."""
    head, exclude = None, None
    if revisions is not None:
        from .select import resolve_range

        head, exclude = resolve_range(kb, revisions)
    touches = _path_filter(kb, path, head) if path is not None else None
    out: list[tuple[int | None, Entry]] = []
    for position, entry in enumerate(iter_entries(kb, head)):
        if exclude is not None and entry.sha in exclude:
            continue
        if doc is not None and entry.doc != doc:
            continue
        if op is not None and entry.op != op:
            continue
        if touches is not None and not touches(entry):
            continue
        out.append((None if revisions is not None else position, entry))
        if limit is not None and len(out) >= limit:
            break
    if doc is not None and not out and not any(entry.doc == doc for entry in iter_entries(kb, head)):
        raise NoSuchDocumentError(f"no document {doc!r} in the history: see `openkb list` for the documents, "
                                  "`openkb log` for every operation")
    return out


def position_of(kb: KB, entry: Entry, limit: int = 1000) -> int | None:
    """``entry``'s position in `openkb log` (0 is HEAD), or None when it is not among the first
    ``limit`` lines (selectors name positions below 1000) or not in HEAD's history."""
    for position, found in enumerate(iter_entries(kb)):
        if position >= limit:
            return None
        if found.sha == entry.sha:
            return position
    return None


def _path_filter(kb: KB, path: str, head: bytes | None = None):
    """Whether an operation changed ``path``. A merge counts when its version differs from
    every parent's (it combined both sides' changes); otherwise the operations it brought in
    are listed themselves. Each commit's version is looked up once (a commit's parent is the
    next entry, mostly), through a PathFollower: a comparison of bytes per commit, not a
    decoding of the page's folder of N entries. Where Git is installed, the commits of one
    parent that changed the path come from its own pathspec-limited walk (`git rev-list
    --full-history -- path`: the same question, answered in C from its commit-graph and delta
    caches, 10× faster at thousands of commits); merges are still looked at here."""
    path = path.strip("/")
    follower = PathFollower(kb.objects, path)
    versions: dict[str, tuple | None] = {}
    changed = git_changed(kb, path, head if head is not None else kb.head())

    def version(sha: str) -> tuple | None:
        found = versions.get(sha, versions)
        if found is versions:
            found = versions[sha] = follower.lookup(tree_of(kb, sha))
        return found

    def touches(entry: Entry) -> bool:
        if changed is not None and len(entry.parents) <= 1:
            return entry.sha in changed
        mine = version(entry.sha)
        if not entry.parents:
            return mine is not None
        return all(mine != version(parent) for parent in entry.parents)

    return touches


def git_changed(kb: KB, path: str, head: bytes | None) -> set[str] | None:
    """The commits reachable from ``head`` that differ from one of their parents (a root:
    holds it) at ``path``, by Git's walk; None without Git, or when it fails (the caller looks
    every commit up itself)."""
    out = _git_path_walk(kb, path, head)
    return None if out is None else {line.split(" ", 1)[0] for line in out}


def git_path_graph(kb: KB, path: str, head: bytes | None) -> dict[str, list[str]] | None:
    """The history of ``path`` as Git simplifies it (`git rev-list --full-history --parents
    <head> -- path`): every commit reachable from ``head`` that differs from its parent at the
    path, and every merge, each with its parents rewritten to their nearest such ancestors
    (none: no ancestor on that side held the path; a parent two rewrite to is named once).
    Every commit left out has its parent's version of the path. None without Git, or when it
    fails."""
    out = _git_path_walk(kb, path, head, "--parents")
    if out is None:
        return None
    graph: dict[str, list[str]] = {}
    for line in out:
        sha, *parents = line.split(" ")
        graph[sha] = parents
    return graph


_REV_LIST_LINE = re.compile(r"[0-9a-f]{40}( [0-9a-f]{40})*")  # a commit id, and with --parents its parents


def _git_path_walk(kb: KB, path: str, head: bytes | None, *options: str) -> list[str] | None:
    """The lines of `git rev-list --full-history [options] <head> -- <path>`. The path is
    literal (no pattern) and Git is kept to the objects as stored: no replacement refs, no
    grafts (a clone's could rewrite the history Git walks, not the one openkb reads)."""
    import os
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None or not path or head is None:
        return None
    env = {**os.environ, "GIT_NO_REPLACE_OBJECTS": "1", "GIT_GRAFT_FILE": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_LITERAL_PATHSPECS": "1"}
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES"):
        env.pop(name, None)
    try:
        proc = subprocess.run([git, f"--git-dir={kb.git_dir}", "rev-list", "--full-history", *options, head.decode(),
                               "--", path], capture_output=True, env=env, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    lines = proc.stdout.decode("ascii", "replace").splitlines()
    if not all(map(_REV_LIST_LINE.fullmatch, lines)):
        return None  # not what rev-list prints (a SHA-256 repository, say): walk it ourselves
    return lines


T = TypeVar("T")
SETTLE_ATTEMPTS = 12
SETTLE_PAUSE = 0.05  # seconds, grows with each attempt (0.05, 0.1, ... : ~4 s in all)


def at_rest(kb: KB, read: Callable[[KB, bytes | None], T], *, attempts: int = SETTLE_ATTEMPTS,
            pause: float = SETTLE_PAUSE) -> tuple[T | None, dict | None]:
    """Run ``read(fresh_kb, head)`` at a moment no writer is active: the KB lock free before
    and after the read and HEAD the same, so what it saw of the working tree, the Git index
    and the journals belongs to one commit, not to a writer half-way through projecting one.
    Returns (result, None), or (None, the lock holder's {pid, command}) when every attempt
    met a writer. Takes no lock (reads never block writers)."""
    from ..lock import KBLock

    lock = KBLock(kb.openkb_dir)
    holder: dict | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause * attempt)
        holder = lock.probe()
        if holder is not None:
            continue
        head = kb.head()
        fresh = KB(kb.root)  # its own Git index and pack list, read now
        try:
            result = read(fresh, head)
        finally:
            fresh.close()
        holder = lock.probe()
        if holder is None and kb.head() == head:
            return result, None
        holder = holder or {}
    return None, holder or {}


def writer_message(holder: dict) -> str:
    return f"a writer is running (pid {holder.get('pid', '?')}, `{holder.get('command', 'unknown command')}`)"


@dataclass
class Status:
    root: str
    head: str | None
    documents: int
    concepts: int
    commits: int
    dirty: list[str]
    pending_journals: list[str]
    views_current: bool
    lock_holder: dict | None
    writer: dict | None = None
    invalid_records: list[str] = field(default_factory=list)  # committed records that are not JSON objects  # set when a writer kept running: edits and journals were not checked
    warnings: list[str] = field(default_factory=list)  # the set-up of .git: merge drivers (ops/gitsetup.py)
    openkb_added: list[str] = field(default_factory=list)  # OpenKB's own adds the next writer records (ops/adopt.py)

    def to_json(self) -> dict:
        return asdict(self)


def status(kb: KB) -> Status:
    # Imported here: `log` and `show` import this module and need none of it (start-up time).
    from ..lock import KBLock
    from ..protocol.journal import pending_journals
    from ..views import views_are_current
    from .adopt import pending_openkb_adds
    from .edits import find_edits
    from .gitsetup import driver_problems

    def volatile(fresh: KB, head: bytes | None) -> tuple[bytes | None, list[str], list[str], bool]:
        return (head, sorted(find_edits(fresh, fresh.head_tree(head))),
                [p.name for group in pending_journals(fresh) for p in group], views_are_current(fresh))

    settled, writer = at_rest(kb, volatile)
    head, dirty, journals, views_current = settled if settled is not None else (kb.head(), [], [], True)
    tree = kb.head_tree(head)
    view = Registry.of(kb).view(tree)
    records = view.records
    concepts = [n for n in kb.objects.list_dir(tree, "wiki/concepts") if n.endswith(".md")]
    commits = sum(1 for _ in iter_entries(kb, head))
    holder = KBLock(kb.openkb_dir).probe()
    return Status(root=str(kb.root), head=head.decode() if head else None, documents=len(records),
                  concepts=len(concepts), commits=commits, dirty=dirty, pending_journals=journals,
                  views_current=views_current, lock_holder=holder, writer=writer,
                  invalid_records=view.invalid_paths(), warnings=driver_problems(kb.root),
                  openkb_added=pending_openkb_adds(kb, view))


def list_documents(kb: KB) -> tuple[list[dict], list[str]]:
    """One dict per document at HEAD, sorted by doc name; and the record files at HEAD that
    are not valid records (not JSON objects), whose documents cannot be listed."""
    view = Registry.of(kb).view(kb.head_tree())
    records = view.records
    out = []
    for doc in sorted(records):
        r = records[doc]
        out.append({"doc": doc, "name": r.get("name"), "type": r.get("type"), "pages": r.get("pages"),
                    "title": r.get("title"), "source": r.get("path"), "sha256": r.get("sha256"),
                    "concepts": r.get("concepts", [])})
    return out, view.invalid_paths()
