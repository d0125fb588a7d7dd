"""`openkb watch`: add every new or changed file of some folders as it arrives.

Watchdog reports file-system events; a file named by one is taken once its size and mtime
have stayed the same for ``settle`` seconds (a download or a copy still being written keeps
changing them), then goes through the normal add pipeline (`add_paths`: one commit, hooks,
duplicates skipped) — a file dropped into `raw/` becomes an `add` of its own, never an
`edit`. A file that fails is reported and watching goes on. Hidden files and the usual
partial-download names (`*.part`, `*.crdownload`, `*.tmp`, `~` backups) are never taken.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import OpenKBError
from ..fsutil import makedirs
from ..git.objects import blob_id
from .edits import edit_commit_line
from ..kb import KB
from .add import ADDED, FAILED, SKIPPED, FileResult, add_paths

PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".swp", ".swx", "~")


class WatchSetupError(OpenKBError):
    """A folder to watch cannot be watched."""


class WatchUnavailableError(OpenKBError):
    """The watchdog package is not installed."""


@dataclass
class WatchReport:
    results: list[FileResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def to_json(self) -> dict:
        return {"added": self.count(ADDED), "skipped": self.count(SKIPPED), "failed": self.count(FAILED),
                "files": [{"path": r.path, "status": r.status, "doc": r.doc, "commit": r.commit,
                           "reason": r.reason, "warnings": r.warnings} for r in self.results]}


def ignored(path: Path, kb: KB) -> bool:
    """Hidden files, partial downloads, and anything in the KB's own folders (.git, .openkb, wiki)."""
    name = path.name
    if name.startswith(".") or name.startswith("~$") or name.lower().endswith(PARTIAL_SUFFIXES):
        return True
    try:
        rel = path.resolve().relative_to(kb.root.resolve())
    except ValueError:
        return False
    return rel.parts[:1] in (("wiki",), (".git",), (".openkb",)) or any(p.startswith(".") for p in rel.parts)


def committed_as_is(kb: KB, path: Path) -> bool:
    """Is ``path`` a file of the KB whose content is the one HEAD holds (e.g. a raw/ file an add
    just wrote under a suffixed name)?"""
    try:
        rel = path.resolve().relative_to(kb.root)
    except ValueError:
        return False
    entry = kb.objects.lookup(kb.head_tree(), rel.as_posix())
    return entry is not None and blob_id(path.read_bytes()) == entry[1]


def watch_dirs(root: Path) -> list[Path]:
    """The default: the KB's raw/ (made when missing, as OpenKB's watch does)."""
    raw = root / "raw"
    makedirs(raw, sync=False)
    return [raw]


class Pending:
    """Paths named by events, each with the (size, mtime) last seen and since when."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen: dict[str, tuple[tuple[int, int] | None, float]] = {}
        self.wake = threading.Event()

    def note(self, path: str) -> None:
        with self.lock:
            self.seen[path] = (None, time.monotonic())
        self.wake.set()

    def settled(self, settle: float) -> list[str]:
        """The paths whose size and mtime have not changed for ``settle`` seconds (taken out)."""
        now = time.monotonic()
        ready = []
        with self.lock:
            for path, (last, since) in list(self.seen.items()):
                try:
                    st = os.stat(path)
                except OSError:
                    del self.seen[path]  # gone (moved on, deleted): nothing to add
                    continue
                if not os.path.isfile(path):
                    del self.seen[path]
                    continue
                stamp = (st.st_size, st.st_mtime_ns)
                if stamp != last:
                    self.seen[path] = (stamp, now)
                elif now - since >= settle:
                    del self.seen[path]
                    ready.append(path)
        return sorted(ready)

    def __len__(self) -> int:
        with self.lock:
            return len(self.seen)


def watch(root: Path, dirs: list[Path], *, settle: float = 2.0, wait: float = 30.0,
          on_result: Callable[[FileResult], None] | None = None,
          on_error: Callable[[str], None] | None = None,
          on_ready: Callable[[list[Path]], None] | None = None,
          stop: threading.Event | None = None) -> WatchReport:
    """Watch ``dirs`` (recursively) until ``stop`` is set or KeyboardInterrupt; returns what was done."""
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:
        raise WatchUnavailableError("`openkb watch` needs the watchdog package: pip install 'openkb-git[watch]' "
                                    "(or pip install watchdog)") from None
    report = WatchReport()
    emit = on_result or (lambda r: None)
    warn = on_error or (lambda m: None)
    stop = stop or threading.Event()
    pending = Pending()
    kb = KB(root)
    taken: dict[str, tuple[int, int]] = {}  # path -> (size, mtime) when last added: our own writes are not news

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
                return
            path = getattr(event, "dest_path", "") if event.event_type == "moved" else event.src_path
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if path and not ignored(Path(path), kb):
                pending.note(path)

    observer = Observer()
    for folder in dirs:
        if not folder.is_dir():
            raise WatchSetupError(f"cannot watch {folder}: not a folder; give an existing folder "
                                  "(default: the KB's raw/)")
        observer.schedule(Handler(), str(folder), recursive=True)
    observer.start()
    try:
        if on_ready:
            on_ready(dirs)
        while not stop.is_set():
            pending.wake.wait(0.25)
            pending.wake.clear()
            for path in pending.settled(settle):
                if stop.is_set():
                    break
                try:
                    st = os.stat(path)
                    if taken.get(path) == (st.st_size, st.st_mtime_ns) or committed_as_is(kb, Path(path)):
                        continue  # our own projection of a KB file, not a new or changed one
                except OSError:
                    continue
                _take(kb, Path(path), wait, report, emit, warn, stop)
                try:
                    st = os.stat(path)
                    taken[path] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    pass
                kb.close()
                kb = KB(root)  # whatever happened meanwhile (other writers, a pull) is read afresh
    except KeyboardInterrupt:
        pass
    finally:
        observer.stop()
        observer.join(timeout=5)
        kb.close()
    return report


def _take(kb: KB, path: Path, wait: float, report: WatchReport, emit, warn, stop: threading.Event) -> None:
    try:
        added = add_paths(kb, [path], jobs=1, wait=wait)
    except OpenKBError as exc:  # this file could not be added (lock held too long, a refused state): go on
        result = FileResult(str(path), FAILED, reason=str(exc))
        report.results.append(result)
        emit(result)
        return
    except OSError as exc:
        result = FileResult(str(path), FAILED, reason=f"I/O error: {exc}")
        report.results.append(result)
        emit(result)
        return
    for sha in added.edit_commits:
        warn(edit_commit_line(sha, added.edit_ops.get(sha, "edit")))
    for result in added.results:
        report.results.append(result)
        emit(result)
    if added.interrupted:
        stop.set()
