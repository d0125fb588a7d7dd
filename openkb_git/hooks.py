"""Git-style hooks: executables in `.openkb/hooks/` named after events.

    pre-ingest   per file, after preparation, before its commit; non-zero exit skips the file
    post-ingest  after each ingest commit; non-zero exit only warns
    post-revert  after each revert commit; non-zero exit only warns

Hooks run with the KB root as working directory and never through a shell; the
environment carries OPENKB_DIR, OPENKB_DOC, OPENKB_SOURCE, OPENKB_SHA256 and, as
fits the event, OPENKB_STAGED_DIR and OPENKB_COMMIT (see docs/hooks.md).
`--no-verify` skips the pre-* hooks.

Code never arrives through Git (docs/hooks.md, "Which hooks run"): a hook runs only when it is not tracked
(neither it nor `.openkb/hooks` is in the Git index or in HEAD's tree, also after
following symbolic links) and the file is owned by the current user and not writable
by group or others. A refused hook is reported (a warning on the command, "refused" in
`openkb hooks list`) and never run.
"""

from __future__ import annotations

import os
import shutil
import stat as statmod
import subprocess
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from .errors import OpenKBError

EVENTS = ("pre-ingest", "post-ingest", "post-revert")
# The sample hooks: the top-level hooks/ folder, packaged as the data package
# openkb_git.hook_samples (pyproject.toml), so an installed wheel has them as well as an
# editable install of a checkout.
SAMPLES = "openkb_git.hook_samples"


class HookError(OpenKBError):
    """A hook could not be installed or run."""


@dataclass
class HookResult:
    event: str
    ran: bool
    ok: bool = True
    message: str = ""
    refused: bool = False  # a hook is there but may not run (tracked, or not the user's); see message


def hook_path(hooks_dir: Path, event: str) -> Path | None:
    """The executable for ``event``, or None when there is none (or it is not executable)."""
    path = hooks_dir / event
    if path.is_file() and os.access(path, os.X_OK):
        return path
    return None


def refusal(kb_root: Path, hooks_dir: Path, event: str) -> str | None:
    """Why the hook file for ``event`` may not run, or None when it may (or there is none)."""
    path = hooks_dir / event
    if not os.path.lexists(path):
        return None
    root = Path(kb_root).resolve()
    rels = {path.relative_to(kb_root).as_posix() if path.is_relative_to(kb_root) else None}
    real = Path(os.path.realpath(path))
    rels.add(real.relative_to(root).as_posix() if real.is_relative_to(root) else None)
    rels.discard(None)
    try:
        lst = os.lstat(path)
        st = os.stat(path)
    except OSError:
        lst = st = None
    # A hook file changed by a checkout or pull is a new inode: the answer for the same
    # file is kept for the process (an add of many files asks twice per file).
    key = (str(path), str(real), *((lst.st_ino, lst.st_mtime_ns, st.st_ino, st.st_mtime_ns, st.st_size)
                                   if st is not None else ()))
    if key not in _tracked_memo:
        _tracked_memo[key] = _tracked(root, rels)
    tracked = _tracked_memo[key]
    if tracked:
        return (f"{path} is tracked by Git ({tracked}): hooks never arrive through a clone or pull, so it "
                "is not run; if you trust it, `git rm --cached` it and install it yourself")
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror}): not run"
    if st.st_uid != os.geteuid():
        return f"{path} is owned by uid {st.st_uid}, not by you: not run; check it, then `chown` it to yourself"
    if st.st_mode & (statmod.S_IWGRP | statmod.S_IWOTH):
        return f"{path} is writable by group or others: not run; check it, then `chmod go-w {path}`"
    return None


_tracked_memo: dict[tuple, str | None] = {}


