"""Hand edits merged, not overwritten, on re-ingest and `openkb recompile`; the recompile
command; the migration of a KB by `openkb recompile --all` (issue #16, items 3-5;
docs/recompile.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import TLDR, assert_consistent, git, run_openkb

NOTE = "\nMy own note: prefer --zstd for speed.\n"
EXTRA = "\n- List the contents of a tar file verbosely:\n\n`tar tvf {{path/to/source.tar}}`\n"


def head_file(root: Path, path: str) -> str:
    return git(root, "show", f"HEAD:{path}")


def ops(root: Path) -> list[str]:
    """The `OpenKB-Op` of every commit, oldest first."""
    out = git(root, "log", "--reverse", "--format=%(trailers:key=OpenKB-Op,valueonly)%x00")
    return [op.strip() for op in out.split("\x00") if op.strip()]


def setup_tar(tmp_path: Path, names=("tar.md",)) -> tuple[Path, Path]:
    root, src = tmp_path / "kb", tmp_path / "src"
    run_openkb("init", root, check=True)
    src.mkdir()
    for name in names:
        shutil.copy(TLDR / "common" / name, src / name)
    run_openkb("add", src, cwd=root, check=True)
    return root, src


def test_hand_paragraph_on_a_summary_survives_a_reingest(tmp_path):
    """The issue's case: a paragraph added by hand to wiki/summaries/tar.md, then tar.md changed
    and added again: the edit was committed, then removed by the next commit with no warning.
    Now it stays (and stays through a second re-ingest, whose base is the first one's compile)."""
    root, src = setup_tar(tmp_path)
    summary = root / "wiki" / "summaries" / "tar.md"
    summary.write_text(summary.read_text() + NOTE)
    with (src / "tar.md").open("a") as fh:
        fh.write(EXTRA)
    proc = run_openkb("add", src / "tar.md", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "My own note" in head_file(root, "wiki/summaries/tar.md")
    assert "tar tvf" in head_file(root, "wiki/sources/tar.md")  # the new version is in
    assert "hand edits of its pages were kept" in proc.stdout
    assert ops(root)[-3:] == ["edit", "add", "edit"]  # your edit, the compile as such, your edit kept
    assert_consistent(root)

    with (src / "tar.md").open("a") as fh:
        fh.write("\n- Extract one file from an archive:\n\n`tar xf {{path/to/source.tar}} {{path/to/file}}`\n")
    run_openkb("add", src / "tar.md", cwd=root, check=True)
    assert "My own note" in head_file(root, "wiki/summaries/tar.md")
    assert "tar xf" in head_file(root, "wiki/sources/tar.md")
    assert_consistent(root)


def test_a_conflicting_hand_edit_fails_that_document_only(tmp_path):
    """A hand edit of the very lines the new compile changes: that document fails, listed per
    path with both sides; nothing of it changes; the other file of the batch goes in."""
    root, src = setup_tar(tmp_path, ("tar.md", "zip.md"))
    summary = root / "wiki" / "summaries" / "tar.md"
    text = summary.read_text()
    heading = next(line for line in text.splitlines() if line.startswith("# "))
    edited = text.replace(heading + "\n", heading + " (my title)\n", 1)
    summary.write_text(edited)
    # A new title: the compiler rewrites the very line the hand edit changed.
    original = (TLDR / "common" / "tar.md").read_text()
    title, rest = original.split("\n", 1)
    (src / "tar.md").write_text(f"{title}, revised\n{rest}")
    (src / "zip.md").write_text((TLDR / "common" / "zip.md").read_text() + "\n- Zip again:\n\n`zip -r again.zip dir`\n")
    before_sources = head_file(root, "wiki/sources/tar.md")
    proc = run_openkb("add", src, cwd=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed   " in proc.stdout and "nothing of tar was changed" in proc.stdout
    assert "wiki/summaries/tar.md: " in proc.stdout and "now (HEAD):" in proc.stdout
    assert "compiler wants:" in proc.stdout
    assert "added    " in proc.stdout and "-> zip" in proc.stdout
    assert head_file(root, "wiki/summaries/tar.md") == edited  # the hand edit, committed, nothing else
    assert head_file(root, "wiki/sources/tar.md") == before_sources
    assert "Zip again" in head_file(root, "wiki/sources/zip.md")
    report = json.loads(run_openkb("add", "--json", src, cwd=root).stdout)
    [tar] = [f for f in report["files"] if f["doc"] == "tar"]
    assert tar["status"] == "failed" and tar["conflicts"][0]["path"] == "wiki/summaries/tar.md"
    assert_consistent(root)
