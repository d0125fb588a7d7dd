"""The Git index (.git/index), updated entry by entry so `git status` stays clean.

Kept in memory as one serialized version-2 record per path, so writing the
index after a commit costs a join and a checksum rather than re-encoding every
entry (dulwich's writer takes ~60 ms at 20,000 entries).

A process that has not read the index (recovery, which must cost O(touched paths))
patches the file instead: every index written here ends with Git's End Of Index
Entries extension (EOIE), which says where the entries end, and an entry is found by
bisection over the bytes, re-synchronising on entry headers (see `_find_slot`). When
the file lacks the extension (Git rewrote it) or anything looks unusual, the whole
index is read as before.
"""

from __future__ import annotations

import bisect
import binascii
import hashlib
import io
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from dulwich.index import ConflictedIndexEntry, read_index_dict

from ..errors import OpenKBError
from ..fsutil import fsync_dir, replace
from .lockwait import create_lock, lock_wait
from .objects import FILE_MODE

_ENTRY = struct.Struct(">LLLLLLLLLL20sH")  # ctime s/ns, mtime s/ns, dev, ino, mode, uid, gid, size, sha, flags
EOIE_SIZE = 4 + 4 + 4 + 20  # signature, size, offset of the end of the entries, hash of the other extensions' headers
_NO_EXTENSIONS_HASH = hashlib.sha1(b"").digest()
_MODES = (b"\0\0\x81\xa4", b"\0\0\x81\xed", b"\0\0\xa0\x00", b"\0\0\xe0\x00")  # 100644 100755 120000 160000
_MODE_RE = re.compile(b"|".join(re.escape(m) for m in _MODES))


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


_STAT_FIELDS = struct.Struct(">LL4xL12xL")  # bytes 8-40 of an entry: mtime s, ns, (dev) ino, (mode uid gid) size


