"""The Git layer against real Git: spliced tree encodings, CAS, index entries."""

from __future__ import annotations

import os
import random
import re
import subprocess
import time
from collections import OrderedDict
from pathlib import Path

import pytest
from hypothesis import example, given, settings, strategies as st
from dulwich.repo import Repo

from openkb_git.git.index import GitIndex, encode_entry
from openkb_git.git.objects import ObjectStore, blob_id, make_commit, serialize_tree
from openkb_git.git.refs import RefMovedError, compare_and_swap, read_branch


def test_spliced_trees_equal_full_encoding_and_pass_fsck(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    repo = Repo(str(tmp_path))
    store = ObjectStore(repo.object_store)
    rng = random.Random(7)
    base = tree = None
    for i in range(30):
        changes = {f"d/f{rng.randint(0, 900)}.md": b"x%d" % i for _ in range(5)}
        if i == 0:
            changes.update({f"d/f{j}.md": b"i" for j in range(700)})
            changes.update({f"d/f{j}.md/x": b"i" for j in range(700, 720)})  # dirs sort as "name/"
        changes[f"d/f{rng.randint(0, 700)}.md"] = None
        changes.update({"d/f1.md": b"z", "d/f1.mc": b"q", "d/f1.md-": b"q", "d/f710.md-": b"%d" % i})
        tree, objects, blob_ids = store.build_tree(tree, changes)
        for obj in objects:
            if obj.type_name == b"tree":
                assert obj.raw == serialize_tree(store.tree_entries(obj.id))
        commit = make_commit(tree, base, f"c{i}\n", b"T <t@example.com>", int(time.time()), 0)
        store.write_durably([*objects, commit])
        compare_and_swap(tmp_path / ".git", base, commit.id, identity=b"T <t@example.com>", message=f"c{i}")
        base = commit.id
        if i % 3 == 1:  # as a new process: the stored trees are spliced, not the cached encodings
            store = ObjectStore(repo.object_store)
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert read_branch(tmp_path / ".git") == base
    with pytest.raises(RefMovedError):
        compare_and_swap(tmp_path / ".git", b"1" * 40, base, identity=b"T <t@example.com>", message="x")


@pytest.mark.parametrize("odd", ["zero-padded mode", "unsorted"])
def test_a_stored_tree_not_in_canonical_form_is_re_encoded(tmp_path, odd):
    from openkb_git.git.objects import RawObject

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    repo = Repo(str(tmp_path))
    store = ObjectStore(repo.object_store)
    blob = RawObject(b"blob", b"x")
    sub = RawObject(b"tree", b"100644 x\0" + bytes.fromhex(blob.id.decode()))
    entries = [b"100644 f%04d.md\0" % i + bytes.fromhex(blob.id.decode()) for i in range(300)]
    entries.insert(5, (b"040000" if odd == "zero-padded mode" else b"40000") + b" f0004.md-dir\0" + bytes.fromhex(sub.id.decode()))
    if odd == "unsorted":
        entries[10], entries[11] = entries[11], entries[10]
    folder = RawObject(b"tree", b"".join(entries))
    root = RawObject(b"tree", b"40000 d\0" + bytes.fromhex(folder.id.decode()))
    store.write_durably([blob, sub, folder, root])

    fresh = ObjectStore(repo.object_store)
    tree, objects, _ids = fresh.build_tree(root.id, {"d/new.md": b"n"})
    edited = fresh.lookup(tree, "d")[1]
    raw = next(obj.raw for obj in objects if obj.id == edited)
    assert raw == serialize_tree(fresh.tree_entries(edited))  # canonical, as a full encoding gives


def test_index_entries_make_git_status_clean(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store = ObjectStore(Repo(str(tmp_path)).object_store)
    files = {"wiki/a.md": b"a\n", "wiki/sources/\u00fc x.md": b"u\n", "raw/b.md": b"b\n"}
    tree, objects, ids = store.build_tree(None, files)
    commit = make_commit(tree, None, "init\n", b"T <t@example.com>", int(time.time()), 0)
    store.write_durably([*objects, commit])
    compare_and_swap(tmp_path / ".git", None, commit.id, identity=b"T <t@example.com>", message="init")
    for path, data in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    GitIndex(tmp_path / ".git").update(Path(tmp_path), ids, sync=True)
    status = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""
    GitIndex(tmp_path / ".git").update(Path(tmp_path), {"raw/b.md": None}, sync=True)
    status = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout.splitlines() == ["D  raw/b.md", "?? raw/"]


_names = st.binary(min_size=1, max_size=6).filter(lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b".."))
# ids that differ from others only in their last bytes, full of NULs and spaces
_ids = st.sampled_from([b"\0" * 20, b"\0" * 19 + b"\1", b" " * 20, b" " * 19 + b"!", b"\x00 a\x00" * 5])
_entries = st.dictionaries(_names, st.tuples(st.sampled_from([0o100644, 0o100755, 0o040000]),
                                             st.one_of(st.binary(min_size=20, max_size=20), _ids)), max_size=40)


@pytest.fixture(scope="module")
def bare_store(tmp_path_factory):
    return ObjectStore(Repo.init(str(tmp_path_factory.mktemp("difftree"))).object_store)


@example(base={b"m": (0o100644, b"\0" * 20), b"n": (0o100644, b" " * 20)}, edits=[(b"m", (0o100644, b"\0" * 19 + b"\1"))])
@example(base={b"m": (0o100644, b" " * 20), b"n": (0o100644, b"\0" * 20)}, edits=[(b"n", (0o100644, b"\0" * 19 + b"\1"))])
@settings(max_examples=300, deadline=None)
@given(base=_entries, edits=st.lists(st.tuples(_names, st.one_of(st.none(), st.tuples(
    st.sampled_from([0o100644, 0o040000]), _ids))),
    max_size=6))
def test_diff_tree_of_raw_encodings_equals_the_full_comparison(bare_store, base, edits):
    """diff_tree decodes only the bytes between the common prefix and suffix: it must find exactly
    the entries that differ, whatever the names and ids (ids full of NULs and spaces included)."""
    from dulwich.objects import Tree

    store = bare_store
    new = dict(base)
    for name, value in edits:
        if value is None:
            new.pop(name, None)
        else:
            new[name] = value
    ids = []
    for entries in (base, new):
        tree = Tree()
        for name, (mode, raw_id) in entries.items():
            tree.add(name, mode, raw_id.hex().encode())
        store.store.add_object(tree)
        ids.append(tree.id)
    hexed = [{n: (m, i.hex().encode()) for n, (m, i) in e.items()} for e in (base, new)]
    expected = {n: (hexed[0].get(n), hexed[1].get(n)) for n in hexed[0].keys() | hexed[1].keys()
                if hexed[0].get(n) != hexed[1].get(n)}
    assert store.diff_tree(ids[0], ids[1]) == expected
    assert store.diff_tree(ids[1], ids[0]) == {n: (b, a) for n, (a, b) in expected.items()}
    assert store.diff_tree(None, ids[1]) == {n: (None, v) for n, v in hexed[1].items()}


def test_index_records_sliced_from_git_written_index_equal_dulwich_decoding(tmp_path):
    """The fast v2 reader slices the same entries dulwich decodes, from an index real git wrote
    (with its cached-tree extension), and leaves other versions to dulwich."""
    from openkb_git.git.index import _split_v2

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    names = ["a.md", "d/\u00fc x.md", "d/e/" + "n" * 200 + ".md", "z"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "x"],
                   check=True)
    data = (tmp_path / ".git" / "index").read_bytes()
    index = GitIndex(tmp_path / ".git")
    sliced = _split_v2(data)
    assert sliced == index._decode_with_dulwich(data)
    assert sorted(sliced) == sorted(n.encode() for n in names)
    subprocess.run(["git", "-C", str(tmp_path), "update-index", "--index-version", "4"], check=True)
    assert _split_v2((tmp_path / ".git" / "index").read_bytes()) is None  # v4: left to dulwich


