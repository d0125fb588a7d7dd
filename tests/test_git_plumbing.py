"""The Git layer against real Git: spliced tree encodings, CAS, index entries."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest
from dulwich.repo import Repo

from openkb_git.git.index import GitIndex
from openkb_git.git.objects import ObjectStore, make_commit, serialize_tree
from openkb_git.git.refs import RefMovedError, compare_and_swap, read_branch


def test_spliced_trees_equal_full_encoding_and_pass_fsck(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    repo = Repo(str(tmp_path))
    store = ObjectStore(repo)
    rng = random.Random(7)
    base = tree = None
    for i in range(30):
        changes = {f"d/f{rng.randint(0, 900)}.md": b"x%d" % i for _ in range(5)}
        if i == 0:
            changes.update({f"d/f{j}.md": b"i" for j in range(700)})
            changes.update({f"d/f{j}.md/x": b"i" for j in range(700, 720)})  # dirs sort as "name/"
        changes[f"d/f{rng.randint(0, 700)}.md"] = None
        changes.update({"d/f1.md": b"z", "d/f1.mc": b"q", "d/f1.md-": b"q"})
        tree, objects, blob_ids = store.build_tree(tree, changes)
        for obj in objects:
            if obj.type_name == b"tree":
                assert obj.raw == serialize_tree(store.tree_entries(obj.id))
        commit = make_commit(tree, base, f"c{i}\n", b"T <t@example.com>", int(time.time()), 0)
        store.write_durably([*objects, commit])
        compare_and_swap(tmp_path / ".git", base, commit.id, identity=b"T <t@example.com>", message=f"c{i}")
        base = commit.id
    fsck = subprocess.run(["git", "-C", str(tmp_path), "fsck", "--strict"], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert read_branch(tmp_path / ".git") == base
    with pytest.raises(RefMovedError):
        compare_and_swap(tmp_path / ".git", b"1" * 40, base, identity=b"T <t@example.com>", message="x")


def test_index_entries_make_git_status_clean(tmp_path):
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    store = ObjectStore(Repo(str(tmp_path)))
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
