"""`openkb pull` (and `openkb sync`) against `git pull --rebase` with openkb's merge drivers.

A bare remote holds a KB of M documents (tldr pages); two clones (Alice, Bob) each ingest
N more pages that share concept pages with the rest; Alice syncs (pushes). Then, on two
copies of Bob's clone at the same state, the same change is integrated twice:

- `openkb pull` (fetch, replay Bob's N ingests on Alice's, views rebuilt), then `openkb push`;
- `git pull --rebase origin main` with the drivers configured (`ops/mergedriver.configure`):
  one driver process per merged shared file.

Both trees are compared (they must be equal), and the times and their ratio printed
(goal: openkb / git ≤ 0.2).

    .venv/bin/python benchmarks/sync.py [--docs 300] [--ingests 10] [--work /tmp/openkb-bench-sync]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthetic import TLDR, openkb  # noqa: E402

from openkb_git.ops.mergedriver import configure  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return took


def stage(folder: Path, pages: list[Path]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in pages:
        shutil.copy(path, folder / f"{path.parent.name}-{path.name}")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300, help="documents in the KB before the two sides ingest")
    parser.add_argument("--ingests", type=int, default=10, help="ingests on each of the two clones")
    parser.add_argument("--work", type=Path, default=Path("/tmp/openkb-bench-sync"))
    args = parser.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pages = sorted((TLDR / "common").glob("git-*.md")) + sorted(p for p in (TLDR / "common").glob("*.md")
                                                                if not p.name.startswith("git-"))
    need = args.docs + 2 * args.ingests
    if len(pages) < need:
        raise SystemExit(f"only {len(pages)} tldr pages; ask for fewer")
    # the two sides' pages come first (git-*: many shared concepts), the base after them
    alice_pages, bob_pages = pages[:need - args.docs:2], pages[1:need - args.docs:2]
    base_pages = pages[need - args.docs:need]

    remote = work / "remote.git"
    git(work, "init", "-q", "--bare", "-b", "main", str(remote))
    first = work / "first"
    print(f"building a KB of {args.docs} documents ...", flush=True)
    openkb("init", str(first), kb=first)
    openkb("add", str(stage(work / "in-base", base_pages)), kb=first)
    git(first, "remote", "add", "origin", str(remote))
    git(first, "push", "-q", "-u", "origin", "main")
    sides = {}
    for name, side_pages in (("alice", alice_pages), ("bob", bob_pages)):
        kb = work / name
        git(work, "clone", "-q", str(remote), str(kb))
        openkb("recover", kb=kb)
        configure(kb)
        print(f"{name} ingests {len(side_pages)} pages ...", flush=True)
        openkb("add", str(stage(work / f"in-{name}", side_pages)), kb=kb)
        sides[name] = kb
    openkb("sync", kb=sides["alice"])
    plain = work / "bob-git"
    shutil.copytree(sides["bob"], plain, symlinks=True)
    configure(plain)

    py = [sys.executable, "-m", "openkb_git", "--kb-dir", str(sides["bob"])]
    t_pull = timed(py + ["pull"])
    t_push = timed(py + ["push"])
    t_git = timed(["git", "-C", str(plain), "pull", "--rebase", "-q", "origin", "main"])
    same = git(sides["bob"], "rev-parse", "HEAD^{tree}") == git(plain, "rev-parse", "HEAD^{tree}")
    print(f"KB of {args.docs} documents, {args.ingests} ingests on each side")
    print(f"openkb pull (fetch + replay {args.ingests} ingests + views): {t_pull:.2f} s")
    print(f"openkb push:                                          {t_push:.2f} s")
    print(f"git pull --rebase with the merge drivers:             {t_git:.2f} s")
    print(f"ratio openkb pull / git pull --rebase: {t_pull / t_git:.3f} (goal <= 0.2)")
    print(f"same tree: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
