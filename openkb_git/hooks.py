"""Git-style hooks: executables in `.openkb/hooks/` named after events.

    pre-ingest   per file, after preparation, before its commit; non-zero exit skips the file
    post-ingest  after each ingest commit; non-zero exit only warns
    post-revert  after each revert commit; non-zero exit only warns

Hooks run with the KB root as working directory and never through a shell; the
environment carries OPENKB_DIR, OPENKB_DOC, OPENKB_SOURCE, OPENKB_SHA256 and, as
fits the event, OPENKB_STAGED_DIR and OPENKB_COMMIT (see docs/hooks.md).
`--no-verify` skips the pre-* hooks.
"""

from __future__ import annotations

import os
import shutil
import stat as statmod
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import OpenKBError

EVENTS = ("pre-ingest", "post-ingest", "post-revert")
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "hooks"


class HookError(OpenKBError):
    """A hook could not be installed or run."""


@dataclass
class HookResult:
    event: str
    ran: bool
    ok: bool = True
    message: str = ""


def hook_path(hooks_dir: Path, event: str) -> Path | None:
    """The executable for ``event``, or None when there is none (or it is not executable)."""
    path = hooks_dir / event
    if path.is_file() and os.access(path, os.X_OK):
        return path
    return None


def run_hook(hooks_dir: Path, event: str, kb_root: Path, env: dict[str, str], args: list[str] | None = None,
             timeout: float | None = None) -> HookResult:
    """Run the hook for ``event`` if installed; returns whether it ran and succeeded, with
    its output (stderr, else stdout, last lines) as the message."""
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


def list_hooks(hooks_dir: Path) -> list[dict]:
    """Installed hooks and the samples that can be installed."""
    out = []
    for event in EVENTS:
        path = hooks_dir / event
        out.append({"event": event, "installed": path.is_file(),
                    "executable": bool(hook_path(hooks_dir, event)), "path": str(path)})
    return out


def samples() -> dict[str, tuple[str, Path]]:
    """{sample name: (event it is for, file)} from the repository's hooks/ folder."""
    found: dict[str, tuple[str, Path]] = {}
    if not SAMPLES_DIR.is_dir():
        return found
    for path in sorted(SAMPLES_DIR.iterdir()):
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
    shutil.copyfile(source, target)
    target.chmod(target.stat().st_mode | statmod.S_IXUSR | statmod.S_IXGRP | statmod.S_IXOTH)
    return target