def test_index_with_a_merge_conflict_is_refused(tmp_path):
    from openkb_git.git.index import IndexConflictError

    def g(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=T", "-c", "user.email=t@e", *args],
                       capture_output=True, check=False)

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    (tmp_path / "f.md").write_text("base\n")
    g("add", "f.md"), g("commit", "-qm", "base"), g("checkout", "-qb", "other")
    (tmp_path / "f.md").write_text("other\n")
    g("commit", "-qam", "other"), g("checkout", "-q", "main")
    (tmp_path / "f.md").write_text("main\n")
    g("commit", "-qam", "main"), g("merge", "other")
    with pytest.raises(IndexConflictError, match="f.md"):
        GitIndex(tmp_path / ".git").paths()


def test_index_patched_in_place_equals_index_rewritten_from_all_entries(tmp_path):
    """A process that never read the index (recovery) splices entries into the file by bisection;
    the bytes must equal a full rewrite, for inserts, deletes and changes anywhere, and real git
    must read the result (EOIE extension included) with a clean status."""
    from openkb_git.git.index import entries_end

    rng = random.Random(5)
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    folders, stems = ["raw", "wiki/sources", "wiki/concepts", ".openkb/registry"], ["a", "b", "doc", "x y", "Z", "\u00e9"]
    names = sorted({f"{rng.choice(folders)}/{rng.choice(stems)}{rng.randint(0, 9999)}.md" for _ in range(600)})

    def put(path, text):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
        return blob_id(text.encode())

    GitIndex(tmp_path / ".git").update(tmp_path, {n: put(n, n) for n in names}, sync=False)
    present = set(names)
    for round_ in range(25):
        changes = {}
        for _ in range(rng.randint(1, 9)):
            if rng.random() < 0.3 and present:
                path = rng.choice(sorted(present))
                changes[path] = None
            else:
                path = rng.choice(sorted(present)) if rng.random() < 0.5 and present else \
                    f"{rng.choice(['raw', 'wiki/new', 'a'])}/{rng.randint(0, 99999)}.md"
                changes[path] = put(path, f"{path} {round_}")
        reference = GitIndex(tmp_path / ".git")
        reference.paths()  # loaded: the full rewrite
        before = (tmp_path / ".git" / "index").read_bytes()
        reference.update(tmp_path, changes, sync=False)
        expected = (tmp_path / ".git" / "index").read_bytes()
        (tmp_path / ".git" / "index").write_bytes(before)
        fresh = GitIndex(tmp_path / ".git")
        encoded = {path: encode_entry(path.encode(), os.lstat(tmp_path / path), sha)
                   for path, sha in changes.items() if sha is not None}
        assert fresh._patch_file(changes, encoded, sync=False), round_
        assert (tmp_path / ".git" / "index").read_bytes() == expected, round_
        assert entries_end(expected) is not None
        for path, sha in changes.items():
            if sha is None:
                present.discard(path)
                (tmp_path / path).unlink(missing_ok=True)
            else:
                present.add(path)
    listed = subprocess.run(["git", "-C", str(tmp_path), "ls-files", "-s"], capture_output=True, text=True, check=True)
    assert len(listed.stdout.splitlines()) == len(present)
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)  # git rewrites it: no EOIE of ours
    data = (tmp_path / ".git" / "index").read_bytes()
    if entries_end(data) is None:
        assert not GitIndex(tmp_path / ".git")._patch_file({names[0]: None}, {}, sync=False)
        assert (tmp_path / ".git" / "index").read_bytes() == data  # refused without writing


