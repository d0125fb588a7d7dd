"""Named checkpoints in mutating code paths, for crash tests.

Production runs pay one dictionary lookup per checkpoint. With the environment
variable ``OPENKB_FAULT_KILL_AT=N`` the process SIGKILLs itself at its N-th
checkpoint; ``OPENKB_FAULT_KILL_AT=label`` kills it at the first checkpoint of
that name; ``OPENKB_FAULT_TRACE=FILE`` appends every checkpoint's label to FILE
(so a test can count them and choose where to kill).
"""

from __future__ import annotations

import os
import signal

_count = 0
_kill_at = os.environ.get("OPENKB_FAULT_KILL_AT")
_trace = os.environ.get("OPENKB_FAULT_TRACE")


def checkpoint(label: str) -> None:
    """Mark a point between two durable steps; may kill the process under test."""
    global _count
    if _kill_at is None and _trace is None:
        return
    _count += 1
    if _trace:
        with open(_trace, "a", encoding="utf-8") as fh:
            fh.write(f"{_count} {label}\n")
    if _kill_at is not None and (_kill_at == str(_count) or _kill_at == label):
        os.kill(os.getpid(), signal.SIGKILL)
