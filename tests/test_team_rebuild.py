"""Derived pages always consistent (#15 item 6): `openkb fsck` checks the shared pages against
the records after hand fixes of the conflicts Git settles without a driver, `openkb rebuild`
(and `fsck --repair`) regenerates them as one revertible commit, and the index merge driver
knows which concept pages the merge result holds. Real git, real `git revert` and `git pull`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import assert_consistent, copy_tldr, git, run_openkb

AM = ["git-am.md", "git-apply.md", "git-add.md"]  # am and apply share the pages git, patch, commit


def kb_with(tmp_path: Path, name: str, docs: list[str]) -> Path:
    kb = tmp_path / name
    run_openkb("init", kb, check=True)
    src = copy_tldr(tmp_path / f"src-{name}", docs)
    for doc in docs:  # one ingest each, in order
        run_openkb("--kb-dir", kb, "add", src / doc, check=True)
    return kb


def sha_of(kb: Path, subject: str) -> str:
    return git(kb, "log", "--format=%H", f"--grep=^{subject}$").split()[0]


def fsck(kb: Path) -> tuple[int, list[dict]]:
    proc = run_openkb("--kb-dir", kb, "fsck", "--json")
    report = json.loads(proc.stdout)
    return proc.returncode, [p for p in report["problems"] if not p["note"]]


def wiki(kb: Path) -> dict[str, str]:
    rows = git(kb, "ls-tree", "-r", "HEAD", "--", "wiki/concepts", "wiki/index.md").splitlines()
    return {row.split("\t", 1)[1]: row.split()[2] for row in rows}


def git_revert_of_git_am(kb: Path) -> list[str]:
    """`git revert` of the ingest of git-am: Git stops on the concept pages git-apply changed."""
    proc = subprocess.run(["git", "-C", str(kb), "revert", "--no-edit", sha_of(kb, "add: git-am.md")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "CONFLICT (modify/delete)" in proc.stdout + proc.stderr
    status = dict((line[3:], line[:2]) for line in git(kb, "status", "--porcelain").splitlines())
    return sorted(path for path, code in status.items() if code == "UD")


def revert_continue(kb: Path) -> None:
    subprocess.run(["git", "-C", str(kb), "revert", "--continue"], check=True, capture_output=True,
                   env={**__import__("os").environ, "GIT_EDITOR": "true"})


def twin_reverted(tmp_path: Path) -> Path:
    """The same KB where `openkb revert` took git-am out: what the pages should be."""
    twin = kb_with(tmp_path, "twin", AM)
    run_openkb("--kb-dir", twin, "revert", "git-am", check=True)
    return twin


def test_git_revert_kept_pages_by_hand_fsck_reports_rebuild_fixes_keeping_hand_text(tmp_path):
    """The modify/delete pages kept as HEAD has them (`git checkout --ours`, `git add`): they
    still mention git-am, whose record the revert deleted; fsck said "ok" (it compared mentions
    only with documents that have a record). `openkb rebuild` takes the mentions out as one
    `rebuild` commit, the pages then equal `openkb revert`'s, and a hand note stays."""
    kb = kb_with(tmp_path, "kb", AM)
    conflicted = git_revert_of_git_am(kb)
    assert conflicted == ["wiki/concepts/commit.md", "wiki/concepts/git.md", "wiki/concepts/patch.md"]
    for path in conflicted:
        git(kb, "checkout", "--ours", "--", path)
    note = kb / "wiki" / "concepts" / "patch.md"
    note.write_text(note.read_text() + "\nMy own note on patches.\n")
    git(kb, "add", *conflicted)
    revert_continue(kb)

    code, problems = fsck(kb)
    assert code == 1
    assert {p["path"] for p in problems} == set(conflicted)
    assert all("git-am" in p["detail"] for p in problems)
    assert "openkb rebuild" in problems[0]["fix"]

    head = git(kb, "rev-parse", "HEAD").strip()
    plan = json.loads(run_openkb("--kb-dir", kb, "rebuild", "--dry-run", "--json", check=True).stdout)
    assert plan["count"] == 3 and plan["paths"] == conflicted and plan["commit"] is None
    assert git(kb, "rev-parse", "HEAD").strip() == head
    run_openkb("--kb-dir", kb, "rebuild", check=True)
    assert git(kb, "rev-parse", "HEAD~1").strip() == head
    assert "OpenKB-Op: rebuild" in git(kb, "log", "-1", "--format=%B")
    assert fsck(kb) == (0, [])
    assert "My own note on patches." in note.read_text() and "git-am" not in note.read_text()
    expected = wiki(twin_reverted(tmp_path))
    got = wiki(kb)
    assert got.keys() == expected.keys()
    assert {p for p in got if got[p] != expected[p]} == {"wiki/concepts/patch.md"}  # the note
    assert_consistent(kb)

    # one revertible commit: reverting it brings the stale mentions back, and fsck says so
    run_openkb("--kb-dir", kb, "revert", "HEAD", check=True)
    assert {p["path"] for p in fsck(kb)[1]} == set(conflicted)
    # nothing to do: no commit, exit 0
    run_openkb("--kb-dir", kb, "rebuild", check=True)
    head = git(kb, "rev-parse", "HEAD").strip()
    proc = run_openkb("--kb-dir", kb, "rebuild", check=True)
    assert "nothing to rebuild" in proc.stdout and git(kb, "rev-parse", "HEAD").strip() == head


