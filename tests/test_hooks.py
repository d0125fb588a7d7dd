"""Hooks: each sample installed and shown to work; rejection skips only its file."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib

from conftest import ROOT, assert_consistent, copy_tldr, git, run_openkb
from openkb_git.hooks import samples

THREE = ["git-commit.md", "git-add.md", "git-status.md"]


def docs(kb) -> list[str]:
    return [d["doc"] for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)]


def test_pre_ingest_rejection_skips_only_that_file(kb, tmp_path):
    hook = kb / ".openkb" / "hooks" / "pre-ingest"
    hook.parent.mkdir(parents=True)
    hook.write_text('#!/bin/sh\ncase "$OPENKB_DOC" in git-add) echo "no git-add here, says the hook" >&2; exit 1;; esac\n')
    hook.chmod(0o755)
    proc = run_openkb("add", "--jobs", "1", copy_tldr(tmp_path / "src", THREE), cwd=kb)
    assert proc.returncode == 1
    assert "git-add.md: rejected by pre-ingest hook: no git-add here, says the hook" in proc.stdout
    assert sorted(docs(kb)) == ["git-commit", "git-status"]
    assert_consistent(kb)
    # --no-verify skips it.
    assert run_openkb("add", "--no-verify", tmp_path / "src" / "git-add.md", cwd=kb).returncode == 0
    assert "git-add" in docs(kb)


def test_hook_environment_and_arguments(kb, tmp_path):
    out = tmp_path / "env.json"
    hook = kb / ".openkb" / "hooks" / "pre-ingest"
    hook.parent.mkdir(parents=True)
    hook.write_text("#!/usr/bin/env python3\nimport json, os, sys\n"
                    f"json.dump({{'args': sys.argv[1:], 'env': {{k: v for k, v in os.environ.items() if k.startswith('OPENKB_')}}, 'cwd': os.getcwd()}}, open({str(out)!r}, 'w'))\n")
    hook.chmod(0o755)
    src = copy_tldr(tmp_path / "weird name", ["tar.md"])
    run_openkb("add", src, cwd=kb, check=True)
    seen = json.loads(out.read_text())
    assert seen["cwd"] == str(kb)
    assert seen["env"]["OPENKB_DIR"] == str(kb) and seen["env"]["OPENKB_DOC"] == "tar"
    assert seen["env"]["OPENKB_SOURCE"].endswith("weird name/tar.md")
    assert len(seen["env"]["OPENKB_SHA256"]) == 64
    assert "raw/tar.md" in seen["args"] and "wiki/summaries/tar.md" in seen["args"]


def test_sample_hooks_are_package_data():
    """The samples ship with the package, so an installed wheel has them (scripts/check_wheel.sh
    checks a real one): one copy, the top-level hooks/ folder, packaged as openkb_git.hook_samples;
    every package of openkb_git/ is in pyproject's explicit package list."""
    found = samples()
    assert sorted(found) == ["append-log", "max-size", "push", "require-license"]
    for name, (event, path) in found.items():
        assert os.path.dirname(str(path)) == str(ROOT / "hooks")
        assert os.path.basename(str(path)) == f"{event}-{name}" and os.access(str(path), os.X_OK)
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["openkb_git.hook_samples"] == "hooks"
    assert setuptools["package-data"]["openkb_git.hook_samples"] == ["*"]
    packages = {".".join(init.parent.relative_to(ROOT).parts)
                for init in (ROOT / "openkb_git").rglob("__init__.py")}
    assert packages | {"openkb_git.hook_samples"} == set(setuptools["packages"])
    assert not (ROOT / "openkb_git" / "hook_samples").exists()


def test_sample_max_size(kb, tmp_path):
    assert run_openkb("hooks", "install", "max-size", cwd=kb).returncode == 0
    proc = run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb, env={"OPENKB_MAX_BYTES": "100"})
    assert proc.returncode == 1 and "over the limit of 100" in proc.stdout
    assert docs(kb) == []
    assert run_openkb("add", tmp_path / "src", cwd=kb, env={"OPENKB_MAX_BYTES": "100000"}).returncode == 0


