"""Run one piece of Python in fresh interpreters with different hash seeds.

Determinism that holds within one process can still break across processes: iterating a
set (of strings) or a dict built from one follows the hash seed, which changes each run.
Tests compare what separate processes print under different PYTHONHASHSEED values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ("0", "1", "2")  # 0: hashing without randomization; 1 and 2: two different orders


def outputs_under_hash_seeds(code: str, *args: str) -> dict[str, str]:
    """{seed: stdout} of ``python -c code args...`` run once per seed in SEEDS."""
    outputs = {}
    for seed in SEEDS:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED=seed), timeout=300)
        assert proc.returncode == 0, proc.stderr
        outputs[seed] = proc.stdout
    return outputs
