"""Waiting for Git's lock files (`index.lock`, `<ref>.lock`) held by other git processes.

A shell prompt or an IDE runs `git status` every second or so, and `git status` takes
`index.lock` for a few milliseconds to refresh the index; `git gc` takes `<ref>.lock` while
it packs refs. openkb waits for such a lock with backoff, up to `LOCK_WAIT` seconds
(`OPENKB_GIT_LOCK_WAIT` overrides it), instead of aborting a run. It never deletes a lock it
did not create (recovery decides about the stale locks of a dead openkb writer, see
`is_stale`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..fsutil import write_bytes

LOCK_WAIT = 10.0  # seconds a writer waits for another git process's lock
STALE_WAIT = 0.2  # seconds recovery gives a lock to go away before it suspects it is stale


def lock_wait() -> float:
    """The wait bound in seconds (OPENKB_GIT_LOCK_WAIT, else LOCK_WAIT)."""
    try:
        return max(0.0, float(os.environ.get("OPENKB_GIT_LOCK_WAIT", LOCK_WAIT)))
    except ValueError:
        return LOCK_WAIT


def create_lock(lock: Path, data: bytes, *, sync: bool, wait: float | None = None) -> bool:
    """Create ``lock`` exclusively holding ``data``, waiting (with backoff, up to ``wait``
    seconds, default `lock_wait()`) while another process holds it. True once created;
    False when it was still held at the end of the wait (nothing written, nothing removed).
    Any other failure removes the partly written lock (it is ours) and raises."""
    deadline = time.monotonic() + (lock_wait() if wait is None else wait)
    delay = 0.002
    while True:
        try:
            write_bytes(lock, data, sync=sync, exclusive=True)
            return True
        except FileExistsError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise


def _stamp(path: Path) -> tuple | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def is_stale(lock: Path, since: float, *, wait: float = STALE_WAIT) -> bool:
    """Whether ``lock`` was left by a dead openkb writer whose journal dates from ``since``
    (epoch seconds): it is still the same file after ``wait`` seconds (a git process's lock
    comes and goes in milliseconds) and it is not older than that journal (openkb takes its
    locks after writing the journal). A lock older than the journal belongs to someone else
    (a long-running git command, or a git process that died): it is left alone, and the
    writer that needs it says which file to remove."""
    first = _stamp(lock)
    deadline = time.monotonic() + wait
    while first is not None and time.monotonic() < deadline:
        time.sleep(0.01)
        now = _stamp(lock)
        if now != first:
            return False  # it went away or another process took it afresh: a live git
    return first is not None and first[1] / 1e9 >= since - 0.05  # (file times are coarse)
