"""`openkb gc`: repack every object with deltas and prune unreachable ones past a grace period.

Runs under the KB lock after recovery, so no journal is pending and every object a
journal could name is either reachable or already garbage. Uses `git gc` (deltas, the
best packs) when Git is installed, else dulwich's collector (packs without deltas).
Also runs by itself every `gc_auto_commits` commits of an `add` (config; 0 turns it off);
when it comes due with no loose object and few packs (an `add` committing in groups writes
none), once at the end of that `add` instead.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import OpenKBError
from ..fsutil import write_file
from ..git.packs import MERGE_AT, mergeable_packs, remove_orphans
from ..history import iter_entries
from ..kb import KB, REGISTRY_DIR
from ..lock import KBLock
from ..registry import RECORD_MEMO, RecordMemo
from ..tether import run_tethered
from .session import Writer

STATE = ".openkb/gc.json"
DEFAULT_GRACE = 14 * 24 * 3600


class GCError(OpenKBError):
    """Packing failed."""


@dataclass
class GCResult:
    tool: str
    size_before: int
    size_after: int
    seconds_grace: int
    orphan_packs_removed: int = 0
    memo_records_dropped: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def git_dir_size(kb: KB) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(kb.git_dir):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


# `openkb gc` finds every delta again (`git gc --aggressive`'s --no-reuse-delta): Git never
# tries to delta two objects stored whole in one pack (it takes them for a pair an earlier
# repack rejected), and a group commit stores up to 32 versions of index.md and of each big
# folder's tree whole in its one pack, so a gc that reuses deltas kept them whole (2,000 tldr
# pages: 17 MB of pack instead of 5). Window 50, depth 250 (--aggressive: 250 and 50): the
# 7,425 tldr pages' pack 22.6 MB against --aggressive's 22.1 MB, in well under its time;
# depth 50 with window 50 made 32.7 MB (thousands of versions of index.md need long chains).
# Reads are no slower for it (blame, log --path: docs/performance.md).
RECOMPUTE = ("-c", "gc.aggressiveWindow=50", "-c", "gc.aggressiveDepth=250")


def collect(kb: KB, *, grace: int = DEFAULT_GRACE, lock: KBLock | None = None, recompute: bool = False) -> GCResult:
    """Pack and prune; the caller holds the KB lock (and so has recovered), ``lock``.
    ``recompute``: find every delta again (`openkb gc`), not only those of objects stored in
    different packs (the automatic gc of a long `add`, which must stay cheap).

    `git gc` runs tethered (see tether.py): it dies with openkb, even on SIGKILL, and the
    watchdog that kills it holds the KB lock (``lock``'s descriptor) until it is dead."""
    before = git_dir_size(kb)
    if shutil.which("git"):
        fd = lock.fileno() if lock is not None else None
        argv = ["git", "-C", str(kb.root), *(RECOMPUTE if recompute else ()), "gc", "--quiet",
                *(("--aggressive",) if recompute else ()), f"--prune={grace}.seconds.ago"]
        proc = run_tethered(argv, what="git gc", pass_fds=(fd,) if fd is not None else ())
        if proc.returncode != 0:
            raise GCError(f"git gc failed: {proc.stderr.strip()}")
        tool = "git gc"
    else:
        import dulwich.gc

        dulwich.gc.garbage_collect(kb.repo, prune=True, grace_period=grace)
        tool = "dulwich"
    # A .pack without its index is invisible to every reader: a crash between the two renames of
    # a pack written or the two removals of a pack merged leaves one. Past the grace period it goes.
    orphans = remove_orphans(kb.git_dir / "objects" / "pack", time.time() - grace)
    dropped = compact_record_memo(kb)
    head = kb.head()
    write_file(kb.root / STATE, json.dumps({"head": head.decode() if head else None}).encode(), sync=False)
    return GCResult(tool=tool, size_before=before, size_after=git_dir_size(kb), seconds_grace=grace,
                    orphan_packs_removed=len(orphans), memo_records_dropped=dropped)


def compact_record_memo(kb: KB) -> int:
    """Keep in `.openkb/records.cache` only the records HEAD's registry holds."""
    path = kb.openkb_dir / RECORD_MEMO
    if not path.exists():
        return 0
    folder = kb.objects.lookup(kb.head_tree(), REGISTRY_DIR)
    live = {sha for _mode, sha in kb.objects.tree_entries(folder[1]).values()} if folder else set()
    return RecordMemo(path).keep_only(live)


def gc(kb: KB, *, grace: int = DEFAULT_GRACE, wait: float = 0.0, recompute: bool = True) -> GCResult:
    """`openkb gc`: take the lock (recovering first), then collect."""
    writer = Writer(kb, wait)
    with writer.locked():
        return collect(kb, grace=grace, lock=writer.lock, recompute=recompute)


class AutoGC:
    """Runs `collect` every `gc_auto_commits` commits of a long command.

    The commits since the last gc are counted once, walking back at most that many
    commits, then kept in memory: checking after each commit costs nothing."""

    def __init__(self, kb: KB):
        self.every = int(kb.config.get("gc_auto_commits", 0) or 0)
        self.since = commits_since_gc(kb, self.every) if self.every > 0 else 0
        self.deferred = False  # a gc came due and waits for the end of the command (run_now)

    def committed(self) -> bool:
        """Count one commit; True when a gc is due now."""
        if self.every <= 0:
            return False
        self.since += 1
        if self.since >= self.every:
            self.since = 0
            return True
        return False

    def run_now(self, kb: KB) -> bool:
        """A gc is due: whether to run it now, else at the end of the command (``deferred``).
        It keeps loose objects from piling up; a run committing in groups writes none (each
        group's objects are one pack, and small packs are merged as they come), and repacking
        everything every `gc_auto_commits` commits was an eighth of the 7,425 tldr pages' add
        (docs/performance.md): so with no loose object and the packs few, it runs once, last."""
        if _has_loose_objects(kb.git_dir / "objects") or len(mergeable_packs(kb.git_dir / "objects" / "pack")) >= 2 * MERGE_AT:
            return True
        self.deferred = True
        return False


def _has_loose_objects(objects_dir: Path) -> bool:
    """Whether a fan-out folder holds a loose object (`git prune-packed` removes emptied ones)."""
    try:
        with os.scandir(objects_dir) as entries:
            folders = [entry for entry in entries if len(entry.name) == 2 and entry.is_dir()]
    except FileNotFoundError:
        return False
    for folder in folders:
        try:
            with os.scandir(folder.path) as names:
                if any(len(name.name) == 38 for name in names):
                    return True
        except FileNotFoundError:
            continue
    return False


def commits_since_gc(kb: KB, limit: int) -> int:
    """Commits made since the last gc (HEAD recorded in gc.json), counting at most ``limit``."""
    try:
        last = json.loads((kb.root / STATE).read_text(encoding="utf-8")).get("head")
    except (OSError, ValueError):
        last = None
    count = 0
    for entry in iter_entries(kb):
        if entry.sha == last or count >= limit:
            break
        count += 1
    return count
