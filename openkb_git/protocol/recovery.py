"""Recovery: bring the working tree, the Git index and the views back to HEAD.

Runs on every acquisition of the mutation lock and as `openkb recover`. For each
journal left by a crashed writer it resets the journal's touched paths to
whatever HEAD holds now — which finishes the mutation if the branch moved and
undoes it if it did not — then removes the journal. Cost is proportional to the
touched paths; running it twice, or interrupting it, is harmless.

Recovery never resets a hand edit away: a file it is about to overwrite or delete
whose content is none of the versions the crashed mutation could have left there
(its base or its new blob) was edited by hand during the run, and is first copied,
durably, to `.openkb/fsck-backup/<time>/` (the folder `openkb fsck --repair` uses).
For a journal that cannot be parsed nothing is known, so every tracked file that
differs from HEAD is copied there before every tracked path is reset.
"""

from __future__ import annotations

import fcntl
import os
import stat as statmod
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from ..faults import checkpoint
from ..fsutil import TMP_SUFFIX, fsync_dir, makedirs, prune_empty_dirs, remove_file, remove_tree, temporary_for, write_file
from ..git.index import FILE_MODE, IndexCorruptError
from ..git.lockwait import is_stale
from ..git.objects import blob_id
from ..kb import KB
from ..paths import check_path, link_on_the_way, path_problem
from ..registry import Registry
from ..views import update_views, view_paths, views_are_current
from .commit import make_durable
from .journal import OPENKB, OURS, UNKNOWN, CorruptJournal, legacy_journals, list_journals, read_journal, remove_journal
from .openkb_journal import rollback_openkb_journal


@dataclass
class RecoveryReport:
    journals: list[str] = field(default_factory=list)  # every journal of ours read and acted on
    finished: list[str] = field(default_factory=list)  # ... of those, the ones whose commit HEAD names
    corrupt: list[str] = field(default_factory=list)
    paths_reset: int = 0
    staging_removed: int = 0
    views_rebuilt: bool = False
    stale_locks: list[str] = field(default_factory=list)
    backup: str | None = None  # KB-relative folder holding the hand edits kept before a reset
    kept: list[str] = field(default_factory=list)  # the paths copied there
    openkb: list[str] = field(default_factory=list)  # OpenKB journals rolled back (as OpenKB does)
    foreign: list[str] = field(default_factory=list)  # files in .openkb/journal/ of no known schema, left alone

    @property
    def did_anything(self) -> bool:
        return bool(self.journals or self.corrupt or self.paths_reset or self.staging_removed or self.views_rebuilt
                    or self.kept or self.openkb or self.foreign)


class EditBackup:
    """Copies of hand-edited files, taken before recovery resets them: one folder
    `.openkb/fsck-backup/<time>/` per recovery, created on the first copy."""

    def __init__(self, kb: KB, report: RecoveryReport):
        self.kb = kb
        self.report = report
        self.folder: Path | None = None

    def keep(self, path: str, data: bytes) -> None:
        """Copy ``data`` (the file at KB path ``path``) into the backup, durably."""
        check_path(path, where="a path recovery resets")
        if self.folder is None:
            base = self.kb.openkb_dir / "fsck-backup"
            stamp = time.strftime("%Y%m%d-%H%M%S")
            folder, n = base / stamp, 1
            while folder.exists():
                n += 1
                folder = base / f"{stamp}-{n}"
            makedirs(folder, sync=True)
            self.folder = folder
            self.report.backup = folder.relative_to(self.kb.root).as_posix()
        target = self.folder / path
        makedirs(target.parent, sync=True)
        write_file(target, data, sync=True)
        self.report.kept.append(path)