@pytest.mark.parametrize("one_pack", [False, True], ids=["loose", "in-a-group-pack"])
def test_large_trees_deflated_in_reused_pieces_are_valid_loose_objects(tmp_path, one_pack):
    """Trees over CHUNKED_TREE_BYTES are compressed piece by piece (pieces reused between
    commits), as loose objects and as the entries of a group commit's pack: git must read
    every version, and fsck must accept them."""
    from openkb_git.git.objects import CHUNKED_TREE_BYTES, _pieces

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store = ObjectStore(Repo(str(tmp_path)).object_store)
    rng = random.Random(3)
    tree = base = None
    big = []
    for i in range(6):
        changes = {f"wiki/sources/doc-{rng.randint(0, 99999):05d}.md": b"v%d" % i for _ in range(3)}
        if i == 0:
            changes.update({f"wiki/sources/doc-{j:05d}.md": b"%d" % j for j in range(2500)})
        tree, objects, _ids = store.build_tree(tree, changes)
        big += [o.id for o in objects if o.type_name == b"tree" and len(o.raw) >= CHUNKED_TREE_BYTES]
        commit = make_commit(tree, base, f"c{i}\n", b"T <t@example.com>", int(time.time()), 0)
        store.write_durably([*objects, commit], one_pack=one_pack)
        compare_and_swap(tmp_path / ".git", base, commit.id, identity=b"T <t@example.com>", message=f"c{i}")
        base = commit.id
    assert len(big) == 6 and _pieces
    loose = [sha for sha in big if (tmp_path / ".git" / "objects" / sha[:2].decode() / sha[2:].decode()).exists()]
    assert len(loose) == (0 if one_pack else 6)
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    for sha in big:
        listed = subprocess.run(["git", "-C", str(tmp_path), "ls-tree", sha.decode()], capture_output=True, text=True,
                                check=True).stdout.splitlines()
        assert len(listed) == len(store.tree_entries(sha)) >= 2500


