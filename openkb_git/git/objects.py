"""Object store access: durable writes (one pack per call, see packs.py) and cached tree edits."""

from __future__ import annotations

import binascii
import bisect
import hashlib
import os
import re
import stat as statmod
import struct
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from dulwich.errors import ApplyDeltaError, ChecksumMismatch, ObjectFormatException
from dulwich.objects import Commit, ShaFile
from dulwich.object_store import DiskObjectStore

from ..errors import DamageError
from ..fsutil import TMP_SUFFIX, fsync_dir, makedirs, remove_file, replace, write_bytes
from ..paths import UnsafePathError, path_problem
from . import packs

FILE_MODE = 0o100644
TREE_CACHE = 256  # parsed trees kept (LRU)
# ... and at most this many entries in all: two versions of the big folders at 50,000 documents
# (a group of commits makes five big trees a commit; 256 of 7,425 entries held 77 MB of tables).
TREE_CACHE_ENTRIES = 600_000
LOOSE_BYTES = 32 * 1024  # objects this large are written loose, not into a commit's small pack
_FANOUT_TRIES = 50  # renames of a loose object into a fan-out folder `git prune-packed` keeps removing
LOOSE_TMP_PREFIX = "openkb_obj_"  # temporaries of loose objects, in objects/ (git prunes `tmp_*` there)
ENCODED_CACHE = 16  # encodings of large trees kept for splicing (LRU)
TREE_MODE = 0o040000
_TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}  # Git's object type numbers
LOOKUP_RETRIES = 50  # lookups tried again while the pack folder keeps changing under them

# What reading a damaged loose object or pack raises (zlib streams, dulwich's parsers and checks).
CORRUPT = (zlib.error, ChecksumMismatch, ObjectFormatException, ApplyDeltaError, AssertionError, struct.error,
           ValueError, IndexError, EOFError)


def pack_index_hint(objects_dir: Path) -> str | None:
    """How to rebuild the index of a pack that lost it (its objects are invisible), or None."""
    try:
        orphans = sorted(p.name for p in (objects_dir / "pack").glob("pack-*.pack")
                         if not p.with_suffix(".idx").exists())
    except OSError:
        return None
    if not orphans:
        return None
    more = f" (and {len(orphans) - 1} more pack(s) without one)" if len(orphans) > 1 else ""
    return f"{orphans[0]} has no index (.idx): rebuild it with `git index-pack .git/objects/pack/{orphans[0]}`{more}"


def _damage_hint(objects_dir: Path) -> str:
    """What to do about damage in the object store: packs that lost their index first."""
    hint = "run `openkb fsck` to see what it affects (`git fsck --full` lists every damaged object)"
    packs_hint = pack_index_hint(objects_dir)
    return f"{packs_hint}, then {hint}" if packs_hint else hint


class ObjectDamageError(DamageError):
    """An object openkb needs is missing or unreadable (the object store is damaged)."""

    def __init__(self, sha: bytes | str, what: str, objects_dir: Path):
        self.sha = sha.decode("ascii", "replace") if isinstance(sha, bytes) else str(sha)
        super().__init__(f"object {self.sha} {what}: the Git object store is damaged; {_damage_hint(objects_dir)}")

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class MissingObjectError(ObjectDamageError, KeyError):
    """A missing object; also a KeyError, as the store's own lookup raises, for the callers
    that treat an absent object as "not there" (a view anchored at a commit gc dropped)."""


# A change set maps a tracked path (posix, relative to the KB root) to its new
# content, or to None when the path is deleted.
ChangeSet = dict[str, "bytes | None"]


