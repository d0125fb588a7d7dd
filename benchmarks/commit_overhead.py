"""Per-ingest commit overhead, and recovery after a kill, at N documents.

Commit overhead is everything an ingest costs but conversion and compilation: the lock,
recovery's check, journal, blobs/trees/commit written and fsynced, compare-and-swap of
refs/heads/main, projection into the working tree and the Git index, views, fsyncs,
journal removal. It is measured in-process (as during a long `openkb add`, caches warm
after the first commit), for a change of ~8 paths (raw, source, summary, registry record,
3 concept pages, index) into a KB of N documents (benchmarks/synthetic.py). The
reference: the `git` command line (`git add <paths>` + `git commit`) committing the
identical change into a copy of the same repository, in the same run.

Recovery: a child process commits one more ingest and is SIGKILLed just after the
reference moved (before projection), the worst point; then `recover()` is timed in a
fresh process (without Python start-up), and so is the whole `openkb recover` command.

Adding one file: whole `openkb add <one tldr page>` commands, each a new process, as a user
adding one paper runs them. The first one after copying the KB reads every file once (new
inodes: no index entry's stat data matches) and refreshes the index; the column is the
median of the next two.

    .venv/bin/python benchmarks/commit_overhead.py [--sizes 1000,10000,50000] [--runs 15]
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import synthetic  # noqa: E402
from openkb_git.kb import KB  # noqa: E402

CHILD_COMMIT = """
import sys, time, json
sys.path.insert(0, {bench!r})
import synthetic
from pathlib import Path
from openkb_git.kb import KB
from openkb_git.ops.session import Writer
from openkb_git.protocol.commit import Mutation, commit_mutation
kb_root = Path({kb!r})
kb = KB(kb_root)
writer = Writer(kb)
samples = []
for i in range({runs}):
    change = synthetic.new_document_change(kb_root, {start} + i)
    start = time.perf_counter()
    with writer.locked():
        head = kb.head()
        committed = commit_mutation(kb, writer.registry, head, Mutation(op="add", subject=f"add: bench {{i}}", changes=change,
                                    trailers={{"OpenKB-Doc": "bench"}}))
    samples.append(time.perf_counter() - start)
    assert committed is not None