def test_git_revert_pages_deleted_by_hand_fsck_repair_compiles_them_again(tmp_path):
    """The modify/delete pages resolved with `git rm` (the revert's side): git-apply's record
    still names them. `fsck --repair` could not repair a missing concept page; it now runs the
    rebuild, which compiles git-apply's contributions again from its raw file: the pages are
    byte for byte those `openkb revert` leaves (with as many concepts as it was added with,
    though `concepts_per_doc` was lowered since)."""
    kb = kb_with(tmp_path, "kb", AM)
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text().replace("concepts_per_doc: 5", "concepts_per_doc: 1"))
    git(kb, "commit", "-q", "-am", "fewer concepts for documents added from now on")
    conflicted = git_revert_of_git_am(kb)
    git(kb, "rm", "-q", *conflicted)
    revert_continue(kb)
    code, problems = fsck(kb)
    assert code == 1 and {p["path"] for p in problems} >= set(conflicted)

    proc = run_openkb("--kb-dir", kb, "fsck", "--repair")
    assert proc.returncode == 1 and "cannot repair" not in proc.stdout, proc.stdout + proc.stderr  # 1: it found damage
    assert "rebuild:" in git(kb, "log", "-1", "--format=%s")
    assert fsck(kb) == (0, [])
    assert wiki(kb) == wiki(twin_reverted(tmp_path))
    assert_consistent(kb)