class ObjectStore:
    """Reads objects through dulwich and writes new objects durably, as small packs.

    Parsed trees are cached by id: a tree id names immutable content, so the cache
    never goes stale, and editing a path only re-reads the trees on its way.
    """

    def __init__(self, store: DiskObjectStore):
        self.store = store
        self.objects_dir = Path(store.path)
        # Small LRU caches: only the latest versions of the big folders are worth keeping.
        self._trees: OrderedDict[bytes, dict[bytes, tuple[int, bytes]]] = OrderedDict()
        self._tree_entries = 0  # in all the trees of ``_trees``
        self._encoded: OrderedDict[bytes, tuple[list[bytes], list[bytes]]] = OrderedDict()
        # For trees built here: the tree they were edited from and the names edited.
        self._derived: OrderedDict[bytes, tuple[bytes | None, frozenset[bytes]]] = OrderedDict()
        # Objects built but not written yet (a group of commits made in memory, then written
        # together: ops/add.py): readable through every read below, never counted as stored.
        self._staged: dict[bytes, object] = {}

    # -- objects built, not yet written ----------------------------------------
    def stage(self, objects: list) -> None:
        """Make ``objects`` (RawObject or dulwich ShaFile) readable before they are written, so
        the next commit of a group can be built on a tree the group's last one made. They do
        not count as stored (``write_durably`` writes them); ``unstage`` forgets them."""
        for obj in objects:
            self._staged[obj.id] = obj

    def unstage(self) -> None:
        self._staged.clear()

    def _staged_raw(self, sha: bytes) -> tuple[int, bytes] | None:
        obj = self._staged.get(sha)
        if obj is None:
            return None
        if isinstance(obj, RawObject):
            return packs.PACK_TYPES[obj.type_name], obj.raw
        return obj.type_num, obj.as_raw_string()

    # -- reading -----------------------------------------------------------
    def _stored(self, read):
        """``read()``, a lookup in dulwich's store, tried again while the pack folder changes.

        dulwich looks in the packs it has open, rescans the pack folder a bounded number of
        times (when a pack it had vanished, or once for new ones), then looks for a loose
        object. A `git repack -a -d` or `git gc` running meanwhile writes its new pack, then
        deletes the old ones and the loose objects it packed, so an object that is stored at
        every instant can still be missed by each step in turn, and the lookup raises
        KeyError. A lookup during which the folder did not change looked at a complete state
        (the rescan saw every pack the folder held then), so only its KeyError is final.
        A missing object costs one more lookup and two listings; a found one nothing. Against a
        folder changing faster than a lookup takes (no `git` does), the last KeyError stands.
        """
        try:
            return read()
        except KeyError:
            pass
        for attempt in range(LOOKUP_RETRIES):
            before = self._pack_names()
            try:
                return read()
            except KeyError:
                if self._pack_names() == before:
                    raise
            if attempt:  # a repack changes the folder in bursts: wait for a quiet moment
                time.sleep(min(0.001 * 2 ** attempt, 0.05))
        return read()

    def _pack_names(self) -> frozenset[str]:
        try:
            return frozenset(os.listdir(self.pack_dir))
        except FileNotFoundError:
            return frozenset()

    def __contains__(self, sha: bytes) -> bool:
        def probe() -> bool:
            if sha not in self.store:
                raise KeyError(sha)
            return True
        try:
            return self._stored(probe)
        except KeyError:
            return False

    def get(self, sha: bytes) -> ShaFile:
        """The object ``sha``; raises MissingObjectError or ObjectDamageError (DamageError, with
        what to do) instead of the store's KeyError, zlib.error, checksum errors..."""
        if self._staged:
            staged = self._staged.get(sha)
            if staged is not None:
                if isinstance(staged, RawObject):
                    return ShaFile.from_raw_string(packs.PACK_TYPES[staged.type_name], staged.raw, sha)
                return staged
        try:
            return self._stored(lambda: self.store[sha])
        except KeyError:
            raise MissingObjectError(sha, "is missing", self.objects_dir) from None
        except CORRUPT as exc:
            raise self.damaged(sha, exc) from None

    def blob_bytes(self, sha: bytes) -> bytes:
        obj = self.get(sha)
        try:
            return obj.as_raw_string()
        except CORRUPT as exc:
            raise self.damaged(sha, exc) from None

    def raw_object(self, sha: bytes, type_name: bytes) -> bytes:
        """The content of the object ``sha``, which must be a ``type_name`` (b"commit"...),
        as stored (not parsed: a reader of many commits parses only what it needs)."""
        staged = self._staged_raw(sha) if self._staged else None
        try:
            type_num, raw = staged or self._stored(lambda: self.store.get_raw(sha))
        except KeyError:
            raise MissingObjectError(sha, "is missing", self.objects_dir) from None
        except CORRUPT as exc:
            raise self.damaged(sha, exc) from None
        if _TYPE_NAMES.get(type_num) != type_name:
            raise ObjectDamageError(sha, f"is a {_TYPE_NAMES.get(type_num, b'?').decode()}, not a "
                                         f"{type_name.decode()}", self.objects_dir)
        return raw

    def damaged(self, sha: bytes | str, exc: BaseException) -> ObjectDamageError:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return ObjectDamageError(sha, f"cannot be read ({detail})", self.objects_dir)

    def tree_entries(self, sha: bytes) -> dict[bytes, tuple[int, bytes]]:
        """Entries of the tree ``sha`` as {name: (mode, sha)} (cached; do not mutate)."""
        entries = self._trees.get(sha)
        if entries is None:
            raw = self._raw_tree(sha)
            try:
                entries = _parse_entries(raw)  # 3x faster than dulwich's Tree
            except TreeFormatError as exc:
                raise self.damaged(sha, exc) from None
            self._remember_tree(sha, entries)
        else:
            self._trees.move_to_end(sha)
        return entries

    def diff_tree(self, old_sha: bytes | None, new_sha: bytes | None) -> dict[bytes, tuple]:
        """{name: (old (mode, sha) or None, new (mode, sha) or None)} for the entries that differ
        between two trees (either may be None: empty).

        Reads the raw encodings: the common leading and trailing bytes are found by comparing
        slices (in C); entries are walked only up to the first difference (to find where its
        entry starts) and through the differing middle, so two versions of a folder of 50,000
        entries that differ in a few are compared without parsing either."""
        if old_sha == new_sha:
            return {}
        a = self._raw_tree(old_sha) if old_sha else b""
        b = self._raw_tree(new_sha) if new_sha else b""
        try:
            return self._diff_raw(a, b)
        except TreeFormatError as exc:
            raise self.damaged(old_sha if exc.raw is a else new_sha, exc) from None

    def changed_files(self, old_tree: bytes | None, new_tree: bytes | None, *, confined: bool = False,
                      prefix: str = "") -> dict[str, tuple[bytes | None, bytes | None]]:
        """{path: (old blob id or None, new blob id or None)} for the files that differ between
        two trees; only subtrees whose ids differ are read. ``confined``: the paths are data from
        the history that will be written (a checkout after a fetch): one Git would refuse raises
        UnsafePathError, never followed (a reader such as `show` lists them as they are)."""
        out: dict[str, tuple[bytes | None, bytes | None]] = {}
        for name, (a, b) in sorted(self.diff_tree(old_tree, new_tree).items()):
            path = f"{prefix}{name.decode('utf-8', 'surrogateescape')}"
            if confined:
                problem = path_problem(path)
                if problem:
                    raise UnsafePathError(path, problem, "a tree to check out")
            a_dir = a is not None and statmod.S_ISDIR(a[0])
            b_dir = b is not None and statmod.S_ISDIR(b[0])
            if a_dir or b_dir:
                out.update(self.changed_files(a[1] if a_dir else None, b[1] if b_dir else None,
                                              confined=confined, prefix=path + "/"))
            if (a is not None and not a_dir) or (b is not None and not b_dir):
                out[path] = (a[1] if a is not None and not a_dir else None, b[1] if b is not None and not b_dir else None)
        return out

    @staticmethod
    def _diff_raw(a: bytes, b: bytes) -> dict[bytes, tuple]:
        prefix = common_prefix(a, b)
        suffix = common_suffix(a, b, prefix)
        # The entry holding the first differing byte starts at the same offset in both: the
        # bytes before it are the same, so are the entries they make.
        begin = _skip_entries(a, 0, prefix)
        # From there both are walked in step, always advancing the one with more bytes left,
        # until both have as many bytes left, at entry starts, within the common suffix: the
        # rest parses the same in both. Wherever the bytes at the two positions (entry starts
        # both) agree, the entries they make are the same and are stepped over unparsed
        # (changes scattered through a big folder, before or after an added entry).
        old_mid: dict[bytes, tuple[int, bytes]] = {}
        new_mid: dict[bytes, tuple[int, bytes]] = {}
        pa = pb = begin
        left_a, left_b = len(a) - begin, len(b) - begin
        while left_a != left_b or left_a > suffix:
            if left_a and left_b and a[pa] == b[pb]:
                skipped = _skip_entries(a, pa, pa + common_prefix(a, b, pa, pb)) - pa
                if skipped:
                    pa, pb = pa + skipped, pb + skipped
                    left_a, left_b = len(a) - pa, len(b) - pb
                    continue
            if left_a >= left_b:
                name, entry, nxt = _entry_at(a, pa)
                old_mid[name] = entry
                left_a -= nxt - pa
                pa = nxt
            else:
                name, entry, nxt = _entry_at(b, pb)
                new_mid[name] = entry
                left_b -= nxt - pb
                pb = nxt
        return {name: (old_mid.get(name), new_mid.get(name)) for name in old_mid.keys() | new_mid.keys()
                if old_mid.get(name) != new_mid.get(name)}

    def _raw_tree(self, sha: bytes) -> bytes:
        if self._staged and sha in self._staged:
            return self.raw_object(sha, b"tree")
        hexsha = sha.decode("ascii")
        try:  # a loose object: inflate it here (dulwich would parse the whole tree first)
            with open(self.objects_dir / hexsha[:2] / hexsha[2:], "rb") as fh:
                data = zlib.decompress(fh.read())
        except FileNotFoundError:
            pass
        except zlib.error as exc:
            raise self.damaged(sha, exc) from None
        else:
            header, sep, raw = data.partition(b"\0")
            if header.startswith(b"tree ") and sep and header[5:].isdigit() and int(header[5:]) == len(raw):
                return raw
            raise ObjectDamageError(sha, "is not a tree", self.objects_dir)
        return self.raw_object(sha, b"tree")

    def commit_type_problem(self, sha: bytes) -> str | None:
        """Why ``sha`` is not a readable commit ("is missing", "is a blob", ...), or None."""
        try:
            type_num, _raw = self._stored(lambda: self.store.get_raw(sha))
        except KeyError:
            return "is missing"
        except CORRUPT as exc:
            return f"cannot be read ({type(exc).__name__}: {exc})"
        if type_num != Commit.type_num:
            return f"is a {_TYPE_NAMES.get(type_num, b'non-commit object').decode()}, not a commit"
        return None

    def derivation(self, sha: bytes) -> tuple[bytes | None, frozenset[bytes]] | None:
        """(base tree, names edited) when ``sha`` was built here by editing ``base``, else None.
        Entries not named are the base's own, so a reader can diff in O(edits)."""
        return self._derived.get(sha)

    def _remember_tree(self, sha: bytes, entries: dict) -> None:
        old = self._trees.pop(sha, None)
        self._tree_entries += len(entries) - (len(old) if old is not None else 0)
        self._trees[sha] = entries
        while len(self._trees) > 1 and (len(self._trees) > TREE_CACHE or self._tree_entries > TREE_CACHE_ENTRIES):
            self._tree_entries -= len(self._trees.popitem(last=False)[1])

    def lookup(self, tree_sha: bytes | None, path: str) -> tuple[int, bytes] | None:
        """(mode, sha) of ``path`` inside ``tree_sha``, or None when absent."""
        if tree_sha is None:
            return None
        current: tuple[int, bytes] = (TREE_MODE, tree_sha)
        for part in path.encode("utf-8").split(b"/"):
            if not statmod.S_ISDIR(current[0]):
                return None
            found = self.tree_entries(current[1]).get(part)
            if found is None:
                return None
            current = found
        return current

    def read_path(self, tree_sha: bytes | None, path: str) -> bytes | None:
        """Content of the file ``path`` in ``tree_sha``, or None when absent or not a file."""
        entry = self.lookup(tree_sha, path)
        if entry is None or statmod.S_ISDIR(entry[0]):
            return None
        return self.blob_bytes(entry[1])

    def list_dir(self, tree_sha: bytes | None, path: str) -> dict[str, tuple[int, bytes]]:
        """Entries directly under directory ``path`` ("" is the root) as {name: (mode, sha)}."""
        if tree_sha is None:
            return {}
        if path:
            entry = self.lookup(tree_sha, path)
            if entry is None or not statmod.S_ISDIR(entry[0]):
                return {}
            tree_sha = entry[1]
        return {name.decode("utf-8", "surrogateescape"): value for name, value in self.tree_entries(tree_sha).items()}

    def file_ids(self, tree_sha: bytes | None) -> dict[bytes, bytes]:
        """{path: blob id} of every file in ``tree_sha``, paths as the bytes Git stores."""
        out: dict[bytes, bytes] = {}
        pending = [(b"", tree_sha)] if tree_sha else []
        while pending:
            base, sha = pending.pop()
            for name, (mode, child) in self.tree_entries(sha).items():
                if statmod.S_ISDIR(mode):
                    pending.append((base + name + b"/", child))
                else:
                    out[base + name] = child
        return out

    def walk_files(self, tree_sha: bytes | None, prefix: str = ""):
        """Yield (path, mode, sha) for every file below ``prefix`` in ``tree_sha``."""
        for name, (mode, sha) in sorted(self.list_dir(tree_sha, prefix).items()):
            path = f"{prefix}/{name}" if prefix else name
            if statmod.S_ISDIR(mode):
                yield from self.walk_files(tree_sha, path)
            else:
                yield path, mode, sha

    # -- writing -----------------------------------------------------------
    def build_tree(self, base_tree: bytes | None, changes: ChangeSet) -> tuple[bytes, list["RawObject"], dict[str, bytes]]:
        """Apply ``changes`` to ``base_tree`` without touching unchanged subtrees.

        Returns (new root tree id, new objects to write, {path: blob id} of written paths).
        Directories left empty by deletions disappear, as in Git. Raises UnsafePathError for
        a path Git would refuse (`.`, `..`, `.git` or empty components, absolute), and when an
        edited tree of ``base_tree`` already holds such an entry: no tree openkb writes has one.
        """
        new_objects: list[RawObject] = []
        blob_ids: dict[str, bytes] = {}
        nested: dict = {}
        for path, data in changes.items():
            problem = path_problem(path)
            if problem:
                raise UnsafePathError(path, problem, "a change to commit")
            parts = path.split("/")
            node = nested
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(f"path {path!r} runs through a file")
            if data is None:
                node[parts[-1]] = None
            else:
                blob = RawObject(b"blob", data)
                new_objects.append(blob)
                blob_ids[path] = blob.id
                node[parts[-1]] = blob.id
        root = self._edit_tree(base_tree, nested, new_objects)
        if root is None:
            empty = RawObject(b"tree", b"")
            new_objects.append(empty)
            root = empty.id
        return root, new_objects, blob_ids

    def _edit_tree(self, tree_sha: bytes | None, edits: dict, out: list["RawObject"]) -> bytes | None:
        entries = dict(self.tree_entries(tree_sha)) if tree_sha else {}
        for bad in _FORBIDDEN_NAMES:  # carried over from a tree someone else wrote (O(1) each)
            if bad in entries:
                raise UnsafePathError(bad.decode(), f"tree {tree_sha.decode()} holds a {bad.decode()!r} entry "
                                      "(Git's fsck refuses it)", "HEAD's tree")
        for name, edit in edits.items():
            key = name.encode("utf-8")
            if isinstance(edit, dict):
                current = entries.get(key)
                sub = current[1] if current and statmod.S_ISDIR(current[0]) else None
                new_sub = self._edit_tree(sub, edit, out)
                if new_sub is None:
                    entries.pop(key, None)
                else:
                    entries[key] = (TREE_MODE, new_sub)
            elif edit is None:
                entries.pop(key, None)
            else:
                entries[key] = (FILE_MODE, edit)
        if not entries:
            return None
        keys, parts = self._encode_edited(tree_sha, entries, edits)
        tree = RawObject(b"tree", b"".join(parts))
        if tree.id != tree_sha:
            out.append(tree)
            self._remember_tree(tree.id, entries)
            self._derived[tree.id] = (tree_sha, frozenset(name.encode("utf-8") for name in edits))
            while len(self._derived) > TREE_CACHE:
                self._derived.popitem(last=False)
            if len(keys) >= 256:
                self._encoded[tree.id] = (keys, parts)
                while len(self._encoded) > ENCODED_CACHE:
                    self._encoded.popitem(last=False)
        return tree.id

    def _encode_edited(self, base_sha: bytes | None, entries: dict, edits: dict) -> tuple[list[bytes], list[bytes]]:
        """Encode ``entries`` as (sort keys, parts); for large trees, splice the changed entries
        into the cached encoding of ``base_sha`` instead of re-sorting and re-encoding all."""
        cached = self._encoded.get(base_sha) if base_sha else None
        if cached is None and base_sha is not None and len(entries) >= 256:
            try:  # a fresh process: splice the stored tree
                cached = _tree_parts(self._raw_tree(base_sha))
            except TreeFormatError as exc:
                raise self.damaged(base_sha, exc) from None
        if cached is None:
            keys, parts = encode_tree_parts(entries)
        else:
            keys, parts = list(cached[0]), list(cached[1])
            for name in edits:
                key = name.encode("utf-8")
                for sort_key in (key, key + b"/"):
                    at = bisect.bisect_left(keys, sort_key)
                    if at < len(keys) and keys[at] == sort_key:
                        del keys[at]
                        del parts[at]
                if key in entries:
                    mode, sha = entries[key]
                    sort_key = key + b"/" if statmod.S_ISDIR(mode) else key
                    at = bisect.bisect_left(keys, sort_key)
                    keys.insert(at, sort_key)
                    parts.insert(at, b"%o %s\0%s" % (mode, key, binascii.unhexlify(sha)))
        return keys, parts

    def remove_temporaries(self) -> int:
        """Delete temporary object and pack files a killed writer left in the object store."""
        removed = 0
        for pattern in (f"{LOOSE_TMP_PREFIX}*{TMP_SUFFIX}", f"tmp_obj_*{TMP_SUFFIX}"):  # and the names before 14
            for tmp in self.objects_dir.glob(pattern):
                remove_file(tmp, sync=False)
                removed += 1
        return removed + packs.remove_temporaries(self.pack_dir)

    @property
    def pack_dir(self) -> Path:
        return self.objects_dir / "pack"

    def write_durably(self, objects: list, *, pending: bool = False, one_pack: bool = False) -> "Written":
        """Write ``objects`` (RawObject or dulwich ShaFile) durably: the small ones as one pack
        (see packs.py), the large ones (LOOSE_BYTES and over: big folders' trees, big files)
        as loose objects, which no pack merge ever has to copy again. Blobs already present
        are skipped. When this returns, every object and its folder entry is on disk.

        ``pending``: the objects of a commit the branch does not name yet. A concurrent
        `git repack -a -d` (or `git gc`) deletes every pack it listed whose objects the refs do
        not reach, so the pack gets a `.keep` file until `secure` is called after the ref
        moved; and while a `git gc` runs (`gc.pid`), whose `git prune` deletes unreachable loose
        objects, the large objects go into that pack too. ``one_pack``: the large ones too (a
        group of commits written together: one file to make durable, not one per object), and
        each version of a big tree or text stored as a delta of the one before it (`_Deltas`).
        """
        entries: dict[bytes, bytes] = {}
        loose, seen, unique = [], set(), []
        in_pack = one_pack or (pending and (self.objects_dir.parent / "gc.pid").exists())
        deltas = _Deltas() if one_pack else None
        for obj in objects:
            if obj.id in seen:
                continue
            seen.add(obj.id)
            unique.append(obj)
            # Only blobs can already be stored (the same content under another path or from an
            # earlier version); trees and commits built here are new, and a duplicate would be
            # harmless anyway. Each check that misses rescans the pack folder.
            if obj.type_name == b"blob" and self._present(obj.id):
                continue
            raw = obj.raw if isinstance(obj, RawObject) else obj.as_raw_string()
            if len(raw) >= LOOSE_BYTES and not in_pack:
                loose.append(obj)
            else:
                binsha = binascii.unhexlify(obj.id)
                entry = deltas.entry(obj.type_name, raw, binsha) if deltas is not None else None
                entries[binsha] = entry if entry is not None else _pack_entry(obj, raw)
        self._write_loose(loose)
        written = Written(objects=unique, loose=[obj.id for obj in loose])
        if not entries:
            return written
        makedirs(self.pack_dir, sync=True)
        written.pack = packs.write_pack(self.pack_dir, list(entries.items()), keep=pending)
        written.kept = pending
        del entries  # a group's entries are up to GROUP_BYTES: not kept while the merge runs
        # A kept pack is never merged: this merges only packs the branch already reaches.
        self._forget_packs(packs.merge_small_packs(self.pack_dir))
        if one_pack:
            self.release_maps()
        return written

    def release_maps(self) -> None:
        """Close every pack dulwich has open; the next read reopens what it needs (an index of
        a few KB, the pack mapped again). dulwich maps each pack it reads from whole, and the
        kernel maps a file's cached pages in large folios, so a page read maps its neighbours
        too: the packs a long run wrote, each read from once, stayed mapped and resident in the
        process (file-backed, but counted in its RSS: 392 MB by the end of the 7,425 tldr
        pages). Called after each group's pack (docs/performance.md)."""
        self.store.close()

    def _forget_packs(self, bases: list[str]) -> None:
        """Drop the removed packs ``bases`` from dulwich's cache, closing their files and maps.
        dulwich has no public call to evict one pack; reading its public ``packs`` list rescans
        the pack folder and closes the cached packs whose files are gone (so in dulwich 1.2.21;
        tests/test_git_plumbing.py fails if a later dulwich stops doing so)."""
        if bases:
            self.store.packs  # noqa: B018 (read for its rescan)

    def ensure_written(self, written: "Written") -> None:
        """Just before the ref moves: write again, as a kept pack, whatever of ``written`` a
        concurrent `git prune` deleted (loose objects; a kept pack is never deleted)."""
        if self._missing(written):
            self._rewrite(written, keep=True)

    def secure(self, written: "Written") -> None:
        """Just after the ref moved: the branch names the objects now, so their pack's `.keep`
        goes (a repack that listed the pack kept it; one that lists it now reads the refs
        after they moved). Loose objects a `git prune` deleted meanwhile are written again."""
        if written.kept and written.pack:
            packs.release_keep(self.pack_dir, written.pack)
            written.kept = False
        if self._missing(written):
            self._rewrite(written, keep=False)

    def abandon(self, written: "Written") -> None:
        """The commit was not made: its objects are garbage, for `openkb gc` to prune; their
        pack's `.keep` goes (recovery removes it if even that fails)."""
        if written.kept and written.pack:
            try:
                packs.release_keep(self.pack_dir, written.pack)
            except OSError:
                return
            written.kept = False

    def _missing(self, written: "Written") -> bool:
        """Whether a loose object of ``written`` is gone (stat only)."""
        for hexsha in written.loose:
            text = hexsha.decode("ascii")
            if not os.path.exists(self.objects_dir / text[:2] / text[2:]) and not self._present(hexsha):
                return True
        return False

    def _rewrite(self, written: "Written", *, keep: bool) -> None:
        """Every object of ``written`` as one new pack (the small ones are in a kept pack or in
        packs the branch reaches; writing them again is harmless)."""
        entries = [(binascii.unhexlify(obj.id), _pack_entry(obj, obj.raw if isinstance(obj, RawObject)
                                                              else obj.as_raw_string()))
                   for obj in written.objects]
        makedirs(self.pack_dir, sync=True)
        name = packs.write_pack(self.pack_dir, sorted(entries), keep=keep)
        if keep:
            if written.kept and written.pack and written.pack != name:
                packs.release_keep(self.pack_dir, written.pack)
            written.pack, written.kept = name, True
        written.loose = []

    def rewrite_loose(self, objects: list) -> None:
        """Write ``objects`` as loose objects even when the store holds them: a damaged stored
        copy (loose, or in a pack, which Git then falls back from) is replaced by a good one."""
        self._write_loose(objects)

    def _write_loose(self, objects: list) -> None:
        """Each object as a loose object, fsynced, then the fan-out folders fsynced."""
        touched_dirs: set[Path] = set()
        new_fanout = False
        for obj in objects:
            hexsha = obj.id.decode("ascii")
            directory = self.objects_dir / hexsha[:2]
            # Not `tmp_obj_*`: `git prune` (in `git gc --prune=now`) deletes those at any age.
            tmp = self.objects_dir / f"{LOOSE_TMP_PREFIX}{hexsha[:12]}_{os.getpid()}{TMP_SUFFIX}"
            write_bytes(tmp, b"".join(obj.as_legacy_object_chunks()), mode=0o444, sync=True)
            # `git prune-packed` (run by `git repack -d` and `git gc`) removes every empty fan-out
            # folder at any moment: the folder is made just before the rename, and again when it
            # went in between (bounded: each round the folder exists for microseconds only).
            for attempt in range(_FANOUT_TRIES):
                if not directory.exists():
                    makedirs(directory, sync=False)
                    new_fanout = True
                try:
                    replace(tmp, directory / hexsha[2:])
                    break
                except FileNotFoundError:
                    if attempt == _FANOUT_TRIES - 1 or not tmp.exists():
                        raise
            touched_dirs.add(directory)
        if new_fanout:
            fsync_dir(self.objects_dir)
        for directory in touched_dirs:
            try:
                fsync_dir(directory)
            except FileNotFoundError:
                # Removed by `git prune-packed`, which removes only empty folders and deletes a
                # loose object only when a pack holds it: what we wrote there is in a pack.
                continue

    def _present(self, hexsha: bytes) -> bool:
        text = hexsha.decode("ascii")
        return os.path.exists(self.objects_dir / text[:2] / text[2:]) or self.store.contains_packed(hexsha)


