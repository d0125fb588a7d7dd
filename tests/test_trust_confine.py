"""Issue #14, cases 1, 9, 17, 18, 19: confinement of paths that come from data, names within
file-name limits, fsck coverage, reads that never cry wolf, refusal of the KB's own files.

Every test replays the reported case with real git, real files and real `openkb` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TLDR, assert_consistent, copy_tldr, git, run_openkb

DOCS = ["7z.md", "tar.md", "ls.md"]


def _kb_with(tmp_path: Path, names=DOCS) -> tuple[Path, Path]:
    kb = tmp_path / "kb"
    run_openkb("init", kb, check=True)
    src = copy_tldr(tmp_path / "src", names)
    run_openkb("add", *[src / n for n in names], cwd=kb, check=True)
    return kb, src


def _head(kb: Path) -> str:
    return git(kb, "rev-parse", "HEAD").strip()


def _tamper_record(kb: Path, doc: str, extra: str, field: str = "files") -> None:
    path = kb / ".openkb" / "registry" / f"{doc}.json"
    record = json.loads(path.read_text())
    if field == "files":
        record["files"].append(extra)
    else:
        record[field] = extra
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    git(kb, "commit", "-qam", f"tamper {doc}")


def _clone(kb: Path, where: Path) -> Path:
    where.mkdir()
    clone = where / "kb"
    subprocess.run(["git", "clone", "-q", str(kb), str(clone)], check=True)
    return clone


def _assert_no_victim_in_history(kb: Path, text: str) -> None:
    for sha in git(kb, "rev-list", "--all").split():
        assert "victim" not in git(kb, "ls-tree", "-r", "--name-only", sha)
    assert text not in git(kb, "log", "-p", "--all")


# -- case 1: confinement --------------------------------------------------------------------------


def test_remove_of_a_record_naming_a_path_outside_the_kb_is_refused_in_a_clone(tmp_path):
    kb, _src = _kb_with(tmp_path)
    _tamper_record(kb, "7z", "../victim.txt")
    clone = _clone(kb, tmp_path / "elsewhere")
    victim = clone.parent / "victim.txt"
    victim.write_text("the user's own file next to the clone\n")
    head = _head(clone)

    proc = run_openkb("remove", "7z", cwd=clone)

    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert ".openkb/registry/7z.json" in proc.stderr and "../victim.txt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert victim.read_text() == "the user's own file next to the clone\n"
    assert _head(clone) == head
    _assert_no_victim_in_history(clone, "the user's own file")
    assert_consistent(clone)
    fsck = run_openkb("fsck", cwd=clone)
    assert fsck.returncode == 1 and "../victim.txt" in fsck.stdout, fsck.stdout


@pytest.mark.parametrize("field", ["files", "raw_path", "summary_path"])
def test_update_of_a_doc_whose_record_is_unsafe_fails_that_file_only(tmp_path, field):
    kb, src = _kb_with(tmp_path)
    _tamper_record(kb, "7z", "../victim.txt" if field == "files" else "/tmp/victim.txt", field)
    clone = _clone(kb, tmp_path / "elsewhere")
    victim = clone.parent / "victim.txt"
    victim.write_text("precious\n")
    (src / "7z.md").write_text((src / "7z.md").read_text() + "\nA changed line.\n")
    copy_tldr(src, ["cp.md"])
    head = _head(clone)

    proc = run_openkb("add", src / "7z.md", src / "cp.md", cwd=clone)

    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert ".openkb/registry/7z.json" in out and "Traceback" not in out
    assert victim.read_text() == "precious\n"
    log = git(clone, "log", "--format=%s", f"{head}..HEAD").splitlines()
    assert log == ["add: cp.md"], log  # the other file of the run still went in
    _assert_no_victim_in_history(clone, "precious")
    assert_consistent(clone)


def _commit_tree(kb: Path, tree: str, parent: str, message: str) -> str:
    sha = subprocess.run(["git", "-C", str(kb), "commit-tree", tree, "-p", parent, "-m", message],
                         capture_output=True, text=True, check=True).stdout.strip()
    git(kb, "update-ref", "refs/heads/main", sha)
    return sha


def _tree_with_dotdot(kb: Path, base_tree: str, content: str) -> str:
    blob = subprocess.run(["git", "-C", str(kb), "hash-object", "-w", "--stdin"], input=content,
                          capture_output=True, text=True, check=True).stdout.strip()
    inner = subprocess.run(["git", "-C", str(kb), "mktree"], input=f"100644 blob {blob}\tvictim.txt\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    listing = git(kb, "ls-tree", base_tree)
    return subprocess.run(["git", "-C", str(kb), "mktree"], input=listing + f"040000 tree {inner}\t..\n",
                          capture_output=True, text=True, check=True).stdout.strip()


def test_revert_of_a_commit_whose_tree_climbs_out_is_refused(tmp_path):
    kb, _src = _kb_with(tmp_path)
    head = _head(kb)
    clean_tree = git(kb, "rev-parse", "HEAD^{tree}").strip()
    bad = _commit_tree(kb, _tree_with_dotdot(kb, clean_tree, "written outside\n"), head, "edit: crafted\n\nOpenKB-Op: edit")
    undo = _commit_tree(kb, clean_tree, bad, "edit: undo\n\nOpenKB-Op: edit")
    victim = tmp_path / "victim.txt"

    proc = run_openkb("revert", undo[:12], cwd=kb)

    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "../victim.txt" in proc.stderr and undo[:7] in proc.stderr and "Traceback" not in proc.stderr
    assert not victim.exists()
    assert _head(kb) == undo


def test_fsck_repair_with_a_dotdot_entry_in_head_writes_nothing_outside(tmp_path):
    kb, src = _kb_with(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    _commit_tree(kb, _tree_with_dotdot(kb, git(kb, "rev-parse", "HEAD^{tree}").strip(), "theirs\n"), _head(kb),
                 "edit: crafted\n\nOpenKB-Op: edit")
    head = _head(kb)

    check = run_openkb("fsck", cwd=kb)
    repair = run_openkb("fsck", "--repair", cwd=kb)
    copy_tldr(src, ["cp.md"])
    add = run_openkb("add", src / "cp.md", cwd=kb)

    assert victim.read_text() == "mine\n"
    assert check.returncode == 1 and "tree      ..: unsafe entry" in check.stdout, check.stdout
    assert repair.returncode == 1 and "cannot" in repair.stdout and "git reset --keep" in repair.stdout, repair.stdout
    assert "Traceback" not in repair.stderr + add.stderr
    assert add.returncode == 6 and "'..'" in add.stderr, add.stdout + add.stderr  # no commit on top of it
    assert _head(kb) == head
    assert victim.read_text() == "mine\n"


def test_build_tree_refuses_entries_git_refuses(kb):
    from openkb_git.kb import KB
    from openkb_git.paths import UnsafePathError

    store = KB(kb).objects
    for bad in ["../victim.txt", "wiki/./x.md", "raw/.git/config", "raw//x.md", "/etc/passwd", "wiki/.GIT/x"]:
        with pytest.raises(UnsafePathError):
            store.build_tree(None, {bad: b"x"})
    store.build_tree(None, {"raw/ok.md": b"x"})  # a safe path still builds


def test_find_edits_never_reads_a_dotdot_path(tmp_path):
    from openkb_git.kb import KB
    from openkb_git.ops.edits import find_edits

    kb, _src = _kb_with(tmp_path, ["7z.md"])
    (tmp_path / "victim.txt").write_text("secret\n")
    k = KB(kb)
    assert find_edits(k, k.head_tree(), ["../victim.txt", "raw/../../victim.txt"]) == {}
