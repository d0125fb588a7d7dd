"""`openkb fsck` finds and `--repair` fixes what went wrong outside openkb."""

from __future__ import annotations

import json
import re

from conftest import assert_consistent, copy_tldr, git, run_openkb
from openkb_git.compiler.pages import record_index_line


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
    """A line of ours changed is reported and restored by --repair; a line appended after our
    last write is another tool's (OpenKB's `query`, `lint`, ...): kept by the repair, in time order."""
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb, check=True)
    log = kb / "wiki" / "log.md"
    log.write_text(log.read_text().replace("ingest | tar.md", "ingest | forged.md"))
    assert ("views", "wiki/log.md") in problems(kb)
    run_openkb("fsck", "--repair", cwd=kb)
    assert "forged" not in log.read_text() and "ingest | tar.md (" in log.read_text()
    assert run_openkb("fsck", cwd=kb).returncode == 0
    log.write_text(log.read_text() + "## [2020-01-01 00:00:00] query | appended.md\n\n")
    assert ("views", "wiki/log.md") in problems(kb)
    run_openkb("fsck", "--repair", cwd=kb)
    text = log.read_text()
    assert text.index("query | appended.md") < text.index("ingest | tar.md (")
    assert run_openkb("fsck", cwd=kb).returncode == 0


def test_fsck_checks_the_commit_memo(kb, tmp_path):
    """A forged entry of .openkb/commit-objects.cache (it parses, but its bytes do not hash to its id)
    never changes what `log` says; fsck reports the bad part of the cache, --repair drops it."""
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md", "grep.md"]), cwd=kb, check=True)
    shown = run_openkb("log", cwd=kb, check=True).stdout
    memo = kb / ".openkb" / "commit-objects.cache"
    pristine = memo.read_bytes()
    forged = pristine.replace(b"OpenKB-Doc: tar", b"OpenKB-Doc: xyz")
    assert forged != pristine
    memo.write_bytes(forged)
    assert ("views", ".openkb/commit-objects.cache") in problems(kb)          # reported by fsck...
    assert run_openkb("log", cwd=kb, check=True).stdout == shown       # ...never shown by a read
    assert "xyz" not in run_openkb("log", cwd=kb, check=True).stdout
    memo.write_bytes(forged)
    proc = run_openkb("fsck", "--repair", cwd=kb)
    assert proc.returncode == 1 and ".openkb/commit-objects.cache" in proc.stdout
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


def test_a_garbled_record_keeps_its_name_taken(kb, tmp_path):
    """Adding a source whose name belongs to a garbled committed record never overwrites that
    record or its files (whose source it was is unknown): the new document gets a suffixed name."""
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb, check=True)
    record = kb / ".openkb" / "registry" / "tar.json"
    record.write_text('{"doc_name": "tar", "fil\n')
    git(kb, "commit", "-q", "-am", "a garbled record")
    raw = git(kb, "rev-parse", "HEAD:raw/tar.md").strip()
    again = tmp_path / "again" / "tar.md"
    again.parent.mkdir()
    again.write_text((tmp_path / "src" / "tar.md").read_text() + "\n- Another example:\n\n`tar -tf {{a.tar}}`\n")
    added = run_openkb("add", again, cwd=kb, check=True)
    doc = json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)[0]["doc"]
    assert doc.startswith("tar-") and f"-> {doc} (" in added.stdout
    assert git(kb, "show", "HEAD:.openkb/registry/tar.json") == '{"doc_name": "tar", "fil\n'
    assert git(kb, "rev-parse", "HEAD:raw/tar.md").strip() == raw
    assert ("registry", ".openkb/registry/tar.json") in problems(kb)


def test_fsck_reports_two_records_of_one_content(kb, tmp_path):
    """Two records of one content (or one source) are never made by add, which skips a
    duplicate: a record copied by hand (or by a tampered clone) is reported, naming both."""
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md", "grep.md"]), cwd=kb, check=True)
    assert run_openkb("fsck", cwd=kb).returncode == 0
    record = json.loads((kb / ".openkb" / "registry" / "tar.json").read_text())
    copy = dict(record, doc_name="tar2", path="elsewhere/tar.md", files=[])
    (kb / ".openkb" / "registry" / "tar2.json").write_text(json.dumps(copy))
    git(kb, "add", ".openkb/registry/tar2.json")
    git(kb, "commit", "-q", "-m", "a copied record")
    checked = run_openkb("fsck", cwd=kb)
    assert checked.returncode != 0 and "has the same content as tar" in checked.stdout
    assert ("registry", ".openkb/registry/tar2.json") in problems(kb)
    grep = json.loads((kb / ".openkb" / "registry" / "grep.json").read_text())
    (kb / ".openkb" / "registry" / "tar2.json").write_text(json.dumps(dict(copy, sha256=grep["sha256"][::-1],
                                                                            path=record["path"])))
    git(kb, "commit", "-q", "-am", "now one source twice")
    assert "has the same source as tar" in run_openkb("fsck", cwd=kb).stdout