def stat_matches(record: bytes, st: os.stat_result) -> bool:
    """Whether the entry ``record`` holds ``st``'s mtime, inode and size (as Git stores them)."""
    return _STAT_FIELDS.unpack_from(record, 8) == (
        (st.st_mtime_ns // 1_000_000_000) & 0xFFFFFFFF, st.st_mtime_ns % 1_000_000_000,
        st.st_ino & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)


def record_sha(record: bytes) -> bytes:
    """The blob id (hex) of the entry ``record``."""
    return binascii.hexlify(record[40:60])


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
        self._verified: tuple[tuple | None, bytes] | None = None
        self._written: bytes | None = None  # the file as last written here, while its stamp holds

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
            self._written = None
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

    def verify(self) -> None:
        """Raise IndexCorruptError when the file is torn (bad checksum), without decoding entries."""
        stamp = self._file_stamp()
        if stamp == self._stamp and (self._records is not None or self._written is not None):
            return  # the file is the one read or written here
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if len(data) < 32 or data[:4] != b"DIRC" or hashlib.sha1(data[:-20]).digest() != data[-20:]:
            raise IndexCorruptError(f"{self.path} is damaged (bad checksum); `openkb recover` rebuilds it")
        self._verified = (stamp, data)  # a patch that follows needs neither to read nor to hash it again

    def _patch_file(self, blob_ids: dict[str, bytes | None], encoded: dict[str, bytes], *, sync: bool) -> bool:
        """Splice the entries of ``blob_ids`` (``encoded``: the new ones) into the file without
        decoding the others. False when the file is not one this can patch (nothing written)."""
        verified, self._verified = self._verified, None
        stamp = self._file_stamp()
        if verified is not None and verified[0] == stamp:
            data = verified[1]
        elif self._written is not None and stamp == self._stamp:
            data = self._written
        else:
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                return False
            if hashlib.sha1(data[:-20]).digest() != data[-20:]:
                return False
        end = entries_end(data)
        if end is None:
            return False
        count = struct.unpack_from(">L", data, 8)[0]
        edits = []
        try:
            for path, sha in sorted(blob_ids.items()):
                key = path.encode("utf-8")
                if len(key) >= 0xFFF:
                    return False
                at, old_size = _find_slot(data, end, key)
                if sha is None:
                    new = b""
                else:
                    new = encoded[path]
                if old_size or new:
                    edits.append((at, old_size, new))
                    count += (1 if new else 0) - (1 if old_size else 0)
        except _Unsure:
            return False
        pieces, previous = [b"DIRC" + struct.pack(">LL", 2, count)], 12
        for at, old_size, new in edits:
            pieces += [data[previous:at], new]
            previous = at + old_size
        pieces.append(data[previous:end])
        self._write_body(b"".join(pieces), sync=sync)
        return True

    def start_over(self) -> None:
        """Forget every entry (the file is rewritten by the next update)."""
        self._records = {}
        self._order = []
        self._stamp = self._file_stamp()
        self._written = None

    def paths(self) -> list[bytes]:
        self._load()
        return list(self._order)

    def records(self) -> dict[bytes, bytes]:
        """{path: encoded entry} of every entry (decode one with `decode_stat`; do not mutate)."""
        return self._load()

    def stat(self, path: str) -> Stat | None:
        """The index entry of ``path`` (sha and stat data), or None."""
        record = self._load().get(path.encode("utf-8"))
        return decode_stat(record) if record is not None else None

    def update(self, worktree: Path, blob_ids: dict[str, bytes | None], *, sync: bool,
               stats: dict[str, os.stat_result] | None = None) -> None:
        """Set the entries of ``blob_ids`` ({path: blob id, or None to drop}) from the files on disk
        (or from ``stats``, taken by the caller before it read the files).

        The stat data comes from the projected file, so Git sees it as unchanged.
        Written through index.lock and a rename, like Git does.
        """
        stats = stats or {}
        encoded = {path: encode_entry(path.encode("utf-8"), stats.get(path) or os.lstat(worktree / path), sha)
                   for path, sha in blob_ids.items() if sha is not None}
        if self._records is None and self._patch_file(blob_ids, encoded, sync=sync):
            return
        records = self._load()
        # The file is the one written here last: splice it rather than join every entry.
        spliced = (self._written is not None and self._file_stamp() == self._stamp
                   and self._patch_file(blob_ids, encoded, sync=sync))
        for path, sha in blob_ids.items():
            key = path.encode("utf-8")
            if sha is None:
                if records.pop(key, None) is not None:
                    del self._order[bisect.bisect_left(self._order, key)]
                continue
            if key not in records:
                bisect.insort(self._order, key)
            records[key] = encoded[path]
        if not spliced:
            self._write(sync=sync)

    def _write(self, *, sync: bool) -> None:
        records = self._records or {}
        self._write_body(b"DIRC" + struct.pack(">LL", 2, len(records)) + b"".join(records[k] for k in self._order),
                         sync=sync)

    def _write_body(self, body: bytes, *, sync: bool) -> None:
        """Write header + entries, then the EOIE extension and the checksum."""
        body += b"EOIE" + struct.pack(">LL", EOIE_SIZE - 8, len(body)) + _NO_EXTENSIONS_HASH
        data = body + hashlib.sha1(body).digest()
        lock = self.path.with_name("index.lock")
        if not create_lock(lock, data, sync=sync):  # a `git status` holds it for milliseconds: wait
            raise IndexLockedError(
                f"{lock} is still held after waiting {lock_wait():g} s: another git process is using "
                "the index; let it finish and retry, or, if no git process is running, remove that "
                "file and run `openkb recover`")
        try:
            replace(lock, self.path)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        if sync:
            fsync_dir(self.path.parent)
        self._stamp = self._file_stamp()
        self._written = data


class _Unsure(Exception):
    """The bytes are not laid out as expected: read the whole index instead."""


def entries_end(data: bytes) -> int | None:
    """Where the entries of a version-2 index end, from its EOIE extension when it is the only
    extension (as written here); None otherwise."""
    if len(data) < 12 + EOIE_SIZE + 20 or data[:4] != b"DIRC" or data[4:8] != b"\0\0\0\x02":
        return None
    tail = data[-20 - EOIE_SIZE:-20]
    size, end = struct.unpack_from(">LL", tail, 4)
    if tail[:4] != b"EOIE" or size != EOIE_SIZE - 8 or tail[12:] != _NO_EXTENSIONS_HASH:
        return None
    return end if end == len(data) - 20 - EOIE_SIZE else None


def _entry_at(data: bytes, at: int, end: int) -> tuple[bytes, int] | None:
    """(path, size) when a plain stage-0 entry plausibly starts at ``at``, else None."""
    if at + 62 > end or data[at + 24:at + 28] not in _MODES:
        return None
    flags = (data[at + 60] << 8) | data[at + 61]
    length = flags & 0xFFF
    if flags & 0xF000 or length == 0xFFF:
        return None
    size = (62 + length + 8) & ~7
    path = data[at + 62:at + 62 + length]
    if at + size > end or b"\0" in path or data[at + 62 + length:at + size].strip(b"\0"):
        return None
    return path, size


def _chained_entry(data: bytes, at: int, end: int) -> tuple[bytes, int] | None:
    """_entry_at, confirmed by the two entries that follow it (or by reaching the end exactly):
    a false start inside an entry's binary header would have to fake three in a row."""
    first = _entry_at(data, at, end)
    pos, entry = at, first
    for _ in range(3):
        if entry is None:
            return None
        pos += entry[1]
        if pos == end:
            return first
        entry = _entry_at(data, pos, end)
    return first


def _next_entry(data: bytes, start: int, limit: int, end: int) -> int:
    """The first entry that starts in [start, limit), found from the mode field of its header;
    ``limit`` when there is none."""
    pos = start
    while pos < limit:
        hit = _MODE_RE.search(data, pos + 24, min(limit + 28, end))
        if hit is None:
            return limit
        at = hit.start() - 24
        if at >= limit:
            return limit
        if _chained_entry(data, at, end) is not None:
            return at
        pos = at + 1
    return limit


def _find_slot(data: bytes, end: int, key: bytes) -> tuple[int, int]:
    """(offset, size) of the entry for ``key``, or (offset where it belongs, 0), by bisection
    over the bytes between the header and ``end``. Raises _Unsure on anything unexpected."""
    lo, hi = 12, end  # entry starts: every entry before lo sorts before key, the one at hi (if any) not
    while lo < hi:
        at = _next_entry(data, (lo + hi) // 2, hi, end)
        if at >= hi:  # no entry starts in the upper half: walk exactly from lo
            while lo < hi:
                entry = _entry_at(data, lo, end)
                if entry is None:
                    raise _Unsure
                if entry[0] >= key:
                    break
                lo += entry[1]
            hi = lo
            break
        path, size = _entry_at(data, at, end)
        if path < key:
            lo = at + size
        else:
            hi = at
    if hi < end:
        entry = _entry_at(data, hi, end)
        if entry is None:
            raise _Unsure
        if entry[0] == key:
            return hi, entry[1]
    return hi, 0


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
