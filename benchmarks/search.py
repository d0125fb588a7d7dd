"""`openkb search` against `git grep` on a KB of N tldr documents (default 5,000).

Builds (or reuses) the synthetic KB of benchmarks/synthetic.py: N documents made of tldr
pages, each with its source and summary page, ~3N/5 concept pages and the index (about
2.6 N wiki pages). Then times, as a user runs them (fresh processes, medians):

- the first search (the index built from HEAD's tree),
- warm searches (the index at HEAD),
- the first search after one more real `openkb add` (the index brought forward by the diff),
- `git grep` for the same words in HEAD's wiki (`git grep -i -l -e A --and -e B HEAD -- wiki`)
  and in the working tree (`git grep -i -l ... -- wiki`), in the same run.

    .venv/bin/python benchmarks/search.py [--docs 5000] [--runs 5] [--cache /tmp/openkb-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import TLDR, build, openkb  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
QUERIES = [["archive"], ["compress", "file"], ["network", "interface"], ["xylophonequartz"]]


def once(argv: list[str]) -> tuple[str, subprocess.CompletedProcess]:
    """"wall s (CPU s)" of one fresh process: on a loaded machine the CPU time (user + system,
    the process and its children, e.g. git) is the figure that does not depend on the others."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (wall, cpu), proc


def median(argv: list[str], runs: int) -> str:
    once(argv)
    samples = [once(argv)[0] for _ in range(runs)]
    return fmt((statistics.median(w for w, _ in samples), statistics.median(c for _, c in samples)))


def fmt(t: tuple[float, float]) -> str:
    return f"{t[0]:.3f} ({t[1]:.3f})"


def index_files(kb: Path) -> list[Path]:
    return list((kb / ".openkb" / "openkb-git").glob("search.sqlite*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/openkb-bench"))
    args = parser.parse_args()
    kb = build(args.docs, args.cache)
    pages = sum(1 for _ in (kb / "wiki").rglob("*.md"))
    search = [sys.executable, "-m", "openkb_git", "--kb-dir", str(kb), "search", "--json"]
    for f in index_files(kb):
        f.unlink()
    cold, proc = once(search + QUERIES[0])
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    assert json.loads(proc.stdout)["index"]["rebuilt"] is True
    size = sum(f.stat().st_size for f in index_files(kb))
    print(f"KB: {args.docs} documents, {pages} wiki pages; index {size / 1e6:.1f} MB")
    print(f"seconds: wall (CPU of the process and its children); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPU(s)")
    print(f"first search (index built from HEAD's tree): {fmt(cold)}")
    print(f"{'query':<20} {'openkb search':>16} {'hits':>5} {'git grep HEAD':>16} {'git grep tree':>16} {'files':>5}")
    for words in QUERIES:
        t_search = median(search + words, args.runs)
        hits = json.loads(once(search + words)[1].stdout)["total"]
        pattern: list[str] = []
        for w in words:
            pattern += (["--and"] if pattern else []) + ["-e", w]
        grep = ["git", "-C", str(kb), "grep", "-i", "-l", *pattern]
        t_head = median(grep + ["HEAD", "--", "wiki"], args.runs)
        t_tree = median(grep + ["--", "wiki"], args.runs)
        files = len(once(grep + ["--", "wiki"])[1].stdout.splitlines())
        print(f"{' '.join(words):<20} {t_search:>16} {hits:>5} {t_head:>16} {t_tree:>16} {files:>5}")
    # one more real ingest: the next search reads only the pages it changed
    with tempfile.TemporaryDirectory() as tmp:
        doc = Path(tmp) / "search-bench-extra.md"
        shutil.copy(TLDR / "common" / "tar.md", doc)
        openkb("add", doc, kb=kb)
    t_after, proc = once(search + ["archiving", "utility"])
    state = json.loads(proc.stdout)["index"]
    print(f"first search after one more `openkb add`: {fmt(t_after)} ({state['updated']} page(s) re-read, "
          f"rebuilt: {state['rebuilt']})")
    t_hist = median([sys.executable, "-m", "openkb_git", "--kb-dir", str(kb), "search", "--history", "-n", "3",
                     "Archiving utility"], 1)
    t_pickaxe = median(["git", "-C", str(kb), "log", "-n", "3", "--format=%H", "-SArchiving utility", "--", "wiki"], 1)
    print(f"search --history 'Archiving utility' -n 3: {t_hist}; git log -S: {t_pickaxe}")
    subprocess.run(["git", "-C", str(kb), "reset", "-q", "--hard", "HEAD~1"], check=True)  # the cached KB as built
    openkb("fsck", "--repair", kb=kb, check=False)


if __name__ == "__main__":
    main()