def _tracked(root: Path, rels: set[str]) -> str | None:
    """Which of ``rels`` (or a path above one: a tracked symbolic link `.openkb/hooks`) is a
    file or link in the Git index or HEAD's tree, said as "... is in HEAD"; None when none is.
    When that cannot be told (a damaged index or HEAD), they count as tracked."""
    from .kb import KB

    candidates = set()
    for rel in rels:
        parts = rel.split("/")
        candidates |= {"/".join(parts[:n]) for n in range(1, len(parts) + 1)}
    try:
        kb = KB(root)
    except Exception:  # noqa: BLE001 - not a KB we can read: nothing here may run
        return "no readable Git repository"
    try:
        records = kb.index.records()
        for candidate in sorted(candidates):
            if candidate.encode("utf-8", "surrogateescape") in records:
                return f"{candidate} is in the Git index"
        tree = kb.head_tree()
        for candidate in sorted(candidates):
            entry = kb.objects.lookup(tree, candidate)
            if entry is not None and not statmod.S_ISDIR(entry[0]):
                return f"{candidate} is in HEAD"
        return None
    except Exception as exc:  # noqa: BLE001 - fail closed
        return f"cannot tell ({type(exc).__name__})"
    finally:
        kb.close()


_reported: set[tuple[str, str]] = set()


def run_hook(hooks_dir: Path, event: str, kb_root: Path, env: dict[str, str], args: list[str] | None = None,
             timeout: float | None = None) -> HookResult:
    """Run the hook for ``event`` if installed and allowed (see `refusal`); returns whether it
    ran and succeeded, with its output (stderr, else stdout, last lines) as the message. A
    refused hook gives ``refused`` with the reason as message, the first time per process
    and event only (a run of many files warns once)."""
    reason = refusal(kb_root, hooks_dir, event)
    if reason:
        key = (str(hooks_dir), event)
        first = key not in _reported
        _reported.add(key)
        return HookResult(event, ran=False, refused=True, message=f"{event} hook refused: {reason}" if first else "")
    path = hook_path(hooks_dir, event)
    if path is None:
        return HookResult(event, ran=False)
    full_env = {**os.environ, "OPENKB_DIR": str(kb_root), "OPENKB_HOOK": event, **env}
    try:
        proc = subprocess.run([str(path), *(args or [])], cwd=kb_root, env=full_env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return HookResult(event, ran=True, ok=False, message=f"{event} hook could not run: {exc}")
    output = (proc.stderr.strip() or proc.stdout.strip())
    message = " ".join(output.splitlines()[-3:]) if output else ""
    if proc.returncode != 0:
        message = message or f"{event} hook exited {proc.returncode}"
    return HookResult(event, ran=True, ok=proc.returncode == 0, message=message)


def list_hooks(hooks_dir: Path, kb_root: Path) -> list[dict]:
    """Each event's hook: whether a file is there, executable, and refused (why, or None)."""
    out = []
    for event in EVENTS:
        path = hooks_dir / event
        out.append({"event": event, "installed": path.is_file(),
                    "executable": bool(hook_path(hooks_dir, event)), "path": str(path),
                    "refused": refusal(kb_root, hooks_dir, event)})
    return out


def samples() -> dict[str, tuple[str, Traversable]]:
    """{sample name: (event it is for, file)} from the packaged samples (hooks/ in a checkout)."""
    found: dict[str, tuple[str, Traversable]] = {}
    folder = resources.files(SAMPLES)
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir(), key=lambda entry: entry.name):
        for event in EVENTS:
            if path.is_file() and path.name.startswith(event + "-"):
                found[path.name[len(event) + 1:]] = (event, path)
    return found


def install_sample(hooks_dir: Path, name: str, *, force: bool = False) -> Path:
    """Copy sample ``name`` into the KB's hooks folder as its event's hook; returns the path.

    Raises HookError for an unknown sample or when a hook for that event exists (unless force)."""
    available = samples()
    if name not in available:
        names = ", ".join(sorted(available)) or "(none found)"
        raise HookError(f"no sample hook named {name!r}; available: {names}")
    event, source = available[name]
    target = hooks_dir / event
    if target.exists() and not force:
        raise HookError(f"{target} exists; pass --force to replace it")
    hooks_dir.mkdir(parents=True, exist_ok=True)
    with resources.as_file(source) as path:
        shutil.copyfile(path, target)
    target.chmod(0o755)  # never group- or world-writable: such a hook is refused
    return target
