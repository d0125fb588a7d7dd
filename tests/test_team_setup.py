"""Setting up a shared knowledge base (issue #15, docs/team.md): a bare remote, `openkb clone`,
`openkb init` in a plain `git clone`, the merge drivers Git runs through PATH, the Git hooks
that refresh the views after plain git operations, `raw/** -diff`, and fsck's notes vs damage.

Real remotes: bare repositories over file://, and one over `git daemon` on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, TLDR, assert_consistent, copy_tldr, git, git_daemon, run_openkb

DRIVERS = ("openkb-page", "openkb-index", "openkb-record")
HOOKS = ("post-merge", "post-rewrite", "post-checkout")


def _remote(tmp_path: Path, docs: list[str] = (), *, head: str | None = "main") -> tuple[Path, str]:
    """A KB (with ``docs`` ingested) pushed to a new bare repository; (its KB, its file:// URL).
    ``head``: the bare repository's initial branch (`git init --bare -b main`), None for plain
    `git init --bare` (HEAD names master)."""
    kb = tmp_path / "origin-kb"
    run_openkb("init", kb, check=True)
    if docs:
        run_openkb("add", copy_tldr(tmp_path / "origin-src", list(docs)), cwd=kb, check=True)
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", *(["-b", head] if head else []), str(bare)], check=True)
    url = bare.as_uri()
    git(kb, "remote", "add", "origin", url)
    git(kb, "push", "-q", "-u", "origin", "main")
    return kb, url


def _fsck(kb: Path) -> tuple[int, dict]:
    proc = run_openkb("fsck", "--json", cwd=kb)
    return proc.returncode, json.loads(proc.stdout)


def _assert_set_up(clone: Path) -> None:
    """Drivers declared with a command found through PATH, hooks installed, views right."""
    for name in DRIVERS:
        command = git(clone, "config", f"merge.{name}.driver").strip()
        assert command == "openkb merge-driver %O %A %B %P", command  # no absolute interpreter path
    for hook in HOOKS:
        path = clone / ".git" / "hooks" / hook
        assert path.is_file() and os.access(path, os.X_OK), hook
    for view in (".openkb/hashes.json", "wiki/log.md", ".openkb/views.json"):
        assert (clone / view).is_file(), view
    code, report = _fsck(clone)
    assert code == 0 and report["problems"] == [] and report["warnings"] == [], report
    assert_consistent(clone)


def _docs_in_hashes(kb: Path) -> list[str]:
    """The doc names OpenKB's `list` reads from hashes.json ({sha256: {doc_name, ...}})."""
    hashes = json.loads((kb / ".openkb" / "hashes.json").read_text())
    assert all(len(sha) == 64 and {"name", "doc_name", "type", "raw_path"} <= set(meta) for sha, meta in hashes.items())
    return sorted(meta["doc_name"] for meta in hashes.values())


def test_openkb_clone_sets_up_drivers_hooks_and_views(tmp_path):
    origin, url = _remote(tmp_path, ["tar.md", "grep.md"])
    proc = run_openkb("clone", url, tmp_path / "bob", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    bob = tmp_path / "bob"
    assert summary["branch"] == "main" and summary["commit"] == git(origin, "rev-parse", "HEAD").strip()
    assert git(bob, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    _assert_set_up(bob)
    assert _docs_in_hashes(bob) == ["grep", "tar"]
    assert (bob / "wiki" / "log.md").read_text() == (origin / "wiki" / "log.md").read_text()
    text = run_openkb("clone", url, tmp_path / "carol")
    assert text.returncode == 0 and "merge drivers" in text.stdout and "hooks" in text.stdout, text.stdout


def test_plain_git_clone_then_openkb_init(tmp_path):
    """A plain clone: no drivers in .git/config, no views. fsck says so as notes (exit 0);
    `openkb init` sets it up (it used to refuse: "already holds a Git repository")."""
    _origin, url = _remote(tmp_path, ["tar.md"])
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", url, str(bob))
    assert git(bob, "config", "--get", "merge.openkb-index.driver", check=False).strip() == ""
    code, report = _fsck(bob)
    assert code == 0, report
    assert {(p["check"], p["path"]) for p in report["problems"]} == {("views", ".openkb/hashes.json"),
                                                                      ("views", "wiki/log.md")}
    assert all(p["note"] for p in report["problems"])
    assert any("not configured" in w and "openkb init" in w for w in report["warnings"]), report["warnings"]
    head = git(bob, "rev-parse", "HEAD")
    proc = run_openkb("init", cwd=bob)
    assert proc.returncode == 0, proc.stderr
    assert "merge drivers" in proc.stdout and "views rebuilt" in proc.stdout
    assert git(bob, "rev-parse", "HEAD") == head  # nothing to commit: .gitattributes is current
    _assert_set_up(bob)
    assert _docs_in_hashes(bob) == ["tar"]


def _two_clones(tmp_path: Path) -> tuple[Path, Path, str]:
    """Alice by `openkb clone`, Bob by `git clone` + `openkb init`, of one remote."""
    _origin, url = _remote(tmp_path)
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    run_openkb("clone", url, alice, check=True)
    git(tmp_path, "clone", "-q", url, str(bob))
    run_openkb("init", cwd=bob, check=True)
    return alice, bob, url


def test_pull_merges_through_the_drivers_and_the_hooks_refresh_the_views(tmp_path):
    """Alice's and Bob's ingests share wiki/index.md and concept pages: Bob's plain `git pull`
    merges them with no conflict (a clone without the drivers conflicts on the same pull), and
    the post-merge hook leaves the views fresh: hashes.json lists every document, fsck exit 0.
    Then `git pull --rebase` (post-rewrite) likewise."""
    alice, bob, url = _two_clones(tmp_path)
    run_openkb("add", copy_tldr(tmp_path / "a", ["tar.md", "curl.md"]), cwd=alice, check=True)
    git(alice, "push", "-q")
    run_openkb("add", copy_tldr(tmp_path / "b", ["grep.md", "wget.md"]), cwd=bob, check=True)

    # The control: the same merge in a clone where Git has no drivers is a text merge that conflicts.
    plain = tmp_path / "plain"
    git(tmp_path, "clone", "-q", str(bob), str(plain))
    git(plain, "fetch", "-q", url, "main")
    control = subprocess.run(["git", "-C", str(plain), "merge", "--no-edit", "FETCH_HEAD"], capture_output=True, text=True)
    assert control.returncode != 0 and "CONFLICT" in control.stdout, control.stdout

    pulled = subprocess.run(["git", "-C", str(bob), "pull", "--no-rebase", "--no-edit"], capture_output=True, text=True)
    assert pulled.returncode == 0 and "CONFLICT" not in pulled.stdout + pulled.stderr, pulled.stdout + pulled.stderr
    index = (bob / "wiki" / "index.md").read_text()
    assert all(f"[[summaries/{doc}]]" in index for doc in ("tar", "curl", "grep", "wget")), index
    assert _docs_in_hashes(bob) == ["curl", "grep", "tar", "wget"]  # the hook refreshed the views
    status = json.loads(run_openkb("status", "--json", cwd=bob, check=True).stdout)
    assert status["views_current"] and status["documents"] == 4 and status["warnings"] == []
    code, report = _fsck(bob)
    assert code == 0 and report["problems"] == [], report
    assert_consistent(bob)

    git(bob, "push", "-q")
    run_openkb("add", copy_tldr(tmp_path / "b", ["ls.md"]), cwd=bob, check=True)
    git(bob, "push", "-q")
    run_openkb("add", copy_tldr(tmp_path / "a", ["cp.md"]), cwd=alice, check=True)
    rebased = subprocess.run(["git", "-C", str(alice), "pull", "--rebase"], capture_output=True, text=True)
    assert rebased.returncode == 0 and "CONFLICT" not in rebased.stdout + rebased.stderr, rebased.stdout + rebased.stderr
    assert _docs_in_hashes(alice) == ["cp", "curl", "grep", "ls", "tar", "wget"]
    code, report = _fsck(alice)
    assert code == 0 and report["problems"] == [], report
    assert_consistent(alice)

    git(alice, "switch", "-q", "-c", "try")  # post-checkout: a branch switch keeps the views right
    git(alice, "reset", "-q", "--hard", "HEAD~1")
    git(alice, "switch", "-q", "main")
    assert json.loads(run_openkb("status", "--json", cwd=alice, check=True).stdout)["views_current"]


def test_a_users_own_git_hook_is_left_alone(tmp_path):
    _origin, url = _remote(tmp_path)
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", url, str(bob))
    mine = bob / ".git" / "hooks" / "post-merge"
    mine.write_text("#!/bin/sh\necho mine\n")
    mine.chmod(0o755)
    proc = run_openkb("init", cwd=bob)
    assert proc.returncode == 0, proc.stderr
    assert mine.read_text() == "#!/bin/sh\necho mine\n"
    assert ".git/hooks/post-merge" in proc.stderr and 'openkb git-hook post-merge "$@"' in proc.stderr
    assert "openkb git-hook post-rewrite" in (bob / ".git" / "hooks" / "post-rewrite").read_text()
    again = run_openkb("init", cwd=bob)  # our own hooks are kept; the user's still left alone
    assert again.returncode == 0 and mine.read_text() == "#!/bin/sh\necho mine\n"


def test_a_bare_remote_whose_head_is_master(tmp_path):
    """Plain `git init --bare` names master in HEAD; the KB is on main. `openkb clone` checks out
    main (warning about the remote's HEAD); a plain `git clone` checks out nothing, and
    `openkb init` in it checks out main."""
    origin, url = _remote(tmp_path, ["tar.md"], head=None)
    assert git(tmp_path / "remote.git", "symbolic-ref", "HEAD").strip() == "refs/heads/master"
    proc = run_openkb("clone", url, tmp_path / "bob")
    assert proc.returncode == 0, proc.stderr
    assert "HEAD" in proc.stderr and "git init --bare" in proc.stderr
    _assert_set_up(tmp_path / "bob")
    assert git(tmp_path / "bob", "rev-parse", "HEAD") == git(origin, "rev-parse", "HEAD")

    carol = tmp_path / "carol"
    git(tmp_path, "clone", "-q", url, str(carol), check=False)
    assert not (carol / ".openkb").exists()  # Git checked out nothing
    init = run_openkb("init", cwd=carol)
    assert init.returncode == 0, init.stderr
    assert git(carol, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    _assert_set_up(carol)


def test_clone_refuses_a_remote_without_a_knowledge_base(tmp_path):
    bare = tmp_path / "code.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    empty = run_openkb("clone", bare.as_uri(), tmp_path / "x")
    assert empty.returncode == 1 and "holds no branches" in empty.stderr and "git push" in empty.stderr
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    (work / "README").write_text("code\n")
    git(work, "add", "README")
    git(work, "commit", "-q", "-m", "code")
    git(work, "push", "-q", bare.as_uri(), "main", "main:feature")
    proc = run_openkb("clone", bare.as_uri(), tmp_path / "y")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "holds no openkb knowledge base" in proc.stderr and "feature" in proc.stderr, proc.stderr
    assert not (tmp_path / "y").exists()


def test_git_show_of_a_pdf_ingest_says_binary(kb, tmp_path):
    pdf = copy_pdf(tmp_path / "src")
    run_openkb("add", pdf, cwd=kb, check=True)
    raw = f"raw/{pdf.name}"
    shown = git(kb, "show", "HEAD", "--", raw)
    assert f"Binary files /dev/null and b/{raw} differ" in shown and "%PDF" not in shown, shown[:500]
    assert git(kb, "check-attr", "diff", "--", raw).strip() == f"{raw}: diff: unset"
    review = run_openkb("show", "HEAD", cwd=kb)  # openkb's own review is unchanged by the attribute
    assert review.returncode == 0 and raw in review.stdout


def test_init_in_an_older_kb_commits_raw_no_diff(kb, tmp_path):
    """A KB whose .gitattributes predates `raw/** -diff`: `openkb init` in it adds the line as one
    `edit` commit (journaled, revertible); a second init commits nothing."""
    attributes = kb / ".gitattributes"
    attributes.write_text("".join(line for line in attributes.read_text().splitlines(keepends=True)
                                  if "-diff" not in line and "binary" not in line))
    git(kb, "commit", "-q", "-am", "an older .gitattributes")
    pdf = copy_pdf(tmp_path / "src")
    run_openkb("add", pdf, cwd=kb, check=True)
    assert "%PDF" in git(kb, "show", "HEAD", "--", f"raw/{pdf.name}")  # the bug: the PDF printed as text
    head = git(kb, "rev-parse", "HEAD").strip()
    proc = run_openkb("init", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert git(kb, "rev-parse", "HEAD~1").strip() == head
    assert "raw/** -diff" in attributes.read_text()
    assert git(kb, "log", "-1", "--format=%(trailers:key=OpenKB-Op,valueonly)").strip() == "edit"
    assert "Binary files" in git(kb, "show", "HEAD~1", "--", f"raw/{pdf.name}")
    assert run_openkb("init", cwd=kb, check=True) and git(kb, "rev-parse", "HEAD~1").strip() == head
    assert _fsck(kb)[0] == 0
    assert_consistent(kb)


def copy_pdf(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    source = CORPUS / "pdf" / "circular-toc.pdf"  # no NUL byte: Git's own guess takes it for text
    shutil.copy(source, dest / source.name)
    return dest / source.name


def test_status_and_fsck_warn_when_the_drivers_are_missing_or_do_not_resolve(kb, tmp_path):
    assert json.loads(run_openkb("status", "--json", cwd=kb, check=True).stdout)["warnings"] == []
    git(kb, "config", "--remove-section", "merge.openkb-index")
    status = run_openkb("status", cwd=kb, check=True)
    assert "warning:" in status.stdout and "openkb-index not configured" in status.stdout, status.stdout
    proc = run_openkb("fsck", cwd=kb)
    assert proc.returncode == 0 and "openkb-index not configured" in proc.stdout, proc.stdout

    # A driver command naming an interpreter this machine lacks (an older init, a moved venv).
    git(kb, "config", "merge.openkb-index.driver", '"/nowhere/bin/python" -m openkb_git merge-driver %O %A %B %P')
    _code, report = _fsck(kb)
    assert _code == 0 and any("does not resolve" in w for w in report["warnings"]), report["warnings"]
    # OpenKB's own `openkb` first on PATH: it has no merge driver.
    other = tmp_path / "other-bin"
    other.mkdir()
    (other / "openkb").write_text("#!/bin/sh\necho 'openkb, version 0.4.5'\n")
    (other / "openkb").chmod(0o755)
    env = {"PATH": f"{other}{os.pathsep}{os.environ['PATH']}"}
    st = json.loads(run_openkb("status", "--json", cwd=kb, env=env, check=True).stdout)
    assert any("not openkb-git" in w for w in st["warnings"]), st["warnings"]
    run_openkb("init", cwd=kb, check=True)  # sets every driver again
    assert json.loads(run_openkb("status", "--json", cwd=kb, check=True).stdout)["warnings"] == []


def test_without_openkb_on_path_the_drivers_and_hooks_name_this_interpreter(tmp_path):
    """The README's `.venv/bin/openkb init`, no virtual environment activated: no `openkb` on
    PATH, so the drivers and hooks name the interpreter by its full path; a plain `git merge`
    run with that PATH merges with the drivers (no conflict), the post-merge hook refreshes the
    views, and no warning is printed."""
    bare = {"PATH": os.pathsep.join(sorted({os.path.dirname(shutil.which("git")), "/bin", "/usr/bin"}))}
    kb = tmp_path / "kb"
    proc = run_openkb("init", kb, env=bare, check=True)
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    command = git(kb, "config", "merge.openkb-index.driver").strip()
    assert command == f"{sys.executable} -m openkb_git merge-driver %O %A %B %P"
    assert sys.executable in (kb / ".git" / "hooks" / "post-merge").read_text()
    git(kb, "switch", "-q", "-c", "side")
    run_openkb("add", copy_tldr(tmp_path / "a", ["tar.md"]), cwd=kb, env=bare, check=True)
    git(kb, "switch", "-q", "main")
    run_openkb("add", copy_tldr(tmp_path / "b", ["grep.md"]), cwd=kb, env=bare, check=True)
    merged = subprocess.run(["git", "-C", str(kb), "merge", "--no-edit", "side"], capture_output=True, text=True,
                            env={**os.environ, **bare})
    assert merged.returncode == 0 and "CONFLICT" not in merged.stdout, merged.stdout + merged.stderr
    index = (kb / "wiki" / "index.md").read_text()
    assert "[[summaries/tar]]" in index and "[[summaries/grep]]" in index
    report = json.loads(run_openkb("fsck", "--json", cwd=kb, env=bare).stdout)
    assert report["ok"] and report["warnings"] == [] and not report["problems"], report  # the hook ran


def test_fsck_exit_codes_notes_for_normal_life_damage_fails(tmp_path):
    origin, url = _remote(tmp_path, ["grep.md"])
    kb = tmp_path / "bob"
    run_openkb("clone", url, kb, check=True)
    # Stale views: a plain `git pull` with the hooks gone.
    for hook in HOOKS:
        (kb / ".git" / "hooks" / hook).unlink()
    run_openkb("add", copy_tldr(tmp_path / "more", ["tar.md"]), cwd=origin, check=True)
    git(origin, "push", "-q")
    git(kb, "pull", "-q", "--no-rebase")
    code, report = _fsck(kb)
    assert code == 0 and report["ok"] and {p["check"] for p in report["problems"]} == {"views"}, report
    assert _docs_in_hashes(kb) == ["grep"]  # behind HEAD: the pull brought tar
    # Uncommitted hand edits: notes too.
    (kb / "wiki" / "summaries" / "grep.md").write_text("my notes\n")
    (kb / "wiki" / "sources" / "grep.md").unlink()
    code, report = _fsck(kb)
    assert code == 0 and {("worktree", "wiki/summaries/grep.md"), ("worktree", "wiki/sources/grep.md")} <= \
        {(p["check"], p["path"]) for p in report["problems"]}
    text = run_openkb("fsck", cwd=kb)
    assert text.returncode == 0 and "note" in text.stdout and "no damage" in text.stdout
    repaired = run_openkb("fsck", "--repair", cwd=kb)
    assert repaired.returncode == 0 and "repaired" in repaired.stdout
    code, report = _fsck(kb)
    assert code == 0 and report["problems"] == [], report
    # Damage stays exit 1: a record naming a file HEAD lacks, a Git index that lost an entry.
    git(kb, "rm", "-q", "wiki/sources/grep.md")
    git(kb, "commit", "-q", "-m", "a file a record names, deleted")
    code, report = _fsck(kb)
    assert code == 1 and not report["ok"] and ("registry", ".openkb/registry/grep.json") in \
        {(p["check"], p["path"]) for p in report["problems"] if not p["note"]}, report
    assert run_openkb("fsck", "--repair", cwd=kb).returncode == 1
    git(kb, "rm", "-q", "--cached", "raw/grep.md")
    assert _fsck(kb)[0] == 1


@pytest.fixture
def served_git(tmp_path):
    """`git daemon` serving tmp_path/served (see conftest.git_daemon); yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    with git_daemon(served) as base:
        yield served, base


def test_clone_pull_and_push_over_git_daemon(tmp_path, served_git):
    served, base = served_git
    origin = tmp_path / "origin-kb"
    run_openkb("init", origin, check=True)
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=origin, check=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(served / "kb.git")], check=True)
    url = f"{base}/kb.git"
    git(origin, "push", "-q", url, "main")
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    for who in (alice, bob):
        proc = run_openkb("clone", url, who, timeout=60)
        assert proc.returncode == 0, proc.stderr
        _assert_set_up(who)
    run_openkb("add", copy_tldr(tmp_path / "a", ["grep.md"]), cwd=alice, check=True)
    git(alice, "push", "-q")
    run_openkb("add", copy_tldr(tmp_path / "b", ["curl.md"]), cwd=bob, check=True)
    pulled = subprocess.run(["git", "-C", str(bob), "pull", "--no-rebase", "--no-edit"], capture_output=True,
                            text=True, timeout=60)
    assert pulled.returncode == 0 and "CONFLICT" not in pulled.stdout, pulled.stdout + pulled.stderr
    assert _docs_in_hashes(bob) == ["curl", "grep", "tar"]
    git(bob, "push", "-q")
    code, report = _fsck(bob)
    assert code == 0 and report["problems"] == [], report
    assert_consistent(bob)
