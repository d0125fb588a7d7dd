"""Revert and remove: exactness (revert equivalence), conflicts with hand edits, Git interop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import git as gitpython
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from conftest import TLDR, assert_consistent, git, run_openkb
from openkb_git.kb import KB
from openkb_git.ops.add import add_paths
from openkb_git.ops.init import init_kb
from openkb_git.ops.revert import revert
from openkb_git.ops.select import resolve

POOL = sorted(p.name for p in (TLDR / "common").glob("git-*.md"))[:40]


def tree_files(root: Path) -> dict[str, bytes]:
    """Tracked content at HEAD (views are untracked, so excluded)."""
    kb = KB(root)
    try:
        tree = kb.head_tree()
        return {p: kb.objects.blob_bytes(s) for p, _m, s in kb.objects.walk_files(tree)}
    finally:
        kb.close()


def ingest(root: Path, src_dir: Path, step: tuple[str, int]) -> None:
    name, version = step
    target = src_dir / name
    text = (TLDR / "common" / name).read_text()
    if version:
        text += f"\n- Version {version} of this page adds a line about rebasing branches:\n\n`{name[:-3]} --v{version}`\n"
    target.write_text(text)
    kb = KB(root)
    try:
        report = add_paths(kb, [target], jobs=1)
        assert not report.failed, report.to_json()
    finally:
        kb.close()


def build(root: Path, src_dir: Path, steps: list[tuple[str, int]]) -> None:
    init_kb(root)
    src_dir.mkdir(parents=True, exist_ok=True)
    for step in steps:
        ingest(root, src_dir, step)


def real_ingests(steps: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Drop steps that would re-ingest a file's current content (they make no commit):
    every remaining step is an ingest."""
    current: dict[str, int] = {}
    out = []
    for name, version in steps:
        if current.get(name) != version:
            current[name] = version
            out.append((name, version))
    return out


steps_strategy = st.lists(st.tuples(st.sampled_from(POOL[:12]), st.integers(0, 2)), min_size=10,
                          max_size=13).map(real_ingests).filter(lambda s: len(s) >= 10)


@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(steps=steps_strategy, data=st.data())
def test_revert_equivalence(tmp_path_factory, steps, data):
    base = tmp_path_factory.mktemp("eq")
    src = base / "src"  # the same source paths in both KBs: records name them
    build(base / "kb", src, steps)
    kb = KB(base / "kb")
    try:
        ingests = [e for e in __import__("openkb_git.history", fromlist=["iter_entries"]).iter_entries(kb)
                   if e.op == "add"]
        assert ingests
        victim = data.draw(st.sampled_from(ingests))
        position = len(ingests) - 1 - ingests.index(victim)  # index in ingest order
        revert(kb, [victim])
    finally:
        kb.close()
    reverted = tree_files(base / "kb")

    # The same sequence without the victim's step. Steps that were skipped (same content
    # again) made no ingest, so map ingests back to the steps that made them.
    kept_steps = _steps_without(steps, position)
    shutil.rmtree(src)
    build(base / "kb2", src, kept_steps)
    expected = tree_files(base / "kb2")
    assert reverted.keys() == expected.keys()
    for path in reverted:
        assert reverted[path] == expected[path], path


def _steps_without(steps: list[tuple[str, int]], ingest_index: int) -> list[tuple[str, int]]:
    """The sequence without its ingest_index-th ingest (every step is one ingest)."""
    return steps[:ingest_index] + steps[ingest_index + 1:]


