"""History follows merges (issue #15): after a `git pull --no-rebase` of Alice's ingests into
Bob's clone, and after `git merge` of a branch, every history command sees every operation.

Real remotes: a bare repository over file://, clones made with `git clone`, views built with
`openkb recover`, the merge drivers configured as `openkb init` does (ops/mergedriver.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_consistent, copy_tldr, git, isolate, run_openkb
from openkb_git.ops.mergedriver import configure

ALICE_DOCS = ["git-merge.md", "git-commit.md"]  # share concept pages (branch, merge, commit...)
BOB_DOCS = ["git-push.md", "git-pull.md"]      # with Bob's


def _openkb_json(kb: Path, *args) -> object:
    return json.loads(run_openkb("--kb-dir", kb, *args, "--json", check=True).stdout)


def _clone(url: str, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", url, str(dest)], check=True, capture_output=True)
    proc = subprocess.run([sys.executable, "-m", "openkb_git", "recover"], cwd=dest, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    configure(dest)
    return dest


@pytest.fixture(scope="module")
def _built_team(tmp_path_factory, openkb_bin):
    with pytest.MonkeyPatch.context() as mp:  # conftest's isolated_env, for a fixture built once
        isolate(mp, tmp_path_factory.mktemp("home"), openkb_bin)  # (its PATH: the merge drivers run)
        root = tmp_path_factory.mktemp("team")
        remote = root / "remote.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
        alice = root / "alice"
        run_openkb("init", alice, check=True)
        git(alice, "remote", "add", "origin", remote.as_uri())
        git(alice, "push", "-q", "origin", "main")
        bob = _clone(remote.as_uri(), root / "bob")
        run_openkb("--kb-dir", alice, "add", copy_tldr(root / "alice-src", ALICE_DOCS), check=True)
        git(alice, "push", "-q", "origin", "main")
        run_openkb("--kb-dir", bob, "add", copy_tldr(root / "bob-src", BOB_DOCS), check=True)
        out = git(bob, "pull", "--no-rebase", "--no-edit", "origin", "main")
        assert "CONFLICT" not in out, out
        assert len(git(bob, "rev-list", "--parents", "-n", "1", "HEAD").split()) == 3  # a true merge
        yield root


@pytest.fixture
def team(_built_team, tmp_path):
    """Alice and Bob, each with a clone of one bare remote; Alice pushed two ingests, Bob made
    two of his own and pulled hers with `git pull --no-rebase` (a merge). Each test gets its
    own copy of both clones. Returns (alice, bob)."""
    out = []
    for name in ("alice", "bob"):
        shutil.copytree(_built_team / name, tmp_path / name, symlinks=True)
        out.append(tmp_path / name)
    return tuple(out)


def _op_commits(kb: Path, doc: str) -> str:
    """The id of the `add` commit of ``doc``, as git finds it (by its trailer)."""
    found = git(kb, "log", "--format=%H", f"--grep=^OpenKB-Doc: {doc}$", "--all").split()
    assert len(found) == 1, found
    return found[0]


def test_log_lists_every_operation_of_both_sides(team):
    alice, bob = team
    log = _openkb_json(bob, "log")
    rev_list = git(bob, "rev-list", "HEAD").split()
    assert len(log) == len(rev_list) == 1 + 4 + 1  # init, four adds, the merge
    assert sorted(e["commit"] for e in log) == sorted(rev_list)
    assert [e["position"] for e in log] == list(range(len(log)))
    assert sorted(e["doc"] for e in log if e["op"] == "add") == sorted(d[:-3] for d in ALICE_DOCS + BOB_DOCS)
    merge = log[0]
    assert merge["op"] == "merge"
    assert merge["parents"] == git(bob, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:]
    # newest first, never a commit before one of its children: git's --date-order
    where = {e["commit"]: i for i, e in enumerate(log)}
    for e in log:
        assert all(where[p] > where[e["commit"]] for p in e["parents"])
    assert [e["date"] for e in log] == sorted((e["date"] for e in log), reverse=True)
    text = run_openkb("--kb-dir", bob, "log", check=True).stdout
    assert "merge " in text and "(parents " in text and "git-merge" in text
    # filters: by doc, by op, by path
    alice_add = _op_commits(bob, "git-merge")
    assert [e["commit"] for e in _openkb_json(bob, "log", "git-merge")] == [alice_add]
    assert [e["commit"] for e in _openkb_json(bob, "log", "--op", "merge")] == [merge["commit"]]
    assert [e["commit"] for e in _openkb_json(bob, "log", "--op", "add")] == [e["commit"] for e in log if e["op"] == "add"]
    # what the pull brought, reviewed as `git log HEAD~1..origin/main` would (HEAD~1: Bob before it)
    incoming = _openkb_json(bob, "log", "HEAD~1..origin/main")
    assert [e["commit"] for e in incoming] == git(bob, "rev-list", "HEAD~1..origin/main").split()
    assert {e["doc"] for e in incoming} == {d[:-3] for d in ALICE_DOCS}
    no_git = {"PATH": str(bob.parent / "no-git-here")}  # `log --path` then walks every commit itself
    for path in ("wiki/summaries/git-merge.md", "wiki/concepts/branch.md", "wiki/index.md", "wiki/concepts"):
        # git's default history simplification, in the log's order (the default walk differs
        # when commits share a second: the test below)
        expected = git(bob, "log", "--date-order", "--format=%H", "--", path).split()
        assert [e["commit"] for e in _openkb_json(bob, "log", "--path", path)] == expected, path
        alone = json.loads(run_openkb("--kb-dir", bob, "log", "--path", path, "--json", env=no_git, check=True).stdout)
        assert [e["commit"] for e in alone] == expected, path


def test_show_diff_and_selectors_name_the_merged_operations(team):
    alice, bob = team
    alice_add = _op_commits(bob, "git-merge")
    shown = _openkb_json(bob, "show", "git-merge")
    assert shown["operation"]["commit"] == alice_add
    assert shown["old"] == git(bob, "rev-parse", f"{alice_add}^").strip()
    assert {f["path"] for f in shown["files"]} == set(git(bob, "diff", "--name-only", f"{alice_add}^", alice_add).split())
    merge = _openkb_json(bob, "show", "HEAD")
    assert merge["operation"]["op"] == "merge" and len(merge["operation"]["parents"]) == 2
    assert {f["path"] for f in merge["files"]} == set(git(bob, "diff", "--name-only", "HEAD^1", "HEAD").split())
    text = run_openkb("--kb-dir", bob, "show", "--stat", "HEAD", check=True).stdout
    assert "op:       merge" in text and "parents:  " in text
    diff = _openkb_json(bob, "diff", "git-commit", "git-merge")
    assert diff["old"] == _op_commits(bob, "git-commit") and diff["new"] == alice_add
    # HEAD~N follows first parents, as in git; a log position names the line of `openkb log`
    assert _openkb_json(bob, "show", "HEAD~1")["operation"]["commit"] == git(bob, "rev-parse", "HEAD~1").strip()
    log = _openkb_json(bob, "log")
    for position, entry in enumerate(log):
        assert _openkb_json(bob, "show", "--stat", str(position))["operation"]["commit"] == entry["commit"]


def test_blame_credits_each_line_to_the_commit_that_wrote_it(team):
    alice, bob = team
    alice_add = _op_commits(bob, "git-merge")
    for page in ("wiki/concepts/branch.md", "wiki/index.md", "wiki/summaries/git-merge.md"):
        blamed = _openkb_json(bob, "blame", page)
        ours = [line["commit"] for line in blamed]
        porcelain = git(bob, "blame", "--line-porcelain", page).splitlines()
        theirs = [line.split()[0] for line in porcelain if len(line.split()) >= 3 and len(line.split()[0]) == 40
                  and line.split()[1].isdigit()]
        assert len(ours) == len(theirs), page
        # A blank line is the same line whichever commit wrote it: which of several identical
        # blank lines a diff matches is the diff algorithm's choice (ours and Git's differ).
        differ = [n for n, (a, b) in enumerate(zip(ours, theirs)) if a != b and blamed[n]["text"].strip()]
        assert not differ, (page, [blamed[n] for n in differ])
        # without Git installed, the walk looks every commit up itself: the same answer
        alone = run_openkb("--kb-dir", bob, "blame", page, "--json", env={"PATH": str(bob.parent / "no-git-here")},
                           check=True)
        assert json.loads(alone.stdout) == blamed, page
    lines = _openkb_json(bob, "blame", "wiki/concepts/branch.md")
    # git-merge's own line (the `sources:` line lists every document: the merge wrote it whole).
    mine = [line for line in lines if line["text"].startswith("- [[summaries/git-merge]]")]
    assert mine and all(line["commit"] == alice_add and line["doc"] == "git-merge" for line in mine)


def test_views_and_status_count_the_merged_operations(team, tmp_path):
    alice, bob = team
    # The next write brings log.md up to date from the commit it last named (Bob's, before the pull).
    run_openkb("--kb-dir", bob, "add", copy_tldr(tmp_path / "more", ["git-log.md"]), check=True)
    log_md = (bob / "wiki" / "log.md").read_text()
    for doc in ALICE_DOCS + BOB_DOCS + ["git-log.md"]:
        assert f"| {doc} (" in log_md, doc
    assert "merge | Merge branch" in log_md
    fsck = run_openkb("--kb-dir", bob, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    status = _openkb_json(bob, "status")
    assert status["commits"] == int(git(bob, "rev-list", "--count", "HEAD"))
    assert_consistent(bob)


def test_revert_of_a_merge_needs_mainline(team, tmp_path):
    alice, bob = team
    head = git(bob, "rev-parse", "HEAD").strip()
    refused = run_openkb("--kb-dir", bob, "revert", "HEAD")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is a merge" in refused.stderr and "--mainline" in refused.stderr and "Traceback" not in refused.stderr
    assert git(bob, "rev-parse", "HEAD").strip() == head
    no_merge = run_openkb("--kb-dir", bob, "revert", "--mainline", "1", "git-merge")
    assert no_merge.returncode == 2 and "not a merge" in no_merge.stderr
    out_of_range = run_openkb("--kb-dir", bob, "revert", "--mainline", "3", "HEAD")
    assert out_of_range.returncode == 2 and "has 2 parents" in out_of_range.stderr
    assert git(bob, "rev-parse", "HEAD").strip() == head
    # `git revert -m 1` with the drivers, in a copy: the tree openkb's revert must give
    copy = tmp_path / "bob-git"
    shutil.copytree(bob, copy, symlinks=True)
    git(copy, "revert", "--no-edit", "-m", "1", "HEAD")
    reverted = _openkb_json(bob, "revert", "--mainline", "1", "HEAD")
    assert reverted[0]["reverted"] == head and reverted[0]["commit"]
    tree = git(bob, "rev-parse", "HEAD^{tree}").strip()
    assert tree == git(bob, "rev-parse", "HEAD~1^1^{tree}").strip()  # Bob's tree before the merge
    assert tree == git(copy, "rev-parse", "HEAD^{tree}").strip()
    assert git(bob, "rev-parse", "HEAD~1").strip() == head
    assert {d["doc"] for d in _openkb_json(bob, "list")} == {d[:-3] for d in BOB_DOCS}
    assert run_openkb("--kb-dir", bob, "fsck").returncode == 0
    assert_consistent(bob)
    # reverting the revert brings Alice's side back
    run_openkb("--kb-dir", bob, "revert", "HEAD", check=True)
    assert git(bob, "rev-parse", "HEAD^{tree}").strip() == git(bob, "rev-parse", f"{head}^{{tree}}").strip()


def test_revert_of_an_operation_a_merge_brought(team):
    alice, bob = team
    alice_add = _op_commits(bob, "git-merge")
    result = _openkb_json(bob, "revert", "git-merge")
    assert result[0]["reverted"] == alice_add and result[0]["commit"]
    assert "git-merge" not in {d["doc"] for d in _openkb_json(bob, "list")}
    assert "summaries/git-merge" not in (bob / "wiki" / "index.md").read_text()
    assert "summaries/git-merge" not in (bob / "wiki" / "concepts" / "branch.md").read_text()
    assert run_openkb("--kb-dir", bob, "fsck").returncode == 0
    assert_consistent(bob)


def _tree(kb: Path) -> dict[str, str]:
    """{path: blob id} of HEAD, registry records aside (they name the source's folder)."""
    out = {}
    for line in git(kb, "ls-tree", "-r", "HEAD").splitlines():
        meta, path = line.split("\t", 1)
        out[path] = meta.split()[2]
    return out


def test_branch_ingest_review_and_merge(tmp_path):
    src = tmp_path / "src"
    for name in ("git-merge.md", "git-commit.md", "git-push.md", "git-pull.md"):
        copy_tldr(src / name[:-3], [name])
    kb = tmp_path / "kb"
    run_openkb("init", kb, check=True)
    run_openkb("--kb-dir", kb, "add", src / "git-merge", check=True)
    git(kb, "switch", "-q", "-c", "try-papers")
    added = run_openkb("--kb-dir", kb, "add", src / "git-push", src / "git-pull")
    assert added.returncode == 0, added.stdout + added.stderr
    assert git(kb, "rev-parse", "--abbrev-ref", "HEAD").strip() == "try-papers"
    branch_ops = git(kb, "rev-list", "main..try-papers").split()
    assert len(branch_ops) == 2
    git(kb, "switch", "-q", "main")
    run_openkb("--kb-dir", kb, "add", src / "git-commit", check=True)  # main moves on: a true merge
    # review the branch before it lands
    review = _openkb_json(kb, "log", "main..try-papers")
    assert [e["commit"] for e in review] == branch_ops
    assert {e["doc"] for e in review} == {"git-push", "git-pull"} and all(e["position"] is None for e in review)
    assert _openkb_json(kb, "log", "try-papers..main")[0]["doc"] == "git-commit"
    assert _openkb_json(kb, "show", "try-papers")["operation"]["commit"] == branch_ops[0]
    assert _openkb_json(kb, "show", "try-papers~1")["operation"]["commit"] == branch_ops[1]
    bad = run_openkb("--kb-dir", kb, "log", "main..no-such-branch")
    assert bad.returncode != 0 and "no-such-branch" in bad.stderr and "Traceback" not in bad.stderr
    out = git(kb, "merge", "--no-edit", "try-papers")
    assert "CONFLICT" not in out, out
    run_openkb("--kb-dir", kb, "recover", check=True)
    log = _openkb_json(kb, "log")
    assert len(log) == int(git(kb, "rev-list", "--count", "HEAD")) == 1 + 4 + 1
    assert {e["doc"] for e in log if e["op"] == "add"} == {"git-merge", "git-commit", "git-push", "git-pull"}
    assert log[0]["op"] == "merge"
    assert run_openkb("--kb-dir", kb, "fsck").returncode == 0
    assert_consistent(kb)
    # the same tree as one KB that ingested all four documents
    one = tmp_path / "one"
    run_openkb("init", one, check=True)
    for name in ("git-merge", "git-commit", "git-push", "git-pull"):
        run_openkb("--kb-dir", one, "add", src / name, check=True)
    assert _tree(kb) == _tree(one)


def _commit(kb: Path, tree: str, parents: list[str], when: int, message: str) -> str:
    env = {**os.environ, "GIT_COMMITTER_DATE": f"{when} +0000", "GIT_AUTHOR_DATE": f"{when} +0000"}
    argv = ["git", "-C", str(kb), "commit-tree", tree, "-m", message]
    for parent in parents:
        argv += ["-p", parent]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("seed", range(6))
def test_walk_is_gits_date_order_over_any_graph(kb, seed):
    """Random histories of merges, forks, ties and clock skew (a child older than its parent): the
    walk yields each commit once, in `git rev-list --date-order` order, from a fresh process
    (memo written) and again from the memo; `cut` is True exactly where every commit left is
    an ancestor of the one just yielded."""
    import random

    from openkb_git.history import iter_entries
    from openkb_git.kb import KB

    rng = random.Random(seed)
    root = git(kb, "rev-parse", "HEAD").strip()
    tree = git(kb, "rev-parse", "HEAD^{tree}").strip()
    tips, made = [root], [root]
    when = 1_800_000_000
    for n in range(40):
        when += rng.choice([0, 0, 1]) if rng.random() < 0.3 else rng.randint(1, 100)  # ties too
        stamp = when - rng.randint(0, 5000) if rng.random() < 0.15 else when  # skew now and then
        if len(tips) > 1 and rng.random() < 0.3:
            parents = rng.sample(tips, min(len(tips), rng.choice([2, 2, 3])))
            tips = [t for t in tips if t not in parents]
        else:
            parents = [rng.choice(made)]
            if parents[0] in tips and rng.random() < 0.7:
                tips.remove(parents[0])
        sha = _commit(kb, tree, parents, stamp, f"c{n}")
        tips.append(sha)
        made.append(sha)
    head = tips[-1] if len(tips) == 1 else _commit(kb, tree, tips, when + 1, "merge all")
    git(kb, "update-ref", "refs/heads/main", head)
    expected = git(kb, "rev-list", "--date-order", "HEAD").split()
    for attempt in range(2):  # the second reads the memo the first wrote
        handle = KB(kb)
        try:
            walk = iter_entries(handle)
            got, cuts = [], []
            for entry in walk:
                got.append(entry.sha)
                cuts.append(walk.cut)
                assert list(entry.parents) == git(kb, "rev-list", "--parents", "-n", "1", entry.sha).split()[1:]
                assert entry.op == ("merge" if len(entry.parents) > 1 else entry.op)
        finally:
            handle.close()
        assert got == expected
    for at, sha in enumerate(expected):
        below = set(git(kb, "rev-list", sha).split())
        assert cuts[at] == set(expected[at:]).issubset(below), at
    assert [e["commit"] for e in _openkb_json(kb, "log")] == expected


def _tree_with(kb: Path, base: str, files: dict[str, str]) -> str:
    """The tree of ``base`` with ``files`` (path: text) written in, made with a scratch index."""
    env = {**os.environ, "GIT_INDEX_FILE": str(kb.parent / "scratch-index")}
    run = lambda *argv, **kw: subprocess.run(["git", "-C", str(kb), *argv], env=env, capture_output=True,
                                             text=True, check=True, **kw).stdout.strip()
    run("read-tree", base)
    for path, text in files.items():
        blob = run("hash-object", "-w", "--stdin", input=text)
        run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    return run("write-tree")


def test_log_and_log_path_keep_gits_date_order_when_every_commit_shares_a_second(kb):
    """A group commit's ingests share one commit time, and on a fast machine `init` and the
    first ingests fall in one second too. Git's default walk then shows a commit before one of
    its children (init, which got in line first, before Alice's first ingest); the log's order
    is `git log --date-order`'s, with and without Git for `--path` (the team test once
    compared with the default walk, and failed when its commits fell in seconds this way)."""
    root = git(kb, "rev-parse", "HEAD").strip()
    when = int(git(kb, "log", "-1", "--format=%ct", "HEAD").strip())  # the same second as init
    made = {}

    def commit(name, parent_names, files, later=0):
        parents = [made[p] if p in made else root for p in parent_names]
        made[name] = _commit(kb, _tree_with(kb, parents[0], files), parents, when + later, name)

    commit("a1", ["init"], {"wiki/shared.md": "a1\n", "wiki/alice.md": "a1\n"})
    commit("a2", ["a1"], {"wiki/shared.md": "a2\n"})
    commit("b1", ["init"], {"wiki/shared.md": "b1\n"}, later=1)  # Bob's, a second later
    commit("b2", ["b1"], {"wiki/shared.md": "b2\n", "wiki/bob.md": "b2\n"}, later=1)
    commit("m", ["b2", "a2"], {"wiki/shared.md": "merged\n", "wiki/alice.md": "a1\n"}, later=1)
    git(kb, "update-ref", "refs/heads/main", made["m"])
    date_order = git(kb, "rev-list", "--date-order", "HEAD").split()
    assert git(kb, "rev-list", "HEAD").split() != date_order  # the case: Git's default differs
    assert [e["commit"] for e in _openkb_json(kb, "log")] == date_order
    no_git = {"PATH": str(kb.parent / "no-git-here")}
    for path in ("wiki/shared.md", "wiki/alice.md", "wiki/bob.md", "wiki"):
        expected = git(kb, "log", "--date-order", "--format=%H", "--", path).split()
        assert expected, path
        assert [e["commit"] for e in _openkb_json(kb, "log", "--path", path)] == expected, path
        alone = json.loads(run_openkb("--kb-dir", kb, "log", "--path", path, "--json", env=no_git, check=True).stdout)
        assert [e["commit"] for e in alone] == expected, path


def test_revert_of_a_merge_under_a_later_ingest(team, _built_team, tmp_path):
    """The merge is no longer HEAD: a later ingest touched pages of both sides. --mainline 1
    gives the tree of one KB that ingested only Bob's documents and the later one (where `git
    revert -m 1` stops on modify/delete, which Git settles without a driver); --mainline 2
    gives what `git revert -m 2` gives with the drivers."""
    alice, bob = team
    merge = git(bob, "rev-parse", "HEAD").strip()
    later = copy_tldr(tmp_path / "later", ["git-tag.md"])
    run_openkb("--kb-dir", bob, "add", later, check=True)
    for mainline in (1, 2):
        kb = tmp_path / f"bob-{mainline}"
        shutil.copytree(bob, kb, symlinks=True)
        result = _openkb_json(kb, "revert", "--mainline", str(mainline), merge)
        assert result[0]["reverted"] == merge and result[0]["commit"]
        assert run_openkb("--kb-dir", kb, "fsck").returncode == 0
        assert_consistent(kb)
        kept = BOB_DOCS if mainline == 1 else ALICE_DOCS
        assert {d["doc"] for d in _openkb_json(kb, "list")} == {d[:-3] for d in kept} | {"git-tag"}
    one = tmp_path / "one"
    run_openkb("init", one, check=True)
    run_openkb("--kb-dir", one, "add", _built_team / "bob-src", check=True)
    run_openkb("--kb-dir", one, "add", later, check=True)
    assert _tree(tmp_path / "bob-1") == _tree(one)
    copy = tmp_path / "bob-git"
    shutil.copytree(bob, copy, symlinks=True)
    git(copy, "revert", "--no-edit", "-m", "2", merge)
    assert git(copy, "rev-parse", "HEAD^{tree}") == git(tmp_path / "bob-2", "rev-parse", "HEAD^{tree}")
