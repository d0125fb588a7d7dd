"""Whole commands as a user runs them, each next to Git doing the same in the same run
(issue #19's table): a one-file `openkb add`, an `openkb add` of N new files, `openkb fsck`.

On the KB `history_latency.py` builds (N real ingests of tldr pages; built here when missing):

- one-file add: `openkb add` of one new page to the KB, against `git add -A` + `git commit`
  of the very same change (the files that add wrote, taken from its commit) in a copy taken
  just before (the KB keeps the pages added: each run adds new ones);
- N-file add: `openkb add` of N new pages (one process), against Git making the same N
  commits (each commit's files written, then `git add -A` + `git commit`, N times);
- fsck: `openkb fsck` against `git fsck` + `git status` of the same repository.

    .venv/bin/python benchmarks/user_rows.py [--ingests 2000] [--files 60] [--runs 3]

Each figure is a median of fresh processes (Python start-up and imports included); ratios
are openkb's time over Git's.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history_latency import ENV, kb_of_ingests, timed  # noqa: E402
from synthetic import TLDR  # noqa: E402

OPENKB = [sys.executable, "-m", "openkb_git"]


def git(kb: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(kb), *args], input=stdin, capture_output=True, check=True, env=ENV).stdout


def fresh_pages(kb: Path, count: int, skip: int) -> list[Path]:
    """``count`` tldr pages (linux/, then the rest) whose names the KB has no document of."""
    names = {p.stem for p in (kb / "wiki" / "summaries").glob("*.md")}
    pages = [p for p in sorted((TLDR / "linux").glob("*.md")) + sorted((TLDR / "osx").glob("*.md"))
             if p.stem not in names]
    return pages[skip:skip + count]


def replay_with_git(source: Path, kb: Path, commits: list[str]) -> float:
    """Seconds Git takes to make ``commits`` (of ``source``) again in ``kb`` (checked out at the
    first one's parent): per commit, its files are written (not timed), then `git add -A` +
    `git commit`."""
    spent = 0.0
    for sha in commits:
        changes = git(source, "diff-tree", "--no-commit-id", "-r", "--name-status", "--no-renames", sha).decode()
        for line in changes.splitlines():
            status, path = line.split("\t", 1)
            target = kb / path
            if status == "D":
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(git(source, "cat-file", "blob", f"{sha}:{path}"))
        start = time.perf_counter()
        git(kb, "add", "-A")
        git(kb, "commit", "-q", "-m", f"replay {sha[:7]}")
        spent += time.perf_counter() - start
    return spent


def add_against_git(kb: Path, work: Path, pages: list[Path], label: str) -> tuple[float, float]:
    """(openkb add of ``pages`` to the KB, Git making the same commits in a copy of it taken
    just before). Both warm, as a KB in use is: the KB's own index and caches, and the copy's
    Git index refreshed first (a copied file's stat data is new: untimed)."""
    ours, theirs = kb, work / f"{label}-git"
    shutil.rmtree(theirs, ignore_errors=True)
    shutil.copytree(kb, theirs, symlinks=True)
    git(theirs, "update-index", "-q", "--refresh")
    src = work / f"{label}-src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    for page in pages:
        shutil.copy(page, src / page.name)
    base = git(ours, "rev-parse", "HEAD").decode().strip()
    start = time.perf_counter()
    subprocess.run(OPENKB + ["--kb-dir", str(ours), "add", "-q", str(src)], check=True, capture_output=True, env=ENV)
    openkb_time = time.perf_counter() - start
    commits = git(ours, "rev-list", "--reverse", f"{base}..HEAD").decode().split()
    git_time = replay_with_git(ours, theirs, commits)
    for path in (theirs, src):
        shutil.rmtree(path, ignore_errors=True)
    return openkb_time, git_time


def main() -> None:
    args, kb = kb_of_ingests(__doc__, 2000, 3, files=60)
    work = kb.parent / f"{kb.name}-user-rows"
    work.mkdir(exist_ok=True)
    rows = []
    one = [add_against_git(kb, work, fresh_pages(kb, 1, i), f"one{i}") for i in range(args.runs)]
    rows.append(("openkb add <one new page>", statistics.median(o for o, _ in one),
                 "git add -A + git commit, same change", statistics.median(g for _, g in one)))
    many = [add_against_git(kb, work, fresh_pages(kb, args.files, args.runs + i * args.files), f"many{i}")
            for i in range(max(1, args.runs // 2))]
    rows.append((f"openkb add <{args.files} new pages>", statistics.median(o for o, _ in many),
                 f"git: the same {args.files} commits", statistics.median(g for _, g in many)))
    rows.append(("openkb fsck", timed(OPENKB + ["--kb-dir", str(kb), "fsck"], args.runs, cwd=kb),
                 "git fsck + git status", timed(["sh", "-c", "git fsck --no-progress >/dev/null 2>&1; "
                                                 "git status --porcelain >/dev/null"], args.runs, cwd=kb)))
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nKB: {kb} ({args.ingests} ingests); medians of fresh processes, Python start-up included\n")
    print(f"{'command':<34} {'median':>9}   {'reference':<38} {'median':>9} {'ratio':>7}")
    for name, value, ref_name, ref in rows:
        print(f"{name:<34} {value * 1000:7.0f} ms   {ref_name:<38} {ref * 1000:7.0f} ms {value / ref:6.2f}x")


if __name__ == "__main__":
    main()
