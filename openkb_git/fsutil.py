"""Durable file operations: write to a temporary file, fsync, rename, fsync the directory.

Every mutation of the knowledge base goes through these helpers so that the order in
which bytes reach the disk is explicit (see docs/protocol.md), and so that the fault
injector (`faults.py`) sees every durable operation.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import faults

TMP_SUFFIX = ".openkb-tmp"


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new, renamed or removed names) to disk."""
    faults.op("fsync-dir", path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    faults.synced_dir(path)


def fsync_file(path: Path) -> None:
    """Flush a file's content to disk; a missing file is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        faults.op("fsync", path)
        os.fsync(fd)
    finally:
        os.close(fd)
    faults.synced_file(path)


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644, sync: bool = False, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` in place (a new temporary or lock file); fsync with ``sync``."""
    _write(path, data, os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC), mode, sync)


def write_chunks(path: Path, chunks: list[bytes], *, mode: int = 0o644, sync: bool = False) -> None:
    """`write_bytes` of ``b"".join(chunks)``, without joining them in memory."""
    _write(path, chunks, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode, sync)


def append_bytes(path: Path, data: bytes, *, sync: bool) -> None:
    """Append ``data`` to ``path`` (created if missing)."""
    _write(path, data, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644, sync)


def _write(path: Path, data: bytes | list[bytes], flags: int, mode: int, sync: bool) -> None:
    faults.op("write", path)
    fd = os.open(path, flags, mode)
    try:
        for chunk in data if isinstance(data, list) else [data]:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        faults.wrote(path)
        if sync:
            faults.op("fsync", path)
            os.fsync(fd)
            faults.synced_file(path)
    finally:
        os.close(fd)


def replace(src: Path, dst: Path) -> None:
    """Rename ``src`` over ``dst`` (atomic); the directory still needs an fsync to be durable."""
    faults.op("rename", dst)
    before = faults.before_image(dst)
    existed = faults.ACTIVE and os.path.lexists(dst)
    os.replace(src, dst)
    faults.renamed(Path(src), Path(dst), before, existed)


def temporary_for(path: Path) -> Path:
    """The temporary file `write_file` writes before renaming it to ``path``: `.<name>.openkb-tmp`,
    or, when that would not fit a file name (255 bytes), `.<sha256(name)[:16]>.openkb-tmp`."""
    name = f".{path.name}{TMP_SUFFIX}"
    if len(os.fsencode(name)) > 255:
        import hashlib

        name = f".{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]}{TMP_SUFFIX}"
    return path.with_name(name)


def write_file(path: Path, data: bytes, *, sync: bool, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same directory, then rename.

    With ``sync`` the file and its directory are fsynced before returning, so the new
    content survives power loss. Without it the rename is still atomic (a reader or a
    crash sees the old or the new content, never a torn file).
    """
    # One fixed temporary name per target: paths are written only under the KB lock (or by
    # `init`, alone), and recovery can remove a crashed writer's temporary without listing
    # the directory (wiki/sources/ holds one file per document).
    tmp = temporary_for(path)
    try:
        write_bytes(tmp, data, mode=mode, sync=sync)
        replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if sync:
        fsync_dir(path.parent)


def remove_file(path: Path, *, sync: bool) -> bool:
    """Remove ``path`` if present; returns whether it existed."""
    if not os.path.lexists(path):
        return False
    faults.op("unlink", path)
    before = faults.before_image(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    faults.removed(path, before)
    if sync:
        fsync_dir(path.parent)
    return True


def makedirs(path: Path, *, sync: bool) -> None:
    """Create ``path`` and missing parents; with ``sync`` each new directory entry is fsynced."""
    missing = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        faults.op("mkdir", directory)
        try:
            os.mkdir(directory)
        except FileExistsError:
            continue
        faults.made_dir(directory)
        if sync:
            fsync_dir(directory.parent)


def prune_empty_dirs(path: Path, stop: Path) -> None:
    """Remove ``path`` and its parents while they are empty, never going above ``stop``."""
    current = path
    while current != stop and stop in current.parents:
        faults.op("rmdir", current)  # outside the try: an injected error is not "not empty"
        try:
            os.rmdir(current)
        except OSError:
            return
        faults.removed_dir(current)
        current = current.parent


def truncate_file(path: Path, size: int) -> None:
    """Cut ``path`` to ``size`` bytes in place (not durable until `fsync_file`)."""
    faults.op("truncate", path)
    with open(path, "r+b") as fh:
        fh.truncate(size)
    faults.wrote(path)


def remove_tree(path: Path) -> bool:
    """Remove the folder ``path`` and everything in it (a symbolic link or file: just it);
    returns whether it existed. Its parent needs an fsync for the removal to be durable."""
    if not os.path.lexists(path):
        return False
    if not os.path.isdir(path) or os.path.islink(path):
        return remove_file(path, sync=False)
    faults.op("rmtree", path)
    image = faults.tree_image(path)
    shutil.rmtree(path)
    faults.removed_tree(path, image)
    return True


def copy_tree(src: Path, dst: Path) -> None:
    """Copy the folder ``src`` to the new folder ``dst`` (symbolic links as links), every file
    and folder fsynced, so the copy is durable once ``dst``'s parent is fsynced."""
    makedirs(dst, sync=False)
    for dirpath, dirnames, filenames in os.walk(src):
        here = Path(dst) / Path(dirpath).relative_to(src)
        for name in sorted(dirnames + filenames):
            source, target = Path(dirpath) / name, here / name
            if source.is_symlink():
                faults.op("symlink", target)
                os.symlink(os.readlink(source), target)
                faults.created(target)
            elif source.is_dir():
                makedirs(target, sync=False)
            else:
                write_bytes(target, source.read_bytes(), mode=source.stat().st_mode & 0o777, sync=True)
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
        fsync_dir(here)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def readable(name: str) -> str:
    """A file name from the OS as valid Unicode text: bytes that are not UTF-8 (which Python
    keeps as lone surrogates, e.g. b'caf\\xe9' -> 'caf\\udce9') are written ``\\xNN``.

    Deterministic, so the same file always gets the same key, and safe for JSON, Git
    commit messages and terminals. Names that are valid UTF-8 are returned unchanged."""
    if not any("\ud800" <= c <= "\udfff" for c in name):
        return name
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def decoded_stem(stem: str) -> str:
    """A file name's stem with its non-UTF-8 bytes as U+FFFD, for deriving a doc name."""
    if not any("\ud800" <= c <= "\udfff" for c in stem):
        return stem
    try:
        return stem.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return stem.encode("utf-8", "replace").decode("utf-8")


def os_error_text(exc: OSError) -> str:
    """"<reason> (<path>)" for an OSError, the path readable (str or bytes, any encoding)."""
    name = exc.filename
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    where = f" ({readable(str(name))})" if name else ""
    return f"{exc.strerror or exc}{where}"