def test_parsed_trees_kept_are_bounded_in_entries_not_only_in_count(tmp_path, monkeypatch):
    """A group of commits makes five big trees per commit: the cache of parsed trees, bounded
    only by count (256), held 77 MB of tables at 7,425 documents. It is bounded in entries too,
    and keeps the latest versions (each commit edits the one before)."""
    from openkb_git.git import objects

    monkeypatch.setattr(objects, "TREE_CACHE_ENTRIES", 5_000)
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store = ObjectStore(Repo(str(tmp_path)).object_store)
    tree, _objects, _ids = store.build_tree(None, {f"wiki/sources/d{j}.md": b"%d" % j for j in range(1_000)})
    trees = [tree]
    for i in range(20):
        tree, _objects, _ids = store.build_tree(tree, {f"wiki/sources/n{i}.md": b"new"})
        trees.append(tree)
    assert sum(len(entries) for entries in store._trees.values()) <= 5_000
    sources = store.lookup(tree, "wiki/sources")[1]
    assert sources in store._trees and len(store._trees[sources]) == 1_020  # the latest is kept
    assert len(store._trees) >= 3


@pytest.mark.parametrize("one_pack", [False, True], ids=["loose", "in-a-group-pack"])
def test_large_texts_deflated_in_reused_pieces_are_read_back_by_git(tmp_path, monkeypatch, one_pack):
    """wiki/index.md gets a line per document, and each version was deflated whole (18 ms at
    7,425 pages): big text blobs are deflated from reused pieces too, cut by their content, so
    a line inserted deflates only the pieces around it. Git reads every version; fsck accepts
    them; a binary blob is deflated whole."""
    from openkb_git.git import objects

    monkeypatch.setattr(objects, "_pieces", OrderedDict())  # none from an earlier test
    monkeypatch.setattr(objects, "_pieces_size", 0)
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store = ObjectStore(Repo(str(tmp_path)).object_store)
    rng = random.Random(5)
    words = ["list", "files", "of", "the", "archive", "print", "show", "network", "disk", "user"]
    lines = [f"- [[summaries/doc-{i:05d}]] — {' '.join(rng.choices(words, k=rng.randint(3, 12)))}.\n"
             for i in range(1_500)]
    tree = base = None
    versions = []
    for i in range(8):
        lines.insert(rng.randrange(len(lines)), f"- [[summaries/new-{i}]] — a line inserted ({i}).\n")
        text = "".join(lines).encode("utf-8")
        before = len(objects._pieces)
        tree, made, _ids = store.build_tree(tree, {"wiki/index.md": text})
        commit = make_commit(tree, base, f"c{i}\n", b"T <t@example.com>", int(time.time()), 0)
        store.write_durably([*made, commit], one_pack=one_pack)
        compare_and_swap(tmp_path / ".git", base, commit.id, identity=b"T <t@example.com>", message=f"c{i}")
        new = len(objects._pieces) - before
        assert new >= len(text) // 8_192 if i == 0 else new <= 4, (i, new)
        versions.append((commit.id.decode(), text))
        base = commit.id
    binary = os.urandom(64 * 1024)
    before = len(objects._pieces)
    tree, made, ids = store.build_tree(tree, {"raw/blob.bin": b"\0" + binary})
    store.write_durably(made, one_pack=one_pack)
    assert len(objects._pieces) == before
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    for sha, text in versions:
        shown = subprocess.run(["git", "-C", str(tmp_path), "show", f"{sha}:wiki/index.md"], capture_output=True,
                               check=True).stdout
        assert shown == text
    shown = subprocess.run(["git", "-C", str(tmp_path), "cat-file", "blob", ids["raw/blob.bin"].decode()],
                           capture_output=True, check=True).stdout
    assert shown == b"\0" + binary


