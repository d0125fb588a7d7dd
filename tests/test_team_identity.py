"""Document identity across machines (issue #15, item 5): a document is its content and its
source path relative to the input root, never the absolute local path it was added from.

Every test here fails on the code that keyed documents by absolute paths: the same content
added from two folders (or two clones) conflicted in the registry, a re-ingest from another
folder made a `-<hash>` document, and every machine's paths were published."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import TLDR, assert_consistent, copy_tldr, git, run_openkb


def docs(kb: Path) -> dict[str, dict]:
    return {d["doc"]: d for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)}


def record(kb: Path, doc: str) -> dict:
    return json.loads((kb / ".openkb" / "registry" / f"{doc}.json").read_text())


def changed(src: Path) -> Path:
    """``src`` with one more example: another content, the same name."""
    src.write_text(src.read_text() + "\n- Another example:\n\n`run {{it}} again`\n")
    return src


def published(kb: Path) -> str:
    """Everything a KB publishes: every commit with its message and full patch, every tracked
    file as committed (the registry included), and the views."""
    text = git(kb, "log", "--all", "-p", "--format=raw", "--binary")
    for path in git(kb, "ls-files").splitlines():
        text += git(kb, "show", f"HEAD:{path}")
    for view in (".openkb/hashes.json", ".openkb/views.json", "wiki/log.md"):
        if (kb / view).exists():
            text += (kb / view).read_text()
    return text


def test_the_same_content_from_two_folders_is_one_document(kb, tmp_path):
    alice = copy_tldr(tmp_path / "alice" / "notes", ["curl.md", "tar.md"])
    bob = copy_tldr(tmp_path / "bob" / "elsewhere" / "stuff", ["curl.md"])
    run_openkb("add", alice, cwd=kb, check=True)
    proc = run_openkb("add", "--json", bob, cwd=kb, check=True)
    files = json.loads(proc.stdout)["files"]
    assert [(f["status"], f["doc"], f["reason"]) for f in files] == [("skipped", "curl", "duplicate of curl")]
    assert sorted(docs(kb)) == ["curl", "tar"]
    # The document is known by its path from the folder given on, not by where that folder is.
    assert record(kb, "curl")["path"] == "notes/curl.md"
    assert docs(kb)["curl"]["source"] == "notes/curl.md"
    assert len(git(kb, "log", "--format=%H").split()) == 3  # init, curl, tar
    assert_consistent(kb)


def test_no_absolute_path_of_the_machine_is_published(kb, tmp_path):
    """Records, trailers, commit messages, pages and views carry the relative source path and
    the sha256: nothing names the folder the files came from (nor the KB's own place)."""
    src = copy_tldr(tmp_path / "papers", ["curl.md", "git-commit.md"])
    copy_tldr(src / "sub", ["tar.md"])
    run_openkb("add", src, cwd=kb, check=True)
    run_openkb("add", changed(src / "curl.md"), cwd=kb, check=True)  # a single file: its folder's name and its own
    changed(src / "sub" / "tar.md")
    run_openkb("add", src, cwd=kb, check=True)
    run_openkb("revert", "git-commit", cwd=kb, check=True)
    assert git(kb, "log", "--format=%s").splitlines()[:3] == ["revert: add: git-commit.md", "update: tar.md", "update: curl.md"]
    text = published(kb)
    for folder in {str(tmp_path), str(tmp_path.resolve()), os.path.realpath(tmp_path)}:
        assert folder not in text
    assert text.count("OpenKB-Source: papers/sub/tar.md") == 2 and text.count("OpenKB-Source: papers/curl.md") == 2
    assert {d: r["source"] for d, r in docs(kb).items()} == {"curl": "papers/curl.md", "tar": "papers/sub/tar.md"}
    hashes = json.loads((kb / ".openkb" / "hashes.json").read_text())
    assert sorted(entry["path"] for entry in hashes.values()) == sorted(r["source"] for r in docs(kb).values())
    assert all(r["sha256"] in hashes for r in docs(kb).values())
    assert_consistent(kb)


def test_a_reingest_from_another_folder_with_the_same_layout_updates_the_document(kb, tmp_path):
    """Bob re-adds Alice's `wget` from his own copy (changed) of her folder `tools`, kept
    elsewhere: the same source path, so the same document, updated, not `wget-<hash>`."""
    alice = copy_tldr(tmp_path / "alice" / "tools", ["wget.md", "curl.md"])
    copy_tldr(alice / "net", ["ssh.md"])
    run_openkb("add", alice, cwd=kb, check=True)
    bob = tmp_path / "bob" / "elsewhere" / "tools"
    shutil.copytree(alice, bob)
    changed(bob / "wget.md")
    changed(bob / "net" / "ssh.md")
    proc = run_openkb("add", bob, cwd=kb, check=True)
    assert "-> wget (" in proc.stdout and "-> ssh (" in proc.stdout, proc.stdout
    assert "skipped  " in proc.stdout and "curl.md: duplicate of curl" in proc.stdout
    assert sorted(docs(kb)) == ["curl", "ssh", "wget"]
    assert git(kb, "log", "-2", "--format=%s") == "update: ssh.md\nupdate: wget.md\n"
    assert record(kb, "wget")["sha256"] == docs(kb)["wget"]["sha256"]
    assert (kb / "raw" / "wget.md").read_bytes() == (bob / "wget.md").read_bytes()
    assert record(kb, "ssh")["path"] == "tools/net/ssh.md"
    assert_consistent(kb)


def two_clones(kb: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Alice's and Bob's clones (`openkb clone`) of a bare file:// remote holding ``kb``."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    git(kb, "remote", "add", "origin", remote.as_uri())
    git(kb, "push", "-q", "origin", "main")
    clones = tmp_path / "alice-kb", tmp_path / "bob-kb"
    for dest in clones:
        run_openkb("clone", remote.as_uri(), dest, check=True)
    return clones


def test_two_clones_adding_the_same_content_from_different_folders_merge_cleanly(kb, tmp_path):
    alice, bob = two_clones(kb, tmp_path)
    # Each machine keeps its copy of the team's `docs` folder somewhere else; each also adds a
    # document of its own.
    run_openkb("add", copy_tldr(tmp_path / "home" / "alice" / "docs", ["curl.md", "tar.md"]), cwd=alice, check=True)
    run_openkb("add", copy_tldr(tmp_path / "mnt" / "b" / "docs", ["curl.md", "grep.md"]), cwd=bob, check=True)
    git(alice, "push", "-q", "origin", "main")
    pulled = subprocess.run(["git", "-C", str(bob), "pull", "--no-rebase", "--no-edit", "origin", "main"],
                            capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert "CONFLICT" not in pulled.stdout + pulled.stderr
    run_openkb("recover", cwd=bob, check=True)
    assert sorted(docs(bob)) == ["curl", "grep", "tar"]
    assert record(bob, "curl")["path"] == "docs/curl.md"
    assert run_openkb("fsck", cwd=bob).returncode == 0
    # Bob's re-add of his copy after the pull: a duplicate, wherever it is.
    again = run_openkb("add", tmp_path / "mnt" / "b" / "docs" / "curl.md", cwd=bob, check=True)
    assert "duplicate of curl" in again.stdout
    # Bob's changed copy of curl.md re-ingests Alice's document, which Alice then pulls.
    changed(tmp_path / "mnt" / "b" / "docs" / "curl.md")
    updated = run_openkb("add", tmp_path / "mnt" / "b" / "docs", cwd=bob, check=True)
    assert "-> curl (" in updated.stdout, updated.stdout
    git(bob, "push", "-q", "origin", "main")
    git(alice, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    run_openkb("recover", cwd=alice, check=True)
    assert sorted(docs(alice)) == ["curl", "grep", "tar"]
    assert docs(alice)["curl"]["sha256"] == record(bob, "curl")["sha256"]
    for kb_ in (alice, bob):
        text = published(kb_)  # (git's own merge message names the remote's URL: not openkb's doing)
        assert not any(str(place) in text for place in (tmp_path / "home", tmp_path / "mnt", alice, bob))
        assert run_openkb("fsck", cwd=kb_).returncode == 0
        assert_consistent(kb_)


def test_the_same_content_from_folders_of_other_names_on_two_clones_merges_as_one_document(kb, tmp_path):
    """The issue's case: `curl.md` added on two machines from folders of different names (so two
    source paths), then `git pull`: one document, as one KB says "duplicate" — the record driver
    keeps the source path first in sort order, the same on both sides; no conflict."""
    alice, bob = two_clones(kb, tmp_path)
    run_openkb("add", copy_tldr(tmp_path / "a" / "notes", ["curl.md"]), cwd=alice, check=True)
    run_openkb("add", copy_tldr(tmp_path / "b" / "kb-input", ["curl.md", "grep.md"]), cwd=bob, check=True)
    git(alice, "push", "-q", "origin", "main")
    pulled = subprocess.run(["git", "-C", str(bob), "pull", "--no-rebase", "--no-edit", "origin", "main"],
                            capture_output=True, text=True)
    assert pulled.returncode == 0 and "CONFLICT" not in pulled.stdout + pulled.stderr, pulled.stdout + pulled.stderr
    git(bob, "push", "-q", "origin", "main")
    git(alice, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    for kb_ in (alice, bob):
        run_openkb("recover", cwd=kb_, check=True)
        assert sorted(docs(kb_)) == ["curl", "grep"]
        assert record(kb_, "curl")["path"] == "kb-input/curl.md"  # min("kb-input/…", "notes/…")
        assert run_openkb("fsck", cwd=kb_).returncode == 0
        assert_consistent(kb_)
    assert git(alice, "rev-parse", "HEAD^{tree}") == git(bob, "rev-parse", "HEAD^{tree}")


def test_an_old_record_with_an_absolute_path_is_reingested_in_place(kb, tmp_path):
    """A KB made before relative keys holds absolute paths in its records (and trailers): it
    still loads, re-adding a changed file from the same place updates that document, and the
    updated record carries the relative path. History is not rewritten."""
    src = copy_tldr(tmp_path / "src", ["tar.md", "grep.md"])
    run_openkb("add", src, cwd=kb, check=True)
    for doc in ("tar", "grep"):  # what the older openkb-git recorded
        path = kb / ".openkb" / "registry" / f"{doc}.json"
        old = dict(record(kb, doc), path=str((src / f"{doc}.md").resolve()))
        path.write_text(json.dumps(old, sort_keys=True, indent=2) + "\n")
    git(kb, "commit", "-q", "--allow-empty", "-am", "a record of an older openkb-git")  # (main: no change)
    old_commits = git(kb, "log", "--format=%H")
    run_openkb("recover", cwd=kb, check=True)
    assert sorted(docs(kb)) == ["grep", "tar"]
    assert docs(kb)["tar"]["source"] == str((src / "tar.md").resolve())
    changed(src / "tar.md")
    proc = run_openkb("add", src, cwd=kb, check=True)  # the folder, as before
    assert "-> tar (" in proc.stdout and "grep.md: duplicate of grep" in proc.stdout, proc.stdout
    changed(src / "grep.md")
    proc = run_openkb("add", src / "grep.md", cwd=kb, check=True)  # the file by itself, from the same place
    assert "-> grep (" in proc.stdout, proc.stdout
    assert sorted(docs(kb)) == ["grep", "tar"]
    assert git(kb, "log", "-2", "--format=%s") == "update: grep.md\nupdate: tar.md\n"
    assert record(kb, "tar")["path"] == "src/tar.md" and record(kb, "grep")["path"] == "src/grep.md"
    assert git(kb, "log", "--format=%H").endswith(old_commits)  # history kept as it was
    assert run_openkb("fsck", cwd=kb).returncode == 0
    assert_consistent(kb)


def test_keys_of_files_in_the_kb_and_of_single_files(kb, tmp_path):
    """A file dropped into raw/ is known by its KB path; a file given by itself by its folder's
    name and its own; two files of one run with one source path and different contents: the
    later is refused (naming the earlier), with the same content it is a duplicate."""
    (kb / "raw").mkdir(exist_ok=True)
    shutil.copy(TLDR / "common" / "tar.md", kb / "raw" / "dropped.md")
    run_openkb("add", kb / "raw" / "dropped.md", cwd=kb, check=True)
    assert record(kb, "dropped")["path"] == "raw/dropped.md"
    one, two = tmp_path / "in" / "a", tmp_path / "in2" / "a"  # both `a/grep.md`
    copy_tldr(one, ["grep.md"])
    two.mkdir(parents=True)
    shutil.copy(TLDR / "common" / "curl.md", two / "grep.md")
    three = copy_tldr(tmp_path / "in3" / "a", ["grep.md"])
    proc = run_openkb("add", "--json", one / "grep.md", two / "grep.md", three / "grep.md", cwd=kb)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    files = json.loads(proc.stdout)["files"]
    assert [(f["status"], f["doc"]) for f in files] == [("added", "grep"), ("failed", None), ("skipped", "grep")]
    assert f"same source path 'a/grep.md' as {one / 'grep.md'}" in files[1]["reason"]
    assert "add their common folder instead" in files[1]["reason"]
    assert record(kb, "grep")["path"] == "a/grep.md"
    # Given from a folder above, it is told apart.
    run_openkb("add", tmp_path / "in2", cwd=kb, check=True)
    got = {d: r["source"] for d, r in docs(kb).items()}
    assert got["dropped"] == "raw/dropped.md" and got["grep"] == "a/grep.md"
    assert sorted(v for k, v in got.items() if k not in ("dropped", "grep")) == ["in2/a/grep.md"]
    # Two folders of one name's files no longer collide: tldr's `common` and `linux` pages.
    common, linux = copy_tldr(tmp_path / "tldr" / "common", ["ssh.md"]), tmp_path / "tldr" / "linux"
    linux.mkdir(parents=True)
    shutil.copy(TLDR / "common" / "wget.md", linux / "ssh.md")
    run_openkb("add", common, cwd=kb, check=True)
    proc = run_openkb("add", linux, cwd=kb, check=True)
    assert "update:" not in git(kb, "log", "-1", "--format=%s") and "-> ssh-" in proc.stdout, proc.stdout
    assert {r["source"] for d, r in docs(kb).items() if d.startswith("ssh")} == {"common/ssh.md", "linux/ssh.md"}
    assert_consistent(kb)


def test_content_is_deduplicated_before_names(kb, tmp_path):
    """A file of the run that turns out a duplicate (of a document of another name) takes no
    name: the other file of that stem gets the plain name, as in a KB that never saw the copy
    (and as on a machine that adds only that file), not a `-<hash>` one."""
    run_openkb("add", copy_tldr(tmp_path / "first", ["tar.md"]), cwd=kb, check=True)
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    shutil.copy(TLDR / "common" / "tar.md", src / "a" / "x.md")  # tar's content: a duplicate
    copy_tldr(src / "b", ["grep.md"])
    (src / "b" / "grep.md").rename(src / "b" / "x.md")
    proc = run_openkb("add", "--json", src, cwd=kb, check=True)
    files = json.loads(proc.stdout)["files"]
    assert [(f["status"], f["doc"]) for f in files] == [("skipped", "tar"), ("added", "x")], files
    assert record(kb, "x")["path"] == "src/b/x.md"
    assert sorted(docs(kb)) == ["tar", "x"]
    assert_consistent(kb)
