"""`openkb gc` packs the history without changing it; auto gc runs during long adds."""

from __future__ import annotations

import json

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


def _loose_objects(kb) -> set[str]:
    objects = kb / ".git" / "objects"
    return {d.name + f.name for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()}


def _objects_of(kb, revisions: str) -> set[str]:
    return {line.split(" ")[0] for line in git(kb, "rev-list", "--objects", revisions).splitlines() if line}
