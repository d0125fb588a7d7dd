"""Journals of in-flight mutations: `.openkb/openkb-git/journal/<id>.json`.

A journal names the base commit, the new commit and every touched path. It is
written durably before the branch moves and removed once the working tree,
the Git index and the views match the new HEAD. Any journal found by a process
that just took the lock belongs to a crashed writer: recovery resets its paths.

`.openkb/journal/` is OpenKB's: its recovery reads every `*.json` there as its own
(`{version, operation, status, kb_dir, backup_dir, entries}`) and deletes what it
cannot read. Ours lived there in earlier versions; a file there is taken for ours
only when it has exactly our schema (see `classify`), and OpenKB's are never parsed
as ours.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import makedirs, remove_file, write_file
from ..paths import path_problem

OURS, OPENKB, UNKNOWN = "ours", "openkb", "unknown"
# Keys only OpenKB's MutationSnapshot journals have (openkb/mutation.py, `_journal_data`).
OPENKB_KEYS = frozenset({"kb_dir", "backup_dir", "entries", "operation", "status", "version"})
OUR_KEYS = frozenset({"id", "op", "new", "paths"})


@dataclass
class Journal:
    id: str
    op: str
    base: str | None
    new: str
    paths: list[str] = field(default_factory=list)
    pid: int = field(default_factory=os.getpid)
    # {path: [blob id at base or None, blob id at new or None]}: lets recovery reset the paths
    # without looking them up in trees of N entries (absent in journals of older versions).
    blobs: dict[str, list] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps({"id": self.id, "op": self.op, "base": self.base, "new": self.new,
                           "paths": self.paths, "pid": self.pid, "blobs": self.blobs},
                          ensure_ascii=False, indent=1).encode("utf-8")

    def blobs_at(self, head: str | None) -> dict[str, str | None] | None:
        """{path: blob id or None} of every touched path at ``head`` when it is the journal's
        base or new commit and the journal records them; else None."""
        if not self.blobs or set(self.blobs) != set(self.paths):
            return None
        if head == self.new:
            return {path: pair[1] for path, pair in self.blobs.items()}
        if head == self.base:
            return {path: pair[0] for path, pair in self.blobs.items()}
        return None


def new_journal_id() -> str:
    return uuid.uuid4().hex


def write_journal(journal_dir: Path, journal: Journal) -> Path:
    """Write the journal durably (file fsync, then directory fsync) and return its path."""
    makedirs(journal_dir, sync=True)
    path = journal_dir / f"{journal.id}.json"
    write_file(path, journal.to_bytes(), sync=True)
    return path


def remove_journal(path: Path) -> None:
    """Delete a journal durably (the end of a mutation, or of its recovery)."""
    remove_file(path, sync=True)


class CorruptJournal(Exception):
    """A journal file that cannot be parsed; carries the path and reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


def list_journals(journal_dir: Path) -> list[Path]:
    """Journal files present (including ones that may be corrupt), oldest name order."""
    if not journal_dir.is_dir():
        return []
    return sorted(p for p in journal_dir.iterdir() if p.suffix == ".json")


def read_journal(path: Path) -> Journal:
    """Parse a journal; raises CorruptJournal when it is truncated or malformed."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        paths = data["paths"]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError("paths is not a list of strings")
        unsafe = next(((p, path_problem(p)) for p in paths if path_problem(p)), None)
        if unsafe:
            raise ValueError(f"unsafe path {unsafe[0]!r}: {unsafe[1]}")
        blobs = data.get("blobs") or {}
        if not isinstance(blobs, dict) or not all(
                isinstance(pair, list) and len(pair) == 2 and all(b is None or _is_hex_id(b) for b in pair)
                for pair in blobs.values()):
            raise ValueError("blobs is not a map of [base, new] blob ids")
        return Journal(id=str(data["id"]), op=str(data["op"]), base=data.get("base"), new=str(data["new"]),
                       paths=paths, pid=int(data.get("pid", 0)), blobs=blobs)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CorruptJournal(path, str(exc) or type(exc).__name__) from None


def _is_hex_id(value) -> bool:
    return isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value)


def classify(path: Path) -> str:
    """Whose journal file ``path`` is: OURS (our exact schema: `id`, `op`, `new`, `paths`
    and none of OpenKB's keys), OPENKB (a JSON object with OpenKB's `kb_dir` or `entries`),
    or UNKNOWN (unreadable, or neither). Used for `.openkb/journal/`, which both tools
    have written."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return UNKNOWN
    if not isinstance(data, dict):
        return UNKNOWN
    if OUR_KEYS <= data.keys() and not (data.keys() & {"kb_dir", "backup_dir", "entries"}):
        return OURS
    if data.keys() & {"kb_dir", "entries"}:
        return OPENKB
    return UNKNOWN


def legacy_journals(legacy_dir: Path) -> dict[str, list[Path]]:
    """The `*.json` files of `.openkb/journal/` by owner: {OURS: [...], OPENKB: [...], UNKNOWN: [...]}."""
    found: dict[str, list[Path]] = {OURS: [], OPENKB: [], UNKNOWN: []}
    for path in list_journals(legacy_dir):
        found[classify(path)].append(path)
    return found


def pending_journals(kb) -> tuple[list[Path], list[Path]]:
    """(our pending journals, OpenKB's) of the KB ``kb``: ours in our folder and, of an
    earlier version, in `.openkb/journal/`; OpenKB's in `.openkb/journal/`."""
    legacy = legacy_journals(kb.legacy_journal_dir)
    return list_journals(kb.journal_dir) + legacy[OURS], legacy[OPENKB]
