"""The Git index (.git/index), updated entry by entry so `git status` stays clean.

Kept in memory as one serialized version-2 record per path, so writing the
index after a commit costs a join and a checksum rather than re-encoding every
entry (dulwich's writer takes ~60 ms at 20,000 entries).
"""

from __future__ import annotations

import bisect
import binascii
import hashlib
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from dulwich.index import ConflictedIndexEntry, read_index_dict

from ..errors import OpenKBError
from ..fsutil import fsync_dir, replace, write_bytes

FILE_MODE = 0o100644
_ENTRY = struct.Struct(">LLLLLLLLLL20sH")  # ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size, sha, flags


class IndexLockedError(OpenKBError):
    """Another process (a plain `git` command?) holds .git/index.lock."""


class IndexCorruptError(OpenKBError):
    """.git/index is torn or garbled (a power loss during its write); recovery rebuilds it."""


class IndexConflictError(OpenKBError):
    """The Git index holds an unresolved merge; openkb will not write over it."""


@dataclass(frozen=True)
class Stat:
    """The parts of an index entry openkb compares with the working tree."""

    sha: bytes  # hex
    size: int
    mtime: tuple[int, int]
    ino: int


def encode_entry(path: bytes, st: os.stat_result, hexsha: bytes, mode: int = FILE_MODE) -> bytes:
    """One index-v2 entry for ``path`` with ``st``'s stat data, NUL-padded to 8 bytes."""
    head = _ENTRY.pack(
        int(st.st_ctime) & 0xFFFFFFFF, st.st_ctime_ns % 1_000_000_000,
        int(st.st_mtime) & 0xFFFFFFFF, st.st_mtime_ns % 1_000_000_000,
        st.st_dev & 0xFFFFFFFF, st.st_ino & 0xFFFFFFFF, mode, st.st_uid & 0xFFFFFFFF, st.st_gid & 0xFFFFFFFF,
        st.st_size & 0xFFFFFFFF, binascii.unhexlify(hexsha), min(len(path), 0xFFF),
    )
    length = len(head) + len(path)
    return head + path + b"\0" * (8 - length % 8)


def decode_stat(record: bytes) -> Stat:
    fields = _ENTRY.unpack_from(record)
    return Stat(sha=binascii.hexlify(fields[10]), size=fields[9], mtime=(fields[2], fields[3]), ino=fields[5])


