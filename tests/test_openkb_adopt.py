"""Documents OpenKB itself adds or removes in our KB become `add` / `remove` operations of
ours (issue #18, item 1; ops/adopt.py), and `remove` takes out all a document owns, also one
OpenKB compiled, with OpenKB's --keep-raw and --keep-empty (item 2).

The OpenKB tests run the real OpenKB 0.4.5 (its venv: OPENKB045, default /work/openkb045):
its own `add` (tests/data/openkb_add.py: its lock, converter, journal, hashes.json and log.md,
its page writers; only the model's answers are made there) and its own `remove`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import assert_consistent, copy_tldr, git, run_openkb

VENV = Path(os.environ.get("OPENKB045", "/work/openkb045"))
needs_openkb = pytest.mark.skipif(not (VENV / "bin" / "openkb").exists(),
                                  reason="OpenKB 0.4.5 is not installed (set OPENKB045)")
OPENKB_ADD = Path(__file__).parent / "data" / "openkb_add.py"


def _env(home: Path) -> dict:
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY", "LLM_API_KEY")}
    env["HOME"] = str(home)
    return env


def openkb_add(kb: Path, *files: Path, home: Path) -> None:
    proc = subprocess.run([str(VENV / "bin" / "python"), str(OPENKB_ADD), str(kb), *map(str, files)],
                          cwd=kb, env=_env(home), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def openkb(kb: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV / "bin" / "openkb"), *args], cwd=kb, env=_env(home),
                          capture_output=True, text=True, timeout=300)


def their_list(kb: Path, home: Path) -> list[str]:
    proc = openkb(kb, "list", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.split("Documents", 1)[1].split("\n\n", 1)[0].splitlines()[3:]  # (title, header, rule)
    return sorted(line.split()[0].rsplit(".", 1)[0] for line in lines if line.strip())


def our_list(kb: Path) -> list[str]:
    return sorted(d["doc"] for d in json.loads(run_openkb("--kb-dir", kb, "list", "--json", check=True).stdout))


def note(path: Path, title: str, *concepts: str) -> Path:
    path.write_text(f"# {title}\n\n{title} in a few words.\n\n" + "".join(f"concept: {c}\n" for c in concepts))
    return path


@pytest.fixture
def ours(tmp_path) -> Path:
    """Our KB of three tldr pages (tar and zip share the `archive` concept)."""
    root = tmp_path / "kb"
    run_openkb("init", root, check=True)
    src = copy_tldr(tmp_path / "src", ["tar.md", "zip.md", "ls.md"])
    run_openkb("--kb-dir", root, "add", "-q", src, check=True)
    return root


@needs_openkb
def test_openkbs_own_adds_become_add_commits_and_revert_cleanly(ours, tmp_path):
    """On main: our next add committed only the changed concept page and the index as an
    `edit`, left OpenKB's raw/source/summary untracked, made no record, and its hashes.json
    rebuild erased OpenKB's entry (OpenKB's `list` no longer showed the document)."""
    home = tmp_path / "home"
    before = git(ours, "rev-parse", "HEAD").strip()
    notes = tmp_path / "notes"
    notes.mkdir()
    openkb_add(ours, note(notes / "rsync-notes.md", "Rsync copies files", "Archive", "Remote Copy"),
               note(notes / "scp-notes.md", "Scp copies files too", "Remote Copy", "Secure Shell"), home=home)
    copy_tldr(tmp_path / "more", ["grep.md"])
    add = run_openkb("--kb-dir", ours, "add", tmp_path / "more" / "grep.md", check=True)
    assert "2 document(s) OpenKB added" in add.stderr, add.stderr
    subjects = git(ours, "log", "--format=%s", f"{before}..HEAD").splitlines()
    assert subjects == ["add: grep.md", "add: scp-notes.md (added by OpenKB)", "add: rsync-notes.md (added by OpenKB)"]
    assert git(ours, "status", "--porcelain") == ""
    for doc in ("rsync-notes", "scp-notes"):
        record = json.loads((ours / f".openkb/registry/{doc}.json").read_text())
        assert {f"raw/{doc}.md", f"wiki/sources/{doc}.md", f"wiki/summaries/{doc}.md"} <= set(record["files"])
        assert "remote-copy" in record["concepts"] and record["compiled_by"] == "OpenKB"
        assert record["path"] == f"notes/{doc}.md"  # OpenKB's absolute path is not published
    # each commit holds its own document: the first one's index has no line of the second
    first = git(ours, "rev-list", "-n1", "--grep", "rsync-notes.md (added", "HEAD").strip()
    index = git(ours, "show", f"{first}:wiki/index.md")
    assert "[[summaries/rsync-notes]]" in index and "[[summaries/scp-notes]]" not in index
    assert "[[concepts/remote-copy]]" in index and "secure-shell" not in index
    page = git(ours, "show", f"{first}:wiki/concepts/remote-copy.md")
    assert "summaries/rsync-notes" in page and "summaries/scp-notes" not in page
    assert our_list(ours) == their_list(ours, home) == ["grep", "ls", "rsync-notes", "scp-notes", "tar", "zip"]
    log = (ours / "wiki/log.md").read_text()  # OpenKB's own lines stay, before the commits of ours
    assert "] ingest | rsync-notes.md\n" in log and log.index("ingest | scp-notes.md\n") < log.index("grep.md (")
    assert run_openkb("--kb-dir", ours, "fsck").returncode == 0
    git(ours, "fsck", "--strict")
    assert_consistent(ours)

    # reverting OpenKB's later add takes out its files, the page only it had, its index lines
    run_openkb("--kb-dir", ours, "revert", "scp-notes", check=True)
    for path in ("raw/scp-notes.md", "wiki/summaries/scp-notes.md", "wiki/concepts/secure-shell.md"):
        assert not (ours / path).exists(), path
    index = (ours / "wiki/index.md").read_text()
    assert "[[summaries/scp-notes]]" not in index and "secure-shell" not in index and "[[summaries/rsync-notes]]" in index
    assert "summaries/scp-notes" not in (ours / "wiki/concepts/remote-copy.md").read_text()
    assert our_list(ours) == their_list(ours, home) == ["grep", "ls", "rsync-notes", "tar", "zip"]
    assert run_openkb("--kb-dir", ours, "fsck").returncode == 0
    assert_consistent(ours)
    # and reverting the first as well leaves the shared pages as they were before OpenKB's adds
    run_openkb("--kb-dir", ours, "revert", "rsync-notes", check=True)
    assert git(ours, "diff", before, "HEAD", "--", "wiki/concepts/archive.md") == ""
    assert "rsync" not in (ours / "wiki/index.md").read_text()
    assert not (ours / "wiki/concepts/remote-copy.md").exists()
    assert run_openkb("--kb-dir", ours, "fsck").returncode == 0


@needs_openkb
def test_openkbs_remove_of_a_document_openkb_added_is_a_remove(ours, tmp_path):
    home = tmp_path / "home"
    notes = tmp_path / "notes"
    notes.mkdir()
    openkb_add(ours, note(notes / "rsync-notes.md", "Rsync copies files", "Archive", "Remote Copy"), home=home)
    run_openkb("--kb-dir", ours, "recover", check=True)  # a writer: records OpenKB's add
    proc = openkb(ours, "remove", "-y", "rsync-notes", home=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_openkb("--kb-dir", ours, "recover", check=True)
    assert git(ours, "log", "-1", "--format=%s").startswith("remove: rsync-notes")
    assert git(ours, "status", "--porcelain") == ""
    assert our_list(ours) == their_list(ours, home) == ["ls", "tar", "zip"]
    assert run_openkb("--kb-dir", ours, "fsck").returncode == 0
    git(ours, "fsck", "--strict")


@needs_openkb
def test_our_remove_of_a_document_openkb_added_takes_out_all_it_owns(ours, tmp_path):
    """`remove` deletes the concept page OpenKB wrote for the document alone (OpenKB's rule);
    --keep-empty keeps it; --keep-raw leaves the original untracked in raw/, to be added again."""
    home = tmp_path / "home"
    notes = tmp_path / "notes"
    notes.mkdir()
    openkb_add(ours, note(notes / "rsync-notes.md", "Rsync copies files", "Archive", "Remote Copy"), home=home)
    run_openkb("--kb-dir", ours, "recover", check=True)
    adopted = git(ours, "rev-parse", "HEAD").strip()
    copy = tmp_path / "copy"
    shutil.copytree(ours, copy, symlinks=True)

    run_openkb("--kb-dir", ours, "remove", "-y", "rsync", check=True)
    for path in ("raw/rsync-notes.md", "wiki/sources/rsync-notes.md", "wiki/summaries/rsync-notes.md",
                 "wiki/concepts/remote-copy.md", ".openkb/registry/rsync-notes.json"):
        assert not (ours / path).exists(), path
    assert "remote-copy" not in (ours / "wiki/index.md").read_text()
    assert "summaries/rsync-notes" not in (ours / "wiki/concepts/archive.md").read_text()
    assert git(ours, "status", "--porcelain") == ""
    assert run_openkb("--kb-dir", ours, "fsck").returncode == 0
    # the removal is revertible as any operation: the tree of the adopted add again
    run_openkb("--kb-dir", ours, "revert", "HEAD", check=True)
    assert git(ours, "diff", adopted, "HEAD", "--stat") == ""

    run_openkb("--kb-dir", copy, "remove", "-y", "--keep-empty", "--keep-raw", "rsync-notes", check=True)
    assert (copy / "wiki/concepts/remote-copy.md").exists()
    assert "summaries/rsync-notes" not in (copy / "wiki/concepts/remote-copy.md").read_text()
    assert git(copy, "status", "--porcelain") == "?? raw/rsync-notes.md\n"
    assert git(copy, "ls-files", "raw/rsync-notes.md") == ""
    assert run_openkb("--kb-dir", copy, "fsck").returncode == 0
    run_openkb("--kb-dir", copy, "add", copy / "raw" / "rsync-notes.md", check=True)
    assert "rsync-notes" in our_list(copy) and git(copy, "status", "--porcelain") == ""


def test_remove_in_a_kb_adopted_from_openkb_takes_out_its_files_and_its_pages(tmp_path):
    """On main: `remove` in an adopted OpenKB KB changed only the record and the index line;
    raw, source, summary and the concept page whose only source was the document stayed."""
    root = tmp_path / "old"
    for folder in (".openkb", "raw", "wiki/sources", "wiki/summaries", "wiki/concepts"):
        (root / folder).mkdir(parents=True)
    (root / "raw/paper.md").write_text("# Paper\n\nText.\n")
    (root / "wiki/sources/paper.md").write_text("# Paper\n\nText.\n")
    (root / "wiki/summaries/paper.md").write_text('---\ntype: "Summary"\ndescription: "A paper"\n---\n\n# Paper\n')
    (root / "wiki/concepts/attention.md").write_text(
        '---\ntype: "Concept"\nsources: ["summaries/paper.md"]\ndescription: "Attention"\n---\n\n'
        "# Attention\n\nWhat [[summaries/paper]] says of it.\n")
    (root / "wiki/index.md").write_text("# Knowledge Base Index\n\n## Documents\n\n- [[summaries/paper]] (short) — A paper\n"
                                        "\n## Concepts\n\n- [[concepts/attention]] — Attention\n")
    hashes = {"ab" * 32: {"name": "paper.md", "doc_name": "paper", "type": "md", "path": "raw/paper.md",
                          "raw_path": "raw/paper.md", "source_path": "wiki/sources/paper.md"}}
    (root / ".openkb/hashes.json").write_text(json.dumps(hashes))
    run_openkb("init", root, check=True)
    run_openkb("--kb-dir", root, "remove", "-y", "paper", check=True)
    for path in ("raw/paper.md", "wiki/sources/paper.md", "wiki/summaries/paper.md", "wiki/concepts/attention.md"):
        assert not (root / path).exists(), path
    index = (root / "wiki/index.md").read_text()
    assert "paper" not in index and "attention" not in index
    assert git(root, "status", "--porcelain") == ""
    assert run_openkb("--kb-dir", root, "fsck").returncode == 0
    assert_consistent(root)


def test_a_remove_committed_before_an_add_is_reported_as_a_remove(ours, tmp_path):
    """On main: the commit a writer made of a document's deleted files (OpenKB's `remove`, or
    by hand) was printed as "committed your edits of tracked files as … (edit)"."""
    for path in ("raw/tar.md", "wiki/sources/tar.md", "wiki/summaries/tar.md"):
        (ours / path).unlink()
    copy_tldr(tmp_path / "more", ["grep.md"])
    add = run_openkb("--kb-dir", ours, "add", tmp_path / "more" / "grep.md", check=True)
    removal = git(ours, "log", "-1", "--skip=1", "--format=%h %s").split(" ", 1)
    assert removal[1].startswith("remove: tar")
    assert f"as {removal[0][:7]} (remove)" in add.stderr and "(edit)" not in add.stderr, add.stderr
    assert our_list(ours) == ["grep", "ls", "zip"]


def test_openkbs_lint_reports_and_graph_stay_out_of_git_status(ours, tmp_path):
    """On main: OpenKB's `wiki/reports/` (lint) and `output/` (visualize) stayed untracked for
    ever. A KB made now ignores them; one made before (its .gitignore without them) gets them
    in `.git/info/exclude` from its next writer."""
    (ours / "wiki/reports").mkdir()
    (ours / "wiki/reports/lint_20261202_000000.md").write_text("# Lint Report\n")
    (ours / "output").mkdir()
    (ours / "output/graph.html").write_text("<html></html>\n")
    assert git(ours, "status", "--porcelain") == ""
    ignore = (ours / ".gitignore").read_text()
    (ours / ".gitignore").write_text(ignore.replace("/wiki/reports/\n", "").replace("/output/\n", ""))
    git(ours, "commit", "-qam", "an older .gitignore")
    (ours / ".git/info/exclude").write_text("")
    assert git(ours, "status", "--porcelain") != ""
    run_openkb("--kb-dir", ours, "recover", check=True)
    assert git(ours, "status", "--porcelain") == ""


def test_lines_openkb_appends_to_the_log_are_kept(ours, tmp_path):
    """On main: OpenKB's `remove | tar.md` line (any line its commands append: ingest, query,
    lint) vanished when our next writer rebuilt log.md."""
    time.sleep(1.1)  # (the log's times are in seconds)
    with open(ours / "wiki/log.md", "a") as log:
        log.write(f"## [{time.strftime('%Y-%m-%d %H:%M:%S')}] query | what does tar do?\n\n")
    time.sleep(1.1)
    copy_tldr(tmp_path / "more", ["grep.md", "cat.md"])
    run_openkb("--kb-dir", ours, "add", tmp_path / "more" / "grep.md", check=True)
    run_openkb("--kb-dir", ours, "add", tmp_path / "more" / "cat.md", check=True)
    run_openkb("--kb-dir", ours, "fsck", "--repair", check=True)  # rewrites the views from the history
    text = (ours / "wiki/log.md").read_text()
    assert text.count("] query | what does tar do?\n") == 1
    assert text.index("tar.md (") < text.index("query | what") < text.index("grep.md (") < text.index("cat.md (")
    assert run_openkb("--kb-dir", ours, "fsck").returncode == 0


def openkb_like_add(root: Path, doc: str) -> dict[str, bytes]:
    """What OpenKB's `add` of ``doc``.md leaves in the working tree (written here, as its code
    writes it, for tests that need no OpenKB): {path: bytes} of every file it wrote."""
    import hashlib

    raw = f"# {doc}\n\n{doc} copies files.\n".encode()
    files = {f"raw/{doc}.md": raw, f"wiki/sources/{doc}.md": raw,
             f"wiki/summaries/{doc}.md": f'---\ntype: "Summary"\ndescription: "{doc}"\ndoc_type: short\n'
                                         f'full_text: "sources/{doc}.md"\n---\n\n# {doc}\n'.encode(),
             f"wiki/concepts/{doc}-copy.md": f'---\ntype: "Concept"\nsources: ["summaries/{doc}.md"]\n'
                                             f'description: "Copying"\n---\n\n# Copy\n\nAs [[summaries/{doc}]] says.\n'.encode()}
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    index = (root / "wiki/index.md").read_text()
    index = index.replace("## Documents\n", f"## Documents\n- [[summaries/{doc}]] (short) — {doc}\n", 1)
    (root / "wiki/index.md").write_text(index.replace("## Concepts\n", f"## Concepts\n- [[concepts/{doc}-copy]] — Copying\n", 1))
    files["wiki/index.md"] = (root / "wiki/index.md").read_bytes()
    hashes = json.loads((root / ".openkb/hashes.json").read_text())
    hashes[hashlib.sha256(raw).hexdigest()] = {"name": f"{doc}.md", "doc_name": doc, "type": "md",
                                              "path": f"/home/someone/{doc}.md", "raw_path": f"raw/{doc}.md",
                                              "source_path": f"wiki/sources/{doc}.md"}
    (root / ".openkb/hashes.json").write_text(json.dumps(hashes, indent=2) + "\n")
    return files


@pytest.mark.parametrize("mode", ["kill", "power"])
def test_a_crash_while_recording_openkbs_add_loses_nothing(ours, tmp_path, mode):
    """At each step of the commit that records OpenKB's add (its files are only in the working
    tree: a rollback must not delete them), a crash then the next writer: the document recorded
    once, every file OpenKB wrote as it wrote it."""
    points = ["objects:durable", "journal:durable", "ref:moved", "projected", "views", "durable"]
    for point in points:
        target = tmp_path / f"{mode}-{point}"
        shutil.copytree(ours, target, symlinks=True)
        files = openkb_like_add(target, "rsync-notes")
        status = run_openkb("--kb-dir", target, "status", "--json", check=True)
        assert json.loads(status.stdout)["openkb_added"] == ["rsync-notes"]
        proc = run_openkb("--kb-dir", target, "recover", env={"OPENKB_FAULT_MODE": mode, "OPENKB_FAULT_AT": point})
        assert proc.returncode == -9, (point, proc.stdout, proc.stderr)
        run_openkb("--kb-dir", target, "recover", check=True)
        for path, data in files.items():
            assert (target / path).read_bytes() == data, (point, path)
        assert git(target, "log", "--format=%s").count("add: rsync-notes.md (added by OpenKB)") == 1, point
        assert git(target, "status", "--porcelain") == "", point
        assert "rsync-notes" in our_list(target)
        assert run_openkb("--kb-dir", target, "fsck").returncode == 0, point


def test_an_openkb_entry_that_cannot_be_recorded_is_said_and_kept(ours, tmp_path):
    """An entry of OpenKB's whose files are not all there (its summary deleted) is not made a
    record; the writer says so, and the entry is kept aside rather than erased unsaid."""
    openkb_like_add(ours, "rsync-notes")
    (ours / "wiki/summaries/rsync-notes.md").unlink()
    copy_tldr(tmp_path / "more", ["grep.md"])
    add = run_openkb("--kb-dir", ours, "add", tmp_path / "more" / "grep.md", check=True)
    assert "left OpenKB's hashes.json entry for rsync-notes: wiki/summaries/rsync-notes.md is not there" in add.stderr
    kept = json.loads((ours / ".openkb/openkb-git/unadopted-openkb-entries.json").read_text())
    assert [meta["doc_name"] for meta in kept.values()] == ["rsync-notes"]
    assert "rsync-notes" not in our_list(ours)
    again = run_openkb("--kb-dir", ours, "recover", check=True)  # said once: hashes.json is ours again
    assert "left OpenKB's" not in again.stderr, again.stderr


def test_a_dry_run_records_nothing_of_openkbs_adds(ours):
    """`remove --dry-run` (and revert's, rebuild's) changes nothing: OpenKB's add stays for the
    next real write to record. (On main `revert --dry-run` also committed the hand edits it
    found, here OpenKB's changes of the index and a concept page, as an `edit`.)"""
    openkb_like_add(ours, "rsync-notes")
    head = git(ours, "rev-parse", "HEAD")
    run_openkb("--kb-dir", ours, "remove", "--dry-run", "tar", check=True)
    run_openkb("--kb-dir", ours, "revert", "--dry-run", "tar", check=True)
    assert git(ours, "rev-parse", "HEAD") == head
    run_openkb("--kb-dir", ours, "recover", check=True)
    assert git(ours, "log", "-1", "--format=%s").startswith("add: rsync-notes.md (added by OpenKB)")


@pytest.mark.parametrize("damage", ["a list for a path", "a name that is no UTF-8", "two entries, one name"])
def test_odd_openkb_entries_never_block_a_writer(ours, tmp_path, damage):
    """What OpenKB (or anything) wrote into hashes.json and wiki/ is untrusted: a value of the
    wrong type, a file name that is no UTF-8, two new entries of one name. Found by review: a
    list for `path` was committed into the record and every command after failed with a
    TypeError; a non-UTF-8 image name made every writer fail."""
    openkb_like_add(ours, "rsync-notes")
    hashes = json.loads((ours / ".openkb/hashes.json").read_text())
    sha = next(s for s, m in hashes.items() if m["doc_name"] == "rsync-notes")
    if damage == "a list for a path":
        hashes[sha]["path"] = ["x"]
        hashes[sha]["type"] = {"no": "text"}
    elif damage == "two entries, one name":
        hashes["cd" * 32] = dict(hashes[sha], name="other.md")
    (ours / ".openkb/hashes.json").write_text(json.dumps(hashes, indent=2))
    if damage == "a name that is no UTF-8":
        folder = os.fsencode(ours / "wiki/sources/images/rsync-notes")
        os.makedirs(folder)
        with open(os.path.join(folder, b"\xff.png"), "wb") as fh:
            fh.write(b"png")
    copy_tldr(tmp_path / "more", ["grep.md"])
    add = run_openkb("--kb-dir", ours, "add", tmp_path / "more" / "grep.md")
    assert add.returncode == 0 and "Traceback" not in add.stderr, add.stderr
    assert "grep" in our_list(ours)
    listed = our_list(ours)
    if damage == "a name that is no UTF-8":
        assert "rsync-notes" not in listed and "is no UTF-8 name" in add.stderr
    else:
        assert "rsync-notes" in listed
        record = json.loads((ours / ".openkb/registry/rsync-notes.json").read_text())
        assert all(isinstance(record[k], str) for k in ("name", "doc_name", "raw_path", "source_path"))
        assert "path" not in record or isinstance(record["path"], str)
    if damage == "two entries, one name":
        assert "another new entry of hashes.json has that name" in add.stderr
    run_openkb("--kb-dir", ours, "recover", check=True)  # and the next writer, and the next, run
    assert run_openkb("--kb-dir", ours, "status").returncode == 0


def test_openkbs_log_lines_survive_a_full_rewrite_and_a_question_ending_in_hex(ours, tmp_path):
    """Found by review: `fsck --repair` (a full rewrite of the views) dropped OpenKB's lines,
    and a line of OpenKB's ending in `(abc1234)` was taken for one of ours and dropped."""
    time.sleep(1.1)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"## [{stamp}] query | what is a commit (abc1234)", f"## [{stamp}] lint | report → lint_1.md"]
    with open(ours / "wiki/log.md", "a") as log:
        log.write("".join(line + "\n\n" for line in lines))
    run_openkb("--kb-dir", ours, "fsck", "--repair", check=True)
    text = (ours / "wiki/log.md").read_text()
    assert all(text.count(line + "\n") == 1 for line in lines), text
    copy_tldr(tmp_path / "more", ["grep.md"])
    run_openkb("--kb-dir", ours, "add", tmp_path / "more" / "grep.md", check=True)
    text = (ours / "wiki/log.md").read_text()
    assert all(text.count(line + "\n") == 1 for line in lines), text
    assert run_openkb("--kb-dir", ours, "fsck").returncode == 0


def test_an_entry_left_is_said_once_even_when_nothing_is_committed(ours):
    """Found by review: with nothing committed, hashes.json stayed OpenKB's, and every writer
    after read it all again (and said the same)."""
    openkb_like_add(ours, "rsync-notes")
    (ours / "wiki/summaries/rsync-notes.md").unlink()
    first = run_openkb("--kb-dir", ours, "recover", check=True)
    assert "left OpenKB's hashes.json entry for rsync-notes" in first.stderr
    second = run_openkb("--kb-dir", ours, "recover", check=True)
    assert "left OpenKB's" not in second.stderr, second.stderr
    assert json.loads(run_openkb("--kb-dir", ours, "status", "--json", check=True).stdout)["openkb_added"] == []
