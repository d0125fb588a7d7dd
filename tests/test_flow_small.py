"""Issue #18, "Smaller things a new user hit": each reproduced as the user met it.

(The tutorial run as written is tests/test_docs.py `test_tutorial_commands_run`.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT, copy_tldr, git, run_openkb

OPENKB045 = Path("/work/openkb045/bin/python")


def _add(kb: Path, *paths) -> subprocess.CompletedProcess:
    return run_openkb("--kb-dir", kb, "add", *paths, check=True)


@pytest.fixture
def three(kb, tmp_path) -> Path:
    """A KB with tar, git-commit and git-merge added (in that order)."""
    docs = copy_tldr(tmp_path / "common", ["tar.md", "git-commit.md", "git-merge.md"])
    for name in ("tar.md", "git-commit.md", "git-merge.md"):
        _add(kb, docs / name)
    return kb


# -- revert conflict ------------------------------------------------------------------


def test_revert_conflict_after_committing_hand_edits_says_what_was_committed(three):
    # Rewrite tar's own line on a concept page it contributes to: the revert wants it gone.
    page = next(p for p in sorted((three / "wiki" / "concepts").glob("*.md")) if "- [[summaries/tar]]" in p.read_text())
    lines = page.read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("- [[summaries/tar]]"))
    lines[at] = lines[at] + " MY OWN WORDS"
    page.write_text("\n".join(lines))
    proc = run_openkb("--kb-dir", three, "revert", "tar")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    head = git(three, "log", "-1", "--format=%h %s").split()
    assert head[1] == "edit:"  # the hand edit was committed first
    assert "nothing was changed" not in proc.stderr
    assert f"committed first as {head[0]}" in proc.stderr and "nothing was reverted" in proc.stderr
    assert "object at 0x" not in proc.stderr
    assert "revert wants: (absent)" in proc.stderr
    again = run_openkb("--kb-dir", three, "revert", "--json", "tar")
    assert again.returncode == 1
    data = json.loads(again.stdout)
    assert "object at 0x" not in again.stdout
    assert data["edit_commit"] is None  # nothing new to commit this time
    assert "nothing was changed" in data["message"]
    assert data["conflicts"][0]["path"] == "wiki/concepts/archive.md"


# -- paths relative to the current directory --------------------------------------------


def test_blame_and_diff_paths_are_relative_to_the_current_directory(three):
    concepts = three / "wiki" / "concepts"
    whole = run_openkb("blame", "wiki/concepts/archive.md", cwd=three, check=True).stdout
    assert whole
    assert run_openkb("blame", "archive.md", cwd=concepts, check=True).stdout == whole
    assert run_openkb("blame", "./archive.md", cwd=concepts, check=True).stdout == whole
    assert run_openkb("blame", str(concepts / "archive.md"), cwd=three, check=True).stdout == whole
    index = run_openkb("blame", "wiki/index.md", cwd=three, check=True).stdout
    assert run_openkb("blame", "./wiki/index.md", cwd=three, check=True).stdout == index
    assert run_openkb("blame", "../index.md", cwd=concepts, check=True).stdout == index
    # from outside the KB (--kb-dir), relative paths are the KB root's, as before
    assert run_openkb("--kb-dir", three, "blame", "wiki/index.md", cwd=three.parent, check=True).stdout == index
    outside = run_openkb("blame", "/etc/hostname", cwd=concepts)
    assert outside.returncode == 2 and "outside the knowledge base" in outside.stderr, outside.stderr

    stat = run_openkb("diff", "--stat", "HEAD~1", "--", "./wiki/concepts", cwd=three, check=True).stdout
    assert "0 file(s) changed" not in stat and "wiki/concepts/" in stat
    assert run_openkb("diff", "--stat", "HEAD~1", "--", ".", cwd=concepts, check=True).stdout == stat
    assert run_openkb("diff", "--stat", "HEAD~1", "./wiki/concepts", cwd=three, check=True).stdout == stat
    logged = run_openkb("log", "--path", "archive.md", cwd=concepts, check=True).stdout
    assert re.search(r"add +tar\n", logged), logged


# -- a document named like a position ------------------------------------------------------


def test_a_document_named_2_wins_over_position_2_with_a_warning(kb, tmp_path):
    docs = copy_tldr(tmp_path / "common", ["tar.md", "git-commit.md"])
    (docs / "2.md").write_text("# Two\n\nA document named two, about numbers and names.\n")
    for name in ("tar.md", "2.md", "git-commit.md"):  # log: 0 git-commit, 1 the doc `2`, 2 tar
        _add(kb, docs / name)
    proc = run_openkb("--kb-dir", kb, "revert", "--dry-run", "2")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"would revert \w+ \(2\)", proc.stdout), proc.stdout
    assert "both a document name and a position" in proc.stderr and "#2" in proc.stderr and "doc:2" in proc.stderr
    position = run_openkb("--kb-dir", kb, "revert", "--dry-run", "#2", check=True)
    assert "(tar)" in position.stdout and position.stderr == ""
    named = run_openkb("--kb-dir", kb, "show", "--json", "doc:2", check=True)
    assert json.loads(named.stdout)["operation"]["doc"] == "2" and named.stderr == ""
    # a number no document has is a position, silently
    one = run_openkb("--kb-dir", kb, "show", "--json", "1", check=True)
    assert json.loads(one.stdout)["operation"]["doc"] == "2" and one.stderr == ""
    missing = run_openkb("--kb-dir", kb, "show", "doc:nosuch")
    assert missing.returncode == 1 and "no document 'nosuch'" in missing.stderr


# -- log, show ----------------------------------------------------------------------


def test_log_refuses_an_unknown_op_and_an_unknown_document(three):
    bogus = run_openkb("--kb-dir", three, "log", "--op", "bogus")
    assert bogus.returncode == 2 and "'bogus' is not one of" in bogus.stderr and "'add'" in bogus.stderr
    nodoc = run_openkb("--kb-dir", three, "log", "nosuchdoc")
    assert nodoc.returncode == 2 and "no document 'nosuchdoc'" in nodoc.stderr, nodoc.stderr
    assert re.search(r"add +tar\n", run_openkb("--kb-dir", three, "log", "tar", check=True).stdout)
    # a document that exists but has no operation of that kind: an empty answer, not an error
    assert run_openkb("--kb-dir", three, "log", "--op", "revert", "tar", check=True).stdout == ""


def test_show_json_gives_the_position_and_stat_counts_fields(three):
    for selector, expected in (("0", 0), ("HEAD", 0), ("HEAD~1", 1), ("tar", 2), ("#3", 3)):
        data = json.loads(run_openkb("--kb-dir", three, "show", "--json", selector, check=True).stdout)
        assert data["operation"]["position"] == expected, selector
    init = run_openkb("--kb-dir", three, "show", "--stat", "3", check=True).stdout
    assert re.search(r"\.openkb/config\.yaml +\d+ field\(s\)", init), init
    tar = run_openkb("--kb-dir", three, "show", "--stat", "tar", check=True).stdout
    assert re.search(r"\.openkb/registry/tar\.json +\d+ field\(s\)", tar), tar
    assert "+0 -0" not in init + tar


# -- add ---------------------------------------------------------------------------


def test_a_changed_file_is_reported_updated(kb, tmp_path):
    docs = copy_tldr(tmp_path / "common", ["tar.md"])
    first = _add(kb, docs / "tar.md").stdout
    assert first.startswith("added    ")
    (docs / "tar.md").write_text((docs / "tar.md").read_text() + "\n- List an archive: `tar tvf file.tar`\n")
    second = _add(kb, docs / "tar.md").stdout
    assert git(kb, "log", "-1", "--format=%s").strip() == "update: tar.md"
    assert re.match(r"updated  \S+tar\.md -> tar \(\w{7}\)", second), second
    assert "added " not in second.splitlines()[0]
    (docs / "tar.md").write_text((docs / "tar.md").read_text() + "\n- Once more: `tar xf file.tar`\n")
    report = json.loads(run_openkb("--kb-dir", kb, "add", "--json", docs / "tar.md", check=True).stdout)
    assert report["files"][0]["updated"] is True


def test_a_file_without_extension_is_named_as_such(kb, tmp_path):
    readme = tmp_path / "README"
    readme.write_text("just words\n")
    proc = run_openkb("--kb-dir", kb, "add", readme)
    assert proc.returncode == 1
    assert "type 'README'" not in proc.stdout
    assert "README: no file extension" in proc.stdout and ".md" in proc.stdout, proc.stdout


def test_list_has_a_header_and_says_when_empty(kb, tmp_path):
    empty = run_openkb("--kb-dir", kb, "list", check=True).stdout
    assert empty == "no documents yet; add some with `openkb add PATH`\n"
    assert run_openkb("--kb-dir", kb, "list", "--json", check=True).stdout.strip() == "[]"
    _add(kb, copy_tldr(tmp_path / "common", ["tar.md"]) / "tar.md")
    lines = run_openkb("--kb-dir", kb, "list", check=True).stdout.splitlines()
    assert lines[0] == "Documents (1):"
    assert lines[1].split() == ["DOC", "TYPE", "PAGES", "SOURCE", "FILE"]
    assert lines[2].split()[0] == "tar"


# -- the lock held by OpenKB ---------------------------------------------------------------


@pytest.mark.skipif(not OPENKB045.exists(), reason="OpenKB 0.4.5 is not installed in /work/openkb045")
def test_lock_held_by_openkb_names_openkb_not_our_last_writer(kb, tmp_path):
    docs = copy_tldr(tmp_path / "common", ["tar.md", "git-commit.md"])
    _add(kb, docs / "tar.md")  # our last writer, long gone, is in the holder file
    stale = json.loads((kb / ".openkb" / "ingest.lock.holder").read_text())["pid"]
    holder = subprocess.Popen(
        [str(OPENKB045), "-c", "import sys, time\nfrom pathlib import Path\nfrom openkb.locks import kb_ingest_lock\n"
         "with kb_ingest_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n",
         str(kb / ".openkb")],
        stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"})
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = run_openkb("--kb-dir", kb, "add", docs / "git-commit.md")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert f"pid {holder.pid}" in proc.stderr and "not openkb-git" in proc.stderr and "openkb.locks" in proc.stderr
        assert f"pid {stale}" not in proc.stderr
        status = run_openkb("--kb-dir", kb, "status", check=True).stdout
        assert f"locked by:  pid {holder.pid}" in status, status
    finally:
        holder.kill()
        holder.wait()
    _add(kb, docs / "git-commit.md")  # free again


# -- init inside a project's repository ------------------------------------------------------


def test_init_makes_a_kb_inside_a_projects_repository(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    (project / "code.py").write_text("print('hi')\n")
    git(project, "add", "code.py")
    git(project, "-c", "user.name=p", "-c", "user.email=p@example.com", "commit", "-qm", "code")
    project_head = git(project, "rev-parse", "HEAD")
    proc = run_openkb("init", "kb", cwd=project, check=True)
    assert "note:" in proc.stdout and "its own repository" in proc.stdout and "/kb/" in proc.stdout, proc.stdout
    kb = project / "kb"
    assert git(kb, "rev-parse", "--show-toplevel").strip() == str(kb.resolve())
    _add(kb, copy_tldr(tmp_path / "common", ["tar.md"]) / "tar.md")
    assert git(project, "status", "--porcelain") == "?? kb/\n"
    assert git(project, "rev-parse", "HEAD") == project_head
    assert len(git(kb, "log", "--format=%s").splitlines()) == 2
    (project / ".gitignore").write_text("/kb/\n")
    assert git(project, "status", "--porcelain") == "?? .gitignore\n"
    root = run_openkb("init", cwd=project)
    assert root.returncode == 1 and "openkb init " in root.stderr and "kb" in root.stderr


# -- README ---------------------------------------------------------------------------


def test_both_command_names_are_installed_and_documented():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["openkb"] == scripts["openkb-git"] == "openkb_git.cli.main:main"
    readme = (ROOT / "README.md").read_text()
    assert "Both packages install a command named `openkb`" in readme and "`openkb-git`" in readme
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.argv[0] = 'openkb-git'\n"
                           "from openkb_git.cli.main import main; main()", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("Usage: openkb-git "), proc.stdout


@pytest.mark.slow
def test_readme_names_the_pdfs_that_warn(kb):
    """README's set-up adds the corpus's PDFs: the ones it says warn are the ones that do."""
    out = run_openkb("--kb-dir", kb, "add", CORPUS / "pdf", check=True).stdout
    warned = set(re.findall(r"^added +\S+/([^/\s]+\.pdf) -> .*\n +warning: no text extracted", out, re.M))
    readme = (ROOT / "README.md").read_text()
    sentence = readme.split("three PDFs without a text layer", 1)[1].split("are added", 1)[0]
    assert warned == set(re.findall(r"`([^`]+\.pdf)`", sentence)), (warned, sentence)
    assert len(warned) == 3 and "COPYING.PyMuPDF: unsupported file type" in out