class GitIndex:
    """An in-memory copy of .git/index, re-read only when the file changed under us."""

    def __init__(self, git_dir: Path):
        self.path = git_dir / "index"
        self._records: dict[bytes, bytes] | None = None
        self._order: list[bytes] = []
        self._stamp: tuple | None = None

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _load(self) -> dict[bytes, bytes]:
        stamp = self._file_stamp()
        if self._records is None or stamp != self._stamp:
            records: dict[bytes, bytes] = {}
            if stamp is not None:
                data = self.path.read_bytes()
                if len(data) < 32 or hashlib.sha1(data[:-20]).digest() != data[-20:]:
                    raise IndexCorruptError(f"{self.path} is damaged (bad checksum); `openkb recover` rebuilds it")
                records = _split_v2(data)
                if records is None:  # another version, extended flags or a conflict: dulwich decodes it
                    records = self._decode_with_dulwich(data)
            self._records = records
            self._order = sorted(records)
            self._stamp = stamp
        return self._records

    def _decode_with_dulwich(self, data: bytes) -> dict[bytes, bytes]:
        try:
            entries = read_index_dict(io.BytesIO(data))
        except Exception as exc:
            raise IndexCorruptError(f"{self.path} is damaged ({exc}); `openkb recover` rebuilds it") from None
        records = {}
        for path, entry in entries.items():
            if isinstance(entry, ConflictedIndexEntry):
                raise IndexConflictError(
                    f"the Git index has an unresolved merge conflict at {path.decode(errors='replace')}; "
                    "resolve or abort it with git first")
            records[path] = _encode_dulwich_entry(path, entry)
        return records

    def start_over(self) -> None:
        """Forget every entry (the file is rewritten by the next update)."""
        self._records = {}
        self._order = []
        self._stamp = self._file_stamp()

    def paths(self) -> list[bytes]:
        self._load()
        return list(self._order)

    def stat(self, path: str) -> Stat | None:
        """The index entry of ``path`` (sha and stat data), or None."""
        record = self._load().get(path.encode("utf-8"))
        return decode_stat(record) if record is not None else None

    def update(self, worktree: Path, blob_ids: dict[str, bytes | None], *, sync: bool) -> None:
        """Set the entries of ``blob_ids`` ({path: blob id, or None to drop}) from the files on disk.

        The stat data comes from the projected file, so Git sees it as unchanged.
        Written through index.lock and a rename, like Git does.
        """
        records = self._load()
        for path, sha in blob_ids.items():
            key = path.encode("utf-8")
            if sha is None:
                if records.pop(key, None) is not None:
                    del self._order[bisect.bisect_left(self._order, key)]
                continue
            if key not in records:
                bisect.insort(self._order, key)
            records[key] = encode_entry(key, os.lstat(worktree / path), sha)
        self._write(sync=sync)

    def _write(self, *, sync: bool) -> None:
        records = self._records or {}
        body = b"DIRC" + struct.pack(">LL", 2, len(records)) + b"".join(records[k] for k in self._order)
        data = body + hashlib.sha1(body).digest()
        lock = self.path.with_name("index.lock")
        try:
            write_bytes(lock, data, sync=sync, exclusive=True)
        except FileExistsError:
            raise IndexLockedError(
                f"{lock} exists: another git process is using the index; "
                "if none is running, remove that file and run `openkb recover`"
            ) from None
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        try:
            replace(lock, self.path)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        if sync:
            fsync_dir(self.path.parent)
        self._stamp = self._file_stamp()


def _split_v2(data: bytes) -> dict[bytes, bytes] | None:
    """{path: its entry's bytes} of a version-2 index, sliced out as they are (extensions such
    as Git's cached trees are dropped, as on every write here); None when the index is not a
    plain stage-0 version-2 one, for dulwich to decode."""
    if data[:4] != b"DIRC" or struct.unpack_from(">L", data, 4)[0] != 2:
        return None
    count = struct.unpack_from(">L", data, 8)[0]
    records = {}
    pos, end, unpack = 12, len(data) - 20, struct.unpack_from
    for _ in range(count):
        flags = unpack(">H", data, pos + 60)[0]
        if flags & 0xF000 or pos + 62 > end:  # a conflict stage, extended flags, or a torn index
            return None
        length = flags & 0xFFF
        if length == 0xFFF:
            length = data.index(b"\0", pos + 62) - pos - 62
        size = (62 + length + 8) & ~7
        records[data[pos + 62:pos + 62 + length]] = data[pos:pos + size]
        pos += size
    return records if pos <= end else None


def _encode_dulwich_entry(path: bytes, entry) -> bytes:
    ctime = entry.ctime if isinstance(entry.ctime, tuple) else (int(entry.ctime), 0)
    mtime = entry.mtime if isinstance(entry.mtime, tuple) else (int(entry.mtime), 0)
    head = _ENTRY.pack(ctime[0] & 0xFFFFFFFF, ctime[1], mtime[0] & 0xFFFFFFFF, mtime[1], entry.dev & 0xFFFFFFFF,
                       entry.ino & 0xFFFFFFFF, entry.mode, entry.uid & 0xFFFFFFFF, entry.gid & 0xFFFFFFFF,
                       entry.size & 0xFFFFFFFF, binascii.unhexlify(entry.sha), min(len(path), 0xFFF))
    length = len(head) + len(path)
    return head + path + b"\0" * (8 - length % 8)