def test_a_group_pack_stores_each_version_of_a_big_file_as_a_delta_git_reads(tmp_path):
    """A group of commits writes up to 32 versions of index.md and of the big folders' trees
    into one pack; stored whole, Git never tried a delta between them (same pack), so merges and
    the automatic gc kept them whole. Each version is a REF_DELTA against the one before it in
    the pack (chains at most MAX_GROUP_DELTA_DEPTH): Git and dulwich read every version."""
    from openkb_git.git.objects import MAX_GROUP_DELTA_DEPTH

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store = ObjectStore(Repo(str(tmp_path)).object_store)
    rng = random.Random(9)
    lines = [f"- [[summaries/doc-{i:05d}]] — page {rng.random()}.\n" for i in range(2_000)]
    sources = {f"wiki/sources/doc-{i:05d}.md": b"%d" % i for i in range(2_000)}
    tree = base = None
    made, versions = [], []
    for i in range(24):
        lines.insert(rng.randrange(len(lines)), f"- [[summaries/new-{i}]] — inserted {i}.\n")
        text = "".join(lines).encode("utf-8")
        changes = {"wiki/index.md": text, f"wiki/sources/new-{i}.md": b"new %d" % i, **(sources if i == 0 else {})}
        tree, objects_, _ids = store.build_tree(tree, changes)
        store.stage(objects_)
        commit = make_commit(tree, base, f"c{i}\n", b"T <t@example.com>", 1_700_000_000 + i, 0)
        made += [*objects_, commit]
        versions.append((commit.id.decode(), text))
        base = commit.id
    written = store.write_durably(made, one_pack=True)
    store.unstage()
    compare_and_swap(tmp_path / ".git", None, base, identity=b"T <t@example.com>", message="group")
    pack = tmp_path / ".git" / "objects" / "pack" / f"{written.pack}.idx"
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict", "--full"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    verify = subprocess.run(["git", "-C", str(tmp_path), "verify-pack", "-v", str(pack)], capture_output=True,
                            text=True, check=True).stdout
    chains = {int(n): int(count) for n, count in re.findall(r"chain length = (\d+): (\d+) objects?", verify)}
    assert sum(chains.values()) >= 30  # most of index.md's versions and of the sources folder's trees
    assert max(chains) <= MAX_GROUP_DELTA_DEPTH
    # A version of the sources folder adds one entry: its delta costs about that entry, not the
    # piece around it (13 KB of object ids: they do not compress).
    tree_deltas = [int(size) for kind, size in re.findall(r"^[0-9a-f]{40} (tree) +\d+ (\d+) \d+ \d+ [0-9a-f]{40}$",
                                                           verify, re.M)]
    assert len(tree_deltas) >= 15 and max(tree_deltas) < 400, tree_deltas
    whole = sum(len(text) for _sha, text in versions)
    assert pack.with_suffix(".pack").stat().st_size < whole / 4  # whole, the pack is above 1.5x that
    fresh = ObjectStore(Repo(str(tmp_path)).object_store)
    for i, (sha, text) in enumerate(versions):
        shown = subprocess.run(["git", "-C", str(tmp_path), "show", f"{sha}:wiki/index.md"], capture_output=True,
                               check=True).stdout
        assert shown == text
        tree_sha = fresh.get(sha.encode()).tree
        assert fresh.read_path(tree_sha, "wiki/index.md") == text
        assert len(fresh.list_dir(tree_sha, "wiki/sources")) == 2_000 + i + 1


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), kind=st.sampled_from([b"blob", b"tree"]), edits=st.integers(0, 4))
def test_a_new_versions_pieces_found_from_the_old_ones_are_the_pieces_a_full_cut_finds(seed, kind, edits):
    """A group pack's delta search cuts a new version only where it differs from the version
    before it (the cuts in what both share at the start and at the end are the old ones), a
    text's bytes classed a window at a time: the pieces must be exactly those `_piece_ends`
    finds in the whole version, whatever was edited (insertions, deletions, replacements at
    both ends, in the middle, across a window's edge), or the pieces would not be reused."""
    from openkb_git.git.objects import _Cuts, _piece_ends, _spans_after

    rng = random.Random(seed)
    if kind == b"blob":
        lines = [f"- [[summaries/d{rng.randrange(10**6)}]] — {'word ' * rng.randrange(12)}"
                 f"{rng.choice(['.', '', '!', 'x.'])}\n".encode() for _ in range(rng.randrange(400, 4000))]
    else:
        lines = [b"100644 d%d.md\0" % rng.randrange(10**6) + rng.randbytes(20) for _ in range(rng.randrange(600, 6000))]
    old = b"".join(lines)
    for _ in range(edits):
        at = rng.choice([0, len(lines) - 1, rng.randrange(len(lines))])
        how = rng.randrange(3)
        if how == 0:
            lines.insert(at, lines[rng.randrange(len(lines))][::-1] if kind == b"blob" else b"40000 n\0" + rng.randbytes(20))
        elif how == 1 and len(lines) > 1:
            del lines[at]
        else:
            lines[at] = lines[at][:-3] + b"..\n" if kind == b"blob" else lines[at][:-20] + bytes(20)
    new = b"".join(lines)
    if edits == 4:  # one byte changed right at one of old's cuts (in or just after its mark)
        ends = list(_piece_ends(old, kind))
        at = min(max(0, rng.choice(ends) - rng.randrange(-2, 5)), len(new) - 1)
        new = new[:at] + bytes([new[at] ^ rng.choice([1, 0x2E, 0x40])]) + new[at + 1:]
    cut = _Cuts(old, kind)
    old_spans, start = [], 0
    while start < len(old):
        end = cut.end_after(start)
        old_spans.append((start, end, hash(old[start:end])))
        start = end
    assert [end for _s, end, _h in old_spans] == list(_piece_ends(old, kind))
    cuts = _Cuts(new, kind)
    spans = _spans_after(new, cuts, cuts.end_after(0), old, old_spans)
    assert [end for _s, end, _h, _o in spans] == list(_piece_ends(new, kind))
    for start, end, h, offset in spans:
        assert h == hash(new[start:end])
        assert offset < 0 or old[offset:offset + end - start] == new[start:end]


