"""A writer's session: the lock, the Git state check, recovery on every acquisition, and the user-edit guard."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..kb import KB
from ..lock import KBLock
from .adopt import adopt_openkb_adds
from ..protocol.recovery import RecoveryReport, recover
from ..registry import Registry

# Where a writer says what it did of its own accord before the command's work: the CLI sets it
# (a line on stderr); None says nothing.
notice = None

# Once a command has started committing, later acquisitions wait at least this long:
# the holder is most likely another add interleaving its commits, each a few ms long.
RUNNING_WAIT = 600.0


class Writer:
    """Holds what a mutating command keeps between commits (lock object, caches)."""

    def __init__(self, kb: KB, wait: float = 0.0, *, adopt: bool = True):
        self.kb = kb
        self.wait = wait
        self.adopt = adopt  # False for a --dry-run: it records nothing, OpenKB's adds included
        self.lock = KBLock(kb.openkb_dir)
        self.registry = Registry.of(kb)
        self.recoveries: list[RecoveryReport] = []
        self.adoption_skipped: list[str] = []  # OpenKB's entries left, "<doc>: <why>"
        self._acquired_once = False

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the KB lock, with recovery run first. The first acquisition waits ``wait``
        seconds at most; later ones (the command is under way) wait longer."""
        wait = self.wait if not self._acquired_once else max(self.wait, RUNNING_WAIT)
        self.lock.acquire(wait)
        self._acquired_once = True
        try:
            # Before recovery: recovery resets paths to HEAD, which in a state Git owns (a merge,
            # a rebase, a detached HEAD) or with a damaged branch is the wrong HEAD.
            previous = self.kb.begin_write()
            try:
                report = recover(self.kb, self.registry, crashed_since=self.lock.crashed_since())
                if report.did_anything:
                    self.recoveries.append(report)
                if self.adopt:
                    self._adopt()
                yield
            finally:
                self.kb.end_write(previous)
        finally:
            self.lock.release()

    def _adopt(self) -> None:
        """Commit the documents OpenKB added since our last write (ops/adopt.py), and say so;
        keep OpenKB's lint reports and graph out of `git status` in a KB made before its
        .gitignore named them."""
        root = self.kb.root
        if (root / "wiki" / "reports").exists() or (root / "output").exists():
            from .gitsetup import exclude_openkb_outputs

            exclude_openkb_outputs(root)
        try:
            adoption = adopt_openkb_adds(self.kb, self.registry)
        except (OSError, ValueError, TypeError, KeyError, UnicodeError) as exc:
            # What OpenKB wrote is data another program made: whatever is wrong with it, this
            # writer's own work goes on (its entries stay for the next one, and are said).
            if notice is not None:
                notice(f"did not record what OpenKB added ({type(exc).__name__}: {exc}); "
                       "`openkb status` lists it, `openkb fsck` checks the KB")
            return
        fresh = [s for s in adoption.skipped if s not in self.adoption_skipped]
        self.adoption_skipped += fresh
        if notice is None:
            return
        if adoption.removed:
            notice(f"recorded {len(adoption.removed)} document(s) OpenKB removed as a `remove` commit: "
                   + ", ".join(adoption.removed))
        if adoption.docs:
            last = adoption.commits[-1].sha.decode()[:7]
            notice(f"recorded {len(adoption.docs)} document(s) OpenKB added as `add` commits, ending at {last}: "
                   + ", ".join(adoption.docs))
        for skipped in fresh:
            notice(f"left OpenKB's hashes.json entry for {skipped}")
