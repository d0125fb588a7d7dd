"""What a knowledge base's `.git/` needs, set by `openkb init` and `openkb clone` (never
tracked, so a plain `git clone` lacks it): the merge drivers declared in `.git/config`, and
the Git hooks in `.git/hooks/`; and the checks `status` and `fsck` make of them.

Merge drivers: `.gitattributes` (tracked) names them; `.git/config` says what Git runs:
``DRIVER_COMMAND``, openkb found through PATH, when the `openkb` on PATH at set-up is
openkb-git's (so the configuration works on any machine, and after a virtual environment
moves, that has it installed); else this interpreter by its absolute path (`openkb` not on
PATH, e.g. a virtual environment not activated, or OpenKB's own `openkb` first), which works
on this machine; `status` and `fsck` say when it stops resolving, and `openkb init` sets it again.

Git hooks:
post-merge, post-rewrite and post-checkout refresh the views (`.openkb/hashes.json`,
`wiki/log.md`, `.openkb/views.json`) after a plain `git pull`, `git rebase` or `git switch`.

Each hook is a small `sh` script that runs `openkb git-hook <event>` (openkb found as the
merge drivers find it), quietly: its output is discarded and it always exits 0, so a
hook never fails or slows down the Git operation beyond the views' refresh (the commits since
the views' recorded commit, not the whole KB). A hook file of that name that openkb did not
write (the user's own) is never overwritten: it is left as it is and reported, with the line
to add to it.

These are Git's hooks, in `.git/` (never tracked, never arriving through a clone); the KB's
own ingest hooks are `.openkb/hooks/` (openkb_git/hooks.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OpenKBError
from ..fsutil import makedirs, write_file
from ..kb import KB

DRIVERS = {
    "openkb-page": "openkb structure-aware page merge",
    "openkb-index": "openkb index merge (entries keyed by link)",
    "openkb-record": "openkb registry record merge (key by key)",
}
# The command Git runs for each driver (with `sh -c`, at the top of the work tree), when the
# `openkb` on PATH is openkb-git's: see `openkb_command`.
DRIVER_COMMAND = "openkb merge-driver %O %A %B %P"
_DRIVER_ARGS = "merge-driver %O %A %B %P"
# What identifies openkb-git's `openkb` console script (OpenKB 0.4.5 installs an `openkb`
# command too, which has no merge driver): its text names this package.
_OURS_MARK = b"openkb_git"


def openkb_command() -> str:
    """How Git should run openkb here: `openkb` when the first one on PATH is openkb-git's
    (portable), else this interpreter by its absolute path (`-m openkb_git`), which works on
    this machine whether or not a virtual environment is activated when Git runs."""
    found = shutil.which("openkb")
    if found and _is_openkb_git(found):
        return "openkb"
    return f"{shlex.quote(sys.executable)} -m openkb_git"


def driver_command() -> str:
    """The merge-driver command `configure` writes (see `openkb_command`)."""
    return f"{openkb_command()} {_DRIVER_ARGS}"


# What OpenKB's own commands write that is never part of the history (as the .gitignore of a KB
# made since says): kept out of `git status` of KBs made before, in `.git/info/exclude`.
OPENKB_OUTPUTS = ("/wiki/reports/", "/output/")


def exclude_openkb_outputs(repo_path: Path) -> None:
    """Add OPENKB_OUTPUTS to `.git/info/exclude` (local, never tracked) where missing."""
    path = Path(repo_path) / ".git" / "info" / "exclude"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    missing = [line for line in OPENKB_OUTPUTS if line not in text.splitlines()]
    if missing:
        from ..fsutil import makedirs, write_file

        makedirs(path.parent, sync=False)
        lead = "" if not text or text.endswith("\n") else "\n"
        write_file(path, (text + lead + "# OpenKB's lint reports and graph (openkb-git)\n" + "\n".join(missing)
                          + "\n").encode("utf-8"), sync=True)


def configure(repo_path: Path) -> str:
    """Declare the merge drivers in the repository's config (`.git/config`, never tracked):
    `driver_command()` for each of DRIVERS, replacing an older value; keep OpenKB's outputs
    out of `git status` (`exclude_openkb_outputs`). Returns the command."""
    from dulwich.repo import Repo

    exclude_openkb_outputs(repo_path)
    command = driver_command()
    repo = Repo(str(repo_path))
    try:
        config = repo.get_config()
        for name, description in DRIVERS.items():
            config.set((b"merge", name.encode()), b"name", description.encode())
            config.set((b"merge", name.encode()), b"driver", command.encode())
        config.write_to_path()
    finally:
        repo.close()
    return command


def driver_problems(repo_path: Path) -> list[str]:
    """Why Git would not use openkb's merge drivers in this repository (empty when it would):
    a driver not declared in `.git/config` (a plain `git clone`: Git then silently falls back to a
    text merge), or a command that does not resolve to openkb-git on this machine's PATH.
    Each message says what to do. Reads the config only; runs nothing but, when the `openkb`
    found is not a script naming openkb_git, `openkb --version` (10 s at most)."""
    from dulwich.repo import Repo

    try:
        repo = Repo(str(repo_path))
    except Exception:  # not a repository dulwich can open: nothing to say about drivers
        return []
    try:
        config = repo.get_config_stack()  # a driver set in ~/.gitconfig counts too
        commands = {}
        for name in DRIVERS:
            try:
                commands[name] = config.get((b"merge", name.encode()), b"driver").decode("utf-8", "replace")
            except KeyError:
                commands[name] = None
    finally:
        repo.close()
    missing = sorted(name for name, command in commands.items() if not command)
    problems = []
    if missing:
        problems.append(f"merge driver(s) {', '.join(missing)} not configured in .git/config (a plain `git clone`?): "
                        "`git merge` and `git pull` fall back to text merges of the wiki; run `openkb init` here")
    for command in sorted({c for c in commands.values() if c}):
        problem = command_problem(command)
        if problem:
            problems.append(f"merge driver command `{command}` {problem}")
    return problems


def command_problem(command: str) -> str | None:
    """Why the driver ``command`` would not run openkb-git's merge driver here, or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return "cannot be parsed; run `openkb init` here to set it again"
    if not words:
        return "is empty; run `openkb init` here to set it again"
    program = words[0]
    found = shutil.which(program) if "/" not in program else (program if Path(program).is_file() else None)
    if found is None:
        return (f"does not resolve: `{program}` is not found on this machine's PATH; install openkb-git "
                "(its `openkb` command) or run `openkb init` here to set the command again")
    if Path(program).name == "openkb" and not _is_openkb_git(found):
        return (f"runs {found}, which is not openkb-git's `openkb` (OpenKB's own command?): put openkb-git's "
                "first on PATH, or set `git config merge.<driver>.driver` to its full path")
    return None


