"""Issue #14, correct reports: a failure after the commit point says the operation is
committed (cases 14); disk full hits only the file that filled it and a run that stops
lists every file it did not try (15); a read-only KB and a non-UTF-8 file name get clear
messages, not a circular hint or a crash (20).

Real processes, real git; I/O errors come from the fault injector (openkb_git/faults.py)
or from a real full tmpfs / read-only bind mount when the tests run as root.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import TLDR, assert_consistent, copy_tldr, git, run_openkb


def head(kb: Path) -> str:
    return git(kb, "rev-parse", "HEAD").strip()


def subject(kb: Path, rev: str = "HEAD") -> str:
    return git(kb, "log", "-1", "--format=%s", rev).strip()


def trace_ops(kb: Path, tmp_path: Path, *args) -> list[str]:
    """Run ``openkb args`` on a throw-away copy of ``kb`` and return its durable operations."""
    probe = tmp_path / "probe"
    shutil.copytree(kb, probe, symlinks=True)
    trace = tmp_path / "trace.txt"
    proc = run_openkb("--kb-dir", probe, *args, env={"OPENKB_FAULT_TRACE": str(trace)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = trace.read_text().splitlines()
    shutil.rmtree(probe)
    trace.unlink()
    return lines


def op_number(lines: list[str], kind: str, contains: str = "") -> int:
    """The number of the first operation of ``kind`` (whose path holds ``contains``)."""
    for line in lines:
        n, op, path = line.split(" ", 2)
        if op == kind and contains in path:
            return int(n)
    raise AssertionError(f"no {kind} {contains} in the trace")


def enospc_at(n: int) -> dict[str, str]:
    return {"OPENKB_FAULT_MODE": "enospc", "OPENKB_FAULT_AT": str(n)}


ISOLATED = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A KB holding tar and git-add, made once (module scope: before the per-test isolation,
    so the isolation is given here)."""
    work = tmp_path_factory.mktemp("report-template")
    env = {**ISOLATED, "HOME": str(work)}
    kb = work / "kb"
    run_openkb("init", kb, env=env, check=True)
    run_openkb("add", "--jobs", "1", copy_tldr(work / "base", ["tar.md", "git-add.md"]), cwd=kb, env=env, check=True)
    return kb


@pytest.fixture
def kb2(template, tmp_path) -> Path:
    kb = tmp_path / "kb"
    shutil.copytree(template, kb, symlinks=True)
    return kb


# -- case 14: an I/O error after the commit point ------------------------------------------------


def test_enospc_after_the_commit_point_reports_the_file_as_added(kb2, tmp_path):
    src = copy_tldr(tmp_path / "new", ["ls.md"])
    ops = trace_ops(kb2, tmp_path, "add", "--jobs", "1", src)
    # 6 operations after the ref update: the working tree is being written (a new commit may
    # need one more fan-out folder than the probe's, so stay clear of the ref's own steps).
    at = op_number(ops, "ref-update") + 6
    before = head(kb2)
    proc = run_openkb("add", "--jobs", "1", "--json", src, cwd=kb2, env=enospc_at(at))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert head(kb2) != before and subject(kb2) == "add: ls.md"  # the add IS committed
    report = json.loads(proc.stdout)
    assert report["added"] == 1 and report["failed"] == 0, report
    [result] = report["files"]
    assert result["status"] == "added" and result["doc"] == "ls" and result["commit"] == head(kb2)
    assert any(f"committed as {head(kb2)[:7]}" in w and "No space left on device" in w
               and "openkb recover" in w for w in result["warnings"]), result
    assert report["unfinished"] == [head(kb2)] and not report["finished_later"]
    # The journal left behind lets recovery finish it.
    assert run_openkb("recover", cwd=kb2).returncode == 0
    assert (kb2 / "wiki" / "summaries" / "ls.md").is_file()
    assert_consistent(kb2)


def test_enospc_after_the_commit_point_then_the_run_goes_on(kb2, tmp_path):
    src = copy_tldr(tmp_path / "new", ["cp.md", "ls.md"])
    at = op_number(trace_ops(kb2, tmp_path, "add", "--jobs", "1", src), "ref-update") + 6
    proc = run_openkb("add", "--jobs", "1", src, cwd=kb2, env=enospc_at(at))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = git(kb2, "rev-parse", "HEAD~1").strip()
    assert subject(kb2, "HEAD~1") == "add: cp.md" and subject(kb2) == "add: ls.md"
    assert f"-> cp ({first[:7]})" in proc.stdout and f"committed as {first[:7]}" in proc.stdout
    assert "2 added, 0 skipped, 0 failed" in proc.stdout
    assert "later in this run recovery finished them" in proc.stderr
    assert_consistent(kb2)  # the second file's lock acquisition recovered the first