def test_revert_with_hand_edit_never_loses_it(tmp_path):
    root = tmp_path / "kb"
    src = tmp_path / "src"
    build(root, src, [("git-commit.md", 0), ("git-add.md", 0), ("git-status.md", 0)])
    kb = KB(root)
    try:
        a = resolve(kb, "git-commit")
        pages = [p for p in json.loads(kb.objects.read_path(kb.head_tree(), ".openkb/registry/git-commit.json"))["concepts"]]
    finally:
        kb.close()
    page = root / "wiki" / "concepts" / f"{pages[0]}.md"
    text = page.read_text()
    assert "[[summaries/git-commit]]" in text
    edited = text.replace("[[summaries/git-commit]]:", "[[summaries/git-commit]]: (my note)", 1)
    page.write_text(edited)
    git(root, "commit", "-qam", "hand edit")
    before = git(root, "rev-parse", "HEAD")
    proc = run_openkb("revert", a.sha[:8], cwd=root)
    if proc.returncode == 0:
        assert "(my note)" in page.read_text() or "(my note)" not in edited  # merged: the note is kept
    else:
        assert proc.returncode == 1
        assert f"wiki/concepts/{pages[0]}.md" in proc.stderr
        assert git(root, "rev-parse", "HEAD") == before
        assert page.read_text() == edited
    assert_consistent(root)


def test_revert_of_revert_reapplies(tmp_path):
    root = tmp_path / "kb"
    build(root, tmp_path / "src", [("git-commit.md", 0), ("git-add.md", 0), ("git-log.md", 0)])
    full = tree_files(root)
    proc = run_openkb("revert", "git-add", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "wiki/summaries/git-add.md" not in tree_files(root)
    assert run_openkb("revert", "HEAD", cwd=root).returncode == 0
    assert tree_files(root) == full
    ops = [e["op"] for e in json.loads(run_openkb("log", "--json", cwd=root, check=True).stdout)]
    assert ops[:2] == ["revert", "revert"]
    assert_consistent(root)


def test_remove_is_one_revertible_commit(tmp_path):
    root = tmp_path / "kb"
    build(root, tmp_path / "src", [("git-commit.md", 0), ("git-add.md", 0)])
    full = tree_files(root)
    proc = run_openkb("remove", "git-commit", cwd=root)
    assert proc.returncode == 0, proc.stderr
    after = tree_files(root)
    assert not any("git-commit" in p for p in after if not p.startswith("wiki/concepts/") and p != "wiki/index.md")
    assert "[[summaries/git-commit]]" not in after["wiki/index.md"].decode()
    assert run_openkb("revert", "HEAD", cwd=root).returncode == 0
    assert tree_files(root) == full
    assert_consistent(root)


def test_dry_run_changes_nothing(tmp_path):
    root = tmp_path / "kb"
    build(root, tmp_path / "src", [("git-commit.md", 0), ("git-add.md", 0)])
    before = git(root, "rev-parse", "HEAD")
    proc = run_openkb("revert", "--dry-run", "git-commit", cwd=root)
    assert proc.returncode == 0 and "would revert" in proc.stdout and "wiki/summaries/git-commit.md" in proc.stdout
    assert git(root, "rev-parse", "HEAD") == before


def test_git_revert_uses_the_drivers(tmp_path):
    """Real Git (GitPython) reverts an ingest whose shared pages later ingests changed."""
    names = [("git-commit.md", 0), ("git-add.md", 0), ("git-status.md", 0), ("git-log.md", 0)]
    for root in (tmp_path / "a", tmp_path / "b"):
        build(root, tmp_path / f"src-{root.name}", names)
    repo = gitpython.Repo(tmp_path / "a")
    target = resolve_sha(tmp_path / "a", "git-status")
    repo.git.revert(target, no_edit=True)
    assert run_openkb("revert", "git-status", cwd=tmp_path / "b").returncode == 0
    ours = {p: v for p, v in tree_files(tmp_path / "a").items() if not p.startswith(".openkb/registry/")}
    theirs = {p: v for p, v in tree_files(tmp_path / "b").items() if not p.startswith(".openkb/registry/")}
    assert ours.keys() == theirs.keys()
    for path in ours:
        if path.startswith(("wiki/", "raw/")):
            assert ours[path] == theirs[path], path


def resolve_sha(root: Path, selector: str) -> str:
    kb = KB(root)
    try:
        return resolve(kb, selector).sha
    finally:
        kb.close()
