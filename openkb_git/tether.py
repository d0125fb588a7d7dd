"""Child processes that die with openkb.

`run_tethered` runs a command (`git gc`) under a tiny watchdog, in a process group of its
own: when openkb dies, even by SIGKILL, the watchdog sees it (PR_SET_PDEATHSIG on Linux, its
parent pid changing elsewhere, checked every 0.2 s) and kills the whole group — `git gc`
and the `git repack`/`git pack-objects` it started — SIGTERM first (Git removes its
temporaries), SIGKILL after a second. The watchdog holds the fds of ``pass_fds`` (the KB
lock) until the group is dead, so no git process of ours ever runs without the lock.

`die_with_parent` is the same parent-death signal for forked workers (see ops/add.py).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading

from .errors import OpenKBError

PR_SET_PDEATHSIG = 1

_WATCHDOG = r"""
import ctypes, os, signal, subprocess, sys, time
parent, child = int(sys.argv[1]), None
def stop(signum=signal.SIGTERM, frame=None):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.killpg(0, signal.SIGTERM)
    except OSError:
        pass
    end = time.monotonic() + 1.0
    while child is not None and child.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    try:
        os.killpg(0, signal.SIGKILL)  # what is left of the group, this watchdog with it
    except OSError:
        pass
    os._exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
except Exception:
    pass
if os.getppid() != parent:
    stop()
child = subprocess.Popen(sys.argv[2:], close_fds=True)
while True:
    try:
        code = child.wait(timeout=0.2)
        break
    except subprocess.TimeoutExpired:
        if os.getppid() != parent:
            stop()
sys.exit(code if code >= 0 else 128 - code)
"""


class InterruptedCommand(OpenKBError):
    """openkb got SIGTERM or SIGHUP while a child command ran; the child was stopped."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``signum`` to this process when the thread that created it
    exits (Linux PR_SET_PDEATHSIG); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def run_tethered(cmd: list[str], *, what: str, pass_fds: tuple[int, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``cmd`` to completion (output captured as text) so that it dies with this process.

    SIGTERM or SIGHUP of this process while ``cmd`` runs (from the main thread, when those
    signals have their default action) stops the group and raises InterruptedCommand; a
    KeyboardInterrupt stops it too, then goes on."""
    proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), *cmd],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True, pass_fds=pass_fds)
    got: list[int] = []
    previous = {}

    def on_signal(signum, frame):
        got.append(signum)
        _stop_group(proc)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                previous[sig] = signal.signal(sig, on_signal)
    try:
        out, err = proc.communicate()
    except BaseException:
        _stop_group(proc)
        proc.wait()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if got:
        name = signal.Signals(got[0]).name
        raise InterruptedCommand(f"stopped by {name}; `{what}` was stopped with it (run the command again)",
                                 got[0])
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the watchdog's group: the watchdog then stops the rest."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        pass