@dataclass
class Written:
    """What one `write_durably` call wrote: every object it was given (deduplicated), the base
    name of its pack (None when all were large or present) and the ids written loose."""

    objects: list
    loose: list[bytes] = field(default_factory=list)
    pack: str | None = None
    kept: bool = False  # the pack has our `.keep` (the branch does not name its objects yet)


def _pack_entry(obj, raw: bytes) -> bytes:
    if _in_pieces(obj.type_name, raw):  # a big folder or page, as a loose one is
        data = b"".join(_deflate_in_pieces(b"", raw, obj.type_name))
    else:
        data = zlib.compress(raw, 1)
    return packs.entry_header(packs.PACK_TYPES[obj.type_name], len(raw)) + data

_FORBIDDEN_NAMES = (b"", b".", b"..", b".git", b".GIT", b".Git")


def common_prefix(a, b, start_a: int = 0, start_b: int = 0) -> int:
    """Length of the longest run a[start_a:start_a+k] == b[start_b:start_b+k] (sequences: bytes
    or lists): galloping, then bisection, on slice equality, so the comparing is done in C and
    each probe compares only the part not yet known equal — the cost follows the run's length."""
    limit = min(len(a) - start_a, len(b) - start_b)
    lo, step = 0, 256
    while True:  # a[start_a:start_a+lo] == b[start_b:start_b+lo]
        hi = min(lo + step, limit)
        if a[start_a + lo:start_a + hi] != b[start_b + lo:start_b + hi]:
            break
        if hi == limit:
            return limit
        lo, step = hi, step * 2
    while hi - lo > 1:  # equal up to lo, not up to hi
        mid = (lo + hi) // 2
        if a[start_a + lo:start_a + mid] == b[start_b + lo:start_b + mid]:
            lo = mid
        else:
            hi = mid
    return lo