print(json.dumps(samples))
"""

CHILD_RECOVER = """
import sys, time, json
from pathlib import Path
from openkb_git.kb import KB
from openkb_git.registry import Registry
from openkb_git.protocol.recovery import recover
start = time.perf_counter()
kb = KB(Path({kb!r}))
report = recover(kb, Registry(kb.objects))
print(json.dumps({{"seconds": time.perf_counter() - start, "journals": report.journals, "reset": report.paths_reset}}))
"""


def python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(synthetic.ROOT), **(env or {})})


def child_commits(kb: Path, runs: int, start: int) -> str:
    """The code of a child process committing ``runs`` ingests into ``kb``, printing their times."""
    return CHILD_COMMIT.format(bench=str(Path(__file__).parent), kb=str(kb), runs=runs, start=start)


def openkb_commits(kb: Path, runs: int, start: int) -> list[float]:
    proc = python(child_commits(kb, runs, start))
    if proc.returncode != 0:
        raise SystemExit(f"openkb commit benchmark failed: {proc.stderr}")
    return json.loads(proc.stdout)


def git_commits(copy: Path, runs: int, start: int) -> list[float]:
    samples = []
    for i in range(runs):
        change = synthetic.new_document_change(copy, start + i)
        for path, data in change.items():
            target = copy / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        t0 = time.perf_counter()
        synthetic.git(copy, "add", "-f", "--", *change)
        synthetic.git(copy, "commit", "-q", "-m", f"add: bench {i}\n\nOpenKB-Op: add\n")
        samples.append(time.perf_counter() - t0)
    return samples


def recovery(kb: Path) -> tuple[float, float, int]:
    """Kill a commit just after the ref moved; time recover() in-process and `openkb recover`."""
    proc = python(child_commits(kb, 1, 900_000), env={"OPENKB_FAULT_KILL_AT": "ref:moved"})
    if proc.returncode != -9:
        raise SystemExit(f"the commit to kill was not killed (exit {proc.returncode}): {proc.stderr}")
    journals = list(KB(kb).journal_dir.glob("*.json"))  # openkb-git's own journals (docs/layout.md)
    if len(journals) != 1:
        raise SystemExit(f"expected one journal after the kill, found {journals}")
    copy = kb.parent / (kb.name + "-crashed")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(kb, copy, symlinks=True)
    out = python(CHILD_RECOVER.format(kb=str(kb)))
    if out.returncode != 0:
        raise SystemExit(f"recover failed: {out.stderr}")
    result = json.loads(out.stdout)
    if len(result["journals"]) != 1:
        raise SystemExit(f"recover did not finish the journal: {result}")
    t0 = time.perf_counter()
    synthetic.openkb("recover", kb=copy)
    command = time.perf_counter() - t0
    shutil.rmtree(copy, ignore_errors=True)
    synthetic.openkb("fsck", kb=kb)
    return result["seconds"], command, result["reset"]


def single_adds(kb: Path, count: int = 3) -> list[float]:
    """Wall time of whole `openkb add <one page>` commands (a new process each, as a user adding
    one paper runs it): start-up, the scan for hand edits, the registry view, one commit."""
    pages = synthetic.tldr_pages()
    samples = []
    for i in range(count):
        src = kb.parent / f"single-{kb.name}-{i}" / pages[i].name
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(pages[i].read_bytes() + f"\nbenchmark copy {i}\n".encode())
        t0 = time.perf_counter()
        synthetic.openkb("add", src, kb=kb)
        samples.append(time.perf_counter() - t0)
        shutil.rmtree(src.parent, ignore_errors=True)
    return samples


def measure(n_docs: int, runs: int, cache: Path) -> dict:
    base = synthetic.build(n_docs, cache)
    work = cache / f"work-{n_docs}"
    ref = cache / f"work-{n_docs}-git"
    for target in (work, ref):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(base, target, symlinks=True)
    # openkb and git alternate in blocks so machine noise hits both
    ours, theirs = [], []
    for block in range(3):
        ours += openkb_commits(work, runs, start=block * runs)
        theirs += git_commits(ref, runs, start=block * runs)
    cold = ours[0]  # the first process also writes .openkb/records.cache
    cold_memo = statistics.median(ours[k] for k in range(runs, len(ours), runs))
    warm = [s for k, s in enumerate(ours) if k % runs != 0]  # first commit of each process is cold
    # The copy has new inodes: the first `add` reads every file once and refreshes the index.
    adds = single_adds(work)
    synthetic.openkb("fsck", kb=work)
    rec, rec_cmd, reset = recovery(work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(ref, ignore_errors=True)
    return {"docs": n_docs, "openkb": statistics.median(warm), "cold": cold, "cold_memo": cold_memo,
            "git": statistics.median(theirs), "recover": rec, "recover_cmd": rec_cmd, "recover_paths": reset,
            "add_first": adds[0], "add": statistics.median(adds[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/openkb-bench"))
    args = parser.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        start = time.perf_counter()
        rows.append(measure(n, args.runs, args.cache))
        print(f"  measured {n} documents in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(f"\nPer-ingest commit overhead (~8 paths, durable), median of {3 * (args.runs - 1)} warm commits; "
          f"reference: git add + git commit of the same change in a copy, median of {3 * args.runs}\n")
    print("(cold: the first commit of a new process; the first process also writes the record memo,"
          " later ones read it)")
    print(f"{'documents':>10} {'openkb':>10} {'(cold)':>10} {'(cold, memo)':>13} {'git CLI':>10} {'ratio':>7}  "
          f"{'recover()':>10} {'openkb recover':>15}  {'openkb add <1 file>':>20}")
    for r in rows:
        print(f"{r['docs']:>10} {r['openkb'] * 1000:8.1f}ms {r['cold'] * 1000:8.0f}ms {r['cold_memo'] * 1000:11.0f}ms "
              f"{r['git'] * 1000:8.1f}ms {r['openkb'] / r['git']:6.2f}x  {r['recover'] * 1000:8.1f}ms "
              f"{r['recover_cmd'] * 1000:13.0f}ms  {r['add'] * 1000:8.0f}ms (first {r['add_first']:.1f} s)")
    if len(rows) > 1:
        print(f"\ngrowth of openkb's overhead from {rows[0]['docs']} to {rows[-1]['docs']} documents: "
              f"{rows[-1]['openkb'] / rows[0]['openkb']:.2f}x (git: {rows[-1]['git'] / rows[0]['git']:.2f}x)")


if __name__ == "__main__":
    main()
