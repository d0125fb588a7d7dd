"""`openkb fsck` finds and `--repair` fixes what went wrong outside openkb."""

from __future__ import annotations

import json

from conftest import assert_consistent, copy_tldr, git, run_openkb


def problems(kb) -> set[tuple[str, str]]:
    proc = run_openkb("fsck", "--json", cwd=kb)
    report = json.loads(proc.stdout)
    assert (proc.returncode == 0) == report["ok"]
    return {(p["check"], p["path"]) for p in report["problems"]}


def test_fsck_finds_and_repairs(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md", "grep.md"]), cwd=kb, check=True)
    assert run_openkb("fsck", cwd=kb).returncode == 0
    head = git(kb, "rev-parse", "HEAD")

    (kb / "wiki" / "sources" / "tar.md").unlink()                        # a deleted tracked file
    (kb / "wiki" / "summaries" / "grep.md").write_text("scribbled\n")    # a modified tracked file
    (kb / ".openkb" / "hashes.json").unlink()                            # a missing view
    git(kb, "rm", "-q", "--cached", "raw/grep.md")                       # a stale Git index
    found = problems(kb)
    assert ("worktree", "wiki/sources/tar.md") in found
    assert ("worktree", "wiki/summaries/grep.md") in found
    assert ("views", ".openkb/hashes.json") in found
    assert ("index", "raw/grep.md") in found

    proc = run_openkb("fsck", "--repair", cwd=kb)
    assert proc.returncode == 1 and "repaired" in proc.stdout
    backups = list((kb / ".openkb" / "fsck-backup").rglob("grep.md"))
    assert backups and backups[0].read_text() == "scribbled\n"
    assert run_openkb("fsck", cwd=kb).returncode == 0
    assert git(kb, "rev-parse", "HEAD") == head  # history untouched
    assert_consistent(kb)


def test_fsck_reports_stale_log_view(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb, check=True)
    log = kb / "wiki" / "log.md"
    log.write_text(log.read_text() + "## [2020-01-01 00:00:00] ingest | forged.md\n\n")
    assert ("views", "wiki/log.md") in problems(kb)
    run_openkb("fsck", "--repair", cwd=kb)
    assert "forged" not in log.read_text() and run_openkb("fsck", cwd=kb).returncode == 0


def test_fsck_checks_the_commit_memo(kb, tmp_path):
    """A forged entry of .openkb/commits.cache (it parses, but its bytes do not hash to its id)
    never changes what `log` says; fsck reports the bad part of the cache, --repair drops it."""
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md", "grep.md"]), cwd=kb, check=True)
    shown = run_openkb("log", cwd=kb, check=True).stdout
    memo = kb / ".openkb" / "commits.cache"
    pristine = memo.read_bytes()
    forged = pristine.replace(b"OpenKB-Doc: tar", b"OpenKB-Doc: xyz")
    assert forged != pristine
    memo.write_bytes(forged)
    assert ("views", ".openkb/commits.cache") in problems(kb)          # reported by fsck...
    assert run_openkb("log", cwd=kb, check=True).stdout == shown       # ...never shown by a read
    assert "xyz" not in run_openkb("log", cwd=kb, check=True).stdout
    memo.write_bytes(forged)
    proc = run_openkb("fsck", "--repair", cwd=kb)
    assert proc.returncode == 1 and ".openkb/commits.cache" in proc.stdout
    assert run_openkb("fsck", cwd=kb).returncode == 0
    assert run_openkb("log", cwd=kb, check=True).stdout == shown
    assert_consistent(kb)