def test_sample_require_license(kb, tmp_path):
    run_openkb("hooks", "install", "require-license", cwd=kb, check=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "free.md").write_text("---\nlicense: CC-BY-4.0\n---\n# Free\n\nSome text about free things.\n")
    (src / "unknown.md").write_text("# Unknown\n\nNo licence given here.\n")
    proc = run_openkb("add", src, cwd=kb)
    assert proc.returncode == 1 and "unknown.md: no `license:` field" in proc.stdout
    assert docs(kb) == ["free"]


def test_sample_push_to_bare_remote(kb, tmp_path):
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    git(kb, "remote", "add", "origin", str(bare))
    run_openkb("hooks", "install", "push", cwd=kb, check=True)
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb, check=True)
    head = git(kb, "rev-parse", "HEAD").strip()
    assert subprocess.run(["git", "-C", str(bare), "rev-parse", "main"], capture_output=True,
                          text=True).stdout.strip() == head


def test_sample_push_behind_the_remote_says_to_sync(kb, tmp_path):
    """Another clone pushed first: the sample's push is refused; the ingest stands (a post hook
    only warns) and the warning says to run `openkb sync`, which then lands both."""
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    git(kb, "remote", "add", "origin", str(bare))
    git(kb, "push", "-q", "-u", "origin", "main")
    other = tmp_path / "other"
    run_openkb("clone", bare, other, check=True)
    run_openkb("add", copy_tldr(tmp_path / "theirs", ["grep.md"]), cwd=other, check=True)
    git(other, "push", "-q", "origin", "main")
    run_openkb("hooks", "install", "push", cwd=kb, check=True)
    proc = run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb)
    assert proc.returncode == 0 and "1 added" in proc.stdout, proc.stdout + proc.stderr
    assert "run `openkb sync`" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert run_openkb("sync", cwd=kb).returncode == 0
    assert sorted(docs(kb)) == ["grep", "tar"]
    assert git(kb, "rev-parse", "HEAD") == git(bare, "rev-parse", "main")


def test_sample_append_log_and_failing_post_hook_only_warns(kb, tmp_path):
    run_openkb("hooks", "install", "append-log", cwd=kb, check=True)
    listing = json.loads(run_openkb("hooks", "list", "--json", cwd=kb, check=True).stdout)
    assert {h["event"]: h["executable"] for h in listing["hooks"]}["post-ingest"] is True
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md", "grep.md"]), cwd=kb, check=True)
    lines = (kb / ".openkb" / "ingests.log").read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == ["grep", "tar"]
    assert lines[-1].split("\t")[0] == git(kb, "rev-parse", "HEAD").strip()
    # A failing post-ingest hook warns and changes nothing.
    hook = kb / ".openkb" / "hooks" / "post-ingest"
    hook.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    proc = run_openkb("add", copy_tldr(tmp_path / "more", ["curl.md"]), cwd=kb)
    assert proc.returncode == 0 and "post-ingest hook failed: broken" in proc.stdout
    assert "curl" in docs(kb)
    assert_consistent(kb)


def test_post_revert_hook(kb, tmp_path):
    out = tmp_path / "revert.txt"
    hook = kb / ".openkb" / "hooks" / "post-revert"
    hook.parent.mkdir(parents=True)
    hook.write_text(f'#!/bin/sh\necho "$OPENKB_COMMIT $OPENKB_REVERTS $OPENKB_DOC" > "{out}"\n')
    hook.chmod(0o755)
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb, check=True)
    reverted = git(kb, "rev-parse", "HEAD").strip()
    run_openkb("revert", "HEAD", cwd=kb, check=True)
    commit, reverts, doc = out.read_text().split()
    assert commit == git(kb, "rev-parse", "HEAD").strip() and reverts == reverted and doc == "tar"
