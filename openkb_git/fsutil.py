"""Durable file operations: write to a temporary file, fsync, rename, fsync the directory.

Every mutation of the knowledge base goes through these helpers so that the
order in which bytes reach the disk is explicit (see docs/protocol.md).
"""

from __future__ import annotations

import os
from pathlib import Path

TMP_SUFFIX = ".openkb-tmp"


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new, renamed or removed names) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file's content to disk; a missing file is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, sync: bool, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same directory, then rename.

    With ``sync`` the file and its directory are fsynced before returning, so the new
    content survives power loss. Without it the rename is still atomic (a reader or a
    crash sees the old or the new content, never a torn file).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if sync:
        fsync_dir(path.parent)


def remove_file(path: Path, *, sync: bool) -> bool:
    """Remove ``path`` if present; returns whether it existed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    if sync:
        fsync_dir(path.parent)
    return True


def makedirs(path: Path, *, sync: bool) -> None:
    """Create ``path`` and missing parents; with ``sync`` each new directory entry is fsynced."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            continue
        if sync:
            fsync_dir(directory.parent)


def prune_empty_dirs(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while they are empty, never going above ``stop``."""
    current = path
    while current != stop and stop in current.parents:
        try:
            os.rmdir(current)
        except OSError:
            return
        current = current.parent


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
