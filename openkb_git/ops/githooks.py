"""The Git hooks openkb installs into `.git/hooks/` (by `openkb init` and `openkb clone`):
post-merge, post-rewrite and post-checkout refresh the views (`.openkb/hashes.json`,
`wiki/log.md`, `.openkb/views.json`) after a plain `git pull`, `git rebase` or `git switch`.

Each hook is a small `sh` script that runs `openkb git-hook <event>` (openkb found through
PATH, as the merge drivers are), quietly: its output is discarded and it always exits 0, so a
hook never fails or slows down the Git operation beyond the views' refresh (the commits since
the views' recorded commit, not the whole KB). A hook file of that name that openkb did not
write (the user's own) is never overwritten: it is left as it is and reported, with the line
to add to it.

These are Git's hooks, in `.git/` (never tracked, never arriving through a clone); the KB's
own ingest hooks are `.openkb/hooks/` (openkb_git/hooks.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OpenKBError
from ..fsutil import makedirs, write_file
from ..kb import KB

GIT_HOOKS = ("post-merge", "post-rewrite", "post-checkout")
MARK = "# openkb-git: refresh the views"  # the line that tells our hook from a user's

SCRIPT = """\
#!/bin/sh
{mark} after `git {what}` (installed by `openkb init` / `openkb clone`).
# Quiet, and never fails the Git operation; delete this file to turn it off (docs/team.md).
command -v openkb >/dev/null 2>&1 && openkb git-hook {event} "$@" </dev/null >/dev/null 2>&1
exit 0
"""
WHAT = {"post-merge": "merge / git pull", "post-rewrite": "rebase / git pull --rebase / commit --amend",
        "post-checkout": "switch / checkout"}


@dataclass
class HookInstall:
    installed: list[str] = field(default_factory=list)  # written or brought up to date
    kept: list[str] = field(default_factory=list)  # already there, as openkb writes it
    warnings: list[str] = field(default_factory=list)  # a user's own hook left alone, core.hooksPath


def hook_line(event: str) -> str:
    return f'openkb git-hook {event} "$@"'


def install_git_hooks(root: Path) -> HookInstall:
    """Write openkb's post-merge, post-rewrite and post-checkout hooks into ``root``/.git/hooks/,
    leaving a hook of that name that openkb did not write as it is (reported in ``warnings``,
    with the line to add to it), and warning when `core.hooksPath` sends Git elsewhere."""
    result = HookInstall()
    hooks_dir = Path(root) / ".git" / "hooks"
    makedirs(hooks_dir, sync=False)
    for event in GIT_HOOKS:
        path = hooks_dir / event
        wanted = SCRIPT.format(mark=MARK, what=WHAT[event], event=event).encode()
        try:
            current = path.read_bytes() if os.path.lexists(path) else None
        except OSError:
            current = b""
        if current is not None and MARK.encode() not in current:
            result.warnings.append(f"left your own .git/hooks/{event} as it is; to refresh the views after "
                                   f"`git {WHAT[event]}`, add this line to it: {hook_line(event)}")
            continue
        if current == wanted and os.access(path, os.X_OK):
            result.kept.append(event)
            continue
        write_file(path, wanted, sync=False, mode=0o755)  # a new file each time: the mode applies
        result.installed.append(event)
    elsewhere = _hooks_path(root)
    if elsewhere:
        result.warnings.append(f"core.hooksPath is set ({elsewhere}): Git runs the hooks there, not .git/hooks/; "
                               f"to refresh the views after plain git operations, put the lines "
                               f"`{hook_line('<event>')}` in its {', '.join(GIT_HOOKS)} hooks")
    return result


def _hooks_path(root: Path) -> str | None:
    from dulwich.repo import Repo

    try:
        repo = Repo(str(root))
    except Exception:
        return None
    try:
        return repo.get_config_stack().get((b"core",), b"hooksPath").decode("utf-8", "replace")
    except (KeyError, OSError):
        return None
    finally:
        repo.close()


def run_git_hook(kb: KB, event: str, args: tuple[str, ...], wait: float = 2.0) -> bool:
    """What openkb's hook for ``event`` does: bring the views up to HEAD under the KB lock,
    costing the commits since the views' recorded commit (the registry changes for hashes.json).
    Returns whether the views are up to date afterwards. Leaves them for the next openkb command
    (returns False, never raises OpenKBError) when another writer holds the lock beyond ``wait``,
    HEAD is detached (a rebase under way: its post-rewrite hook comes at the end), or a crashed
    writer's journal is pending (recovery, by the next writer, comes first). A post-checkout of
    files (its third argument 0) moves no commit: nothing to do.

    Git's own state files are not refused here as a writer refuses them: Git runs post-merge
    with `.git/MERGE_HEAD` still present, after the merge commit is made; the views are not
    tracked, and this writes nothing else."""
    from ..git.refs import head_target
    from ..lock import KBLock
    from ..protocol.journal import pending_journals
    from ..registry import Registry
    from ..views import update_views, views_are_current

    if event == "post-checkout" and len(args) >= 3 and args[2] == "0":
        return False
    try:
        if views_are_current(kb):
            return True
        lock = KBLock(kb.openkb_dir)
        lock.acquire(wait)
        try:
            branch, _sha = head_target(kb.git_dir)
            if branch is None or any(pending_journals(kb)):
                return False
            update_views(kb, Registry.of(kb), patch=True)
        finally:
            lock.release()
        return views_are_current(kb)
    except OpenKBError:
        return False