def common_suffix(a, b, skip: int = 0) -> int:
    """Length of the longest common suffix of a[skip:] and b[skip:] (it never overlaps a
    common prefix of length ``skip``): galloping from the ends, then bisection, as
    ``common_prefix`` does, so the cost follows the suffix's length, not the sequences'."""
    limit, na, nb = min(len(a), len(b)) - skip, len(a), len(b)
    if limit <= 0:
        return 0
    lo, step = 0, 256
    while True:  # the last lo items are equal
        hi = min(lo + step, limit)
        if a[na - hi:na - lo] != b[nb - hi:nb - lo]:
            break
        if hi == limit:
            return limit
        lo, step = hi, step * 2
    while hi - lo > 1:  # the last lo items equal, not the last hi
        mid = (lo + hi) // 2
        if a[na - mid:na - lo] == b[nb - mid:nb - lo]:
            lo = mid
        else:
            hi = mid
    return lo


class PathFollower:
    """Looks one path up in a sequence of related trees (a commit, its parent, its parent's…).

    The path's folder (say `wiki/concepts/`, one entry per concept) is decoded only when the
    bytes around the path's entry changed: when the entry lies in the part the new folder
    encoding shares with the previous one, from the start or from the end, it is the same
    entry. Walking the history of one page so costs a comparison per commit, not a decoding
    of a folder of N entries.
    """

    def __init__(self, store: "ObjectStore", path: str):
        self.store = store
        *self.dirs, self.name = path.encode("utf-8").split(b"/")
        self.folder: bytes | None = None  # the folder tree last looked in, its raw encoding,
        self.raw = b""                    # and the entry's span in it
        self.span: tuple[int, int] | None = None
        self.found: tuple[int, bytes] | None = None

    def lookup(self, tree_sha: bytes | None) -> tuple[int, bytes] | None:
        current: tuple[int, bytes] | None = (TREE_MODE, tree_sha) if tree_sha else None
        for part in self.dirs:  # the folders above (the root, `wiki/`) are small
            if current is None or not statmod.S_ISDIR(current[0]):
                return None
            current = self.store.tree_entries(current[1]).get(part)
        if current is None or not statmod.S_ISDIR(current[0]):
            return None
        folder = current[1]
        if folder == self.folder:
            return self.found
        raw = self.store._raw_tree(folder)
        span = self._carried_span(raw)
        if span is None:
            try:
                self.found, span = _locate_entry(raw, self.name)
            except TreeFormatError as exc:
                raise self.store.damaged(folder, exc) from None
        self.folder, self.raw, self.span = folder, raw, span
        return self.found

    def _carried_span(self, raw: bytes) -> tuple[int, int] | None:
        """The entry's span in ``raw`` when it is among the bytes shared with the last folder."""
        if self.span is None:
            return None
        a, b = self.span
        old = self.raw
        if len(raw) >= b and raw[:b] == old[:b]:
            return a, b
        # The entry and the NUL and binary id that end the entry before it.
        tail = len(old) - a + _NUL_AND_ID
        if a >= _NUL_AND_ID and len(raw) >= tail and raw[len(raw) - tail:] == old[a - _NUL_AND_ID:]:
            shift = len(raw) - len(old)
            return a + shift, b + shift
        return None


