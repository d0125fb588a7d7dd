"""Latency of history reads and revert on a KB of many ingests.

Builds (or reuses) a KB with N ingests of tldr pages (default 5,000), then times the
real commands — `openkb log` (also `--path`), `openkb show`, `openkb blame`, `openkb revert` — as a
user runs them (a fresh process each time, medians over several runs), next to plain
`git log` / `git show` / `git blame` on the same repository as a reference.

    .venv/bin/python benchmarks/history_latency.py [--ingests 5000] [--runs 5] [--kb /tmp/openkb-bench-5000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import TLDR, openkb  # noqa: E402


# As a user's shell runs them: Python may cache compiled modules (some sandboxes set
# PYTHONDONTWRITEBYTECODE, which makes every run compile openkb's modules from source, ~60 ms).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(argv: list[str], runs: int, cwd: Path | None = None, before=None) -> float:
    """Median wall time of ``runs`` fresh processes, after one untimed run (warm caches, .pyc written)."""
    samples = []
    for run in range(runs + 1):
        if before:
            before()
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=ENV)
        if run:
            samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr}")
    return statistics.median(samples)


def build(kb: Path, ingests: int) -> None:
    if kb.exists():
        count = len(json.loads(openkb("log", "--json", "--op", "add", kb=kb).stdout))
        if count >= ingests:
            return
        shutil.rmtree(kb)
    files = sorted((TLDR / "common").glob("*.md")) + sorted((TLDR / "linux").glob("*.md"))
    files += sorted(p for p in TLDR.glob("*/*.md") if p.parent.name not in ("common", "linux"))
    staging = kb.parent / f"{kb.name}-sources"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for i, path in enumerate(files[:ingests]):
        (staging / f"{i:05d}-{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    # Beyond the 7,425 tldr pages: edited versions of pages already in, as new documents.
    for i in range(len(files), ingests):
        path = files[i % len(files)]
        (staging / f"{i:05d}-{path.parent.name}-{path.name}").write_bytes(
            path.read_bytes() + f"\nRevised copy {i // len(files)}.\n".encode())
    subprocess.run([sys.executable, "-m", "openkb_git", "init", str(kb)], check=True, capture_output=True)
    start = time.perf_counter()
    openkb("add", "-q", "--jobs", "2", staging, kb=kb)
    print(f"built {ingests} ingests in {time.perf_counter() - start:.0f} s")


def kb_of_ingests(description: str, ingests: int, runs: int, **more: int) -> tuple[argparse.Namespace, Path]:
    """The command line of a benchmark on the KB of N ingests (--ingests, --runs, --kb, and
    ``more`` integer options with their defaults), and that KB, built when missing."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingests", type=int, default=ingests)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--kb", type=Path, default=None)
    for name, default in more.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    args = parser.parse_args()
    kb = args.kb or Path(f"/tmp/openkb-bench-{args.ingests}")
    build(kb, args.ingests)
    return args, kb


def main() -> None:
    args, kb = kb_of_ingests(__doc__, 5000, 5)
    py = [sys.executable, "-m", "openkb_git", "--kb-dir", str(kb)]
    log = json.loads(openkb("log", "--json", kb=kb).stdout)
    middle = log[len(log) // 2]
    page = max((p for p in (kb / "wiki" / "concepts").glob("*.md")), key=lambda p: p.stat().st_size)
    page_rel = page.relative_to(kb).as_posix()
    rows = [
        ("openkb log", timed(py + ["log"], args.runs), "git log --oneline", timed(["git", "-C", str(kb), "log", "--oneline"], args.runs)),
        ("openkb log --json", timed(py + ["log", "--json"], args.runs), None, None),
        ("openkb show <middle ingest>", timed(py + ["show", middle["short"]], args.runs),
         "git show <same>", timed(["git", "-C", str(kb), "show", middle["short"]], args.runs)),
        ("openkb show --stat HEAD", timed(py + ["show", "--stat", "HEAD"], args.runs),
         "git show --stat HEAD", timed(["git", "-C", str(kb), "show", "--stat", "HEAD"], args.runs)),
        (f"openkb log --path {page.name}", timed(py + ["log", "--path", page_rel], args.runs),
         "git log -- same", timed(["git", "-C", str(kb), "log", "--oneline", "--", page_rel], args.runs)),
        ("openkb blame index.md", timed(py + ["blame", "wiki/index.md"], max(1, args.runs // 2)),
         "git blame index.md", timed(["git", "-C", str(kb), "blame", "wiki/index.md"], max(1, args.runs // 2))),
        (f"openkb blame {page.name} (largest concept)", timed(py + ["blame", page_rel], args.runs),
         "git blame same", timed(["git", "-C", str(kb), "blame", page_rel], args.runs)),
    ]
    # revert the middle ingest, then revert the revert, so the KB returns to the same content
    samples = []
    for _ in range(max(1, args.runs // 2)):
        start = time.perf_counter()
        openkb("revert", middle["short"], kb=kb)
        samples.append(time.perf_counter() - start)
        openkb("revert", "HEAD", kb=kb)
    rows.append(("openkb revert <middle ingest>", statistics.median(samples), None, None))
    print(f"\nKB: {kb} — {len([e for e in log if e['op'] == 'add'])} ingests, {len(log)} commits; "
          f"median of {args.runs} runs, each a fresh process (Python start-up included)\n")
    print(f"{'command':<42} {'median':>9}   {'reference':<24} {'median':>9} {'ratio':>7}")
    for name, value, ref_name, ref in rows:
        ratio = f"{value / ref:6.1f}x" if ref else ""
        ref_text = f"{ref * 1000:7.0f} ms" if ref else ""
        print(f"{name:<42} {value * 1000:7.0f} ms   {(ref_name or ''):<24} {ref_text:>9} {ratio:>7}")


if __name__ == "__main__":
    main()