def test_fsck_checks_the_pages_against_the_records(kb, tmp_path):
    """The compiler's parts of the pages agree with the records: a re-ingest that changes a
    title, reverted, leaves index.md with the old title again (with merge/wiki.py's re-apply
    of changed index lines broken, the new title stays and fsck reports it). Hand edits of
    those parts are reported and --repair regenerates them from the records (a `rebuild`
    commit, as `openkb rebuild`), keeping the hand notes; a hand note elsewhere is not damage."""
    src = copy_tldr(tmp_path / "src", ["tar.md", "grep.md"])
    run_openkb("add", src, cwd=kb, check=True)
    assert run_openkb("fsck", cwd=kb).returncode == 0
    original = (src / "tar.md").read_text()
    (src / "tar.md").write_text(original.replace("# tar", "# tape archiver", 1))
    run_openkb("add", src / "tar.md", cwd=kb, check=True)
    assert json.loads((kb / ".openkb" / "registry" / "tar.json").read_text())["title"] == "tape archiver"
    line = record_index_line("tar", json.loads((kb / ".openkb" / "registry" / "tar.json").read_text()))
    assert f"{line}\n" in (kb / "wiki" / "index.md").read_text()
    run_openkb("revert", "HEAD", cwd=kb, check=True)
    record = json.loads((kb / ".openkb" / "registry" / "tar.json").read_text())
    assert record["title"] != "tape archiver"
    proc = run_openkb("fsck", cwd=kb)
    assert proc.returncode == 0, proc.stdout
    line = record_index_line("tar", record)
    assert f"{line}\n" in (kb / "wiki" / "index.md").read_text()

    # Hand notes outside the compiler's sections: not damage.
    concept = sorted((kb / "wiki" / "concepts").glob("*.md"))[0]
    concept.write_text(concept.read_text() + "\nA note of mine.\n")
    index = kb / "wiki" / "index.md"
    index.write_text(index.read_text().replace("# Knowledge Base Index\n", "# Knowledge Base Index\n\nMy reading list.\n", 1))
    (kb / "wiki" / "concepts" / "my-own-topic.md").write_text("# My own topic\n\nNo record names it.\n")
    git(kb, "add", "wiki/concepts/my-own-topic.md")
    git(kb, "commit", "-q", "-am", "hand notes")
    assert {check for check, _path in problems(kb)} <= {"views"}  # log.md lags a plain `git commit`

    # The compiler's lines edited by hand: reported.
    index.write_text(index.read_text().replace(line, "- [[summaries/tar]] — mine"))
    slug = concept.stem
    docs = [d for d in ("tar", "grep") if slug in json.loads((kb / ".openkb" / "registry" / f"{d}.json").read_text())["concepts"]]
    concept.write_text(re.sub(rf'"summaries/{docs[0]}[.]md"(, )?', "", concept.read_text(), count=1)
                       .replace(", ]", "]"))  # out of the sources
    git(kb, "commit", "-q", "-am", "hand edits of the compiler's lines")
    report = json.loads(run_openkb("fsck", "--json", cwd=kb).stdout)
    found = {(p["check"], p["path"]): p for p in report["problems"]}
    assert ("pages", "wiki/index.md") in found and "mine" in found[("pages", "wiki/index.md")]["detail"]
    page = f"wiki/concepts/{slug}.md"
    assert ("pages", page) in found and docs[0] in found[("pages", page)]["detail"]
    assert found[("pages", page)]["repairable"] and "openkb rebuild" in found[("pages", page)]["fix"]
    repaired = run_openkb("fsck", "--repair", cwd=kb)
    assert repaired.returncode == 1 and "cannot repair" not in repaired.stdout  # 1: damage was found
    assert f"{line}\n" in index.read_text() and "My reading list." in index.read_text()
    assert f'"summaries/{docs[0]}.md"' in concept.read_text() and "A note of mine." in concept.read_text()
    assert {p["check"] for p in json.loads(run_openkb("fsck", "--json", cwd=kb).stdout)["problems"]} <= {"views"}
    assert "rebuild: 2 shared page(s) from the records (fsck --repair)" in git(kb, "log", "-1", "--format=%s")