def _locate_entry(raw: bytes, name: bytes) -> tuple[tuple[int, bytes] | None, tuple[int, int] | None]:
    """((mode, hex id), (start, end)) of the entry ``name`` in a raw tree, or (None, None).

    The bytes ` name NUL` are searched for (in C); a hit is the entry only if an entry starts
    right before it, which stepping over whole entries from a known start tells (a hit inside
    another entry's id is skipped)."""
    needle = b" " + name + b"\0"
    pos = 0
    hit = raw.find(needle)
    while hit >= 0:
        pos = _skip_entries(raw, pos, hit)  # the entry holding the hit's first byte
        if raw.find(b" ", pos, hit + 1) == hit:  # the hit is the entry's own ` name NUL`
            return _entry_at(raw, pos)[1], (pos, hit + len(needle) + _NUL_AND_ID - 1)
        hit = raw.find(needle, hit + 1)
    return None, None


class RawObject:
    """A loose object built from its type and raw content, without dulwich's parsing."""

    __slots__ = ("type_name", "raw", "id")

    def __init__(self, type_name: bytes, raw: bytes):
        self.type_name = type_name
        self.raw = raw
        self.id = hashlib.sha1(self._header() + raw).hexdigest().encode("ascii")

    def _header(self) -> bytes:
        return b"%s %d\0" % (self.type_name, len(self.raw))

    def as_legacy_object_chunks(self):
        if _in_pieces(self.type_name, self.raw):
            yield from _deflate_in_pieces(self._header(), self.raw, self.type_name)
            return
        compressor = zlib.compressobj(1)
        yield compressor.compress(self._header())
        yield compressor.compress(self.raw)
        yield compressor.flush()


