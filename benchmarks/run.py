"""Run every benchmark and print its table (medians, and ratios against a reference
measured in the same run). Takes about an hour here; see docs/performance.md.

    .venv/bin/python benchmarks/run.py            # everything
    .venv/bin/python benchmarks/run.py --quick    # small sizes, a few minutes

Each part is also a script of its own (commit_overhead.py, ingest.py, history_latency.py,
user_rows.py).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> None:
    print(f"\n$ python benchmarks/{script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: 1,000 and 5,000 documents, 1,000 ingests")
    args = parser.parse_args()
    cpus = len(__import__("os").sched_getaffinity(0))
    print(f"machine: {platform.processor() or platform.machine()}, {cpus} CPUs, Python {platform.python_version()}, "
          f"git {subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.split()[-1]}")
    if args.quick:
        run("commit_overhead.py", "--sizes", "1000,5000", "--runs", "5")
        run("ingest.py", "--skip-tldr", "--pdf-runs", "1")
        run("history_latency.py", "--ingests", "1000", "--runs", "3")
        run("user_rows.py", "--ingests", "1000", "--files", "20", "--runs", "3")
    else:
        run("commit_overhead.py", "--sizes", "1000,10000,50000")
        run("ingest.py")
        run("history_latency.py", "--ingests", "10000")
        run("user_rows.py", "--ingests", "10000", "--files", "60", "--runs", "5")


if __name__ == "__main__":
    main()