def _is_openkb_git(program: str) -> bool:
    """Whether ``program`` is openkb-git's `openkb`: a console script naming openkb_git (read,
    not run), else one whose `--version` says openkb-git."""
    import subprocess

    try:
        with open(program, "rb") as fh:
            if _OURS_MARK in fh.read(4096):
                return True
    except OSError:
        return False
    try:
        proc = subprocess.run([program, "--version"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return b"openkb-git" in proc.stdout


GIT_HOOKS = ("post-merge", "post-rewrite", "post-checkout")
MARK = "# openkb-git: refresh the views"  # the line that tells our hook from a user's

SCRIPT = """\
#!/bin/sh
{mark} after `git {what}` (installed by `openkb init` / `openkb clone`).
# Quiet, and never fails the Git operation; delete this file to turn it off (docs/team.md).
{guard} && {command} git-hook {event} "$@" </dev/null >/dev/null 2>&1
exit 0
"""
WHAT = {"post-merge": "merge / git pull", "post-rewrite": "rebase / git pull --rebase / commit --amend",
        "post-checkout": "switch / checkout"}


@dataclass
class HookInstall:
    installed: list[str] = field(default_factory=list)  # written or brought up to date
    kept: list[str] = field(default_factory=list)  # already there, as openkb writes it
    warnings: list[str] = field(default_factory=list)  # a user's own hook left alone, core.hooksPath


def hook_line(event: str, command: str = "openkb") -> str:
    return f'{command} git-hook {event} "$@"'


def install_git_hooks(root: Path) -> HookInstall:
    """Write openkb's post-merge, post-rewrite and post-checkout hooks into ``root``/.git/hooks/,
    leaving a hook of that name that openkb did not write as it is (reported in ``warnings``,
    with the line to add to it), and warning when `core.hooksPath` sends Git elsewhere."""
    result = HookInstall()
    command = openkb_command()
    program = shlex.split(command)[0]
    guard = "command -v openkb >/dev/null 2>&1" if command == "openkb" else f"[ -x {shlex.quote(program)} ]"
    hooks_dir = Path(root) / ".git" / "hooks"
    makedirs(hooks_dir, sync=False)
    for event in GIT_HOOKS:
        path = hooks_dir / event
        wanted = SCRIPT.format(mark=MARK, what=WHAT[event], event=event, guard=guard, command=command).encode()
        try:
            current = path.read_bytes() if os.path.lexists(path) else None
        except OSError:
            current = b""
        if current is not None and MARK.encode() not in current:
            result.warnings.append(f"left your own .git/hooks/{event} as it is; to refresh the views after "
                                   f"`git {WHAT[event]}`, add this line to it: {hook_line(event, command)}")
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
                               f"`{hook_line('<event>', command)}` in its {', '.join(GIT_HOOKS)} hooks")
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


def run_git_hook(kb: KB, event: str, args: tuple[str, ...], wait: float = 0.0) -> bool:
    """What openkb's hook for ``event`` does: bring the views up to HEAD under the KB lock,
    costing the commits since the views' recorded commit (the registry changes for hashes.json).
    Returns whether the views are up to date afterwards. Leaves them for the next openkb command
    (returns False, never raises OpenKBError) when another writer holds the lock beyond ``wait``
    (none by default: a writer refreshes the views itself, and an openkb command that runs Git
    under the lock is not held up by its hooks),
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