# Large trees (a folder of one file per document) are rewritten by every commit with one or
# two entries changed, and so are large text files (wiki/index.md, one line a document, and
# wiki/log.md). Their zlib stream is made of independently deflated pieces, cut where the
# content says, so each commit compresses only the pieces that changed and reuses the others'
# deflated bytes: a full flush ends every piece on a byte boundary with an empty window, which
# makes the pieces concatenable into one valid stream. A tree is cut after a pair of NUL bytes
# (in the binary ids: random); a text at the end of a line whose last bytes fall in given
# classes (`_CUT_CLASSES`), so a line inserted moves only the cuts near it: at 2,000 tldr pages,
# 1.8 % of index.md's bytes are deflated again per version (22 % when cut at the first line end
# past a minimum size, whose cuts all shift after an insertion). index.md at 7,425 pages: 18 ms
# of zlib per version, 3 ms cut and looked up.
CHUNKED_TREE_BYTES = 32 * 1024
CHUNKED_TEXT_BYTES = 32 * 1024
_CHUNKED_TEXT_MAX = 16 * 1024 * 1024  # larger texts are not rewritten line by line (a book's source)
_TEXT_SNIFF = 8192  # a blob with a NUL byte in its start is not text: deflated whole
# Each byte's class: 1 for about half of the bytes (the low bit of its CRC-32: fixed, so pieces
# cut the same way in every process), 0 for the others and for ".", a line's usual last byte;
# "\n" stays itself.
_CUT_CLASSES = bytes(10 if b == 10 else 0 if b == 46 else zlib.crc32(bytes([b])) & 1 for b in range(256))
_TEXT_CUT = b"\x01\x01\x00\n"  # about one line end in four (those ending in ".")
_MIN_PIECE = 2048
_PIECE_CACHE_BYTES = 32 * 1024 * 1024  # pieces and their deflated bytes: twice the big trees of 50,000 documents
_pieces: OrderedDict[bytes, bytes] = OrderedDict()
_pieces_size = 0


def _deflated_piece(piece: bytes) -> bytes:
    global _pieces_size
    out = _pieces.get(piece)
    if out is not None:
        _pieces.move_to_end(piece)
        return out
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    out = compressor.compress(piece) + compressor.flush(zlib.Z_FULL_FLUSH)
    _pieces[piece] = out
    _pieces_size += len(piece) + len(out)
    while _pieces_size > _PIECE_CACHE_BYTES:
        old, old_out = _pieces.popitem(last=False)
        _pieces_size -= len(old) + len(old_out)
    return out


def _in_pieces(type_name: bytes, raw: bytes) -> bool:
    """Whether an object is deflated from reused pieces: a big tree, or a big text blob."""
    if type_name == b"tree":
        return len(raw) >= CHUNKED_TREE_BYTES
    return (type_name == b"blob" and CHUNKED_TEXT_BYTES <= len(raw) <= _CHUNKED_TEXT_MAX
            and raw.find(b"\0", 0, _TEXT_SNIFF) < 0)


def _piece_ends(raw: bytes, type_name: bytes):
    """The end of each piece of ``raw`` (a big tree, or a big text): where the content says."""
    if type_name == b"tree":
        find, mark = raw.find, b"\0\0"
    else:
        find, mark = raw.translate(_CUT_CLASSES).find, _TEXT_CUT
    start = 0
    while start < len(raw):
        cut = find(mark, start + _MIN_PIECE)
        start = len(raw) if cut < 0 else cut + len(mark)
        yield start


_CUT_WINDOW = 64 * 1024


class _Cuts:
    """The piece ends of ``raw`` one at a time, from any piece start, as `_piece_ends` finds
    them; a text's bytes are put in their classes only where a cut is searched for (a window
    at a time), not all of them: a new version of index.md is searched only where it differs."""

    def __init__(self, raw: bytes, type_name: bytes):
        self.raw, self.tree = raw, type_name == b"tree"
        self.at, self.classes = 0, b""  # the classes of raw[at:at + len(classes)]

    def end_after(self, start: int) -> int:
        """The end of the piece starting at ``start``."""
        raw = self.raw
        pos = start + _MIN_PIECE
        if self.tree:
            cut = raw.find(b"\0\0", pos)
            return len(raw) if cut < 0 else cut + 2
        if pos >= len(raw):
            return len(raw)
        mark = _TEXT_CUT
        if not self.at <= pos <= self.at + len(self.classes):
            self.at, self.classes = pos, b""
        while True:
            cut = self.classes.find(mark, pos - self.at)
            if cut >= 0:
                return self.at + cut + len(mark)
            end = self.at + len(self.classes)
            if end >= len(raw):
                return len(raw)
            # Grown by a window, less what lies before ``pos`` (never searched again); the
            # search starts at ``pos`` again, so a mark across the old end is found.
            self.classes = self.classes[pos - self.at:] + raw[end:end + _CUT_WINDOW].translate(_CUT_CLASSES)
            self.at = pos


