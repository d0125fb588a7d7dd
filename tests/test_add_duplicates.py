"""The commit-time duplicate check of `openkb add` (ops/add.py, `_commit_locked`): a file
prepared before another copy of its content was committed is a duplicate when its turn to
commit comes. The preparation's own duplicate filter only knows the documents of the scan,
so these orderings reach the check at commit time, deterministically, in one process or two."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from conftest import TLDR, assert_consistent, git, run_openkb


def docs(kb) -> list[str]:
    return sorted(d["doc"] for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout))


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_two_copies_of_one_content_in_one_add_make_one_document(kb, tmp_path, jobs):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "a.md")
    shutil.copy(TLDR / "common" / "tar.md", src / "b.md")  # prepared with a.md, before a.md is committed
    proc = run_openkb("add", "--jobs", jobs, src, cwd=kb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped  " in proc.stdout and "b.md: duplicate of a" in proc.stdout, proc.stdout
    assert docs(kb) == ["a"]
    assert len(git(kb, "log", "--format=%H").split()) == 2  # init, one add
    assert_consistent(kb)


def test_a_copy_committed_by_another_add_after_this_one_prepared_is_a_duplicate(kb, tmp_path):
    """The first add's pre-ingest hook (its file prepared, not yet committed) runs a second
    add of the same content to the end: the first then finds it committed and skips."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", first / "one.md")
    shutil.copy(TLDR / "common" / "tar.md", second / "two.md")
    hook = kb / ".openkb" / "hooks" / "pre-ingest"
    hook.parent.mkdir(parents=True)
    hook.write_text(f"#!/bin/sh\n[ \"$OPENKB_DOC\" = one ] || exit 0\n"
                    f"exec {sys.executable} -m openkb_git --kb-dir {kb} add --no-verify {second / 'two.md'} >&2\n")
    hook.chmod(0o755)
    proc = run_openkb("add", first / "one.md", cwd=kb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "one.md: duplicate of two" in proc.stdout, proc.stdout + proc.stderr
    assert docs(kb) == ["two"]
    assert_consistent(kb)
