"""The floor of the commit path: per-ingest commit time with the two files every commit
rewrites whole (the Git index, .openkb/hashes.json) not written at all.

An experiment, not a mode: the KB copy it runs in ends inconsistent (index and views stale)
and is deleted. Each mode runs in its own process, the modes interleaved round after round,
each a median of `--runs` commits after a first (cold) one, as in commit_overhead.py.

    .venv/bin/python benchmarks/floor.py [--sizes 10000,50000] [--runs 15] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synthetic  # noqa: E402
from commit_overhead import CHILD_COMMIT, python  # noqa: E402

MODES = ("as shipped", "no index write", "no hashes.json write", "neither")

SKIP = """
import openkb_git.views as views
from openkb_git.git import index as git_index
mode = {mode!r}
if mode in ("no index write", "neither"):
    git_index.GitIndex.update = lambda self, *a, **k: None
if mode in ("no hashes.json write", "neither"):
    real_write = views.write_file
    views.write_file = lambda path, data, **k: None if path.name == "hashes.json" else real_write(path, data, **k)
"""


def commits(kb: Path, mode: str, runs: int, start: int) -> float:
    code = CHILD_COMMIT.format(bench=str(Path(__file__).parent), kb=str(kb), runs=runs + 1, start=start)
    code = code.replace("samples = []", SKIP.format(mode=mode) + "samples = []", 1)
    proc = python(code)
    if proc.returncode != 0:
        raise SystemExit(f"{mode}: {proc.stderr}")
    return statistics.median(json.loads(proc.stdout)[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/openkb-bench"))
    args = parser.parse_args()
    print(f"per-ingest commit time, median of {args.runs} warm commits per process; one value per round\n")
    print(f"{'documents':>10}  " + "  ".join(f"{m:>24}" for m in MODES))
    for n in [int(s) for s in args.sizes.split(",")]:
        base = synthetic.build(n, args.cache)
        work = args.cache / f"floor-{n}"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work, symlinks=True)
        results: dict[str, list[float]] = {m: [] for m in MODES}
        try:
            for r in range(args.rounds):
                for k, mode in enumerate(MODES):
                    results[mode].append(commits(work, mode, args.runs, 3_000_000 + (r * len(MODES) + k) * 1000))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"{n:>10}  " + "  ".join(f"{' / '.join(f'{v * 1000:.1f}' for v in results[m]) + ' ms':>24}" for m in MODES))


if __name__ == "__main__":
    main()
