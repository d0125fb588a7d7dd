"""Each commit's small objects go into one pack; small packs are merged geometrically."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import time
import zlib

import pytest

from dulwich.object_format import SHA1
from dulwich.pack import load_pack_index_file
from dulwich.repo import Repo

from conftest import git, run_openkb
from openkb_git.git import packs
from openkb_git.git.objects import LOOSE_BYTES, ObjectStore, make_commit
from openkb_git.git.refs import compare_and_swap

IDENTITY = b"T <t@example.com>"


def _commit_many(root, rounds, rng, big_every=0):
    store = ObjectStore(Repo(str(root)).object_store)
    tree = base = None
    written = []
    for i in range(rounds):
        changes = {f"wiki/concepts/c{rng.randint(0, 40)}.md": b"v%d %f" % (i, rng.random()) for _ in range(3)}
        if big_every and i % big_every == 0:
            changes[f"raw/big{i}.bin"] = os.urandom(LOOSE_BYTES + 10)
        tree, objects, _ids = store.build_tree(tree, changes)
        commit = make_commit(tree, base, f"c{i}\n", IDENTITY, int(time.time()), 0)
        store.write_durably([*objects, commit])
        compare_and_swap(root / ".git", base, commit.id, identity=IDENTITY, message=f"c{i}")
        written += [o.id.decode() for o in objects] + [commit.id.decode()]
        base = commit.id
    return store, written


def _pack_names(root):
    return sorted(p.name for p in (root / ".git" / "objects" / "pack").iterdir())


def test_packs_are_valid_git_packs_and_merges_keep_every_object(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store, written = _commit_many(tmp_path, 60, random.Random(5), big_every=7)
    names = _pack_names(tmp_path)
    idx = [n for n in names if n.endswith(".idx")]
    assert len(idx) < packs.MERGE_AT, names  # merged as they piled up
    assert len(idx) == len([n for n in names if n.endswith(".pack")])  # no orphan, no temporary
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict", "--full"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    for name in idx:
        git(tmp_path, "verify-pack", str(tmp_path / ".git" / "objects" / "pack" / name))
    # Every object written is there (git reads it), in a pack unless it is large.
    present = set(git(tmp_path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())
    assert set(written) <= present
    loose = {p.parent.name + p.name for p in (tmp_path / ".git" / "objects").glob("??/*")}
    assert loose
    assert all(int(git(tmp_path, "cat-file", "-s", sha)) >= LOOSE_BYTES for sha in loose)
    # A fresh reader sees the same objects as the writer that merged them.
    fresh = Repo(str(tmp_path)).object_store
    assert all(sha.encode() in fresh for sha in written)
    assert all(sha.encode() in store.store for sha in written)


@pytest.mark.parametrize("with_git", [True, False])
def test_merges_keep_every_object_and_leave_kept_packs_alone(tmp_path, monkeypatch, with_git):
    """With Git, merged packs are written by `git pack-objects` (with deltas: versions of a
    page end up as deltas, which `openkb gc` can reuse); without it, entries are copied and a
    pack with deltas (here one made by git) is left alone. A pack with a .keep is never merged."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    text = "".join(f"line {i} of a page that changes a little\n" for i in range(400))
    for i in range(4):
        (tmp_path / "page.md").write_text(text + f"edit {i}\n")
        git(tmp_path, "add", "page.md")
        git(tmp_path, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", f"p{i}")
    git(tmp_path, "repack", "-a", "-d", "-f", "-q")
    pack_dir = tmp_path / ".git" / "objects" / "pack"
    (delta_pack,) = pack_dir.glob("*.pack")
    assert packs.read_entries(delta_pack.read_bytes(), delta_pack.with_suffix(".idx").read_bytes()) is None
    before = set(git(tmp_path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())
    if not with_git:
        monkeypatch.setenv("PATH", "/nonexistent")  # a machine without git: the merge copies entries
    repo = Repo(str(tmp_path))
    store = ObjectStore(repo.object_store)
    tree, base = repo[repo.head()].tree, repo.head()
    written = []
    for i in range(packs.MERGE_AT * 3):
        tree, objects, _ = store.build_tree(tree, {"n/page.md": (text + f"version {i}\n").encode(), f"n/f{i}.md": b"%d" % i})
        commit = make_commit(tree, base, f"n{i}\n", IDENTITY, int(time.time()), 0)
        store.write_durably([*objects, commit])
        written += [o.id.decode() for o in objects] + [commit.id.decode()]
        base = commit.id
        if i == 0:
            (kept,) = [p for p in pack_dir.glob("*.pack") if p != delta_pack]
            kept.with_suffix(".keep").write_text("")
    monkeypatch.undo()
    compare_and_swap(tmp_path / ".git", repo.head(), base, identity=IDENTITY, message="n")
    assert kept.exists() and kept.with_suffix(".idx").exists()
    if not with_git:
        assert delta_pack.exists() and delta_pack.with_suffix(".idx").exists()
    assert len(list(pack_dir.glob("*.idx"))) <= packs.MERGE_AT + 1
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    present = set(git(tmp_path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())
    assert before | set(written) <= present
    assert git(tmp_path, "log", "--format=%s", "-1").strip() == f"n{packs.MERGE_AT * 3 - 1}"
    stored_as_delta = sum(1 for name in pack_dir.glob("*.idx") for line in git(
        tmp_path, "verify-pack", "-v", str(name)).splitlines() if " blob " in line and len(line.split()) >= 7)
    if with_git:
        assert stored_as_delta >= packs.MERGE_AT  # the page's versions, merged with deltas
    else:
        assert stored_as_delta <= 3  # only the git-made pack's own deltas


def test_group_packs_with_deltas_are_merged_by_copying_without_git(tmp_path, monkeypatch):
    """A group's pack stores the versions of a big file as REF_DELTAs of each other; on a
    machine without Git the small packs are merged by copying entries, which such a pack allows
    (its bases are named by id and travel with it), so they do not pile up, and every version
    still reads."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    monkeypatch.setenv("PATH", "/nonexistent")
    store = ObjectStore(Repo(str(tmp_path)).object_store)
    words = ["list", "files", "archive", "print", "network", "disk", "user", "show", "remove", "copy"]
    rng = random.Random(4)
    lines = [f"- [[summaries/doc-{i:04d}]] — {' '.join(rng.choices(words, k=rng.randint(2, 9)))}.\n"
             for i in range(1_000)]
    tree = base = None
    versions = []
    for group in range(packs.MERGE_AT + 2):
        made = []
        for i in range(3):
            lines.insert((group * 37 + i * 101) % len(lines), f"- [[summaries/new-{group}-{i}]] — new.\n")
            text = "".join(lines).encode("utf-8")
            tree, objects, _ids = store.build_tree(tree, {"wiki/index.md": text})
            store.stage(objects)
            commit = make_commit(tree, base, f"g{group} {i}\n", IDENTITY, 1_700_000_000 + group * 3 + i, 0)
            made += [*objects, commit]
            versions.append((commit.id.decode(), text))
            base = commit.id
        store.write_durably(made, one_pack=True)
        store.unstage()
    monkeypatch.undo()
    compare_and_swap(tmp_path / ".git", None, base, identity=IDENTITY, message="groups")
    pack_dir = tmp_path / ".git" / "objects" / "pack"
    assert len(list(pack_dir.glob("*.idx"))) < packs.MERGE_AT  # merged, deltas and all
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict", "--full"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    deltas = sum(1 for name in pack_dir.glob("*.idx") for line in git(tmp_path, "verify-pack", "-v", str(name)).splitlines()
                 if " blob " in line and len(line.split()) >= 7)
    assert deltas >= packs.MERGE_AT
    for sha, text in versions:
        shown = subprocess.run(["git", "-C", str(tmp_path), "show", f"{sha}:wiki/index.md"], capture_output=True,
                               check=True).stdout
        assert shown == text


def test_read_entries_refuses_deltas_and_damage(tmp_path):
    entries = [(bytes([i]) * 20, packs.entry_header(3, 5) + zlib.compress(b"hello")) for i in range(3)]
    pack, index, _name = packs.encode_pack(entries)
    assert sorted(packs.read_entries(pack, index)) == sorted(entries)
    damaged = bytearray(pack)
    damaged[20] ^= 1
    assert packs.read_entries(bytes(damaged), index) is None
    offset_delta = [(b"\x07" * 20, bytes([0x65, 0x05]) + zlib.compress(b"x"))]  # an ofs-delta entry
    pack, index, _name = packs.encode_pack(offset_delta)
    assert packs.read_entries(pack, index) is None
    ref_delta = [(b"\x07" * 20, bytes([0x75]) + b"\x00" * 20 + zlib.compress(b"x"))]  # names its base by id
    pack, index, _name = packs.encode_pack(ref_delta)
    assert packs.read_entries(pack, index) == ref_delta


def test_a_pack_is_written_from_its_parts_as_encode_pack_makes_it(tmp_path):
    """A group's pack (up to GROUP_BYTES of entries) is written part by part, never joined in
    memory: the file holds exactly the joined bytes, and Git verifies it."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    blobs = [b"blob %d %s\n" % (i, os.urandom(i * 97)) for i in range(40)]
    entries = sorted((hashlib.sha1(b"blob %d\0" % len(blob) + blob).digest(),
                      packs.entry_header(3, len(blob)) + zlib.compress(blob)) for blob in blobs)
    pack_dir = tmp_path / ".git" / "objects" / "pack"
    name = packs.write_pack(pack_dir, entries)
    joined, index, joined_name = packs.encode_pack(entries)
    assert name == joined_name
    assert (pack_dir / f"{name}.pack").read_bytes() == joined
    assert (pack_dir / f"{name}.idx").read_bytes() == index
    git(tmp_path, "verify-pack", str(pack_dir / f"{name}.idx"))
    shown = subprocess.run(["git", "-C", str(tmp_path), "cat-file", "blob", entries[0][0].hex()],
                           capture_output=True, check=True).stdout
    assert shown in blobs


def _mapped_packs() -> set[str]:
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if line.rstrip().endswith(".pack")}


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads /proc/self/maps (Linux)")
def test_a_group_pack_write_closes_the_packs_read_before(tmp_path):
    """dulwich maps each pack it reads from whole, and a page read maps its neighbours (large
    folios): the packs of a long group-committed run, each read once, stayed mapped in the
    adding process (392 MB of its RSS at 7,425 tldr pages). Writing a group's pack closes them."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store, written = _commit_many(tmp_path, 8, random.Random(3))
    for sha in written:  # read from every pack
        store.get(sha.encode())
    before = {path for path in _mapped_packs() if path.startswith(str(tmp_path))}
    assert len(before) >= 2, before
    tree, objects, _ids = store.build_tree(None, {"wiki/x.md": b"x\n"})
    store.write_durably([*objects, make_commit(tree, None, "x\n", IDENTITY, 0, 0)], one_pack=True)
    assert not {path for path in _mapped_packs() if path.startswith(str(tmp_path))}
    assert all(sha.encode() in store for sha in written)  # reopened when read again


def test_index_with_large_offsets_reads_back(tmp_path):
    offsets = {bytes([i]) * 20: (i * 900_000_000 + 12, i) for i in range(5)}  # up to 3.6 GB
    data = packs.encode_index(offsets, b"\x01" * 20)
    path = tmp_path / "x.idx"
    path.write_bytes(data)
    with open(path, "rb") as fh:
        index = load_pack_index_file(str(path), fh, SHA1)
        found = {sha: index.object_offset(sha) for sha in offsets}
    assert found == {sha: offset for sha, (offset, _crc) in offsets.items()}


def test_geometric_prefix():
    assert packs.geometric_prefix([1, 1, 1, 1]) == 4
    assert packs.geometric_prefix([1, 1, 100]) == 2
    assert packs.geometric_prefix([1, 2, 4, 8]) == 0  # already a doubling sequence
    assert packs.geometric_prefix([5]) == 0


def test_gc_removes_orphan_packs_past_the_grace_period(kb, tmp_path):
    pack_dir = kb / ".git" / "objects" / "pack"
    source = next(pack_dir.glob("*.pack"))
    old, new = pack_dir / "pack-0000000000000000000000000000000000000001.pack", pack_dir / "pack-fresh.pack"
    shutil.copyfile(source, old)
    shutil.copyfile(source, new)
    os.utime(old, (time.time() - 30 * 24 * 3600,) * 2)
    run_openkb("gc", cwd=kb, check=True)
    assert not old.exists() and new.exists()
    git(kb, "fsck", "--strict")


_CHILD = """
import sys, time
from pathlib import Path
from dulwich.repo import Repo
from openkb_git.git.objects import ObjectStore, make_commit
from openkb_git.git.refs import compare_and_swap
root = sys.argv[1]
repo = Repo(root)
store = ObjectStore(repo.object_store)
base = repo.head()
tree, objects, _ = store.build_tree(repo[base].tree, {"wiki/concepts/last.md": b"the commit that merges"})
commit = make_commit(tree, base, "last\\n", b"T <t@example.com>", int(time.time()), 0)
store.write_durably([*objects, commit])
compare_and_swap(Path(repo.controldir()), base, commit.id, identity=b"T <t@example.com>", message="last")
"""


def test_a_crash_at_any_point_of_a_merge_loses_no_object(tmp_path):
    """Kill or power loss at every durable operation of a commit that merges packs: the
    objects of the history are all still readable and git fsck is clean."""
    import sys

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path / "seed")], check=True)
    _commit_many(tmp_path / "seed", packs.MERGE_AT - 1, random.Random(2))
    assert len(list((tmp_path / "seed" / ".git" / "objects" / "pack").glob("*.idx"))) == packs.MERGE_AT - 1
    trace = tmp_path / "trace"
    env = dict(os.environ, OPENKB_FAULT_TRACE=str(trace))
    probe = tmp_path / "probe"
    shutil.copytree(tmp_path / "seed", probe)
    subprocess.run([sys.executable, "-c", _CHILD, str(probe)], env=env, check=True)
    ops = trace.read_text().splitlines()
    assert any("pack-objects" in line or ".idx" in line and "unlink" in line for line in ops), ops
    assert len(list((probe / ".git" / "objects" / "pack").glob("*.idx"))) < packs.MERGE_AT - 1  # it merged
    history = {line.split()[0] for line in git(tmp_path / "seed", "rev-list", "--objects", "HEAD").splitlines()}
    for mode in ("kill", "power"):
        for at in range(1, len(ops) + 1):
            kb = tmp_path / f"{mode}-{at}"
            shutil.copytree(tmp_path / "seed", kb)
            env = dict(os.environ, OPENKB_FAULT_MODE=mode, OPENKB_FAULT_AT=str(at))
            subprocess.run([sys.executable, "-c", _CHILD, str(kb)], env=env, capture_output=True)
            fsck = subprocess.run(["git", "-C", str(kb), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
            assert fsck.returncode == 0, (mode, at, ops[at - 1], fsck.stdout + fsck.stderr)
            missing = subprocess.run(["git", "-C", str(kb), "cat-file", "--batch-check"], input="\n".join(history) + "\n",
                                     capture_output=True, text=True).stdout
            assert "missing" not in missing, (mode, at, ops[at - 1])
            shutil.rmtree(kb)
