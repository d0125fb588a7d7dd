"""The Git index (.git/index), updated entry by entry so `git status` stays clean."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from dulwich.index import ConflictedIndexEntry, IndexEntry, index_entry_from_stat, read_index_dict, write_index_dict

from ..errors import OpenKBError
from ..fsutil import fsync_dir

FILE_MODE = 0o100644


class IndexLockedError(OpenKBError):
    """Another process (a plain `git` command?) holds .git/index.lock."""


class GitIndex:
    """An in-memory copy of .git/index, re-read only when the file changed under us."""

    def __init__(self, git_dir: Path):
        self.path = git_dir / "index"
        self._entries: dict[bytes, IndexEntry | ConflictedIndexEntry] | None = None
        self._stamp: tuple | None = None

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def entries(self) -> dict[bytes, IndexEntry | ConflictedIndexEntry]:
        """Current entries, {path bytes: entry}; re-read when another process rewrote the file."""
        stamp = self._file_stamp()
        if self._entries is None or stamp != self._stamp:
            if stamp is None:
                self._entries = {}
            else:
                with open(self.path, "rb") as fh:
                    self._entries = read_index_dict(fh)
            self._stamp = stamp
        return self._entries

    def get(self, path: str) -> IndexEntry | None:
        entry = self.entries().get(path.encode("utf-8"))
        return entry if isinstance(entry, IndexEntry) else None

    def update(self, worktree: Path, blob_ids: dict[str, bytes | None], *, sync: bool) -> None:
        """Set the entries of ``blob_ids`` ({path: blob id, or None to drop}) from the files on disk.

        The stat data comes from the projected file, so Git sees it as unchanged.
        Written through index.lock and a rename, like Git does.
        """
        entries = self.entries()
        for path, sha in blob_ids.items():
            key = path.encode("utf-8")
            if sha is None:
                entries.pop(key, None)
                continue
            st = os.lstat(worktree / path)
            entries[key] = index_entry_from_stat(st, sha, mode=FILE_MODE)
        self.write(entries, sync=sync)

    def replace_all(self, entries: dict[bytes, IndexEntry]) -> None:
        self.write(dict(entries), sync=True)

    def write(self, entries: dict, *, sync: bool) -> None:
        lock = self.path.with_name("index.lock")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            raise IndexLockedError(
                f"{lock} exists: another git process is using the index; "
                "if none is running, remove that file and run `openkb recover`"
            ) from None
        try:
            buffer = io.BytesIO()
            write_index_dict(buffer, entries, version=2)
            data = buffer.getvalue()
            with os.fdopen(fd, "wb") as fh:
                fh.write(data + hashlib.sha1(data).digest())
                fh.flush()
                if sync:
                    os.fsync(fh.fileno())
            os.replace(lock, self.path)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        if sync:
            fsync_dir(self.path.parent)
        self._entries = entries
        self._stamp = self._file_stamp()