@pytest.mark.parametrize("straddle", range(-5, 6))
def test_text_cuts_found_a_window_at_a_time_include_a_mark_across_the_windows_edge(straddle):
    """`_Cuts` classes a text's bytes a window at a time: a cut mark lying across the end of a
    window is found as a search of the whole text finds it."""
    from openkb_git.git.objects import _CUT_CLASSES, _CUT_WINDOW, _MIN_PIECE, _TEXT_CUT, _Cuts, _piece_ends

    ones = [b for b in b"abcdefghijklmnopqrstuvwxyz" if _CUT_CLASSES[b] == 1]
    filler = b"x" * 7 + b"..\n"  # "..\n": no mark (a mark's first two bytes are of class 1)
    assert filler.translate(_CUT_CLASSES).find(_TEXT_CUT) < 0
    mark_end = _MIN_PIECE + _CUT_WINDOW + straddle  # the first window is [_MIN_PIECE, +_CUT_WINDOW)
    text = (filler * (mark_end // len(filler) + 1))[:mark_end - 4] + bytes([ones[0], ones[1]]) + b".\n"
    text += filler * 5000
    assert text[:mark_end].translate(_CUT_CLASSES).endswith(_TEXT_CUT)
    cuts, start, ends = _Cuts(text, b"blob"), 0, []
    while start < len(text):
        start = cuts.end_after(start)
        ends.append(start)
    assert ends == list(_piece_ends(text, b"blob"))
    assert ends[0] == mark_end


def test_path_follower_agrees_with_lookup_along_a_history(tmp_path):
    """blame's PathFollower carries a path's entry from tree to parent tree without decoding the
    folder when the bytes around it are shared: it must answer exactly what lookup answers."""
    from openkb_git.git.objects import PathFollower

    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store = ObjectStore(Repo(str(tmp_path)).object_store)
    rng = random.Random(11)
    names = [f"wiki/concepts/c{i:03d}.md" for i in range(300)]
    tree, trees = None, []
    for i in range(60):
        changes = {rng.choice(names): b"v%d %d" % (i, rng.random() * 1e6) for _ in range(rng.randint(1, 3))}
        if i == 0:
            changes.update({n: n.encode() for n in names[::2]})
        if rng.random() < 0.3:
            changes[rng.choice(names)] = None
        tree, objects, _ids = store.build_tree(tree, changes)
        store.write_durably(objects)
        trees.append(tree)
    for path in [names[0], names[1], names[150], names[299], rng.choice(names), "wiki/concepts/absent.md"]:
        follower = PathFollower(store, path)
        for t in reversed(trees):  # newest to oldest, as blame walks
            assert follower.lookup(t) == store.lookup(t, path), path


@settings(max_examples=500, deadline=None)
@given(a=st.binary(max_size=40), b=st.binary(max_size=40), skip=st.integers(0, 40))
def test_common_prefix_and_suffix_equal_a_plain_scan(a, b, skip):
    from openkb_git.git.objects import common_prefix, common_suffix

    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    assert common_prefix(a, b) == n == common_prefix(list(a), list(b))
    skip = min(skip, n)
    m = 0
    while m < min(len(a), len(b)) - skip and a[len(a) - 1 - m] == b[len(b) - 1 - m]:
        m += 1
    assert common_suffix(a, b, skip) == m == common_suffix(list(a), list(b), skip)


@example(entries={b"m": (0o100644, b"\0" * 20), b"n": (0o100644, b" m\0" + b"\1" * 17)}, name=b"m")
@example(entries={b"a": (0o100644, b"x m\0" + b"\1" * 16), b"m": (0o100644, b"\0" * 20)}, name=b"m")
@settings(max_examples=300, deadline=None)
@given(entries=st.dictionaries(_names, st.tuples(st.sampled_from([0o100644, 0o040000]), st.one_of(
    st.binary(min_size=20, max_size=20), _ids,
    _names.map(lambda n: (b" " + n + b"\0" + b"\1" * 20)[:20]))), max_size=30),
    name=_names)
def test_locate_entry_finds_exactly_the_named_entry(bare_store, entries, name):
    """PathFollower's search for ` name NUL` in a raw tree: found only where an entry starts,
    even when other entries' ids hold those bytes."""
    from dulwich.objects import Tree

    from openkb_git.git.objects import _locate_entry

    tree = Tree()
    for n, (mode, raw_id) in entries.items():
        tree.add(n, mode, raw_id.hex().encode())
    raw = tree.as_raw_string()
    found, span = _locate_entry(raw, name)
    if name in entries:
        mode, raw_id = entries[name]
        assert found == (mode, raw_id.hex().encode())
        assert raw[span[0]:span[1]].split(b" ", 1)[1].startswith(name + b"\0") and span[1] - span[0] == len(
            b"%o" % mode) + 1 + len(name) + 1 + 20
    else:
        assert (found, span) == (None, None)


def _good_tree(n: int) -> bytes:
    return serialize_tree({b"doc-%04d.md" % i: (0o100644, blob_id(b"%d" % i)) for i in range(n)})


@pytest.mark.parametrize("garble, read_past", [
    (lambda raw: raw[:-7], "doc-0299.md"),                               # the last entry's id cut short
    (lambda raw: raw[:40] + b"\xff" * 3 + raw[43:], "doc-0001.md"),      # a mode overwritten
    (lambda raw: raw.replace(b"100644 doc-0150", b"1006x4 doc-0150"), "doc-0150.md"),  # a mode not octal
    (lambda raw: raw.replace(b"100644 doc-0150.md\0", b"100644doc-0150.md\0"), "doc-0151.md"),  # no space
    (lambda raw: raw + b"100644 tail-without-nul", None),               # a trailing entry, no NUL nor id
], ids=["truncated", "overwritten", "mode", "no-space", "trailing"])
def test_every_tree_reader_reports_a_malformed_tree_as_object_damage(tmp_path, garble, read_past):
    """The one tree-entry walk (objects.tree_walk) checks its bounds for every reader: parsing,
    diffing, following a path, editing. A malformed tree is ObjectDamageError
    (exit 6, naming the tree), never a traceback, an IndexError or a silently short listing.
    (A path follower reads a folder only up to the entry it looks for: it reports the damage
    it reads, ``read_past`` the entry whose lookup reads the damaged bytes.)"""
    from openkb_git.git.objects import ObjectDamageError, PathFollower, RawObject

    store = ObjectStore(Repo.init(str(tmp_path)).object_store)
    good = RawObject(b"tree", _good_tree(300))
    bad = RawObject(b"tree", garble(good.raw))
    assert bad.raw != good.raw
    store.write_durably([good, bad])
    readers = {
        "tree_entries": lambda: store.tree_entries(bad.id),
        "diff_tree": lambda: store.diff_tree(good.id, bad.id),
        "diff_tree reversed": lambda: store.diff_tree(bad.id, good.id),
        "diff_tree from empty": lambda: store.diff_tree(None, bad.id),
        "edit": lambda: store.build_tree(bad.id, {"doc-0100.md": b"new"}),
    }
    if read_past:
        readers["follow"] = lambda: PathFollower(store, read_past).lookup(bad.id)
    for what, read in readers.items():
        with pytest.raises(ObjectDamageError, match=bad.id.decode()):
            read()
            print("no damage reported by", what)


def _open_deleted_files(under: Path) -> list[str]:
    """Files below ``under`` this process still holds open or mapped after their deletion."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(under)) and target.endswith(" (deleted)"):
            held.append(target)
    held += [line.split(None, 5)[-1] for line in Path("/proc/self/maps").read_text().splitlines()
             if str(under) in line and line.endswith(" (deleted)")]
    return held


def test_packs_merged_away_are_closed_by_the_store(tmp_path):
    """write_durably merges small packs; the packs it removed must leave dulwich's cache (their
    files and maps closed), through dulwich's public `packs` rescan (objects._forget_packs):
    fails if dulwich stops closing the cached packs whose files are gone."""
    from openkb_git.git import packs
    from openkb_git.git.objects import RawObject

    store = ObjectStore(Repo.init(str(tmp_path)).object_store)
    pack_dir = tmp_path / ".git" / "objects" / "pack"
    blobs = []
    for i in range(packs.MERGE_AT + 2):
        blob = RawObject(b"blob", b"content %d\n" % i)
        store.write_durably([blob])
        assert _open_deleted_files(pack_dir) == []  # before any read could make dulwich rescan
        blobs.append(blob)
        for seen in blobs:  # read every pack, so dulwich opens and maps each one
            assert store.blob_bytes(seen.id) == seen.raw
    assert len(list(pack_dir.glob("*.pack"))) < len(blobs), "no merge happened"
    assert all(store.blob_bytes(blob.id) == blob.raw for blob in blobs)


# A reference-transaction hook that holds a plain `git commit` in the middle of its ref update:
# it has locked refs/heads/main (main.lock exists) and not yet moved it. It says so (touches
# $RACE_HELD) and waits until the test lets it go on ($RACE_GO).
_HOLD_HOOK = """#!/bin/sh
[ "$1" = prepared ] && [ -n "$RACE_HELD" ] || exit 0
cat >/dev/null
touch "$RACE_HELD"
while [ ! -e "$RACE_GO" ]; do sleep 0.01; done
"""


def _wait_for(what, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_plain_git_commit_racing_the_ref_update_is_never_lost(tmp_path):
    """`git commit` holds refs/heads/main.lock while openkb, having checked the branch, waits for
    that lock; git moves the branch and lets go; openkb gets the lock. Its re-check under the
    lock (git/refs.py compare_and_swap) must see the branch moved: git's commit stays on the
    branch, openkb's ingest refuses with what happened (or lands on top of it), and nothing of
    either is lost. Deterministic: a git hook holds git in the window, and openkb's fault trace
    shows when openkb is waiting for the lock."""
    import sys

    from conftest import TLDR, git, run_openkb

    kb = tmp_path / "kb"
    run_openkb("init", kb, check=True)
    before = git(kb, "rev-parse", "HEAD").strip()
    hook = kb / ".git" / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(_HOLD_HOOK)
    hook.chmod(0o755)
    (kb / "by-hand.txt").write_text("a note committed with plain git\n")
    git(kb, "add", "by-hand.txt")
    held, go, trace = tmp_path / "held", tmp_path / "go", tmp_path / "trace"
    hand = subprocess.Popen(["git", "-C", str(kb), "commit", "-q", "-m", "plain git commit"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "RACE_HELD": str(held), "RACE_GO": str(go)})
    try:
        _wait_for(held.exists)
        assert (kb / ".git" / "refs" / "heads" / "main.lock").exists()
        doc = tmp_path / "in" / "tar.md"
        doc.parent.mkdir()
        doc.write_bytes((TLDR / "common" / "tar.md").read_bytes())
        env = {**os.environ, "OPENKB_FAULT_TRACE": str(trace), "OPENKB_GIT_LOCK_WAIT": "60"}
        add = subprocess.Popen([sys.executable, "-m", "openkb_git", "add", str(doc)], cwd=kb, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # openkb checked the branch (still at `before`) and tried to take the lock git holds.
        _wait_for(lambda: trace.exists() and "refs/heads/main.lock" in trace.read_text())
        assert add.poll() is None, add.communicate()
    finally:
        go.touch()
    out, err = add.communicate(timeout=120)
    assert hand.wait(timeout=60) == 0, hand.stdout.read()
    assert "Traceback" not in err
    head = git(kb, "rev-parse", "HEAD").strip()
    log = git(kb, "log", "--format=%H %s", "main")
    hand_commit = [line.split()[0] for line in log.splitlines() if line.endswith(" plain git commit")]
    assert hand_commit, log  # git's commit is on the branch
    assert git(kb, "rev-parse", f"{hand_commit[0]}^").strip() == before
    assert git(kb, "show", "main:by-hand.txt") == "a note committed with plain git\n"
    if add.returncode == 0:  # retried on top of git's commit
        assert git(kb, "cat-file", "-e", "main:raw/tar.md", check=False) == "", log
    else:
        assert "moved while committing" in err and "run the command again" in err, out + err
        assert head == hand_commit[0]
        again = run_openkb("add", doc, cwd=kb)
        assert again.returncode == 0, again.stdout + again.stderr
        assert git(kb, "merge-base", "--is-ancestor", hand_commit[0], "main") == ""
