"""Two `openkb add` processes at once on overlapping directories."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import TLDR, assert_consistent, copy_tldr, git, run_openkb


def test_two_adds_on_overlapping_directories(kb, tmp_path):
    names = sorted(p.name for p in (TLDR / "common").glob("c*.md"))[:30]
    left = copy_tldr(tmp_path / "left", names[:20])
    right = copy_tldr(tmp_path / "right", names[10:])
    # The same stems in two folders: distinct names required.
    copy_tldr(left / "sub", names[:3])
    procs = [subprocess.Popen([sys.executable, "-m", "openkb_git", "add", "--wait", "60", "--jobs", "2", str(d)],
                              cwd=kb, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in (left, right)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
    docs = json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)
    names_in_kb = [d["doc"] for d in docs]
    assert len(names_in_kb) == len(set(names_in_kb))
    # Every distinct content is there exactly once (the overlap is the same bytes: one doc).
    shas = [d["sha256"] for d in docs]
    assert len(shas) == len(set(shas)) == 30
    # Linear history: every commit has at most one parent.
    assert git(kb, "rev-list", "--min-parents=2", "HEAD").strip() == ""
    assert len(git(kb, "log", "--format=%H").split()) == 1 + 30
    assert_consistent(kb)