def recover(kb: KB, registry: Registry, *, crashed_since: float | None = None) -> RecoveryReport:
    """Finish or undo every in-flight mutation; the caller holds the KB lock. ``crashed_since``:
    when the last holder of the KB lock, which died holding it, took it (`KBLock.crashed_since`)."""
    report = RecoveryReport()
    # `.openkb/journal/` is OpenKB's: its journals are rolled back as OpenKB would (it holds
    # the same lock, so one found now is of an OpenKB run that died); ours of earlier
    # versions are recognized there by their exact schema; anything else is left alone.
    legacy = legacy_journals(kb.legacy_journal_dir)
    for path in legacy[OPENKB]:
        report.openkb.append(rollback_openkb_journal(kb.root, path).describe())
    report.foreign = [p.name for p in legacy[UNKNOWN]]
    journals = list_journals(kb.journal_dir) + legacy[OURS]
    for folder in (kb.journal_dir, kb.legacy_journal_dir):
        for tmp in folder.glob(f"*{TMP_SUFFIX}") if folder.is_dir() else []:
            remove_file(tmp, sync=False)
    # A writer died mid-mutation, or holding the KB lock (e.g. while refreshing the Git index,
    # before any journal): the Git lock files it may have held are stale. A lock a live git
    # process holds (`git status` refreshing the index) is never removed.
    since = min(_mtime(path) for path in journals) if journals else crashed_since
    if since is not None:
        for stale in (kb.git_dir / "index.lock", kb.git_dir / f"{kb.write_branch()}.lock"):
            if is_stale(stale, since):
                remove_file(stale, sync=False)
                report.stale_locks.append(stale.relative_to(kb.root).as_posix())
    tree = kb.head_tree()
    try:
        kb.index.verify()  # a checksum over the file: entries are decoded only if they must be
    except IndexCorruptError as exc:
        report.corrupt.append(f"index: {exc}")
        kb.index.start_over()
        report.paths_reset += rebuild_index(kb, tree)
    backup = EditBackup(kb, report)
    for path in journals:
        journal, reset = None, []
        try:
            journal = read_journal(path)
        except CorruptJournal as exc:
            report.corrupt.append(f"{path.name}: {exc.reason}")
            report.paths_reset += reset_all(kb, tree, backup)
        else:
            report.journals.append(journal.id)
            head = kb.head()
            if (head.decode() if head else None) == journal.new:
                report.finished.append(journal.id)  # rolled forward; else rolled back
            if journal.op == "edit" and (head.decode() if head else None) != journal.new:
                # An `edit` commit that did not happen: the working tree holds the user's own
                # content, which must not be reset to the old HEAD. It stays uncommitted.
                pass
            else:
                known = journal.blobs_at(head.decode() if head else None)
                report.paths_reset += reset_paths(kb, tree, journal.paths, known=known, durable=False,
                                                  backup=backup, expected=_expected_blobs(kb, journal))
                reset = journal.paths
        checkpoint("recover:reset")
        if not views_are_current(kb):
            update_views(kb, registry, patch=True, journal=journal)
            report.views_rebuilt = True
            reset = reset + view_paths()
        if reset:
            make_durable(kb, reset)  # all of it before the journal goes
        checkpoint("recover:durable")
        remove_journal(path)
        checkpoint("recover:journal-removed")
    if not views_are_current(kb):
        update_views(kb, registry, patch=True)
        report.views_rebuilt = True
    kb.objects.remove_temporaries()
    report.staging_removed = remove_orphaned_staging(kb.staging_dir)
    report.staging_removed += remove_orphaned_staging(kb.legacy_staging_dir, ours_only=True)
    return report


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def reset_paths(kb: KB, tree: bytes | None, paths: list[str], known: dict[str, str | None] | None = None,
                *, durable: bool = True, backup: EditBackup | None = None,
                expected: dict[str, set[str]] | None = None) -> int:
    """Make each path in the working tree and the index equal HEAD's; returns how many changed.

    ``known`` ({path: blob id or None} at HEAD, from the journal) spares the tree lookups.
    Without ``durable`` the caller makes the paths durable (with the views, in one pass).
    With ``backup``, a file about to be overwritten or deleted is first copied there
    unless its blob id is one of ``expected[path]`` (what the crashed mutation may have
    left there); without ``expected`` every such file is copied."""
    changed = 0
    index_updates: dict[str, bytes | None] = {}
    for path in paths:
        if path_problem(path) or link_on_the_way(kb.root, path):
            continue  # never followed: a crafted tree or journal (`openkb fsck` reports it)
        target = kb.root / path
        _remove_temporaries_near(target)
        if known is not None:
            sha = known[path]
            entry = (FILE_MODE, sha.encode()) if sha else None
        else:
            entry = kb.objects.lookup(tree, path)
        if entry is None or statmod.S_ISDIR(entry[0]):
            if backup is not None:
                _keep_if_edited(backup, path, _read(target), None, expected)
            if remove_file(target, sync=False):
                changed += 1
            prune_empty_dirs(target.parent, kb.root)
            index_updates[path] = None
            continue
        data = kb.objects.blob_bytes(entry[1])
        current = _read(target)
        if current != data:
            if backup is not None:
                _keep_if_edited(backup, path, current, entry[1], expected)
            makedirs(target.parent, sync=False)
            write_file(target, data, sync=False)
            changed += 1
        index_updates[path] = entry[1]
    if index_updates:
        kb.index.update(kb.root, index_updates, sync=False)
        if durable:
            make_durable(kb, list(index_updates))
    return changed


# Stat data no file has: an index entry holding it is always checked against the file's content.
_UNTRUSTED_STAT = SimpleNamespace(st_ctime=0, st_ctime_ns=0, st_mtime=0, st_mtime_ns=0, st_dev=0, st_ino=0,
                                  st_uid=0, st_gid=0, st_size=0)


def rebuild_index(kb: KB, tree: bytes | None) -> int:
    """Write a new Git index from HEAD in place of a torn one, keeping the working tree's files
    (as `git reset --mixed` does): a file that differs from HEAD is the user's edit, not
    something to reset — the paths a crashed mutation touched are reset by its journal. Its
    entry gets stat data no file has, so it shows as modified and is committed as an edit by
    the next writer. Missing files are restored from HEAD. Returns how many were restored."""
    ids: dict[str, bytes] = {}
    stats = {}
    restored = []
    for path, _mode, sha in kb.objects.walk_files(tree):
        if path_problem(path) or link_on_the_way(kb.root, path):
            continue  # never followed: a crafted tree (`openkb fsck` reports it)
        target = kb.root / path
        _remove_temporaries_near(target)
        ids[path] = sha
        data = _read(target)
        if data is None:
            makedirs(target.parent, sync=False)
            write_file(target, kb.objects.blob_bytes(sha), sync=False)
            restored.append(path)
        elif blob_id(data) != sha:
            stats[path] = _UNTRUSTED_STAT
    kb.index.update(kb.root, ids, sync=False, stats=stats)
    make_durable(kb, restored)  # the restored files, their folders, then the index
    return len(restored)