@pytest.mark.parametrize("args, expected", [(["remove", "tar"], "remove: tar.md"),
                                            (["revert", "git-add"], "revert: add: git-add.md")])
def test_enospc_after_the_commit_point_remove_and_revert_say_committed(kb2, tmp_path, args, expected):
    at = op_number(trace_ops(kb2, tmp_path, *args), "ref-update") + 4
    proc = run_openkb(*args, cwd=kb2, env=enospc_at(at))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert subject(kb2) == expected
    assert f"committed as {head(kb2)[:7]}" in proc.stderr, proc.stderr
    assert "No space left on device" in proc.stderr and "nothing after it was done" not in proc.stderr
    assert run_openkb("recover", cwd=kb2).returncode == 0
    assert_consistent(kb2)


def test_enospc_before_the_commit_point_does_not_claim_more_than_it_knows(kb2, tmp_path):
    at = op_number(trace_ops(kb2, tmp_path, "remove", "tar"), "write", "/.git/objects/")
    before = head(kb2)
    proc = run_openkb("remove", "tar", cwd=kb2, env=enospc_at(at))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert head(kb2) == before
    assert "No space left on device" in proc.stderr and "was not committed" in proc.stderr, proc.stderr
    assert "nothing after it was done" not in proc.stderr
    assert_consistent(kb2)


# -- case 15: disk full; a run that stops lists every file ----------------------------------------


def test_io_error_while_committing_lists_every_file_not_tried(kb2, tmp_path):
    src = copy_tldr(tmp_path / "new", ["cd.md", "cp.md", "ls.md"])
    at = op_number(trace_ops(kb2, tmp_path, "add", "--jobs", "1", src), "write", "/.git/objects/")
    before = head(kb2)
    proc = run_openkb("add", "--jobs", "1", "--json", src, cwd=kb2, env=enospc_at(at))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert head(kb2) == before
    report = json.loads(proc.stdout)
    files = {Path(r["path"]).name: r for r in report["files"]}
    assert set(files) == {"cd.md", "cp.md", "ls.md"}, report
    assert "No space left on device" in files["cd.md"]["reason"]
    for name in ("cp.md", "ls.md"):
        assert files[name]["status"] == "failed"
        assert files[name]["reason"].startswith("not tried: the run stopped after"), files[name]
    assert report["not_tried"] == 2 and report["stopped"]
    human = run_openkb("add", "--jobs", "1", src, cwd=kb2, env=enospc_at(at))
    assert "0 added, 0 skipped, 3 failed (2 not tried)" in human.stdout, human.stdout
    assert human.stdout.count("not tried: the run stopped after") == 2
    assert_consistent(kb2)


def test_a_name_too_long_fails_that_file_and_the_run_goes_on(kb2, tmp_path):
    src = copy_tldr(tmp_path / "new", ["cp.md", "ls.md"])
    shutil.copy(TLDR / "common" / "cd.md", src / ("a" * 252 + ".md"))  # sorts first
    proc = run_openkb("add", "--jobs", "1", "--json", src, cwd=kb2)
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert len(report["files"]) == 3 and not report["stopped"], report
    statuses = {Path(r["path"]).name[:4]: r["status"] for r in report["files"]}
    assert statuses["cp.m"] == statuses["ls.m"] == "added"
    assert statuses["aaaa"] in ("added", "failed")  # failed alone, or added under a shortened name
    assert_consistent(kb2)


@pytest.mark.parametrize("damage", ['echo garbage > "$OPENKB_STAGED_DIR/../manifest.json"',
                                    'rm -r "$OPENKB_STAGED_DIR/raw"'])
