"""`openkb gc` packs the history without changing it; auto gc runs during long adds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import assert_consistent, copy_tldr, git, run_openkb, TLDR


def test_gc_packs_and_keeps_history(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md", "grep.md", "curl.md"]), cwd=kb, check=True)
    head = git(kb, "rev-parse", "HEAD")
    result = json.loads(run_openkb("gc", "--json", cwd=kb, check=True).stdout)
    assert result["tool"] in ("git gc", "dulwich") and result["size_after"] > 0
    assert git(kb, "rev-parse", "HEAD") == head
    counts = dict(line.split(": ") for line in git(kb, "count-objects", "-v").splitlines())
    assert counts["count"] == "0" and int(counts["in-pack"]) > 0
    assert_consistent(kb)
    assert run_openkb("add", copy_tldr(tmp_path / "more", ["git-commit.md"]), cwd=kb).returncode == 0
    assert_consistent(kb)


def test_auto_gc_every_n_commits(kb, tmp_path):
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text().replace("gc_auto_commits: 1000", "gc_auto_commits: 3"))
    git(kb, "commit", "-qam", "gc every 3 commits")
    names = sorted(p.name for p in (TLDR / "common").glob("b*.md"))[:7]
    run_openkb("add", "--jobs", "1", copy_tldr(tmp_path / "src", names), cwd=kb, check=True)
    # The last automatic gc ran within the last 3 commits and packed everything HEAD had then:
    # none of those objects is loose any more; what is loose came with the commits since.
    last = json.loads((kb / ".openkb" / "gc.json").read_text())["head"]
    since = git(kb, "rev-list", f"{last}..HEAD").split()
    assert len(since) < 3 and len(git(kb, "rev-list", last).split()) > 3
    packed_then = _objects_of(kb, last)
    loose = _loose_objects(kb)
    assert packed_then and not packed_then & loose
    assert loose <= _objects_of(kb, f"{last}..HEAD")
    in_packs = set()
    for index in (kb / ".git" / "objects" / "pack").glob("*.idx"):
        listed = git(kb, "verify-pack", "-v", str(index)).splitlines()
        in_packs |= {line.split()[0] for line in listed if len(line.split()) > 2 and len(line.split()[0]) == 40}
    assert packed_then <= in_packs
    assert git(kb, "cat-file", "--batch-check", "--batch-all-objects").count(" missing") == 0
    assert_consistent(kb)


def _gc_runs(trace: Path) -> list[str]:
    """The `git gc` commands a GIT_TRACE file shows."""
    return [line for line in trace.read_text().splitlines() if "built-in: git gc " in line] if trace.exists() else []


def test_a_due_automatic_gc_runs_during_the_add_while_objects_are_loose_else_once_at_its_end(kb, tmp_path):
    """The automatic gc keeps loose objects from piling up; repacking everything every
    `gc_auto_commits` commits cost an eighth of the 7,425 tldr pages' add, whose group commits
    write no loose object. With none loose it runs once, at the end of the command; with loose
    objects, when due, as before."""
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text().replace("gc_auto_commits: 1000", "gc_auto_commits: 3"))
    git(kb, "commit", "-qam", "gc every 3 commits")
    run_openkb("gc", cwd=kb, check=True)
    assert not _loose_objects(kb)
    names = sorted(p.name for p in (TLDR / "common").glob("b*.md"))[:8]
    trace = tmp_path / "trace"
    run_openkb("add", "--jobs", "2", copy_tldr(tmp_path / "src", names), cwd=kb, check=True,
               env={"GIT_TRACE": str(trace)})
    assert len(_gc_runs(trace)) == 1, _gc_runs(trace)  # 8 commits, due twice: run once, last
    assert json.loads((kb / ".openkb" / "gc.json").read_text())["head"] == git(kb, "rev-parse", "HEAD").strip()
    assert not _loose_objects(kb)
    # A loose object (written by Git here): the gc runs when due, during the add.
    (kb / "notes.txt").write_text("mine\n")
    git(kb, "add", "notes.txt")
    git(kb, "commit", "-qm", "a note")
    trace.unlink()
    names = sorted(p.name for p in (TLDR / "common").glob("c*.md"))[:5]
    run_openkb("add", "--jobs", "1", copy_tldr(tmp_path / "src2", names), cwd=kb, check=True, env={"GIT_TRACE": str(trace)})
    # Due at the second file (the note's commit counts): loose, so then; due again at the fifth,
    # nothing loose any more: at the end.
    assert len(_gc_runs(trace)) == 2, _gc_runs(trace)
    assert git(kb, "cat-file", "--batch-check", "--batch-all-objects").count(" missing") == 0
    assert_consistent(kb)


def _loose_objects(kb) -> set[str]:
    objects = kb / ".git" / "objects"
    return {d.name + f.name for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()}


def _objects_of(kb, revisions: str) -> set[str]:
    return {line.split(" ")[0] for line in git(kb, "rev-list", "--objects", revisions).splitlines() if line}


def _pack_bytes(repo) -> int:
    git_dir = repo / ".git" if (repo / ".git").is_dir() else repo  # a KB, or a bare mirror
    return sum(p.stat().st_size for p in (git_dir / "objects" / "pack").glob("*.pack"))


def test_gc_after_a_group_commit_finds_the_deltas_between_versions_of_one_group(kb, tmp_path):
    """A group commit stores up to 32 versions of index.md (and of each big folder's tree)
    whole in its one pack, and Git never tries a delta between two objects stored whole in
    one pack: a gc that reuses deltas (`git gc`, the automatic one) kept them whole. `openkb
    gc` finds them: its pack is within 1.1x of `git gc --aggressive`'s on the same history."""
    names = sorted(p.name for p in (TLDR / "common").glob("*.md"))[:160]
    run_openkb("add", "--jobs", "2", copy_tldr(tmp_path / "src", names), cwd=kb, check=True)
    groups = [line for line in git(kb, "reflog", "--format=%gs").splitlines() if line.startswith("openkb add")]
    assert len(groups) < len(names) // 4, groups  # grouped: far fewer branch moves than commits
    aggressive = tmp_path / "aggressive"
    subprocess.run(["git", "clone", "-q", "--mirror", "--no-local", str(kb), str(aggressive)], check=True)
    subprocess.run(["git", "-C", str(aggressive), "gc", "-q", "--aggressive", "--prune=now"], check=True)
    quick = tmp_path / "quick"
    shutil.copytree(kb, quick, symlinks=True)
    run_openkb("gc", "--reuse-deltas", "--prune-grace", "0", cwd=quick, check=True)
    run_openkb("gc", "--prune-grace", "0", cwd=kb, check=True)
    best, ours, reused = _pack_bytes(aggressive), _pack_bytes(kb), _pack_bytes(quick)
    assert ours <= 1.1 * best, (ours, best, reused)
    assert reused > 1.3 * ours, (ours, best, reused)  # the case: reusing deltas keeps the group whole
    assert_consistent(kb)
