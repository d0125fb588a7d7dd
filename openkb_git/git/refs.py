"""The branch reference, moved by compare-and-swap with Git's lock-file protocol."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import OpenKBError
from ..fsutil import fsync_dir

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
                     name: str = BRANCH, on_locked=None) -> None:
    """Move ``name`` from ``old`` to ``new`` durably, or raise RefMovedError if it is not at ``old``.

    Protocol: create ``<ref>.lock`` exclusively, check the current value, write and fsync
    the new value, append the reflogs, rename over the ref, fsync its directory. The
    rename is the commit point. ``on_locked`` is called instead of failing when the lock
    file exists (tests use it to inject faults; recovery passes a cleanup).
    """
    ref_path = git_dir / name
    lock_path = ref_path.with_name(ref_path.name + ".lock")
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise RefLockedError(
            f"{lock_path} exists: another git process is updating {name}; "
            "if none is running, remove that file and retry"
        ) from None
    try:
        current = read_branch(git_dir, name)
        if current != old:
            raise RefMovedError(
                f"{name} moved from {_short(old)} to {_short(current)} while committing; nothing was changed"
            )
        os.write(fd, new + b"\n")
        os.fsync(fd)
        os.close(fd)
        fd = -1
        _append_reflog(git_dir, name, old, new, identity, message)
        os.replace(lock_path, ref_path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
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
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as fh:
            fh.write(line)


def _short(sha: bytes | None) -> str:
    return sha[:7].decode() if sha else "(none)"
