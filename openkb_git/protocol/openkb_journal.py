"""OpenKB's own mutation journals (`.openkb/journal/<id>.json`), rolled back as OpenKB does.

OpenKB (the tool whose layout we keep) takes the same lock, `.openkb/ingest.lock`, so a
journal of its found by a process holding that lock belongs to an OpenKB run that died.
OpenKB's `snapshot_paths()` writes `{version, operation, status, kb_dir, backup_dir,
details, attempts, entries: [{target, backup}]}` with absolute paths, the copies under
`.openkb/staging/rollback-<id>/`; its recovery (`recover_pending_journals`) discards a
`committed` or `rolled_back` journal and, for an `active` one, removes every target and
copies its backup back (a target with no backup was created by the run and is just
removed), then removes the backup folder and the journal.

We do the same, with the paths confined to this KB (each target mapped from the
journal's `kb_dir` onto this KB, and refused if it leaves it, enters `.git/` or our own
`.openkb/openkb-git/`; each backup inside the journal's `backup_dir`, itself inside
`.openkb/staging/`). A journal we cannot apply that way is left untouched and the writer
refuses, saying to let OpenKB finish.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import RefusedStateError
from ..fsutil import copy_tree, fsync_dir, fsync_file, makedirs, remove_file, remove_tree, write_file
from ..paths import path_problem

TERMINAL = ("committed", "rolled_back")


class OpenKBJournalError(RefusedStateError):
    """An OpenKB journal is pending and cannot be rolled back safely by openkb-git."""

    def __init__(self, journal: Path, reason: str):
        super().__init__(
            f"OpenKB's mutation journal .openkb/journal/{journal.name} is pending (an OpenKB command was "
            f"interrupted) and openkb-git cannot roll it back: {reason}; let OpenKB finish: run OpenKB's "
            "recovery (any OpenKB command that writes, e.g. its `openkb lint`, rolls the journal back), "
            "then run openkb-git again")


@dataclass
class OpenKBRollback:
    journal: str  # file name
    operation: str
    status: str  # the journal's status when found
    restored: list[str] = field(default_factory=list)  # KB paths restored from OpenKB's backup
    removed: list[str] = field(default_factory=list)  # KB paths the interrupted run created, removed

    def describe(self) -> str:
        if self.status in TERMINAL:
            return f"OpenKB journal {self.journal} ({self.operation}, {self.status}): cleaned up as OpenKB does"
        return (f"OpenKB journal {self.journal}: rolled back OpenKB's interrupted {self.operation} as OpenKB does "
                f"({len(self.restored)} path(s) restored from its backup, {len(self.removed)} removed)")


def rollback_openkb_journal(root: Path, journal: Path) -> OpenKBRollback:
    """Apply OpenKB's recovery to one of its journals in the KB at ``root``; returns what was done.

    Raises OpenKBJournalError (the journal is left in place) when it is malformed or names a
    path outside the KB."""
    try:
        data = json.loads(journal.read_bytes().decode("utf-8"))
        kb_dir = PurePosixPath(_text(data["kb_dir"]))
        backup_dir = _inside(root, kb_dir, _text(data["backup_dir"]), "backup_dir")
        if not (backup_dir.startswith(".openkb/staging/") and backup_dir.count("/") == 2):
            raise ValueError(f"backup_dir {backup_dir!r} is not a folder of .openkb/staging/")
        status = str(data.get("status", "active"))
        entries = []
        for item in data.get("entries", []):
            target = _inside(root, kb_dir, _text(item["target"]), "target")
            if target == ".git" or target.startswith((".git/", ".openkb/openkb-git/")) or target == ".openkb/openkb-git":
                raise ValueError(f"target {target!r} is not OpenKB's to restore")
            backup = item.get("backup")
            if backup is not None:
                backup = _inside(root, kb_dir, _text(backup), "backup")
                if not backup.startswith(backup_dir + "/"):
                    raise ValueError(f"backup {backup!r} is outside backup_dir")
                if not os.path.lexists(root / backup):
                    raise ValueError(f"its backup {backup} is missing")
            entries.append((target, backup))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError) as exc:
        raise OpenKBJournalError(journal, str(exc) or type(exc).__name__) from None
    done = OpenKBRollback(journal.name, str(data.get("operation", "mutation")), status)
    if status not in TERMINAL:
        # Children before parents, as OpenKB's rollback does.
        for target, backup in sorted(entries, key=lambda e: e[0].count("/"), reverse=True):
            live = root / target
            remove_tree(live)
            if backup is None:
                done.removed.append(target)
                continue
            source = root / backup
            makedirs(live.parent, sync=False)
            if source.is_dir() and not source.is_symlink():
                copy_tree(source, live)  # every file and folder fsynced
            else:
                write_file(live, source.read_bytes(), sync=False, mode=source.stat().st_mode & 0o777)
                fsync_file(live)
            fsync_dir(live.parent)
            done.restored.append(target)
        # OpenKB's own order: mark the journal rolled back before removing the backup, so a
        # crash in between never removes targets whose backups are gone.
        data["status"] = "rolled_back"
        write_file(journal, (json.dumps(data, indent=2) + "\n").encode("utf-8"), sync=True)
    if remove_tree(root / backup_dir):
        fsync_dir((root / backup_dir).parent)
    remove_file(journal, sync=True)
    return done


def _text(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a path")
    return value


def _inside(root: Path, kb_dir: PurePosixPath, value: str, what: str) -> str:
    """``value`` (an absolute path under the journal's ``kb_dir``) as a path relative to this
    KB, checked by paths.py and with no symlinked folder on the way out of ``root``."""
    absolute = PurePosixPath(value)
    try:
        rel = absolute.relative_to(kb_dir).as_posix()
    except ValueError:
        raise ValueError(f"{what} {value!r} is outside the journal's kb_dir") from None
    problem = path_problem(rel)
    if problem:
        raise ValueError(f"{what} {value!r}: {problem}")
    real_root, parent = os.path.realpath(root), os.path.realpath((root / rel).parent)
    if parent != real_root and not parent.startswith(real_root + os.sep):
        raise ValueError(f"{what} {value!r} leads out of the KB through a symbolic link")
    return rel
