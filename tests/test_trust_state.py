"""Issue #14, cases 4, 5, 6 and the ref/object part of 13: openkb writes where `git commit`
would, refuses the Git states it does not own, and reports damaged refs and objects as
damage (exit 6, never a new KB, never a traceback). Real git, real processes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from conftest import assert_consistent, copy_tldr, git, run_openkb

EXIT_REFUSED = 5
EXIT_DAMAGED = 6


def _kb_with_docs(kb: Path, tmp_path: Path, names=("ls.md", "cp.md", "mv.md")) -> Path:
    """The KB with one add commit per name; returns the folder holding a not-yet-added page."""
    src = copy_tldr(tmp_path / "src", list(names))
    run_openkb("add", src, cwd=kb, check=True)  # one commit per file
    extra = copy_tldr(tmp_path / "extra", ["tar.md"])
    return extra / "tar.md"


def _rev(kb: Path, ref: str) -> str:
    return git(kb, "rev-parse", ref).strip()


def _all_commits(kb: Path) -> str:
    return git(kb, "rev-list", "--all", "--reflog")


def _snapshot(kb: Path) -> dict[str, bytes]:
    """Every file of the working tree outside .git (the views too)."""
    return {p.relative_to(kb).as_posix(): p.read_bytes() for p in kb.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(kb).parts and not p.name.startswith("ingest.lock")}


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("openkb: error:") == 1, proc.stderr  # one message, no second exception after it


# -- case 4: detached HEAD, another branch ------------------------------------------------------

def test_detached_head_add_is_refused(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path)
    main = _rev(kb, "main")
    git(kb, "checkout", "-q", "HEAD~2")  # detached, the last 2 documents absent from the tree
    before_status = git(kb, "status", "--porcelain")
    before_commits = _all_commits(kb)

    proc = run_openkb("add", page, cwd=kb)
    assert proc.returncode == EXIT_REFUSED, proc.stderr
    assert "detached" in proc.stderr and "git switch main" in proc.stderr
    _no_traceback(proc)
    assert _rev(kb, "main") == main
    assert _all_commits(kb) == before_commits  # no edit commit, no add commit anywhere
    assert git(kb, "status", "--porcelain") == before_status
    # recovery is refused the same way (it would reset paths to the wrong HEAD)
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == EXIT_REFUSED and "git switch main" in proc.stderr

    git(kb, "switch", "-q", "main")
    run_openkb("add", page, cwd=kb, check=True)
    assert_consistent(kb)


def test_add_on_a_feature_branch_commits_there(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    main = _rev(kb, "main")
    git(kb, "checkout", "-q", "-b", "feature")

    proc = run_openkb("add", page, cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert _rev(kb, "main") == main
    assert git(kb, "log", "-1", "--format=%s", "feature").strip() == "add: tar.md"
    assert _rev(kb, "feature^") == main
    assert git(kb, "symbolic-ref", "HEAD").strip() == "refs/heads/feature"
    assert "add: tar.md" in git(kb, "reflog", "show", "feature")
    assert "tar" in run_openkb("list", cwd=kb, check=True).stdout  # reads follow HEAD too
    assert_consistent(kb)  # git status on feature is clean: nothing left staged

    git(kb, "switch", "-q", "main")
    assert "tar" not in run_openkb("list", cwd=kb, check=True).stdout
    run_openkb("recover", cwd=kb, check=True)  # the views (untracked) follow the branch checked out
    assert run_openkb("fsck", cwd=kb).returncode == 0


def test_orphan_branch_beside_history_is_refused(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    main = _rev(kb, "main")
    git(kb, "checkout", "-q", "--orphan", "fresh")
    proc = run_openkb("add", page, cwd=kb)
    assert proc.returncode == EXIT_REFUSED and "git switch main" in proc.stderr, proc.stderr
    _no_traceback(proc)
    assert _rev(kb, "main") == main
    assert git(kb, "rev-parse", "--verify", "-q", "refs/heads/fresh", check=False).strip() == ""


# -- case 5: rebase, merge in progress ---------------------------------------------------------

def test_unfinished_pull_rebase_is_refused(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    notes = kb / "raw" / "notes.txt"
    notes.write_text("base\n")
    git(kb, "add", "raw/notes.txt")
    git(kb, "commit", "-q", "-m", "notes")
    upstream = tmp_path / "upstream"
    subprocess.run(["git", "clone", "-q", str(kb), str(upstream)], check=True)
    (upstream / "raw" / "notes.txt").write_text("theirs\n")
    git(upstream, "commit", "-q", "-am", "upstream notes")
    notes.write_text("ours\n")
    git(kb, "commit", "-q", "-am", "local notes")
    pull = subprocess.run(["git", "-C", str(kb), "pull", "-q", "--rebase", str(upstream), "main"], capture_output=True)
    assert pull.returncode != 0 and (kb / ".git" / "rebase-merge").is_dir()  # stopped on the conflict
    notes.write_text("resolved\n")
    git(kb, "add", "raw/notes.txt")  # resolved, not yet `git rebase --continue`
    main = _rev(kb, "main")
    before = _all_commits(kb)

    proc = run_openkb("add", page, cwd=kb)
    assert proc.returncode == EXIT_REFUSED, proc.stderr
    assert "rebase" in proc.stderr and "git rebase --continue" in proc.stderr and "--abort" in proc.stderr
    _no_traceback(proc)
    assert _rev(kb, "main") == main and _all_commits(kb) == before  # no edit commit, no ingest on the old main
    assert notes.read_text() == "resolved\n"
    assert run_openkb("recover", cwd=kb).returncode == EXIT_REFUSED

    git(kb, "-c", "core.editor=true", "rebase", "--continue")
    run_openkb("add", page, cwd=kb, check=True)  # now onto the rebased main
    assert git(kb, "log", "-2", "--format=%s", "main").split("\n")[:2] == ["add: tar.md", "local notes"]
    assert_consistent(kb)


def test_merge_in_progress_is_refused(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    for name, text in (("raw/a.txt", "a\n"), ("raw/b.txt", "b\n")):
        (kb / name).write_text("base\n")
    git(kb, "add", "raw/a.txt", "raw/b.txt")
    git(kb, "commit", "-q", "-m", "notes")
    git(kb, "checkout", "-q", "-b", "topic")
    (kb / "raw" / "a.txt").write_text("topic\n")
    git(kb, "commit", "-q", "-am", "topic change")
    git(kb, "checkout", "-q", "main")
    (kb / "raw" / "b.txt").write_text("main\n")
    git(kb, "commit", "-q", "-am", "main change")
    git(kb, "merge", "-q", "--no-commit", "--no-ff", "topic")
    assert (kb / ".git" / "MERGE_HEAD").exists()
    main = _rev(kb, "main")
    before = _all_commits(kb)
    staged = git(kb, "status", "--porcelain")

    proc = run_openkb("add", page, cwd=kb)
    assert proc.returncode == EXIT_REFUSED, proc.stderr
    assert "merge is in progress" in proc.stderr and "git merge --abort" in proc.stderr
    _no_traceback(proc)
    assert _rev(kb, "main") == main and _all_commits(kb) == before  # no squashing edit commit
    assert git(kb, "status", "--porcelain") == staged
    assert run_openkb("recover", cwd=kb).returncode == EXIT_REFUSED

    git(kb, "commit", "-q", "--no-edit")
    run_openkb("add", page, cwd=kb, check=True)
    assert_consistent(kb)


def test_other_operations_in_progress_are_refused(kb, tmp_path):
    page = copy_tldr(tmp_path / "src", ["tar.md"]) / "tar.md"
    head = _rev(kb, "main")
    for marker, command in (("CHERRY_PICK_HEAD", "git cherry-pick --abort"), ("REVERT_HEAD", "git revert --abort"),
                            ("BISECT_LOG", "git bisect reset")):
        (kb / ".git" / marker).write_text(head + "\n")  # what git leaves while it waits for the user
        proc = run_openkb("add", page, cwd=kb)
        assert proc.returncode == EXIT_REFUSED and command in proc.stderr, proc.stderr
        assert _rev(kb, "main") == head
        (kb / ".git" / marker).unlink()


# -- case 6 and 13: damaged refs ----------------------------------------------------------------

def _damaged_ref_case(kb: Path, tmp_path: Path, content: bytes, expect: str, commands, *, full=False) -> None:
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    good = _rev(kb, "main")
    history = git(kb, "log", "--format=%H", "main")
    tree = _snapshot(kb)
    (kb / ".git" / "refs" / "heads" / "main").write_bytes(content)

    for args in commands:
        args = [page if arg == "PAGE" else arg for arg in args]
        proc = run_openkb(*args, cwd=kb)
        assert proc.returncode == EXIT_DAMAGED, (args, proc.stdout, proc.stderr)
        _no_traceback(proc)
        assert "refs/heads/main" in proc.stderr and expect in proc.stderr, (args, proc.stderr)
        assert "git reflog show main" in proc.stderr and good in proc.stderr, (args, proc.stderr)
        assert "not a new, empty knowledge base" in proc.stderr
        assert _snapshot(kb) == tree, args  # the working tree is intact (fsck --repair deleted it)
        assert not (kb / ".openkb" / "fsck-backup").exists()
    assert (kb / ".git" / "refs" / "heads" / "main").read_bytes() == content

    # The message's own repair works: then the KB is whole again, history intact.
    match = re.search(r"restore it with `([^`]+)`", proc.stderr)
    assert match and match.group(1) == f"echo {good} > .git/refs/heads/main"
    subprocess.run(match.group(1), shell=True, cwd=kb, check=True)
    assert git(kb, "log", "--format=%H", "main") == history
    assert run_openkb("fsck", cwd=kb).returncode == 0
    if full:
        run_openkb("add", page, cwd=kb, check=True)
        assert_consistent(kb)


def test_empty_branch_ref_is_damage_not_a_new_kb(kb, tmp_path):
    _damaged_ref_case(kb, tmp_path, b"", "is empty", [("add", "PAGE"), ("fsck", "--repair"), ("recover",),
                                                      ("status",), ("log",)], full=True)


def test_garbage_branch_ref_is_damage(kb, tmp_path):
    _damaged_ref_case(kb, tmp_path, b"not a commit id\n", "not a commit id",
                      [("add", "PAGE"), ("fsck", "--repair")])


def test_branch_naming_a_missing_object_is_damage(kb, tmp_path):
    _damaged_ref_case(kb, tmp_path, b"1234567890abcdef1234567890abcdef12345678\n", "which is missing",
                      [("recover",), ("add", "PAGE")])


def test_branch_naming_a_blob_is_damage(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    good = _rev(kb, "main")
    blob = _rev(kb, "main:wiki/index.md")
    (kb / ".git" / "refs" / "heads" / "main").write_text(blob + "\n")
    for args in (("add", page), ("log",)):
        proc = run_openkb(*args, cwd=kb)
        assert proc.returncode == EXIT_DAMAGED and "is a blob, not a commit" in proc.stderr, proc.stderr
        assert good in proc.stderr
        _no_traceback(proc)


def test_deleted_branch_file_with_a_reflog_is_damage(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    good = _rev(kb, "main")
    (kb / ".git" / "refs" / "heads" / "main").unlink()
    proc = run_openkb("add", page, cwd=kb)
    assert proc.returncode == EXIT_DAMAGED and good in proc.stderr, proc.stderr
    _no_traceback(proc)
    assert not (kb / ".git" / "refs" / "heads" / "main").exists()  # no root commit made a new main
    assert (kb / ".git" / "logs" / "refs" / "heads" / "main").read_text().splitlines()[-1].split()[1] == good


# -- case 13: damaged objects -------------------------------------------------------------------

def _pack_holding(kb: Path, sha: str) -> tuple[Path, int]:
    """(pack file, offset) of object ``sha``."""
    for idx in (kb / ".git" / "objects" / "pack").glob("*.idx"):
        with idx.open("rb") as fh:
            listing = subprocess.run(["git", "show-index"], stdin=fh, capture_output=True, text=True).stdout
        for line in listing.splitlines():
            offset, found = line.split()[:2]
            if found == sha:
                return idx.with_suffix(".pack"), int(offset)
    raise AssertionError(f"{sha} is in no pack")


def _flip(path: Path, at: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def test_deleted_pack_index_gives_a_message(kb, tmp_path):
    page = _kb_with_docs(kb, tmp_path, ("ls.md", "cp.md"))
    pack, _offset = _pack_holding(kb, _rev(kb, "HEAD"))
    pack.with_suffix(".idx").unlink()
    tree = _snapshot(kb)
    for args in (("fsck",), ("status",), ("list",), ("show", "cp"), ("add", page), ("fsck", "--repair")):
        proc = run_openkb(*args, cwd=kb)
        assert proc.returncode == EXIT_DAMAGED, (args, proc.stderr)
        _no_traceback(proc)
        assert f"git index-pack .git/objects/pack/{pack.name}" in proc.stderr, (args, proc.stderr)
        assert _snapshot(kb) == tree
    git(kb, "index-pack", str(pack.relative_to(kb)))
    assert run_openkb("fsck", cwd=kb).returncode == 0
    assert_consistent(kb)


def test_flipped_byte_in_a_loose_object_gives_a_message(kb, tmp_path):
    _kb_with_docs(kb, tmp_path, ("ls.md", "cp.md"))
    packs = tmp_path / "packs"
    packs.mkdir()
    for pack in (kb / ".git" / "objects" / "pack").glob("pack-*"):
        shutil.move(pack, packs / pack.name)
    for pack in packs.glob("*.pack"):  # every object loose
        with pack.open("rb") as fh:
            subprocess.run(["git", "-C", str(kb), "unpack-objects", "-q"], stdin=fh, check=True)
    assert run_openkb("fsck", cwd=kb).returncode == 0
    blob = _rev(kb, "HEAD:wiki/summaries/ls.md")
    loose = kb / ".git" / "objects" / blob[:2] / blob[2:]
    _flip(loose, loose.stat().st_size // 2)

    for args in (("show", "ls"), ("blame", "wiki/summaries/ls.md"), ("diff", "HEAD~2"), ("revert", "--dry-run", "ls")):
        proc = run_openkb(*args, cwd=kb)
        assert proc.returncode == EXIT_DAMAGED, (args, proc.stdout, proc.stderr)
        _no_traceback(proc)
        assert f"object {blob}" in proc.stderr and "openkb fsck" in proc.stderr, (args, proc.stderr)
    proc = run_openkb("fsck", cwd=kb)
    assert proc.returncode == 1 and blob in proc.stdout and "Traceback" not in proc.stderr


def test_flipped_byte_in_a_pack_gives_one_message(kb, tmp_path):
    _kb_with_docs(kb, tmp_path, ("ls.md", "cp.md"))
    blob = _rev(kb, "HEAD:wiki/summaries/ls.md")
    pack, offset = _pack_holding(kb, blob)
    _flip(pack, offset + 6)  # past the entry's header: inside its deflated data
    for args in (("blame", "wiki/summaries/ls.md"),):
        proc = run_openkb(*args, cwd=kb)
        assert proc.returncode == EXIT_DAMAGED, (args, proc.stdout, proc.stderr)
        _no_traceback(proc)
        assert f"object {blob}" in proc.stderr, proc.stderr
    proc = run_openkb("fsck", cwd=kb)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_crash_journal_waits_for_the_refused_state_then_recovers(kb, tmp_path):
    """A writer killed past the commit point on a feature branch leaves a journal; while a
    bisect is in progress recovery is refused (nothing reset), after `git bisect reset` it
    finishes the add on that branch."""
    page = _kb_with_docs(kb, tmp_path, ("ls.md",))
    main = _rev(kb, "main")
    git(kb, "checkout", "-q", "-b", "feature")
    proc = run_openkb("add", "--jobs", "1", page, cwd=kb, env={"OPENKB_FAULT_KILL_AT": "ref:moved"}, timeout=120)
    assert proc.returncode == -9, proc.stderr
    journals = list((kb / ".openkb" / "openkb-git" / "journal").glob("*.json"))
    assert journals and git(kb, "log", "-1", "--format=%s", "feature").strip() == "add: tar.md"

    git(kb, "bisect", "start")
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == EXIT_REFUSED and "git bisect reset" in proc.stderr, proc.stderr
    assert list((kb / ".openkb" / "openkb-git" / "journal").glob("*.json")) == journals  # left for after the bisect
    git(kb, "bisect", "reset")

    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert _rev(kb, "main") == main and "tar" in run_openkb("list", cwd=kb, check=True).stdout
    assert_consistent(kb)
