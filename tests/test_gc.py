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
    assert (kb / ".openkb" / "gc.json").exists()
    packs = list((kb / ".git" / "objects" / "pack").glob("*.pack"))
    assert packs
    assert_consistent(kb)
