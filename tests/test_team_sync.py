"""`openkb sync`, `pull` and `push` against real remotes (a bare repository over file://, and
`git daemon` on 127.0.0.1): clones converge to the tree one KB doing both sides' operations
in the merged order gives, and the cases Git settles without a merge driver (modify/delete)
come out right where a plain `git pull --rebase` with the drivers stops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TLDR, assert_consistent, copy_tldr, git, git_daemon, run_openkb
from openkb_git.ops.mergedriver import configure

ALICE = ["git-add.md", "git-branch.md", "git-merge.md"]
BOB = ["git-checkout.md", "git-rebase.md", "git-reset.md"]


# -- set-up ----------------------------------------------------------------------------


def make_remote(tmp_path: Path, base_docs: list[str] = (), inputs: Path | None = None) -> tuple[str, Path]:
    """A bare remote holding a KB (with ``base_docs`` added from ``inputs``): (url, first KB)."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    first = tmp_path / "first"
    run_openkb("init", first, check=True)
    if base_docs:
        run_openkb("--kb-dir", first, "add", *[copy_tldr(inputs, [d]) / d for d in base_docs], check=True)
    git(first, "remote", "add", "origin", str(remote))
    git(first, "push", "-q", "-u", "origin", "main")
    return str(remote), first


def clone(url: str, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", url, str(dest)], check=True, capture_output=True)
    run_openkb("--kb-dir", dest, "recover", check=True)
    configure(dest)
    return dest


def sync(kb: Path, *args: str, check: bool = True) -> dict:
    proc = run_openkb("--kb-dir", kb, "sync", "--json", *args, check=check, timeout=120)
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def add(kb: Path, *paths: Path) -> None:
    run_openkb("--kb-dir", kb, "add", *paths, check=True)


def tree(kb: Path) -> str:
    return git(kb, "rev-parse", "HEAD^{tree}").strip()


def listing(kb: Path) -> dict[str, str]:
    rows = git(kb, "ls-tree", "-r", "HEAD").splitlines()
    return {row.split("\t", 1)[1]: row.split()[2] for row in rows}


def trailers(kb: Path, key: str) -> list[str]:
    out = git(kb, "log", f"--format=%(trailers:key={key},valueonly)")
    return [line.strip() for line in out.splitlines() if line.strip()]


def operations(kb: Path) -> list[tuple[str, str]]:
    """Each commit's (OpenKB-Journal, OpenKB-Doc): an operation's identity (the commits of one
    group commit share a journal, docs/protocol.md)."""
    out = git(kb, "log", "--format=%(trailers:key=OpenKB-Journal,valueonly,separator=)%x09"
                         "%(trailers:key=OpenKB-Doc,valueonly,separator=)")
    return [tuple(line.split("\t", 1)) for line in out.splitlines() if line.strip()]


def assert_clean(kb: Path) -> None:
    assert_consistent(kb)
    fsck = run_openkb("--kb-dir", kb, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def one_kb(tmp_path: Path, name: str, steps) -> Path:
    """A fresh KB doing ``steps`` in order: ("add", path...) or ("revert", doc)."""
    kb = tmp_path / name
    run_openkb("init", kb, check=True)
    for step, *args in steps:
        run_openkb("--kb-dir", kb, step, *args, check=True)
    return kb


def pull_rebase_conflicts(kb: Path, tmp_path: Path) -> str:
    """`git pull --rebase` with openkb's drivers, in a copy of ``kb``: its output (it must fail)."""
    copy = tmp_path / f"{kb.name}-plain-git"
    shutil.copytree(kb, copy, symlinks=True)
    configure(copy)
    proc = subprocess.run(["git", "-C", str(copy), "pull", "--rebase", "origin", "main"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


# -- two clones ------------------------------------------------------------------------


def test_two_clones_converge_to_one_kb_doing_both_sides_in_merged_order(tmp_path):
    url, _first = make_remote(tmp_path)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    a_in, b_in = copy_tldr(tmp_path / "in-a", ALICE), copy_tldr(tmp_path / "in-b", BOB)
    add(alice, *[a_in / n for n in ALICE])
    add(bob, *[b_in / n for n in BOB])
    bob_ops = operations(bob)

    first = sync(alice)
    assert first["pushed"] and not first["replayed"]
    second = sync(bob)  # Bob's three ingests are replayed on Alice's
    assert second["pushed"] and [r["doc"] for r in second["replayed"]] == ["git-checkout", "git-rebase", "git-reset"]
    assert all(r["commit"] for r in second["replayed"])
    third = sync(alice)
    assert third["fast_forwarded"] and not third["pushed"]

    assert tree(alice) == tree(bob) == git(alice, "rev-parse", "origin/main^{tree}").strip()
    expected = one_kb(tmp_path, "one", [("add", *[a_in / n for n in ALICE]), ("add", *[b_in / n for n in BOB])])
    assert listing(alice) == listing(expected)
    assert tree(alice) == tree(expected)

    # every operation landed exactly once, with its author, message and trailers
    docs = trailers(alice, "OpenKB-Doc")
    assert sorted(docs) == sorted(n[:-3] for n in ALICE + BOB)
    ops = operations(alice)
    assert len(ops) == len(set(ops)) and set(bob_ops) <= set(ops)
    for kb in (alice, bob):
        assert_clean(kb)
        log = run_openkb("--kb-dir", kb, "log", check=True).stdout
        assert all(n[:-3] in log for n in ALICE + BOB)
        assert json.loads((kb / ".openkb" / "views.json").read_text())["commit"] == git(kb, "rev-parse", "HEAD").strip()
    bob_log = git(bob, "log", "--format=%an|%cn|%s", "-3")
    assert all(line.startswith("openkb|") for line in bob_log.splitlines())


def test_pull_integrates_without_pushing_and_push_refuses_when_the_remote_is_ahead(tmp_path):
    url, first = make_remote(tmp_path)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    add(alice, copy_tldr(tmp_path / "in-a", ["git-add.md"]) / "git-add.md")
    add(bob, copy_tldr(tmp_path / "in-b", ["git-reset.md"]) / "git-reset.md")
    pushed = run_openkb("--kb-dir", alice, "push", "--json", check=True)
    assert json.loads(pushed.stdout)["pushed"]
    remote_head = git(alice, "ls-remote", url, "refs/heads/main").split()[0]

    refused = run_openkb("--kb-dir", bob, "push")
    assert refused.returncode == 1 and "openkb sync" in refused.stderr, refused.stderr
    assert git(bob, "ls-remote", url, "refs/heads/main").split()[0] == remote_head

    pulled = json.loads(run_openkb("--kb-dir", bob, "pull", "--json", check=True).stdout)
    assert not pulled["pushed"] and [r["doc"] for r in pulled["replayed"]] == ["git-reset"]
    assert git(bob, "ls-remote", url, "refs/heads/main").split()[0] == remote_head
    assert (bob / "wiki" / "summaries" / "git-add.md").exists()
    assert_clean(bob)
    assert json.loads(run_openkb("--kb-dir", bob, "push", "--json", check=True).stdout)["pushed"]
    assert git(bob, "ls-remote", url, "refs/heads/main").split()[0] == git(bob, "rev-parse", "HEAD").strip()


def test_uncommitted_hand_edits_are_committed_first_as_an_edit_and_replayed(tmp_path):
    url, _first = make_remote(tmp_path, ["git-commit.md"], tmp_path / "in")
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    add(alice, copy_tldr(tmp_path / "in-a", ["git-add.md"]) / "git-add.md")
    sync(alice)
    page = bob / "wiki" / "summaries" / "git-commit.md"
    page.write_text(page.read_text() + "\nA note of Bob's.\n")
    out = sync(bob)
    assert out["edit_commit"] and [r["op"] for r in out["replayed"]] == ["edit"]
    assert "A note of Bob's." in page.read_text()
    assert (bob / "wiki" / "summaries" / "git-add.md").exists()
    assert_clean(bob)


# -- modify/delete: Git settles them without a driver ------------------------------------


@pytest.mark.parametrize("first_to_sync", ["reverter", "ingester"])
def test_revert_of_an_ingest_on_one_side_and_an_ingest_adding_to_its_page_on_the_other(tmp_path, first_to_sync):
    # git-commit created the pages `git`, `editor`, ...; git-reset adds to `git` and `commit`.
    inputs = tmp_path / "in"
    url, _first = make_remote(tmp_path, ["git-commit.md"], inputs)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    run_openkb("--kb-dir", alice, "revert", "git-commit", check=True)
    add(bob, copy_tldr(tmp_path / "in-b", ["git-reset.md"]) / "git-reset.md")
    sides = [alice, bob] if first_to_sync == "reverter" else [bob, alice]
    sync(sides[0])
    assert "CONFLICT (modify/delete)" in pull_rebase_conflicts(sides[1], tmp_path)

    sync(sides[1])
    sync(sides[0])
    assert tree(alice) == tree(bob)
    steps = [("add", inputs / "git-commit.md")]
    ops = {"reverter": ("revert", "git-commit"), "ingester": ("add", tmp_path / "in-b" / "git-reset.md")}
    order = ["reverter", "ingester"] if first_to_sync == "reverter" else ["ingester", "reverter"]
    expected = one_kb(tmp_path, "one", steps + [ops[side] for side in order])
    assert listing(alice) == listing(expected)
    shared = (alice / "wiki" / "concepts" / "git.md").read_text()
    assert "git-reset" in shared and "git-commit" not in shared
    assert not (alice / "wiki" / "concepts" / "editor.md").exists()
    assert "[[concepts/git]]" in (alice / "wiki" / "index.md").read_text()
    assert "[[concepts/editor]]" not in (alice / "wiki" / "index.md").read_text()
    for kb in (alice, bob):
        assert_clean(kb)


@pytest.mark.parametrize("first_to_sync", ["reverter", "reingester"])
def test_revert_on_one_side_and_a_reingest_of_the_same_document_on_the_other(tmp_path, first_to_sync):
    inputs = tmp_path / "in"
    url, _first = make_remote(tmp_path, ["git-commit.md"], inputs)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    run_openkb("--kb-dir", alice, "revert", "git-commit", check=True)
    source = inputs / "git-commit.md"
    v1 = source.read_text()
    source.write_text(v1 + "\n- Amend the last commit, keeping its message:\n\n`git commit --amend --no-edit`\n")
    add(bob, source)
    sides = [alice, bob] if first_to_sync == "reverter" else [bob, alice]
    sync(sides[0])
    assert "CONFLICT (modify/delete)" in pull_rebase_conflicts(sides[1], tmp_path)

    sync(sides[1])
    sync(sides[0])
    assert tree(alice) == tree(bob)
    # In one KB, either way the re-ingest's content stands: after the revert it adds the
    # document again; before it, it supersedes the ingest the revert names.
    v2 = source.read_text()
    source.write_text(v1)
    kb = one_kb(tmp_path, "one", [("add", source)])
    if first_to_sync == "reverter":
        run_openkb("--kb-dir", kb, "revert", "git-commit", check=True)
    source.write_text(v2)
    run_openkb("--kb-dir", kb, "add", source, check=True)
    if first_to_sync == "reingester":
        run_openkb("--kb-dir", kb, "revert", "HEAD~1", check=True)  # superseded: nothing to revert
    assert listing(alice) == listing(kb)
    assert "--amend --no-edit" in (alice / "raw" / "git-commit.md").read_text()
    for side in (alice, bob):
        assert_clean(side)


def test_each_side_reverts_one_of_a_pages_only_two_sources(tmp_path):
    # `git` and `commit` have exactly two sources, git-commit and git-reset.
    inputs = tmp_path / "in"
    url, _first = make_remote(tmp_path, ["git-commit.md", "git-reset.md"], inputs)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    run_openkb("--kb-dir", alice, "revert", "git-commit", check=True)
    run_openkb("--kb-dir", bob, "revert", "git-reset", check=True)
    sync(alice)
    sync(bob)
    sync(alice)
    assert tree(alice) == tree(bob)
    expected = one_kb(tmp_path, "one", [("add", inputs / "git-commit.md", inputs / "git-reset.md"),
                                        ("revert", "git-commit"), ("revert", "git-reset")])
    assert listing(alice) == listing(expected)
    assert not (alice / "wiki" / "concepts" / "git.md").exists()
    index = (alice / "wiki" / "index.md").read_text()
    assert "[[concepts/git]]" not in index and "[[concepts/commit]]" not in index
    for kb in (alice, bob):
        assert_clean(kb)


def test_a_true_hand_edit_conflict_changes_nothing_and_lists_the_path(tmp_path):
    url, _first = make_remote(tmp_path, ["git-commit.md"], tmp_path / "in")
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    path = "wiki/summaries/git-commit.md"
    for kb, words in ((alice, "Alice's title"), (bob, "Bob's title")):
        page = kb / path
        page.write_text(page.read_text().replace("# git commit", f"# {words}", 1))
        git(kb, "commit", "-qam", f"{words} by hand")
    add(bob, copy_tldr(tmp_path / "in-b", ["git-reset.md"]) / "git-reset.md")
    sync(alice)
    head, remote_head = git(bob, "rev-parse", "HEAD").strip(), git(alice, "rev-parse", "HEAD").strip()
    proc = run_openkb("--kb-dir", bob, "sync")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{path}:" in proc.stderr and "nothing was changed" in proc.stderr
    assert git(bob, "rev-parse", "HEAD").strip() == head
    assert "Bob's title" in (bob / path).read_text()
    assert git(bob, "ls-remote", url, "refs/heads/main").split()[0] == remote_head
    assert_clean(bob)
    as_json = json.loads(run_openkb("--kb-dir", bob, "sync", "--json").stdout)
    assert [c["path"] for c in as_json["conflicts"]] == [path]

    # resolved as docs/team.md says: `git pull --rebase`, fix, continue, recover, sync
    rebase = subprocess.run(["git", "-C", str(bob), "pull", "--rebase", "origin", "main"], capture_output=True, text=True)
    assert rebase.returncode != 0 and path in rebase.stdout + rebase.stderr
    fixed = subprocess.run(["git", "-C", str(bob), "show", f"origin/main:{path}"], capture_output=True, text=True,
                           check=True).stdout.replace("# Alice's title", "# Alice's and Bob's title", 1)
    (bob / path).write_text(fixed)
    git(bob, "add", path)
    subprocess.run(["git", "-C", str(bob), "-c", "core.editor=true", "rebase", "--continue"], check=True,
                   capture_output=True)
    run_openkb("--kb-dir", bob, "recover", check=True)
    assert sync(bob)["pushed"]
    sync(alice)
    assert "# Alice's and Bob's title" in (alice / path).read_text()
    assert (alice / "wiki" / "summaries" / "git-reset.md").exists()
    for kb in (alice, bob):
        assert_clean(kb)


# -- over a network protocol -----------------------------------------------------------


def test_sync_over_git_daemon(tmp_path):
    url, _first = make_remote(tmp_path)
    with git_daemon(tmp_path) as base:
        remote = f"{base}/remote.git"
        alice, bob = clone(remote, tmp_path / "alice"), clone(remote, tmp_path / "bob")
        add(alice, copy_tldr(tmp_path / "in-a", ["git-add.md"]) / "git-add.md")
        add(bob, copy_tldr(tmp_path / "in-b", ["git-reset.md"]) / "git-reset.md")
        assert sync(alice)["pushed"]
        assert sync(bob)["pushed"]
        assert sync(alice)["fast_forwarded"]
        assert tree(alice) == tree(bob)
        for kb in (alice, bob):
            assert_clean(kb)


# -- three clones syncing concurrently -------------------------------------------------


@pytest.fixture
def served(tmp_path):
    """`git daemon` serving tmp_path's repositories; yields its base URL."""
    with git_daemon(tmp_path) as base:
        yield base


def test_three_clones_syncing_in_a_loop_concurrently_converge(tmp_path, served):
    # Over a real network protocol (git daemon on 127.0.0.1); file:// remotes everywhere else.
    import random
    import threading

    make_remote(tmp_path)
    url = f"{served}/remote.git"
    pool = sorted(p.name for p in (TLDR / "common").glob("git-*.md"))[:18]
    clones = [clone(url, tmp_path / f"c{n}") for n in range(3)]
    landed: list[set[str]] = [set(), set(), set()]
    failures: list[str] = []

    def journal_of_head(kb: Path) -> str:
        return git(kb, "log", "-1", "--format=%(trailers:key=OpenKB-Journal,valueonly)").strip()

    def work(n: int) -> None:
        kb, rng = clones[n], random.Random(1500 + n)
        inputs = tmp_path / f"in-{n}"
        mine = pool[n::3]
        fresh, touched = list(mine), []
        for step in range(3):
            head = git(kb, "rev-parse", "HEAD").strip()
            kinds = ["add"] + (["reingest", "remove", "revert"] if touched else [])
            kind = "add" if step == 0 else rng.choice(kinds)
            present = [d for d in touched if (kb / ".openkb" / "registry" / f"{d[:-3]}.json").exists()]
            if kind in ("reingest", "remove") and not present:
                kind = "add"
            if kind == "add":
                name = fresh.pop(0)
                proc = run_openkb("--kb-dir", kb, "add", copy_tldr(inputs, [name]) / name)
                touched.append(name)
            elif kind == "reingest":
                name = rng.choice(present)
                with open(inputs / name, "a") as fh:
                    fh.write(f"\n- Step {step} of clone {n}:\n\n`true`\n")
                proc = run_openkb("--kb-dir", kb, "add", inputs / name)
            elif kind == "remove":
                proc = run_openkb("--kb-dir", kb, "remove", rng.choice(present)[:-3])
            else:
                proc = run_openkb("--kb-dir", kb, "revert", rng.choice(touched)[:-3])
            if proc.returncode != 0:
                failures.append(f"clone {n} {kind}: {proc.stderr}")
                return
            if git(kb, "rev-parse", "HEAD").strip() != head:
                landed[n].add(journal_of_head(kb))
            proc = run_openkb("--kb-dir", kb, "sync", "--wait", "60", timeout=120)
            if proc.returncode != 0 and "moved under every one" not in proc.stderr:
                failures.append(f"clone {n} sync: {proc.stderr}")
                return

    threads = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads) and not failures, failures
    for kb in clones + clones[:2]:  # twice round: everyone has everything
        sync(kb)

    assert len({tree(kb) for kb in clones}) == 1
    journals = trailers(clones[0], "OpenKB-Journal")
    assert len(journals) == len(set(journals))  # every operation exactly once
    init = git(clones[0], "log", "--reverse", "--format=%(trailers:key=OpenKB-Journal,valueonly)").split()[0]
    assert set(journals) - {init} == set().union(*landed)
    for kb in clones:
        assert_clean(kb)
        assert len(json.loads(run_openkb("--kb-dir", kb, "log", "--json", check=True).stdout)) == \
            int(git(kb, "rev-list", "--count", "HEAD"))

    # one KB doing the same operations in the merged order gives the same tree
    one = tmp_path / "one"
    run_openkb("init", one, check=True)
    mapping = {}
    shas = git(clones[0], "rev-list", "--reverse", "HEAD").split()[1:]
    for sha in shas:
        message = git(clones[0], "log", "-1", "--format=%B", sha)
        fields = dict(line.split(": ", 1) for line in message.splitlines() if line.startswith("OpenKB-"))
        op, doc = fields["OpenKB-Op"], fields.get("OpenKB-Doc")
        if op == "add":
            source = tmp_path / "replay" / fields["OpenKB-Source"]  # (a source path: folder and name)
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(subprocess.run(["git", "-C", str(clones[0]), "show", f"{sha}:raw/{doc}.md"],
                                              capture_output=True, check=True).stdout)
            run_openkb("--kb-dir", one, "add", source, check=True)
        elif op == "remove":
            run_openkb("--kb-dir", one, "remove", doc, check=True)
        else:
            assert op == "revert", message
            run_openkb("--kb-dir", one, "revert", mapping[fields["OpenKB-Reverts"]], check=True)
        mapping[sha] = git(one, "rev-parse", "HEAD").strip()
    assert listing(one) == listing(clones[0])


@pytest.mark.parametrize("point", ["journal:durable", "ref:moved", "projected"])
def test_a_sync_killed_at_any_step_is_finished_or_undone_by_recovery(tmp_path, point):
    url, _first = make_remote(tmp_path)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    add(alice, copy_tldr(tmp_path / "in-a", ["git-add.md"]) / "git-add.md")
    add(bob, copy_tldr(tmp_path / "in-b", ["git-reset.md", "git-commit.md"]), )
    sync(alice)
    before = git(bob, "rev-parse", "HEAD").strip()
    killed = run_openkb("--kb-dir", bob, "sync", env={"OPENKB_FAULT_KILL_AT": point})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    moved = git(bob, "rev-parse", "HEAD").strip() != before
    assert moved == (point != "journal:durable")
    run_openkb("--kb-dir", bob, "recover", check=True)
    assert_clean(bob)
    sync(bob)
    sync(alice)
    assert tree(alice) == tree(bob)
    assert sorted(trailers(bob, "OpenKB-Doc")) == ["git-add", "git-commit", "git-reset"]
    for kb in (alice, bob):
        assert_clean(kb)


def test_untracked_files_where_the_remotes_operations_go_are_never_overwritten(tmp_path):
    url, _first = make_remote(tmp_path)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    add(alice, copy_tldr(tmp_path / "in-a", ["git-add.md"]) / "git-add.md")
    sync(alice)
    mine = bob / "wiki" / "summaries" / "git-add.md"
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("Bob's own notes, not tracked\n")
    head = git(bob, "rev-parse", "HEAD").strip()
    proc = run_openkb("--kb-dir", bob, "pull")
    assert proc.returncode == 1 and "wiki/summaries/git-add.md" in proc.stderr, proc.stderr
    assert mine.read_text() == "Bob's own notes, not tracked\n"
    assert git(bob, "rev-parse", "HEAD").strip() == head
    mine.unlink()
    assert json.loads(run_openkb("--kb-dir", bob, "pull", "--json", check=True).stdout)["fast_forwarded"]
    assert_clean(bob)


def test_a_revert_of_an_unpushed_operation_names_the_replayed_commit(tmp_path):
    url, _first = make_remote(tmp_path)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    add(alice, copy_tldr(tmp_path / "in-a", ["git-add.md"]) / "git-add.md")
    add(bob, copy_tldr(tmp_path / "in-b", ["git-commit.md"]) / "git-commit.md")
    run_openkb("--kb-dir", bob, "revert", "git-commit", check=True)
    sync(alice)
    out = sync(bob)
    added, reverted = out["replayed"]
    assert added["op"] == "add" and reverted["op"] == "revert" and added["commit"] and reverted["commit"]
    assert git(bob, "log", "-1", "--format=%(trailers:key=OpenKB-Reverts,valueonly)").strip() == added["commit"]
    assert f"This reverts add {added['commit']}." in git(bob, "log", "-1", "--format=%B")
    assert not (bob / "wiki" / "summaries" / "git-commit.md").exists()
    assert (bob / "wiki" / "summaries" / "git-add.md").exists()
    assert_clean(bob)


def test_two_different_documents_with_one_name_come_out_with_distinct_names(tmp_path):
    url, _first = make_remote(tmp_path)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    a_in, b_in = tmp_path / "in-a", tmp_path / "in-b"
    copy_tldr(a_in, ["ac.md"], "common")
    copy_tldr(b_in, ["git-reset.md"])
    shutil.copy(TLDR / "linux" / "ac.md", b_in / "ac.md")  # another document of the same name
    add(alice, a_in / "ac.md")
    add(bob, b_in / "ac.md")
    add(bob, b_in / "git-reset.md")
    run_openkb("--kb-dir", bob, "remove", "ac", check=True)  # Bob's own `ac`, not Alice's
    run_openkb("--kb-dir", bob, "revert", "HEAD", check=True)  # ... and back
    sync(alice)
    assert "CONFLICT" in pull_rebase_conflicts(bob, tmp_path)
    out = sync(bob)
    renamed = [r for r in out["replayed"] if r["doc"] and r["doc"].startswith("ac-")]
    assert renamed and renamed[0]["note"].startswith("named ac-")
    sync(alice)
    assert tree(alice) == tree(bob)
    expected = one_kb(tmp_path, "one", [("add", a_in / "ac.md"), ("add", b_in / "ac.md"),
                                        ("add", b_in / "git-reset.md")])
    run_openkb("--kb-dir", expected, "remove", renamed[0]["doc"], check=True)
    run_openkb("--kb-dir", expected, "revert", "HEAD", check=True)
    assert listing(alice) == listing(expected)
    records = {p.stem: json.loads(p.read_text()) for p in (alice / ".openkb" / "registry").glob("*.json")}
    assert records["ac"]["path"] == "in-a/ac.md"  # source paths: the folder's name and the file's
    assert records[renamed[0]["doc"]]["path"] == "in-b/ac.md"
    docs = [line for line in git(alice, "log", "--format=%(trailers:key=OpenKB-Doc,valueonly)").split() if line]
    assert docs.count("ac") == 1 and docs.count(renamed[0]["doc"]) == 3
    for kb in (alice, bob):
        assert_clean(kb)


def test_a_merge_made_by_a_plain_git_pull_is_flattened_by_the_next_sync(tmp_path):
    url, _first = make_remote(tmp_path)
    alice, bob = clone(url, tmp_path / "alice"), clone(url, tmp_path / "bob")
    a_in, b_in = copy_tldr(tmp_path / "in-a", ["git-add.md", "git-merge.md"]), copy_tldr(tmp_path / "in-b", BOB)
    add(alice, a_in / "git-add.md")
    add(bob, b_in / "git-checkout.md")
    sync(alice)
    git(bob, "-c", "core.editor=true", "pull", "--no-rebase", "origin", "main")  # a merge commit, by plain Git
    run_openkb("--kb-dir", bob, "recover", check=True)
    add(bob, b_in / "git-rebase.md")
    add(alice, a_in / "git-merge.md")
    sync(alice)
    out = sync(bob)
    assert [r["doc"] for r in out["replayed"]] == ["git-checkout", "git-rebase"]
    sync(alice)
    assert tree(alice) == tree(bob)
    assert git(bob, "rev-list", "--merges", "--count", "HEAD").strip() == "0"
    expected = one_kb(tmp_path, "one", [("add", a_in / "git-add.md"), ("add", a_in / "git-merge.md"),
                                        ("add", b_in / "git-checkout.md"), ("add", b_in / "git-rebase.md")])
    assert listing(bob) == listing(expected)
    for kb in (alice, bob):
        assert_clean(kb)


# -- data from the remote is untrusted ------------------------------------------------------


def test_a_remote_commit_with_a_path_openkb_refuses_is_never_checked_out(tmp_path):
    """A tampered clone pushes a commit whose tree holds `wiki\\evil.md` (a backslash: Git's own
    checks let it through, openkb's path rules do not): Bob's fast-forward and Bob's replay both
    refuse it naming the path, write nothing and leave the branch where it was."""
    url, first = make_remote(tmp_path)
    blob = subprocess.run(["git", "-C", str(first), "hash-object", "-w", "--stdin"], input=b"evil\n",
                          capture_output=True, check=True).stdout.decode().strip()
    listing_ = git(first, "ls-tree", "HEAD")
    tree_ = subprocess.run(["git", "-C", str(first), "mktree"], input=(listing_ + f"100644 blob {blob}\twiki\\evil.md\n").encode(),
                           capture_output=True, check=True).stdout.decode().strip()
    commit = git(first, "commit-tree", tree_, "-p", "HEAD", "-m", "edit: tampered").strip()
    git(first, "push", "-q", "origin", f"{commit}:main")
    for ahead in (False, True):  # behind only (a fast-forward), then with an operation of ours to replay
        bob = clone_before(url, tmp_path / f"bob-{ahead}", commit)
        if ahead:
            add(bob, copy_tldr(tmp_path / f"in-{ahead}", ["git-add.md"]) / "git-add.md")
        before = git(bob, "rev-parse", "HEAD").strip()
        proc = run_openkb("--kb-dir", bob, "sync")
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
        assert "unsafe path 'wiki\\\\evil.md'" in proc.stderr and "backslash" in proc.stderr, proc.stderr
        assert git(bob, "rev-parse", "HEAD").strip() == before
        assert not any("evil" in p.name for p in bob.rglob("*"))
        assert_clean(bob)


def clone_before(url: str, dest: Path, commit: str) -> Path:
    """A clone of ``url`` set back to the parent of ``commit`` (as if cloned before it landed)."""
    clone(url, dest)
    git(dest, "reset", "-q", "--hard", f"{commit}~1")
    run_openkb("--kb-dir", dest, "recover", check=True)
    return dest