def _deflate_in_pieces(header: bytes, raw: bytes, type_name: bytes = b"tree", ends=None):
    """The zlib stream of ``header + raw``, built from deflated pieces of ``raw`` (``header``
    empty: a pack entry's data); ``ends``: the pieces' ends when the caller has them already."""
    yield b"\x78\x01"  # zlib header: deflate, 32 KB window, fastest level
    if header:
        compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
        yield compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    start = 0
    for end in _piece_ends(raw, type_name) if ends is None else ends:
        yield _deflated_piece(raw[start:end])
        start = end
    yield zlib.compressobj(1, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # the final, empty block
    yield struct.pack(">L", zlib.adler32(raw, zlib.adler32(header)))


# A group of commits (ops/add.py) writes up to 32 versions of index.md and of each big folder's
# tree into one pack. Git never tries a delta between two objects stored whole in one pack, so
# stored whole they stayed whole through the merges of small packs and the automatic gc (deltas
# reused): the 7,425 tldr pages left 172 MB of `.git` before gc, 86 MB with these deltas. Each
# such version is a REF_DELTA against the version before it in the same pack (Git requires a
# local pack's delta bases in the pack itself), found from the content-cut pieces: the pieces
# the base has are copied; between two, what the old and new bytes share at each end is copied
# and the rest inserted. Chains stop at MAX_GROUP_DELTA_DEPTH (a read applies at most that many).
MAX_GROUP_DELTA_DEPTH = 10
_REF_DELTA = 7


class _Deltas:
    """The delta bases of one pack being written: the pieces of its big trees and texts."""

    def __init__(self):
        self._at: dict[tuple[bytes, int], tuple[bytes, bytes, int]] = {}  # (type, hash of piece) -> (raw, sha, offset)
        self._depth: dict[bytes, int] = {}
        self._spans: dict[bytes, list[tuple[int, int, int]]] = {}  # sha -> its pieces (start, end, hash)

    def entry(self, type_name: bytes, raw: bytes, binsha: bytes) -> bytes | None:
        """The pack entry of ``raw``: a delta of an earlier object of this pack, else the object
        whole (deflated from its pieces); either way its pieces become bases for the objects
        after it. None for an object not cut in pieces (`_pack_entry` stores it)."""
        if not _in_pieces(type_name, raw):
            return None
        cuts = _Cuts(raw, type_name)
        first = cuts.end_after(0)
        # The version before this one starts with the same piece, mostly: then only the bytes
        # between what both share at their start and at their end are cut and looked up.
        base = self._at.get((type_name, hash(raw[:first])))
        if base is not None and base[2] == 0 and self._depth[base[1]] < MAX_GROUP_DELTA_DEPTH:
            spans = _spans_after(raw, cuts, first, base[0], self._spans[base[1]])
        else:
            spans, start = [], 0
            while start < len(raw):
                end = cuts.end_after(start) if start else first
                spans.append((start, end, hash(raw[start:end]), -1))
                start = end
            base = next((found for found in (self._at.get((type_name, h)) for _s, _e, h, _o in spans)
                         if found is not None and self._depth[found[1]] < MAX_GROUP_DELTA_DEPTH), None)
        ops: list[bytes] = []
        literal = 0
        if base is not None:
            base_raw, base_sha = base[0], base[1]
            gap, base_at = 0, 0  # where the bytes not yet copied start, in raw and in the base
            copy_at, copy_size = 0, 0  # the copy being extended (contiguous pieces: one instruction)
            for start, end, h, offset in spans:
                if offset < base_at:  # not known to be in the base after what was copied: look it up
                    found = self._at.get((type_name, h))
                    offset = (found[2] if found is not None and found[1] == base_sha and found[2] >= base_at
                              and base_raw.startswith(raw[start:end], found[2]) else -1)
                if offset < 0:
                    continue
                if start == gap and offset == copy_at + copy_size and copy_size:
                    copy_size += end - start
                else:
                    if copy_size:
                        ops.append(_copy_ops(copy_at, copy_size))
                    literal += _gap_ops(ops, raw, gap, start, base_raw, base_at, offset)
                    copy_at, copy_size = offset, end - start
                gap, base_at = end, offset + end - start
            if copy_size:
                ops.append(_copy_ops(copy_at, copy_size))
            literal += _gap_ops(ops, raw, gap, len(raw), base_raw, base_at, len(base_raw))
        pieces = [(start, end, h) for start, end, h, _offset in spans]
        for start, end, h in pieces:
            self._at[(type_name, h)] = (raw, binsha, start)
        self._spans[binsha] = pieces
        if base is None or literal * 2 > len(raw):
            self._depth[binsha] = 0
            data = b"".join(_deflate_in_pieces(b"", raw, type_name, [end for _start, end, _h in pieces]))
            return packs.entry_header(packs.PACK_TYPES[type_name], len(raw)) + data
        self._depth[binsha] = self._depth[base[1]] + 1
        delta = b"".join((_varint(len(base[0])), _varint(len(raw)), *ops))
        return packs.entry_header(_REF_DELTA, len(delta)) + base[1] + zlib.compress(delta, 1)


def _spans_after(raw: bytes, cuts: _Cuts, first: int, old: bytes,
                 old_spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The pieces (start, end, hash, offset of the same bytes in ``old`` or -1) of ``raw``, a
    new version of ``old`` whose pieces are ``old_spans``. A cut depends only on the bytes
    before it and on the cut before it: in the bytes both versions share from their start, the
    cuts are old's; once a cut falls in the bytes they share at their end, on one of old's
    (shifted by the change in length), the rest are old's too. Only the bytes between are cut
    and hashed."""
    head = common_prefix(raw, old)
    tail = common_suffix(raw, old, head)
    shift, shared_from = len(raw) - len(old), len(raw) - tail
    out, start = [], 0
    for s, e, h in old_spans:  # (a last piece ended by old's end is not a cut of raw's)
        if e > head or e == len(old):
            break
        out.append((s, e, h, s))
        start = e
    old_starts = {s: n for n, (s, _e, _h) in enumerate(old_spans)}
    while start < len(raw):
        if start >= shared_from:
            n = old_starts.get(start - shift)
            if n is not None:
                out.extend((s + shift, e + shift, h, s) for s, e, h in old_spans[n:])
                return out
        end = cuts.end_after(start) if start else first
        out.append((start, end, hash(raw[start:end]), -1))
        start = end
    return out


def _gap_ops(ops: list[bytes], raw: bytes, start: int, end: int, base: bytes, base_start: int, base_end: int) -> int:
    """Delta instructions for ``raw[start:end]``, the bytes between two pieces copied, whose old
    version is ``base[base_start:base_end]``: what they share at each end copied (an entry
    inserted in a tree's piece costs its own bytes), the rest inserted; returns its length."""
    if end <= start:
        return 0
    new, old = raw[start:end], base[base_start:base_end] if base_end > base_start else b""
    head = common_prefix(new, old)
    tail = common_suffix(new, old, head)
    if head:
        ops.append(_copy_ops(base_start, head))
    if len(new) - head - tail:
        ops.append(_insert_ops(raw, start + head, end - tail))
    if tail:
        ops.append(_copy_ops(base_end - tail, tail))
    return len(new) - head - tail


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _copy_ops(offset: int, size: int) -> bytes:
    """Git delta instructions copying ``size`` bytes of the base from ``offset``."""
    out = bytearray()
    while size:
        step = min(size, 0xFFFFFF)
        cmd, args = 0x80, bytearray()
        for i in range(4):
            byte = (offset >> (8 * i)) & 0xFF
            if byte:
                cmd |= 1 << i
                args.append(byte)
        for i in range(3):
            byte = (step >> (8 * i)) & 0xFF
            if byte:
                cmd |= 0x10 << i
                args.append(byte)
        out.append(cmd)
        out += args
        offset += step
        size -= step
    return bytes(out)


def _insert_ops(raw: bytes, start: int, end: int) -> bytes:
    """Git delta instructions inserting ``raw[start:end]`` (at most 127 bytes an instruction)."""
    out = bytearray()
    while start < end:
        step = min(end - start, 0x7F)
        out.append(step)
        out += raw[start:start + step]
        start += step
    return bytes(out)


class TreeFormatError(ValueError):
    """A raw tree that does not parse as Git tree entries (the store turns it into an
    ObjectDamageError naming the tree: see ``ObjectStore._tree_damage``)."""

    def __init__(self, raw: bytes, pos: int, what: str):
        super().__init__(f"corrupt tree object: {what} at byte {pos}")
        self.raw = raw


# One tree entry: `<mode> SP <name> NUL <20-byte id>` (the mode has no space, the name no NUL);
# or, from the first byte that does not start one, the rest of the tree (the "rest" match).
# So the matches of ``finditer`` from an entry start are contiguous by construction.
_NUL_AND_ID = 21
_ENTRY_GRAMMAR = rb"([^ \0]*) ([^\0]*)\0(.{20})"
_ENTRY = re.compile(_ENTRY_GRAMMAR + rb"|(.+)", re.S)
_STEP = re.compile(_ENTRY_GRAMMAR.replace(b"(", b"(?:") + rb"|(.+)", re.S)  # the same, no groups (faster)


def tree_walk(raw: bytes, pos: int = 0, end: int | None = None, *, decode: bool = True):
    """The entries of the raw tree ``raw[pos:end]`` (``pos`` an entry start), as regex matches:
    ``m.start()``/``m.end()`` the entry's span and, when ``decode``, ``m[1]`` its mode (octal
    digits), ``m[2]`` its name, ``m[3]`` its binary id. The one walk over tree encodings, each
    entry matched in C. Where the bytes stop being entries (garbage, a truncated entry), the
    last match is the rest of the tree: ``_checked`` raises TreeFormatError for it, and a
    reader that does not decode every entry checks the one it stops at."""
    return (_ENTRY if decode else _STEP).finditer(raw, pos, len(raw) if end is None else end)


def _checked(m):
    """The ``tree_walk`` match ``m``, which must be an entry (TreeFormatError otherwise)."""
    if m.lastindex == m.re.groups:  # the "rest" group matched
        raise TreeFormatError(m.string, m.start(), "malformed or truncated entry")
    return m


def _entry_value(m) -> tuple[int, bytes]:
    """(mode, hex id) of a ``tree_walk`` match."""
    _checked(m)
    try:
        return int(m[1], 8), binascii.hexlify(m[3])
    except ValueError:
        raise TreeFormatError(m.string, m.start(), f"mode {m[1]!r} is not octal") from None


def _skip_entries(raw: bytes, pos: int, stop: int) -> int:
    """From the entry starting at ``pos``, the start of the first entry that does not end at or
    before ``stop`` (or the end of ``raw``): entries are stepped over, not decoded."""
    m = None
    for m in tree_walk(raw, pos, decode=False):
        if m.end() > stop:
            return _checked(m).start()
    if m is not None:
        _checked(m)  # the "rest" match is the last one: ending at ``stop``, it was stepped over
    return len(raw)


def _entry_at(raw: bytes, pos: int) -> tuple[bytes, tuple[int, bytes], int]:
    """(name, (mode, hex sha), offset of the next entry) of the tree entry starting at ``pos``."""
    for m in tree_walk(raw, pos):
        return m[2], _entry_value(m), m.end()
    raise TreeFormatError(raw, pos, "no entry")


def _parse_entries(raw: bytes) -> dict[bytes, tuple[int, bytes]]:
    """{name: (mode, hex sha)} of the entries of a raw tree."""
    hexlify = binascii.hexlify
    try:
        return {m[2]: (int(m[1], 8), hexlify(m[3])) for m in tree_walk(raw)}
    except (ValueError, TypeError):  # int() of a mode not octal, or of the "rest" match's None
        for m in tree_walk(raw):  # found again, slowly, to say where
            _entry_value(m)
        raise TreeFormatError(raw, 0, "malformed entry") from None


_CANONICAL_MODES = frozenset((b"100644", b"100755", b"120000", b"160000", b"40000"))


def _tree_parts(raw: bytes) -> tuple[list[bytes], list[bytes]] | None:
    """(sort keys, encoded entries) of a stored tree, as `encode_tree_parts` gives them, or None
    when the tree is not in Git's canonical form (order, modes), which re-encoding would change."""
    keys, parts = [], []
    for m in tree_walk(raw):
        mode, name = _checked(m)[1], m[2]
        if mode not in _CANONICAL_MODES:
            return None
        keys.append(name + b"/" if mode == b"40000" else name)
        parts.append(m[0])
    if any(a >= b for a, b in zip(keys, keys[1:])):
        return None
    return keys, parts


def _tree_sort_key(item: tuple[bytes, tuple[int, bytes]]) -> bytes:
    name, (mode, _sha) = item
    return name + b"/" if statmod.S_ISDIR(mode) else name


def encode_tree_parts(entries: dict[bytes, tuple[int, bytes]]) -> tuple[list[bytes], list[bytes]]:
    """Git's tree encoding as (sort keys, encoded entries): sorted with directories as `name/`."""
    unhex = binascii.unhexlify
    items = sorted(entries.items(), key=_tree_sort_key)
    keys = [_tree_sort_key(item) for item in items]
    parts = [b"%o %s\0%s" % (mode, name, unhex(sha)) for name, (mode, sha) in items]
    return keys, parts


def serialize_tree(entries: dict[bytes, tuple[int, bytes]]) -> bytes:
    """Git's tree encoding: entries sorted with directories compared as `name/`."""
    return b"".join(encode_tree_parts(entries)[1])


def local_tz_offset(when: float | None = None) -> int:
    """The local time zone's offset from UTC in seconds, for commit and reflog timestamps."""
    when = time.time() if when is None else when
    return -(time.altzone if time.localtime(when).tm_isdst else time.timezone)


def make_commit(tree: bytes, parent: bytes | None, message: str, identity: bytes, when: int, tz: int) -> Commit:
    """A commit object with the given tree, parent and message (author = committer = identity)."""
    commit = Commit()
    commit.tree = tree
    commit.parents = [parent] if parent else []
    commit.author = commit.committer = identity
    commit.author_time = commit.commit_time = when
    commit.author_timezone = commit.commit_timezone = tz
    commit.encoding = None
    commit.message = message.encode("utf-8")
    return commit


def blob_id(data: bytes) -> bytes:
    """The Git blob id (hex) of ``data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().encode("ascii")
