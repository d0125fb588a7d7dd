"""Object memos: Git objects' bytes by id in a file beside the repository, so that a fresh
process reads many objects without looking each one up in the packs. Two caches use them:
`.openkb/records.cache` (registry record blobs, registry.py) and `.openkb/commit-objects.cache`
(commits, history.py); see docs/layout.md.

One integrity rule for every memo: an entry is ``<id> <length>\\n<object bytes>\\n``, and it
is used only if the bytes hash, as a Git object of the memo's type, to its id. So an entry
is never wrong, only missing: a forged, garbled or torn entry ends the usable part (what
follows is ignored, `ignored` counts its bytes, and the next flush rewrites the file without
it), and the reader takes the object from the object store instead. The file is a cache,
not state: appended to without fsync by whichever process read many objects, safe to delete.
"""

from __future__ import annotations

import hashlib
import os


def object_id(type_name: bytes, raw: bytes) -> bytes:
    """The Git id (hex) of the object of type ``type_name`` (b"blob", b"commit"...) holding ``raw``."""
    return hashlib.sha1(b"%s %d\0" % (type_name, len(raw)) + raw).hexdigest().encode("ascii")


class ObjectMemo:
    """The objects of type ``type_name`` memoized in ``path``: ``raw`` maps id -> bytes."""

    def __init__(self, path: os.PathLike, type_name: bytes):
        self.path = path
        self.type_name = type_name
        self.raw: dict[bytes, bytes] = {}
        self.new: list[tuple[bytes, bytes]] = []
        try:
            data = open(path, "rb").read()
        except OSError:  # missing or unreadable: start empty
            data = b""
        at = 0
        while at < len(data):
            entry = self._entry(data, at)
            if entry is None:
                break
            sha, raw, at = entry
            self.raw[sha] = raw
        self.ignored = len(data) - at  # bytes past the last entry that checks out
        self._clean = self.ignored == 0

    def _entry(self, data: bytes, at: int) -> tuple[bytes, bytes, int] | None:
        """The entry at ``at``: (id, bytes, where the next entry starts), or None when the
        bytes there are not a whole entry whose content hashes to its id."""
        eol = data.find(b"\n", at, at + 64)
        sha, _, size = data[at:eol].partition(b" ")
        if eol < 0 or len(sha) != 40 or not size.isdigit():
            return None
        start = eol + 1
        end = start + int(size)
        raw = data[start:end]  # short when torn: then it does not hash to its id
        if data[end:end + 1] != b"\n" or object_id(self.type_name, raw) != sha:
            return None
        return sha, raw, end + 1

    def add(self, sha: bytes, raw: bytes) -> None:
        if sha not in self.raw:
            self.raw[sha] = raw
            self.new.append((sha, raw))

    def keep_only(self, live: set[bytes]) -> int:
        """Drop the entries not in ``live`` from the file; returns how many went."""
        dropped = [sha for sha in self.raw if sha not in live]
        for sha in dropped:
            del self.raw[sha]
        if dropped:
            self._clean = False  # the next flush rewrites the file
            self.new = []
        self.flush()
        return len(dropped)

    def flush(self) -> None:
        """Append the entries added since loading, or rewrite the file if a part of it was
        ignored (best effort: a cache need not be written)."""
        if not self.new and self._clean:
            return
        entries = self.new if self._clean else list(self.raw.items())
        data = b"".join(b"%s %d\n%s\n" % (sha, len(raw), raw) for sha, raw in entries)
        try:
            if self._clean:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            else:  # a private temporary, renamed over: concurrent readers see either file
                tmp = f"{self.path}.{os.getpid()}.tmp"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self.path)
        except OSError:
            return
        self.new = []
        self._clean = True
