"""Small packs: each commit's new objects go to the object store as one pack, durably.

A commit writes about twenty objects. As loose objects each is a file to create, fsync and
name, in a fan-out folder to fsync too; as one pack they are two files (the pack and its
index, Git's formats: pack v2 without deltas, index v2), two fsyncs and one folder fsync.

Packs are written whole under temporary names, fsynced, then renamed: the pack first, its
index last, as Git does; readers (Git, dulwich) ignore a pack until its index is there.

One pack per commit would slow every object lookup down as they pile up, so small packs are
merged geometrically (as `git repack --geometric=2`): when there are `MERGE_AT` of them, the
smallest ones whose sizes do not yet make a doubling sequence are merged into one new pack,
which is made durable before the old ones are removed (index first). With Git installed,
`git pack-objects` writes the merged pack, with deltas: Git never tries to delta two objects
stored whole in the same pack (it assumes an earlier repack found no delta worth it), so a
merged pack without deltas would keep `openkb gc` from finding them (1,500 tldr pages: 6.0
instead of 4.2 MB after gc). Without Git, entries are copied byte for byte: whole objects and
REF_DELTA entries (a group's pack, git/objects.py: their base is named by its id and lives in
the same pack, so it is copied with them); packs with offset deltas are then left alone.
Packs with a `.keep`, `.mtimes` or `.promisor` file are never merged; a `.rev` or `.bitmap`
goes with its pack.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from .. import faults
from ..fsutil import TMP_SUFFIX, fsync_dir, fsync_file, remove_file, replace, write_bytes, write_chunks

PACK_TYPES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
MERGE_AT = 12  # merge small packs when there are this many packs we can merge
_BLOCKING = (".keep", ".mtimes", ".promisor")  # packs with these are never merged
_COMPANIONS = (".rev", ".bitmap")  # removed with their pack
_IDX_MAGIC = b"\377tOc"


def entry_header(type_num: int, size: int) -> bytes:
    """A pack entry's header: type and inflated size, little-endian base-128."""
    out = bytearray()
    byte = (type_num << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def pack_parts(entries: list[tuple[bytes, bytes]]) -> tuple[list[bytes], bytes, str]:
    """(the pack's parts, its index bytes, its name) for ``entries`` [(binary sha, entry bytes)],
    shas unique: the parts are the header, the entries' own bytes (not copied) and the checksum,
    so a pack of a group of commits (up to hundreds of MB) is never joined in memory.

    The name is `pack-<hex of the pack's checksum>`, as current Git names them."""
    header = b"PACK" + struct.pack(">LL", 2, len(entries))
    digest = hashlib.sha1(header)
    parts = [header]
    offsets: dict[bytes, tuple[int, int]] = {}
    offset = len(header)
    for sha, data in entries:
        offsets[sha] = (offset, zlib.crc32(data))
        digest.update(data)
        parts.append(data)
        offset += len(data)
    checksum = digest.digest()
    parts.append(checksum)
    return parts, encode_index(offsets, checksum), f"pack-{checksum.hex()}"


def encode_pack(entries: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes, str]:
    """(pack bytes, index bytes, name) for ``entries``: `pack_parts` joined."""
    parts, index, name = pack_parts(entries)
    return b"".join(parts), index, name


def encode_index(offsets: dict[bytes, tuple[int, int]], pack_checksum: bytes) -> bytes:
    """Git's pack index v2 for {binary sha: (offset, crc32)}."""
    shas = sorted(offsets)
    fanout = [0] * 256
    for sha in shas:
        fanout[sha[0]] += 1
    running = 0
    for i in range(256):
        running += fanout[i]
        fanout[i] = running
    small, large = [], []
    for sha in shas:
        offset = offsets[sha][0]
        if offset < 0x80000000:
            small.append(offset)
        else:
            small.append(0x80000000 | len(large))
            large.append(offset)
    out = b"".join([
        _IDX_MAGIC, struct.pack(">L", 2), struct.pack(">256L", *fanout), b"".join(shas),
        struct.pack(f">{len(shas)}L", *(offsets[sha][1] for sha in shas)),
        struct.pack(f">{len(small)}L", *small), struct.pack(f">{len(large)}Q", *large), pack_checksum,
    ])
    return out + hashlib.sha1(out).digest()


def read_entries(pack: bytes, index: bytes) -> list[tuple[bytes, bytes]] | None:
    """[(binary sha, entry bytes)] of a pack, or None when it cannot be copied entry by entry
    (offset deltas inside, a checksum that does not match, an index that is not version 2).
    A REF_DELTA entry names its base by id, and a local pack holds its deltas' bases (Git
    requires it), so the pack's entries copied together stay whole."""
    if pack[:4] != b"PACK" or index[:8] != _IDX_MAGIC + struct.pack(">L", 2) or index[-40:-20] != pack[-20:]:
        return None
    count = struct.unpack(">L", index[8 + 255 * 4:8 + 256 * 4])[0]
    if struct.unpack(">L", pack[8:12])[0] != count:
        return None
    base = 8 + 1024
    shas = [index[base + 20 * i:base + 20 * i + 20] for i in range(count)]
    base += 20 * count + 4 * count  # skip the CRCs: they are recomputed from the bytes copied
    small = struct.unpack(f">{count}L", index[base:base + 4 * count])
    base += 4 * count
    offsets = []
    for value in small:
        if value & 0x80000000:
            at = base + 8 * (value & 0x7FFFFFFF)
            value = struct.unpack(">Q", index[at:at + 8])[0]
        offsets.append(value)
    by_offset = sorted(zip(offsets, shas))
    out = []
    for i, (offset, sha) in enumerate(by_offset):
        end = by_offset[i + 1][0] if i + 1 < len(by_offset) else len(pack) - 20
        if not 12 <= offset < end or (pack[offset] >> 4) & 7 not in (1, 2, 3, 4, 7):
            return None  # an offset delta (type 6) or a bad offset: leave this pack to git
        out.append((sha, pack[offset:end]))
    if hashlib.sha1(pack[:-20]).digest() != pack[-20:]:
        return None  # damaged: copying it would hide that from git fsck
    return out


def temporary_names(pack_dir: Path) -> tuple[Path, Path]:
    """Where a pack and its index are written before their renames. Not `tmp_*`: `git prune`
    (run by `git gc`) deletes files named so in objects/pack at any age with --prune=now."""
    pid = os.getpid()
    return (pack_dir / f"openkb_pack_{pid}{TMP_SUFFIX}", pack_dir / f"openkb_idx_{pid}{TMP_SUFFIX}")


PENDING_KEEP = b"openkb: objects of a commit being made\n"  # the content of our .keep files


def write_pack(pack_dir: Path, entries: list[tuple[bytes, bytes]], *, keep: bool = False) -> str:
    """Write ``entries`` as one pack durably; returns its base name.

    With ``keep``, a `<name>.keep` file is created before the pack gets its name:
    `git repack -a -d` (and `git gc`) never delete a kept pack, so the objects of a commit
    not yet named by the branch survive a concurrent repack; the caller removes the file
    once the ref has moved (`release_keep`). Before, not after, the `.pack` rename: Git 2.39's
    repack lists the packs to delete by reading the folder for `*.pack` names and only then
    looking for each one's `.keep`, so a `.pack` seen for a moment without its `.keep` was
    deleted by a repack whose walk of the refs came before our ref moved (the commit lost)."""
    parts, index, name = pack_parts(entries)
    tmp_pack, tmp_idx = temporary_names(pack_dir)
    write_chunks(tmp_pack, parts, mode=0o444, sync=True)
    write_bytes(tmp_idx, index, mode=0o444, sync=True)
    if keep:
        write_bytes(pack_dir / f"{name}.keep", PENDING_KEEP)
    replace(tmp_pack, pack_dir / f"{name}.pack")
    replace(tmp_idx, pack_dir / f"{name}.idx")
    fsync_dir(pack_dir)
    return name


def release_keep(pack_dir: Path, name: str) -> None:
    """Remove the `.keep` file `write_pack(keep=True)` made (the branch names the objects now)."""
    remove_file(pack_dir / f"{name}.keep", sync=False)


def mergeable_packs(pack_dir: Path) -> list[tuple[int, str]]:
    """(size, base name) of the packs with an index and no other companion file, smallest first."""
    try:
        names = set(os.listdir(pack_dir))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.endswith(".pack") and name[:-5] + ".idx" in names:
            base = name[:-5]
            if not any(base + suffix in names for suffix in _BLOCKING):
                try:
                    out.append((os.stat(pack_dir / name).st_size, base))
                except FileNotFoundError:
                    continue
    return sorted(out)


def geometric_prefix(sizes: list[int], factor: int = 2) -> int:
    """How many of the smallest packs (``sizes`` ascending) to merge so that, afterwards, each
    pack is at least ``factor`` times the size of all the smaller ones together."""
    if len(sizes) < 2:
        return 0
    total, count = sizes[0], 1
    for size in sizes[1:]:
        if size >= factor * total:
            break
        total += size
        count += 1
    return count if count >= 2 else 0


def merge_small_packs(pack_dir: Path, *, merge_at: int = MERGE_AT) -> list[str]:
    """Merge the smallest packs when there are ``merge_at`` mergeable packs; returns the base
    names of the packs removed (the caller evicts them from its caches). Under the KB lock."""
    packs = mergeable_packs(pack_dir)
    if len(packs) < merge_at:
        return []
    count = geometric_prefix([size for size, _ in packs])
    if count < 2 and len(packs) >= 2 * merge_at:  # an exact doubling sequence: bound the count anyway
        count = len(packs) - merge_at + 1
    chosen = packs[:count]
    if len(chosen) < 2:
        return []
    name = _merge_with_git(pack_dir, [base for _size, base in chosen])
    if name is not None:
        merged = [base for _size, base in chosen]
    else:
        entries: dict[bytes, bytes] = {}
        merged = []
        for _size, base in chosen:
            try:
                copied = read_entries((pack_dir / f"{base}.pack").read_bytes(), (pack_dir / f"{base}.idx").read_bytes())
            except OSError:
                copied = None
            if copied is None:
                continue  # left as it is
            for sha, data in copied:
                entries.setdefault(sha, data)
            merged.append(base)
        if len(merged) < 2:
            return []
        name = write_pack(pack_dir, sorted(entries.items(), key=lambda item: item[0]))
    removed = [base for base in merged if base != name]
    for base in removed:  # the index first: a pack without one is invisible to readers
        remove_file(pack_dir / f"{base}.idx", sync=False)
        for suffix in _COMPANIONS:
            remove_file(pack_dir / f"{base}{suffix}", sync=False)
        remove_file(pack_dir / f"{base}.pack", sync=False)
    if removed:
        fsync_dir(pack_dir)
    return removed


def index_shas(index: bytes) -> list[bytes]:
    """The binary object ids a pack index v2 lists."""
    if index[:8] != _IDX_MAGIC + struct.pack(">L", 2):
        raise ValueError("not a pack index v2")
    count = struct.unpack(">L", index[8 + 255 * 4:8 + 256 * 4])[0]
    return [index[1032 + 20 * i:1052 + 20 * i] for i in range(count)]


def _merge_with_git(pack_dir: Path, bases: list[str]) -> str | None:
    """Merge the packs ``bases`` with `git pack-objects` (deltas found, packs fsynced by Git);
    the new pack's base name, or None when Git is not installed or fails (the caller then
    copies entries itself)."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        ids = sorted({sha.hex() for base in bases for sha in index_shas((pack_dir / f"{base}.idx").read_bytes())})
    except (OSError, ValueError):
        return None
    before = set(os.listdir(pack_dir))
    faults.op("write", pack_dir / "pack-objects")
    proc = subprocess.run([git, f"--git-dir={pack_dir.parent.parent}", "-c", "core.fsync=pack,pack-metadata",
                           "pack-objects", "-q", "--delta-base-offset", str(pack_dir / "pack")],
                          input="\n".join(ids) + "\n", capture_output=True, text=True)
    name = f"pack-{proc.stdout.strip()}"
    if proc.returncode != 0 or not (pack_dir / f"{name}.pack").is_file() or not (pack_dir / f"{name}.idx").is_file():
        return None
    # Git's writes count as one operation; what they made (the pack, its index, a `.rev`) is
    # inside the crash model from here: not durable until openkb has fsynced each file and the
    # folder (whatever Git's own core.fsync did), and only then are the old packs removed.
    made = sorted(pack_dir / n for n in set(os.listdir(pack_dir)) - before if n.startswith(name + "."))
    for path in made:
        faults.created(path)
        faults.wrote(path)
    for path in made:
        fsync_file(path)
    fsync_dir(pack_dir)  # the new pack's names, before the old packs go
    return name


def remove_temporaries(pack_dir: Path) -> int:
    """Remove the temporaries and the pending `.keep` files (ours, by their content) a killed
    writer left; the journal's recovery has decided about its commit by then."""
    removed = 0
    for keep in pack_dir.glob("*.keep"):
        try:
            if keep.read_bytes() == PENDING_KEEP and remove_file(keep, sync=False):
                removed += 1
        except OSError:
            continue
    patterns = ("openkb_pack_*", "openkb_idx_*", "tmp_pack_*", "tmp_idx_*")  # (tmp_*: the names before 14)
    for tmp in [tmp for pattern in patterns for tmp in pack_dir.glob(pattern + TMP_SUFFIX)]:
        remove_file(tmp, sync=False)
        removed += 1
    return removed


def remove_orphans(pack_dir: Path, older_than: float) -> list[str]:
    """Remove `.pack` files without an index older than ``older_than`` (epoch seconds): what a
    crash between a merge's two removals, or between a pack's two renames, leaves behind."""
    removed = []
    try:
        names = set(os.listdir(pack_dir))
    except FileNotFoundError:
        return removed
    for name in sorted(names):
        if name.endswith(".pack") and name[:-5] + ".idx" not in names:
            path = pack_dir / name
            try:
                if os.stat(path).st_mtime >= older_than:
                    continue
            except FileNotFoundError:
                continue
            remove_file(path, sync=False)
            removed.append(name)
    if removed:
        fsync_dir(pack_dir)
    return removed
