"""Concept sharing on tldr pages: the fraction of concept slugs that two or more documents
share, with the compiler of a reference tree (default: /work/main, today's compiler) and
with this checkout's, in the same run (issue #16: fewer, better concepts).

Each tree compiles the same pages (every n-th of the sorted tldr pages, all folders) in its
own process (`PYTHONPATH=<tree>`), converting each page and compiling it with the tree's own
`compile_document`; the script prints, per tree, the distinct concept slugs, how many of them
two or more pages share, that fraction, the concepts per page and the time per page, then the
ratio of the fractions.

    .venv/bin/python benchmarks/concepts.py [--pages 1000] [--reference /work/main] [--tree .]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import TLDR  # noqa: E402

# Run in the tree's own process: the tree's openkb_git, its converter and its compiler.
WORKER = r"""
import openkb_git, sys; print(openkb_git.__file__, file=sys.stderr)
import json, sys, time
from pathlib import Path
from openkb_git.compiler import compile_document
from openkb_git.convert import convert_file
out = {}
start = time.perf_counter()
for line in sys.stdin:
    path = Path(line.strip())
    doc = path.stem
    conv = convert_file(path, doc)
    compiled = compile_document(doc, title=conv.title, text=conv.text, headings=conv.headings,
                                doc_type=conv.doc_type, source_path=f"raw/{path.name}", pages=conv.pages)
    out[str(path)] = sorted(compiled.concepts)
print(json.dumps({"concepts": out, "seconds": time.perf_counter() - start}))
"""


def sample(pages: int) -> list[Path]:
    """Every n-th page of all tldr pages in sorted order: all folders, the same on every run."""
    every = sorted(TLDR.glob("*/*.md"))
    step = max(1, len(every) // pages)
    return every[::step][:pages]


def measure(tree: Path, paths: list[Path]) -> dict:
    proc = subprocess.run([sys.executable, "-c", WORKER], input="\n".join(map(str, paths)) + "\n",
                          capture_output=True, text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, cwd=tree,
                          check=False)
    if proc.returncode:
        raise SystemExit(f"compiling with {tree} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    documents = Counter(slug for slugs in result["concepts"].values() for slug in set(slugs))
    shared = sum(1 for count in documents.values() if count >= 2)
    return {"slugs": len(documents), "shared": shared, "fraction": shared / len(documents) if documents else 0.0,
            "per_page": sum(len(s) for s in result["concepts"].values()) / len(paths),
            "ms_per_page": 1000 * result["seconds"] / len(paths),
            "top": documents.most_common(12)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--reference", type=Path, default=Path("/work/main"), help="today's compiler")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the compiler to compare")
    args = parser.parse_args()
    paths = sample(args.pages)
    print(f"{len(paths)} tldr pages of {TLDR}")
    results = {}
    for label, tree in (("reference", args.reference), ("this tree", args.tree)):
        started = time.perf_counter()
        results[label] = r = measure(tree.resolve(), paths)
        print(f"{label:10} {str(tree.resolve()):28} slugs {r['slugs']:5}  shared by >= 2 pages {r['shared']:5}  "
              f"fraction {r['fraction']:.3f}  concepts/page {r['per_page']:.2f}  {r['ms_per_page']:.1f} ms/page "
              f"(run {time.perf_counter() - started:.0f} s)")
        print(f"{'':10} top: " + ", ".join(f"{slug} ({n})" for slug, n in r["top"]))
    reference = results["reference"]["fraction"]
    ratio = results["this tree"]["fraction"] / reference if reference else float("inf")
    print(f"shared fraction, this tree / reference: {ratio:.2f}")


if __name__ == "__main__":
    main()
