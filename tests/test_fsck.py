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


def test_a_garbled_committed_record_is_reported_never_dropped_silently(kb, tmp_path):
    """A committed `.openkb/registry/<doc>.json` that is not a JSON object: `list` and `status`
    warn naming the file (the document cannot be listed), fsck reports it as registry damage
    naming the file and its document's files, and --repair leaves it (it cannot know the
    record) saying so and how to restore it; once restored as told, everything agrees."""
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md", "grep.md"]), cwd=kb, check=True)
    record = kb / ".openkb" / "registry" / "tar.json"
    good = record.read_bytes()
    record.write_text('{"doc_name": "tar", "fil\n')
    git(kb, "commit", "-q", "-am", "a garbled record")
    listed = run_openkb("list", cwd=kb, check=True)
    assert ".openkb/registry/tar.json is not a valid record" in listed.stderr and "openkb fsck" in listed.stderr
    as_json = run_openkb("list", "--json", cwd=kb, check=True)
    assert [d["doc"] for d in json.loads(as_json.stdout)] == ["grep"] and "tar.json" in as_json.stderr
    status = run_openkb("status", "--json", cwd=kb, check=True)
    assert json.loads(status.stdout)["invalid_records"] == [".openkb/registry/tar.json"]
    assert ".openkb/registry/tar.json" in run_openkb("status", cwd=kb, check=True).stdout
    found = problems(kb)
    assert ("registry", ".openkb/registry/tar.json") in found
    assert {("registry", f"{p}/tar.md") for p in ("raw", "wiki/sources", "wiki/summaries")} <= found
    repaired = run_openkb("fsck", "--repair", cwd=kb)
    assert repaired.returncode == 1
    assert "cannot repair .openkb/registry/tar.json" in repaired.stdout and "git checkout" in repaired.stdout
    assert "agree" not in repaired.stdout
    assert record.read_text() == '{"doc_name": "tar", "fil\n'  # left as it is, never guessed
    assert ("registry", ".openkb/registry/tar.json") in problems(kb)
    fix = git(kb, "log", "--format=%h", "-n", "1", "HEAD~1", "--", ".openkb/registry/tar.json").strip()
    git(kb, "checkout", fix, "--", ".openkb/registry/tar.json")
    git(kb, "commit", "-q", "-m", "restore the record")
    assert record.read_bytes() == good
    assert "tar" in run_openkb("list", cwd=kb, check=True).stdout
    run_openkb("fsck", "--repair", cwd=kb)  # the views, rebuilt without the record, catch up
    assert run_openkb("fsck", cwd=kb).returncode == 0
    assert_consistent(kb)
