"""Crash safety with real processes: SIGKILL an `openkb add` at many points, then check recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


from conftest import SUMMARY, TLDR, assert_consistent, copy_tldr, git, run_openkb

FILES = ["tar.md", "git-commit.md", "grep.md"]


def head_is_whole(kb) -> None:
    """HEAD is a whole operation: every registered document has all its files in HEAD."""
    tracked = set(git(kb, "ls-tree", "-r", "--name-only", "HEAD").split("\n"))
    for line in tracked:
        if line.startswith(".openkb/registry/"):
            record = json.loads(git(kb, "show", f"HEAD:{line}"))
            missing = [p for p in record["files"] if p not in tracked]
            assert not missing, (line, missing)
    assert git(kb, "diff", "HEAD", "--name-only") == ""


def trace_points(kb, src, tmp_path) -> list[str]:
    trace = tmp_path / "trace.txt"
    probe = tmp_path / "probe"
    run_openkb("init", probe, check=True)
    run_openkb("add", "--jobs", "1", src, cwd=probe, env={"OPENKB_FAULT_CHECKPOINTS": str(trace)}, check=True)
    return [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]


def test_sigkill_at_every_point_of_an_add(kb, tmp_path):
    src = copy_tldr(tmp_path / "src", FILES)
    labels = trace_points(kb, src, tmp_path)
    # At least the points around the commit point of every file, and more.
    assert labels.count("journal:durable") == len(FILES) and labels.count("ref:moved") == len(FILES)
    points = list(range(1, len(labels) + 1))
    if len(points) > 40:  # keep the default run short: every point of the first file, a stride after
        first_file_end = labels.index("journal:removed") + 1
        points = points[:first_file_end] + points[first_file_end::3]
    assert len(points) >= 20
    checked = 0
    for n in points:
        target = tmp_path / f"kb{n}"
        run_openkb("init", target, check=True)
        killed = run_openkb("add", "--jobs", "1", src, cwd=target, env={"OPENKB_FAULT_KILL_AT": str(n)})
        assert killed.returncode == -signal.SIGKILL, (n, labels[n - 1], killed.stdout, killed.stderr)
        before = git(target, "log", "--format=%H").split()
        recovered = run_openkb("recover", cwd=target)
        assert recovered.returncode == 0, recovered.stderr
        head_is_whole(target)
        assert_consistent(target)
        assert git(target, "log", "--format=%H").split() == before  # nothing committed was lost
        # The next add finishes the job.
        run_openkb("add", "--jobs", "1", src, cwd=target, check=True)
        docs = {d["doc"] for d in json.loads(run_openkb("list", "--json", cwd=target, check=True).stdout)}
        assert docs == {f[:-3] for f in FILES}, (n, labels[n - 1])
        assert_consistent(target)
        checked += 1
    print(f"crash points checked for add: {checked} of {len(labels)}")
    SUMMARY.append(f"add (SIGKILL at protocol checkpoints): {checked} of {len(labels)} checkpoints checked")


def test_sigkill_from_outside_during_parallel_add(kb, tmp_path):
    names = sorted(p.name for p in (TLDR / "common").glob("g*.md"))[:40]
    src = copy_tldr(tmp_path / "src2", names)
    for delay in (0.8, 1.5, 2.5):
        proc = subprocess.Popen([sys.executable, "-m", "openkb_git", "add", "--jobs", "2", str(src)], cwd=kb,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        run_openkb("recover", cwd=kb, check=True)
        head_is_whole(kb)
        assert_consistent(kb)
    run_openkb("add", src, cwd=kb, check=True)
    assert len(json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)) == len(names)
    assert_consistent(kb)


def test_corrupt_journal_is_reported_and_reset(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "a", ["tar.md"]), cwd=kb, check=True)
    journal = kb / ".openkb" / "openkb-git" / "journal"  # ours; .openkb/journal/ is OpenKB's
    journal.mkdir(parents=True, exist_ok=True)
    (journal / "deadbeef.json").write_text('{"id": "dead", "op": "add", "ba')
    (kb / "wiki" / "summaries" / "tar.md").write_text("garbage\n")
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0
    assert "corrupt journal deadbeef.json" in proc.stdout
    assert_consistent(kb)


def test_ctrl_c_keeps_committed_files_and_exits_130(kb, tmp_path):
    names = sorted(p.name for p in (TLDR / "common").glob("a*.md"))[:150]
    src = copy_tldr(tmp_path / "src", names)
    proc = subprocess.Popen([sys.executable, "-m", "openkb_git", "add", "--jobs", "2", str(src)], cwd=kb,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(git(kb, "log", "--format=%H").split()) < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted" in out
    committed = len(git(kb, "log", "--format=%H").split()) - 1
    assert 5 <= committed < len(names)
    assert out.count("added    ") == committed
    assert len(json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)) == committed
    assert_consistent(kb)


def test_journal_naming_missing_objects_is_reset(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "a", ["tar.md"]), cwd=kb, check=True)
    journal = kb / ".openkb" / "journal"
    journal.mkdir(exist_ok=True)
    (journal / "ghost.json").write_text(json.dumps({
        "id": "ghost", "op": "add", "base": "1" * 40, "new": "2" * 40,
        "paths": ["wiki/summaries/tar.md", "wiki/concepts/never-was.md"]}))
    (kb / "wiki" / "summaries" / "tar.md").write_text("half-written\n")
    (kb / "wiki" / "concepts" / "never-was.md").write_text("junk\n")
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0 and "recovered 1 journal(s) (0 finished: committed before the crash, " \
        "1 rolled back): 2 path(s) reset" in proc.stdout, proc.stdout
    assert not (kb / "wiki" / "concepts" / "never-was.md").exists()
    assert_consistent(kb)


def test_a_torn_index_is_rebuilt_without_resetting_the_users_edits(kb, tmp_path):
    """A power loss can leave .git/index torn; recovery writes a new one from HEAD and keeps
    the working tree's files: an uncommitted hand edit survives, shows as an edit to Git and
    to openkb, and is committed as an edit by the next add; a missing file is restored."""
    run_openkb("add", copy_tldr(tmp_path / "a", ["tar.md", "grep.md"]), cwd=kb, check=True)
    page = kb / "wiki" / "summaries" / "tar.md"
    edited = page.read_text() + "\nMy note, not committed yet.\n"
    page.write_text(edited)
    (kb / "wiki" / "summaries" / "grep.md").unlink()
    index = kb / ".git" / "index"
    index.write_bytes(index.read_bytes()[: index.stat().st_size // 2])  # torn

    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert "rebuilt from HEAD; the working tree's files were kept" in proc.stdout
    # The summary says what was repaired: the index, not a journal (there was none).
    assert "recovered a torn Git index (rebuilt from HEAD): 1 path(s) reset" in proc.stdout, proc.stdout
    assert "journal" not in proc.stdout, proc.stdout
    assert page.read_text() == edited
    assert (kb / "wiki" / "summaries" / "grep.md").exists()
    # openkb first: `git status` rewrites the index itself, marking entries it had to re-read
    assert json.loads(run_openkb("status", "--json", cwd=kb, check=True).stdout)["dirty"] == ["wiki/summaries/tar.md"]
    assert git(kb, "status", "--porcelain").splitlines() == [" M wiki/summaries/tar.md"]

    run_openkb("add", copy_tldr(tmp_path / "b", ["ls.md"]), cwd=kb, check=True)
    assert git(kb, "show", "--format=", "--name-only", "HEAD~1").split() == ["wiki/summaries/tar.md"]
    assert "My note, not committed yet." in git(kb, "show", "HEAD~1:wiki/summaries/tar.md")
    assert_consistent(kb)


def test_recover_says_a_journal_past_its_commit_point_was_finished(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "a", ["grep.md"]), cwd=kb, check=True)
    killed = run_openkb("add", copy_tldr(tmp_path / "b", ["tar.md"]), cwd=kb, env={"OPENKB_FAULT_KILL_AT": "ref:moved"})
    assert killed.returncode == -signal.SIGKILL
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert "recovered 1 journal(s) (1 finished: committed before the crash, 0 rolled back)" in proc.stdout, proc.stdout
    assert json.loads(run_openkb("recover", "--json", cwd=kb, check=True).stdout)["journals"] == []
    assert_consistent(kb)