def test_one_files_unexpected_failure_fails_that_file_and_the_run_goes_on(kb2, tmp_path, damage):
    hook = kb2 / ".openkb" / "hooks" / "pre-ingest"  # spoils what was prepared for cp, after the check
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(f'#!/bin/sh\ncase "$OPENKB_DOC" in cp) {damage};; esac\nexit 0\n')
    hook.chmod(0o755)
    src = copy_tldr(tmp_path / "new", ["cd.md", "cp.md", "ls.md"])
    proc = run_openkb("add", "--jobs", "1", src, cwd=kb2)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1
    assert "failed   " in proc.stdout and "cp.md: its prepared files could not be read back" in proc.stdout, proc.stdout
    assert "2 added, 0 skipped, 1 failed" in proc.stdout
    assert [subject(kb2, "HEAD~1"), subject(kb2)] == ["add: cd.md", "add: ls.md"]
    assert_consistent(kb2)


def _mount(*args) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_disk_full_in_preparation_hits_only_the_file_that_filled_it(tmp_path, jobs):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)):
        pytest.skip("cannot mount a tmpfs here")
    try:
        kb = disk / "kb"
        run_openkb("init", kb, check=True)
        src = copy_tldr(tmp_path / "src", ["cp.md", "ls.md", "tar.md"])
        rng = random.Random(14)  # incompressible enough not to fit twice in 3 MB
        (src / "a-big.md").write_text("# Big\n\n" + "".join(f"Line {i}: {rng.random()} {rng.random()}\n"
                                                             for i in range(40000)))
        proc = run_openkb("add", "--jobs", jobs, "--json", src, cwd=kb)
        report = json.loads(proc.stdout)
        files = {Path(r["path"]).name: r for r in report["files"]}
        assert files["a-big.md"]["status"] == "failed" and "No space left" in files["a-big.md"]["reason"], files
        for name in ("cp.md", "ls.md", "tar.md"):
            assert files[name]["status"] == "added", files[name]
        staging = kb / ".openkb" / "staging"
        assert not staging.exists() or not any(staging.iterdir())
        assert_consistent(kb)
    finally:
        _umount(disk)


# -- case 20: messages ---------------------------------------------------------------------------


@pytest.fixture
def read_only(kb2, tmp_path):
    """The KB made read-only: a read-only bind mount as root (root ignores file modes), else modes."""
    if os.geteuid() == 0:
        view = tmp_path / "ro"
        view.mkdir()
        if not (_mount("--bind", str(kb2), str(view)) and _mount("-o", "remount,bind,ro", str(view))):
            _umount(view)
            pytest.skip("cannot make a read-only bind mount here")
        try:
            yield view
        finally:
            _umount(view)
        return
    paths = [kb2, *kb2.rglob("*")]
    for path in paths:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield kb2
    finally:
        for path in paths:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.parametrize("args", [["add", str(TLDR / "common" / "ls.md")], ["remove", "tar"], ["recover"],
                                  ["gc"], ["revert", "git-add"]])
def test_read_only_kb_says_what_to_do(read_only, args):
    before = head(read_only)
    proc = run_openkb("--kb-dir", read_only, *args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    message = proc.stderr.lower()
    assert "read-only file system" in message or "permission denied" in message, proc.stderr
    assert ".openkb" in proc.stderr  # the path that could not be written
    assert "make the knowledge base writable" in message and "nothing was changed" in message, proc.stderr
    assert "brings the kb back" not in message and "openkb recover" not in message
    assert head(read_only) == before


def test_non_utf8_file_name_is_added_with_a_readable_name(kb2, tmp_path):
    src = tmp_path / "latin1"
    src.mkdir()
    raw_name = os.fsencode(src) + b"/caf\xe9.md"
    shutil.copy(TLDR / "common" / "ls.md", raw_name)
    proc = run_openkb("add", "--jobs", "1", "--json", src, cwd=kb2)  # text=True: stdout must be UTF-8
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    [result] = json.loads(proc.stdout)["files"]
    assert result["status"] == "added" and result["path"].endswith("caf\\xe9.md"), result
    doc = result["doc"]
    assert doc == "caf"
    record = json.loads((kb2 / ".openkb" / "registry" / f"{doc}.json").read_text(encoding="utf-8"))
    assert record["name"] == "caf\\xe9.md" and record["path"] == "latin1/caf\\xe9.md"  # from the folder given on
    assert subject(kb2) == "add: caf\\xe9.md"
    assert_consistent(kb2)
    # Lines too; and the name is stable: changed content at the same path updates the same document.
    shutil.copy(TLDR / "common" / "cp.md", raw_name)
    again = run_openkb("add", "--jobs", "2", src, cwd=kb2)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "caf\\xe9.md -> caf (" in again.stdout
    assert subject(kb2) == "update: caf\\xe9.md"
    assert_consistent(kb2)
