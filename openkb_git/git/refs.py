"""The branch reference, moved by compare-and-swap with Git's lock-file protocol."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import OpenKBError
from .. import faults
from ..fsutil import append_bytes, fsync_dir, makedirs, replace
from .lockwait import create_lock, lock_wait

BRANCH = "refs/heads/main"
ZERO = b"0" * 40


class RefMovedError(OpenKBError):
    """The branch moved under us: someone else committed between our read and our update."""


class RefLockedError(OpenKBError):
    """Another process (a plain `git` command?) holds the branch's lock file."""


def read_branch(git_dir: Path, name: str = BRANCH) -> bytes | None:
    """Commit id the branch points to, from its loose file or packed-refs; None when unborn."""
    try:
        value = (git_dir / name).read_bytes().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    try:
        packed = (git_dir / "packed-refs").read_bytes()
    except FileNotFoundError:
        return None
    target = name.encode()
    for line in packed.splitlines():
        if line[:1] in (b"#", b"^"):
            continue
        sha, _, ref = line.partition(b" ")
        if ref == target:
            return sha
    return None


def compare_and_swap(git_dir: Path, old: bytes | None, new: bytes, *, identity: bytes, message: str,
                     name: str = BRANCH) -> None:
    """Move ``name`` from ``old`` to ``new`` durably, or raise RefMovedError if it is not at ``old``.

    Protocol: create ``<ref>.lock`` exclusively, check the current value, write and fsync
    the new value, append the reflogs, rename over the ref, fsync its directory. The
    rename is the commit point.
    """
    ref_path = git_dir / name
    lock_path = ref_path.with_name(ref_path.name + ".lock")
    makedirs(ref_path.parent, sync=True)
    current = read_branch(git_dir, name)
    if current != old:
        raise RefMovedError(
            f"{name} moved from {_short(old)} to {_short(current)} while committing; nothing was changed"
        )
    if not create_lock(lock_path, new + b"\n", sync=True):  # e.g. `git gc` packing refs: wait
        raise RefLockedError(
            f"{lock_path} is still held after waiting {lock_wait():g} s: another git process is "
            f"updating {name}; let it finish and retry, or, if none is running, remove that file and retry"
        )
    try:
        if read_branch(git_dir, name) != old:  # re-check under the ref lock
            raise RefMovedError(f"{name} moved while committing; nothing was changed")
        _append_reflog(git_dir, name, old, new, identity, message)
        faults.op("ref-update", ref_path)
        replace(lock_path, ref_path)
    except BaseException:
        lock_path.unlink(missing_ok=True)
        raise
    fsync_dir(ref_path.parent)


def _append_reflog(git_dir: Path, name: str, old: bytes | None, new: bytes, identity: bytes, message: str) -> None:
    now = int(time.time())
    offset = -time.timezone if not time.localtime(now).tm_isdst else -time.altzone
    sign = "+" if offset >= 0 else "-"
    tz = f"{sign}{abs(offset) // 3600:02d}{abs(offset) % 3600 // 60:02d}"
    subject = message.splitlines()[0] if message else ""
    line = b"%s %s %s %d %s\t%s\n" % (old or ZERO, new, identity, now, tz.encode(), subject.encode("utf-8"))
    for log in (git_dir / "logs" / name, git_dir / "logs" / "HEAD"):
        makedirs(log.parent, sync=True)
        append_bytes(log, line, sync=True)


def _short(sha: bytes | None) -> str:
    return sha[:7].decode() if sha else "(none)"