def reset_all(kb: KB, tree: bytes | None, backup: EditBackup) -> int:
    """Reset every tracked path (HEAD's and the index's) to HEAD: the answer to a journal we
    cannot read. Which paths its writer touched is unknown, so every file that differs from
    HEAD is copied to ``backup`` first: a hand edit is kept, whatever it is."""
    paths = {path for path, _mode, _sha in kb.objects.walk_files(tree)}
    paths |= {key.decode("utf-8", "surrogateescape") for key in kb.index.paths()}
    return reset_paths(kb, tree, sorted(paths), backup=backup)


def _keep_if_edited(backup: EditBackup, path: str, current: bytes | None, head_sha: bytes | None,
                    expected: dict[str, set[str]] | None) -> None:
    """Copy ``current`` to the backup unless it is absent, HEAD's blob, or one the journal expects."""
    if current is None:
        return
    sha = blob_id(current)
    if head_sha is not None and sha == head_sha:
        return
    if expected is not None and sha.decode() in expected.get(path, ()):
        return
    backup.keep(path, current)


def _expected_blobs(kb: KB, journal) -> dict[str, set[str]] | None:
    """{path: blob ids the crashed mutation may have left there}: its base and new versions.

    From the journal's blob ids when it has them, else looked up in its base and new
    commits; None (every differing file is kept) when neither is possible."""
    if journal.blobs and set(journal.blobs) == set(journal.paths):
        return {path: {b for b in pair if b} for path, pair in journal.blobs.items()}
    expected: dict[str, set[str]] = {path: set() for path in journal.paths}
    for commit in (journal.base, journal.new):
        if not commit:
            continue
        try:
            tree = kb.objects.get(commit.encode()).tree
            for path in journal.paths:
                entry = kb.objects.lookup(tree, path)
                if entry is not None and not statmod.S_ISDIR(entry[0]):
                    expected[path].add(entry[1].decode())
        except Exception:  # a commit the crash left unwritten: its blobs are not known
            return None
    return expected


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _remove_temporaries_near(target: Path) -> None:
    try:
        remove_file(temporary_for(target), sync=False)
    except FileNotFoundError:  # a folder on the way is missing
        pass


def staging_run_dir(staging_dir: Path, run_id: str) -> tuple[Path, int]:
    """Create the staging folder of one add run, holding its owner lock ``<run_id>.lock``.

    The lock file is created and locked before the folder exists, so recovery in another
    process never mistakes a folder being set up for an orphan. Returns (folder, lock fd);
    the fd must stay open for as long as the run uses the folder.
    """
    makedirs(staging_dir, sync=False)
    fd = os.open(staging_dir / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    run_dir = staging_dir / run_id
    makedirs(run_dir, sync=False)
    return run_dir, fd


def release_staging(staging_dir: Path, run_id: str, fd: int) -> None:
    """Remove a run's staging folder and its owner lock."""
    try:
        remove_tree(staging_dir / run_id)
        remove_file(staging_dir / f"{run_id}.lock", sync=False)
    finally:
        os.close(fd)


def remove_orphaned_staging(staging_dir: Path, *, ours_only: bool = False) -> int:
    """Delete staging folders whose owning process is gone (their owner lock is free).

    With ``ours_only`` (`.openkb/staging/`, shared with OpenKB, whose `add-*` staging and
    `rollback-*` copies its own recovery needs) only entries named like our runs are touched."""
    if not staging_dir.is_dir():
        return 0
    removed = 0
    for entry in sorted(staging_dir.iterdir()):
        if entry.suffix == ".lock":
            continue
        if ours_only and not _is_run_id(entry.name):
            continue
        lock = staging_dir / f"{entry.name}.lock"
        fd = None
        try:
            fd = os.open(lock, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except FileNotFoundError:
            pass
        except BlockingIOError:
            os.close(fd)
            continue  # a live add run owns it
        remove_tree(entry)
        remove_file(lock, sync=False)
        if fd is not None:
            os.close(fd)
        removed += 1
    for lock in staging_dir.glob("*.lock"):
        if ours_only and not _is_run_id(lock.stem):
            continue
        if not (staging_dir / lock.stem).exists():
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                remove_file(lock, sync=False)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
    if removed:
        fsync_dir(staging_dir)
    return removed


def _is_run_id(name: str) -> bool:
    """Whether ``name`` is one of our add runs' ids (12 hex digits, see ops/add.py)."""
    return len(name) == 12 and all(c in "0123456789abcdef" for c in name)