def test_each_side_reverts_one_of_a_pages_two_sources_plain_git_pull(tmp_path):
    """Alice reverts git-commit, Bob git-reset; Bob merges with a plain `git pull` and the
    drivers `openkb init` configured in his clone. The pages `git` and `commit` lose both
    sources: the driver says "delete it (git rm)". The index driver used to keep their lines
    (it merged concept lines by key), so after `git rm` the index pointed at missing pages;
    now it merges the concept pages of both sides itself and drops them."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    first = kb_with(tmp_path, "first", ["git-commit.md", "git-reset.md"])
    git(first, "push", "-q", str(remote), "main")
    sides = {}
    for name in ("alice", "bob"):
        subprocess.run(["git", "clone", "-q", str(remote), str(tmp_path / name)], check=True)
        run_openkb("init", tmp_path / name, check=True)
        sides[name] = tmp_path / name
    alice, bob = sides["alice"], sides["bob"]
    run_openkb("--kb-dir", alice, "revert", "git-commit", check=True)
    run_openkb("--kb-dir", bob, "revert", "git-reset", check=True)
    git(alice, "push", "-q", "origin", "main")
    pull = subprocess.run(["git", "-C", str(bob), "pull", "--no-rebase", "--no-edit", "origin", "main"],
                          capture_output=True, text=True)
    assert pull.returncode != 0
    status = dict((line[3:], line[:2]) for line in git(bob, "status", "--porcelain").splitlines())
    emptied = sorted(path for path, code in status.items() if code == "UU")
    assert emptied == ["wiki/concepts/commit.md", "wiki/concepts/git.md"]
    assert status["wiki/index.md"] == "M "
    git(bob, "rm", "-q", *emptied)
    git(bob, "commit", "-q", "--no-edit")
    index = (bob / "wiki" / "index.md").read_text()
    assert "[[concepts/git]]" not in index and "[[concepts/commit]]" not in index
    assert fsck(bob) == (0, [])
    one = kb_with(tmp_path, "one", ["git-commit.md", "git-reset.md"])
    run_openkb("--kb-dir", one, "revert", "git-commit", check=True)
    run_openkb("--kb-dir", one, "revert", "git-reset", check=True)
    assert (one / "wiki" / "index.md").read_bytes() == (bob / "wiki" / "index.md").read_bytes()
    nothing = json.loads(run_openkb("--kb-dir", bob, "rebuild", "--json", check=True).stdout)
    assert nothing["count"] == 0 and nothing["commit"] is None


def test_fsck_checks_a_summarys_concept_links_against_its_record(tmp_path):
    """A summary from one side of a hand-fixed conflict and the record from the other: the
    summary's `## Concepts` links disagree with the record's concepts. fsck said "ok"."""
    kb = kb_with(tmp_path, "kb", ["git-am.md"])
    record = json.loads((kb / ".openkb" / "registry" / "git-am.json").read_text())
    summary = kb / "wiki" / "summaries" / "git-am.md"
    first = record["concepts"][0]
    summary.write_text(summary.read_text().replace(f"- [[concepts/{first}]]", "- [[concepts/elsewhere]]"))
    git(kb, "commit", "-q", "-am", "a summary of another version")
    code, problems = fsck(kb)
    assert code == 1
    [problem] = problems
    assert problem["path"] == "wiki/summaries/git-am.md"
    assert first in problem["detail"] and "elsewhere" in problem["detail"] and "git checkout" in problem["fix"]


def test_sync_commits_a_rebuild_when_its_replay_leaves_the_pages_disagreeing(tmp_path):
    """Bob's hand-fixed `git revert` (pages kept with git-am's mentions) is replayed by
    `openkb sync` on Alice's new ingest: the replay changes concept pages, so sync checks them
    against the records and commits a `rebuild`; before, the stale mentions were pushed and
    fsck said "ok". Alice then gets the fixed pages with her next sync."""
    from test_team_sync import clone, make_remote, sync

    url, _first = make_remote(tmp_path, AM, tmp_path / "in")
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    conflicted = git_revert_of_git_am(bob)
    for path in conflicted:
        git(bob, "checkout", "--ours", "--", path)
    git(bob, "add", *conflicted)
    revert_continue(bob)
    run_openkb("--kb-dir", alice, "add", copy_tldr(tmp_path / "in-a", ["git-status.md"]) / "git-status.md", check=True)
    sync(alice)
    out = sync(bob)
    assert out["rebuild_commit"] and out["pushed"]
    assert "OpenKB-Op: rebuild" in git(bob, "log", "-1", "--format=%B")
    for path in conflicted:
        assert "git-am" not in (bob / path).read_text()
    assert fsck(bob) == (0, [])
    sync(alice)
    assert git(alice, "rev-parse", "HEAD") == git(bob, "rev-parse", "HEAD")
    assert fsck(alice) == (0, [])
    assert_consistent(bob)


def test_rebuild_lists_a_contribution_it_cannot_compile_again(tmp_path):
    """A concept page missing and its document's raw file gone too: nothing to compile the
    mention from. rebuild says so, names what to do, and exits 1; the page stays missing (the
    index's line of it, pointing at nothing, is dropped: the index follows the pages)."""
    kb = kb_with(tmp_path, "kb", ["git-am.md"])
    slug = json.loads((kb / ".openkb" / "registry" / "git-am.json").read_text())["concepts"][0]
    git(kb, "rm", "-q", f"wiki/concepts/{slug}.md", "raw/git-am.md")
    git(kb, "commit", "-q", "-m", "lost by hand")
    head = git(kb, "rev-parse", "HEAD")
    proc = run_openkb("--kb-dir", kb, "rebuild", "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert len(out["left"]) == 1 and "openkb remove git-am" in out["left"][0]
    assert out["paths"] == ["wiki/index.md"] and git(kb, "rev-parse", "HEAD~1") == head
    assert not (kb / "wiki" / "concepts" / f"{slug}.md").exists()
    assert f"[[concepts/{slug}]]" not in (kb / "wiki" / "index.md").read_text()
