"""The KB mutation lock: `.openkb/ingest.lock`, the same file OpenKB flocks.

The holder records its pid and command in `.openkb/ingest.lock.holder` so a
writer that gives up can say who is in the way. Reads never take this lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time
from pathlib import Path

import filelock

from .errors import EXIT_LOCKED, OpenKBError

LOCK_NAME = "ingest.lock"
HOLDER_NAME = "ingest.lock.holder"
HOLDER_ATTEMPTS = 4  # reads of the holder file before a flock holder it does not name is taken as not ours


class LockBusyError(OpenKBError):
    """Another process holds the KB lock and did not release it within the wait."""

    exit_code = EXIT_LOCKED


class NotWritableError(OpenKBError):
    """The KB cannot be written (read-only file system, no permission): the lock cannot be taken."""


class KBLock:
    """Exclusive, re-entrant-per-object lock on a KB. Use as a context manager."""

    def __init__(self, openkb_dir: Path):
        self.openkb_dir = openkb_dir
        self.path = openkb_dir / LOCK_NAME
        self.holder_path = openkb_dir / HOLDER_NAME
        self._lock = filelock.FileLock(str(self.path), preserve_lock_file=True, thread_local=False)
        self.previous: dict | None = None  # what the last holder wrote, read as the lock is taken
        self._info: dict = {}

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; raises LockBusyError naming the holder."""
        try:
            self._lock.acquire(timeout=max(wait, 0) if wait > 0 else 0, poll_interval=0.02)
        except filelock.Timeout:
            raise LockBusyError(self._busy_message(wait)) from None
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise NotWritableError(
                    f"cannot write {self.path} to take the knowledge-base lock: {exc.strerror}; nothing was "
                    "changed. Make the knowledge base writable (remount it read-write, or fix its permissions), "
                    "then run the command again") from None
            raise
        if self._lock.lock_counter == 1:
            self.previous = self.holder()
            self._info = {"pid": os.getpid(), "command": " ".join(["openkb", *sys.argv[1:]]) or "openkb",
                          "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "at": time.time()}
            self._write_holder(self._info)

    def release(self) -> None:
        if self._lock.lock_counter == 1:
            self._write_holder({**self._info, "released": True})
        self._lock.release()

    def _write_holder(self, info: dict) -> None:
        """Best effort: the holder file only informs messages and `crashed_since`."""
        try:
            tmp = self.holder_path.with_name(HOLDER_NAME + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(info), encoding="utf-8")
            os.replace(tmp, self.holder_path)
        except OSError:
            pass

    def crashed_since(self) -> float | None:
        """When the last holder took the lock (epoch seconds), if it died holding it (it never
        wrote that it released it); else None. Recovery takes a stale Git lock newer than that
        for the dead writer's, as it does one newer than a journal (docs/protocol.md)."""
        previous = self.previous or {}
        at = previous.get("at")
        if previous.get("released") or not isinstance(at, (int, float)) or previous.get("pid") == os.getpid():
            return None
        return float(at)

    def fileno(self) -> int | None:
        """The descriptor holding the flock while held (a child given it keeps the lock held
        until it exits), else None."""
        if not self._lock.is_locked:
            return None
        return getattr(getattr(self._lock, "_context", None), "lock_file_fd", None)

    def __enter__(self) -> "KBLock":
        return self

    def __exit__(self, *exc) -> None:
        if self._lock.is_locked:
            self.release()

    def holder(self) -> dict | None:
        """What the holder wrote about itself, or None when unknown."""
        try:
            return json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def probe(self) -> dict | None:
        """Who holds the lock right now ({} when unknown), or None when it is free. Takes nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.current_holder()
        finally:
            os.close(fd)
        return None

    def current_holder(self) -> dict:
        """Who holds the lock, as {pid, command, ours} ({} when unknown), asked of the kernel
        (/proc/locks, Linux) rather than believed from the holder file alone: OpenKB flocks the
        same file (openkb/locks.py `kb_lock`, exclusive for a write, shared for a read) and writes
        nothing in it, so the holder file may name our last writer, long gone. ``ours``: the holder
        is the openkb-git process the holder file names."""
        for attempt in range(HOLDER_ATTEMPTS):
            if attempt:
                time.sleep(0.05)  # a writer of ours writes the holder file just after it takes the lock
            info = self.holder() or {}
            ours_pid = info.get("pid") if not info.get("released") else None
            pids = flock_holders(self.path)
            if pids is None:  # no /proc/locks: the holder file, unless it says it let go
                return {} if ours_pid is None else {**info, "ours": True}
            if not pids:
                return {}
            if ours_pid in pids:
                return {**info, "ours": True}
        pid = sorted(pids)[0]
        return {"pid": pid, "command": process_command(pid) or "unknown command", "ours": False}

    def _busy_message(self, wait: float) -> str:
        info = self.current_holder()
        waited = f" after waiting {wait:g} s" if wait > 0 else ""
        if info.get("ours", True) is False:
            who = (f"a process that is not openkb-git (pid {info['pid']}, `{info['command']}`; OpenKB itself takes "
                   "this lock, for its writes and its reads)")
        elif not info:
            who = "another process (not an openkb-git writer; OpenKB itself takes this lock)"
        else:
            who = f"another openkb process (pid {info.get('pid', '?')}, `{info.get('command', 'unknown command')}`)"
        return f"{who} holds the knowledge-base lock{waited}; wait for it to finish or pass --wait SECONDS"


def flock_holders(path: Path) -> set[int] | None:
    """The pids holding a flock on ``path`` (from /proc/locks; waiters excluded), or None when
    the kernel does not say (no /proc/locks, or ``path`` is gone)."""
    try:
        st = os.stat(path)
        text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: set[int] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
            continue
        if fields[5] == want and fields[4].isdigit():
            pids.add(int(fields[4]))
    return pids


def process_command(pid: int) -> str | None:
    """The command line of process ``pid`` (Linux /proc), shortened, or None."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    text = " ".join(" ".join(part.decode("utf-8", "replace").split()) for part in raw.split(b"\0") if part)
    return text if len(text) <= 200 else text[:199] + "…"
