"""The crash matrix: stop a mutating command at every durable operation — killed, power
lost (unsynced writes dropped or torn), or an I/O error — and check what is left.

The default run checks a sample of the points of every operation; OPENKB_SLOW=1 checks
every point (see docs/protocol.md). The numbers of points checked are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, SUMMARY, TLDR, git
from openkb_git.kb import KB
from openkb_git.ops.fsck import fsck
from openkb_git.ops.session import Writer

SLOW = os.environ.get("OPENKB_SLOW") == "1"
SAMPLE = 12  # points per mode in the default run


def openkb(kb: Path, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "openkb_git", "--kb-dir", str(kb), *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def docs_of(kb: Path) -> set[str]:
    return {d["doc"] for d in json.loads(openkb(kb, "list", "--json").stdout)}


def check_recovered(kb: Path, before_head: str, before_docs: set[str], must_keep_docs: bool,
                    hand_edits: dict[str, bytes] | None = None, kept: dict[str, bytes] | None = None) -> None:
    """After recovery: HEAD is a whole operation on top of the old one, the working tree,
    index, registry and views match it, nothing committed is lost, nothing is left over.
    ``hand_edits`` ({path: content}) are the user's uncommitted edits: each must be either
    committed or still in the working tree, never lost. ``kept`` ({path: content}) are hand
    edits recovery may reset: each must then be in a backup under `.openkb/fsck-backup/`."""
    hand_edits = hand_edits or {}
    kept = kept or {}
    handle = KB(kb)
    try:
        with Writer(handle).locked():
            pass
        report = fsck(handle)
    finally:
        handle.close()
    problems = [p for p in report.problems if p.path not in hand_edits]
    assert not problems, [f"{p.check} {p.path}: {p.detail}" for p in problems]
    status = [line for line in git(kb, "status", "--porcelain", "--untracked-files=all").splitlines()
              if line[3:] not in hand_edits]
    assert status == []
    for path, content in hand_edits.items():
        assert (kb / path).read_bytes() == content  # kept in the working tree, committed or not
    for path, content in kept.items():
        copies = [c.read_bytes() for c in (kb / ".openkb" / "fsck-backup").glob(f"*/{path}")]
        assert (kb / path).read_bytes() == content or content in copies, (path, len(copies))
    head = git(kb, "rev-parse", "HEAD").strip()
    assert subprocess.run(["git", "-C", str(kb), "merge-base", "--is-ancestor", before_head, head]).returncode == 0
    for folder in ("openkb-git/journal", "openkb-git/staging", "journal", "staging"):
        assert not (kb / ".openkb" / folder).exists() or not any((kb / ".openkb" / folder).iterdir())
    if must_keep_docs:
        assert before_docs <= docs_of(kb)


def count_ops(template: Path, work: Path, args: list) -> int:
    probe = work / "probe"
    shutil.copytree(template, probe, symlinks=True)
    trace = work / "trace.txt"
    proc = openkb(probe, *args, env={"OPENKB_FAULT_TRACE": str(trace)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return len(trace.read_text().splitlines())


def run_matrix(name: str, template: Path, work: Path, args: list, *, must_keep_docs: bool = True,
               hand_edits: dict[str, bytes] | None = None, kept: dict[str, bytes] | None = None) -> int:
    total = count_ops(template, work, args)
    before_head = git(template, "rev-parse", "HEAD").strip()
    before_docs = docs_of(template)
    checked = 0
    for mode in os.environ.get("OPENKB_FAULT_MODES", "kill,power,io").split(","):
        points = list(range(1, total + 1))
        if not SLOW and len(points) > SAMPLE:
            step = len(points) / SAMPLE
            points = sorted({int(i * step) + 1 for i in range(SAMPLE)} | {total})
        for n in points:
            kb = work / f"{mode}-{n}"
            shutil.copytree(template, kb, symlinks=True)
            fault = mode if mode != "io" else ("eio" if n % 2 else "enospc")
            proc = openkb(kb, *args, env={"OPENKB_FAULT_MODE": fault, "OPENKB_FAULT_AT": str(n)})
            # A new commit object may or may not need a new fan-out folder (its id depends on
            # the time: +2 operations per commit at most), so the last few may not exist in this run.
            if proc.returncode == 0 and n > total - 8:
                shutil.rmtree(kb)
                continue
            if mode in ("kill", "power"):
                assert proc.returncode == -9, (mode, n, proc.stdout, proc.stderr)
            else:
                assert proc.returncode == 1, (mode, n, proc.stdout, proc.stderr)
                assert "I/O error" in proc.stdout + proc.stderr, (n, proc.stdout, proc.stderr)
                assert "Traceback" not in proc.stderr, (n, proc.stderr)
            check_recovered(kb, before_head, before_docs, must_keep_docs, hand_edits, kept)
            # The KB stays usable: if the operation did not happen, it now succeeds
            # (checked at every point of the sample, at every 5th of the full matrix).
            if git(kb, "rev-parse", "HEAD").strip() == before_head and (not SLOW or n % 5 == 0):
                again = openkb(kb, *args)
                assert again.returncode == 0, (mode, n, again.stdout, again.stderr)
            shutil.rmtree(kb)
            checked += 1
    line = f"{name}: {total} durable operations; {checked} crash points checked (kill, power loss, I/O error)"
    print("\n" + line)
    SUMMARY.append(line + ("" if SLOW else " [sample; OPENKB_SLOW=1 for every point]"))
    return checked


@pytest.fixture(scope="module")
def base_kb(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("faults")
    kb = work / "kb"
    src = work / "src"
    src.mkdir()
    for name in ("git-commit.md", "git-add.md", "git-status.md"):
        shutil.copy(TLDR / "common" / name, src / name)
    subprocess.run([sys.executable, "-m", "openkb_git", "init", str(kb)], check=True, capture_output=True)
    assert openkb(kb, "add", "--jobs", "1", src).returncode == 0
    return kb, work


def test_crash_matrix_add_with_long_pdf(base_kb, tmp_path):
    kb, _ = base_kb
    src = tmp_path / "new"
    src.mkdir()
    shutil.copy(CORPUS / "pdf" / "2.pdf", src / "long.pdf")  # 47 pages: a long document
    shutil.copy(TLDR / "common" / "tar.md", src / "tar.md")
    assert run_matrix("add", kb, tmp_path, ["add", "--jobs", "1", src]) > 0


def test_crash_matrix_revert(base_kb, tmp_path):
    kb, _ = base_kb
    assert run_matrix("revert", kb, tmp_path, ["revert", "git-add"], must_keep_docs=False) > 0


def test_crash_matrix_remove(base_kb, tmp_path):
    kb, _ = base_kb
    assert run_matrix("remove", kb, tmp_path, ["remove", "git-status"], must_keep_docs=False) > 0


def test_crash_matrix_edit_commit(base_kb, tmp_path):
    kb, work = base_kb
    template = tmp_path / "edited"
    shutil.copytree(kb, template, symlinks=True)
    page = sorted((template / "wiki" / "concepts").glob("*.md"))[0]
    page.write_text(page.read_text() + "\nA note of my own.\n")
    edits = {page.relative_to(template).as_posix(): page.read_bytes()}
    # Adding a file already in the KB commits nothing but the hand edit.
    assert run_matrix("edit", template, tmp_path, ["add", "--jobs", "1", work / "src" / "git-add.md"],
                      hand_edits=edits) > 0


def crashed_add(kb: Path, tmp_path: Path) -> Path:
    """A copy of ``kb`` with an add of tar.md killed right after its commit point (a journal left)."""
    template = tmp_path / "crashed"
    shutil.copytree(kb, template, symlinks=True)
    src = tmp_path / "one"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "tar.md")
    killed = openkb(template, "add", "--jobs", "1", src, env={"OPENKB_FAULT_KILL_AT": "ref:moved"})
    assert killed.returncode == -9
    return template


def test_crash_matrix_recovery_keeps_a_hand_edit(base_kb, tmp_path):
    """Recovery of a crashed add, with a hand edit made since on a path the add touched: the
    edit is copied to .openkb/fsck-backup/ (durably) before the reset. At every crash point of
    that recovery, once a later recovery ran, the edit is in the working tree or in a backup."""
    template = crashed_add(base_kb[0], tmp_path)
    edit = (template / "wiki" / "index.md").read_bytes() + b"\n(my note, written while the add was running)\n"
    (template / "wiki" / "index.md").write_bytes(edit)
    assert run_matrix("recover (hand edit backed up)", template, tmp_path, ["recover"],
                      kept={"wiki/index.md": edit}) > 0


def test_crash_matrix_recovery(base_kb, tmp_path):
    template = crashed_add(base_kb[0], tmp_path)
    assert any((template / ".openkb" / "openkb-git" / "journal").glob("*.json"))
    assert run_matrix("recover", template, tmp_path, ["recover"]) > 0
