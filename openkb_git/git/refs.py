"""The branch reference, moved by compare-and-swap with Git's lock-file protocol, and the
Git state openkb writes in: the branch `.git/HEAD` names, refused while Git owns the
repository (detached HEAD, merge, rebase, cherry-pick, revert, bisect)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..errors import DamageError, OpenKBError, RefusedStateError
from .. import faults
from ..fsutil import append_bytes, fsync_dir, makedirs, replace, write_bytes
from ..paths import path_problem
from .lockwait import create_lock, lock_wait
from .objects import local_tz_offset

BRANCH = "refs/heads/main"  # the default branch (`openkb init` creates it)
ZERO = b"0" * 40
_SHA = re.compile(rb"[0-9a-f]{40}\Z")


class RefMovedError(OpenKBError):
    """The branch moved under us: someone else committed between our read and our update."""


class RefLockedError(OpenKBError):
    """Another process (a plain `git` command?) holds the branch's lock file."""


class BadRefError(DamageError):
    """A branch (or `.git/HEAD`) is empty, holds garbage or names no commit: damage, never a new KB."""


class GitStateError(RefusedStateError):
    """Git is in a state it owns (an operation in progress, a detached HEAD, an orphan branch):
    openkb writes nothing until the command the message names ends it."""


# (what is in .git, the state it means, the git commands that end it), checked in this order.
IN_PROGRESS = (
    ("rebase-merge", "a rebase is in progress", "`git rebase --continue` or `git rebase --abort`"),
    ("rebase-apply/applying", "`git am` is in progress", "`git am --continue` or `git am --abort`"),
    ("rebase-apply", "a rebase is in progress", "`git rebase --continue` or `git rebase --abort`"),
    ("MERGE_HEAD", "a merge is in progress", "`git merge --continue` (after `git add` of the resolved files) "
                                             "or `git merge --abort`"),
    ("CHERRY_PICK_HEAD", "a cherry-pick is in progress", "`git cherry-pick --continue` or `git cherry-pick --abort`"),
    ("REVERT_HEAD", "a git revert is in progress", "`git revert --continue` or `git revert --abort`"),
    ("BISECT_LOG", "a bisect is in progress", "`git bisect reset`"),
)


def short_branch(name: str) -> str:
    return name[len("refs/heads/"):] if name.startswith("refs/heads/") else name


def head_target(git_dir: Path) -> tuple[str | None, bytes | None]:
    """What `.git/HEAD` names: (branch ref, None) when it is symbolic (`ref: refs/heads/<b>`),
    (None, commit id) when detached. Raises BadRefError when it is neither."""
    path = git_dir / "HEAD"
    try:
        text = path.read_bytes().strip()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise BadRefError(f"{path} is missing: the repository is damaged; restore it with "
                          "`git symbolic-ref HEAD refs/heads/main`, then run `openkb fsck`") from None
    if text.startswith(b"ref:"):
        name = text[4:].strip().decode("utf-8", "surrogateescape")
        if name.startswith("refs/heads/") and path_problem(name) is None and not name.endswith(".lock"):
            return name, None
        raise BadRefError(f"{path} names {name!r}, which is not a branch (refs/heads/<name>); openkb writes only "
                          "to the branch that is checked out: run `git switch main`")
    if _SHA.match(text):
        return None, text
    raise BadRefError(f"{path} holds neither `ref: refs/heads/<branch>` nor a commit id ({_show(text)}): the "
                      "repository is damaged; restore it with `git symbolic-ref HEAD refs/heads/main`, then run "
                      "`openkb fsck`")


def read_branch(git_dir: Path, name: str = BRANCH) -> bytes | None:
    """Commit id the branch points to, from its loose file or packed-refs; None when unborn
    (no such ref at all). Raises BadRefError when the ref exists but is empty or garbage."""
    ref_path = git_dir / name
    try:
        value = ref_path.read_bytes().strip()
    except FileNotFoundError:
        pass
    except (IsADirectoryError, NotADirectoryError):
        raise BadRefError(damaged_ref_message(git_dir, name, f"{ref_path} is not a file")) from None
    else:
        if _SHA.match(value):
            return value
        what = "is empty" if not value else f"holds {_show(value)}, not a commit id"
        raise BadRefError(damaged_ref_message(git_dir, name, f"{name} ({ref_path}) {what}", broken=True))
    try:
        packed = (git_dir / "packed-refs").read_bytes()
    except FileNotFoundError:
        return None
    target = name.encode()
    for line in packed.splitlines():
        if line[:1] in (b"#", b"^"):
            continue
        sha, _, ref = line.partition(b" ")
        if ref.strip() == target:
            if _SHA.match(sha):
                return sha
            raise BadRefError(damaged_ref_message(git_dir, name, f"{name} in {git_dir / 'packed-refs'} holds "
                                                  f"{_show(sha)}, not a commit id", broken=True))
    return None


def reflog_values(git_dir: Path, name: str) -> list[bytes]:
    """The values the reflog of ``name`` records, newest first (the new id of each line)."""
    try:
        data = (git_dir / "logs" / name).read_bytes()
    except OSError:
        return []
    out = []
    for line in reversed(data.splitlines()):
        parts = line.split(b" ", 2)
        if len(parts) >= 2 and _SHA.match(parts[1]) and parts[1] != ZERO:
            out.append(parts[1])
    return out


def damaged_ref_message(git_dir: Path, name: str, what: str, present=None, skip: bytes | None = None,
                        broken: bool = False) -> str:
    """``what`` went wrong with branch ``name``, and how to restore it from its reflog: the
    newest value the reflog records (that ``present`` says is in the object store). A
    ``broken`` ref (its file holds no id) is rewritten by hand: `git update-ref` refuses it."""
    branch = short_branch(name)
    good = next((sha for sha in reflog_values(git_dir, name)
                 if sha != skip and (present is None or present(sha))), None)
    value = good.decode() if good is not None else "<commit>"
    # Written by hand: `git update-ref` refuses a broken ref, and for a dangling one it would
    # log the missing id in the reflog, which `git fsck` then reports for ever.
    restore = f"`echo {value} > .git/{name}`" + (" (`git update-ref` refuses a broken ref)" if broken else "")
    if good is not None:
        hint = (f"its reflog (`git reflog show {branch}`, .git/logs/{name}) says it last named "
                f"{value}; restore it with {restore}")
    else:
        hint = (f"look for its last good value in `git reflog show {branch}` (.git/logs/{name}) or "
                f"`git reflog`, and restore it with {restore}")
    return (f"{what}: the branch is damaged (this is not a new, empty knowledge base; nothing was changed); "
            f"{hint}, then run `openkb fsck`")


def other_branches(git_dir: Path, name: str) -> list[str]:
    """The branches other than ``name`` that exist (loose or packed), short names, sorted."""
    found = set()
    heads = git_dir / "refs" / "heads"
    for dirpath, _dirs, files in os.walk(heads):
        for file in files:
            ref = (Path(dirpath) / file).relative_to(git_dir).as_posix()
            if ref != name and not file.endswith(".lock"):
                found.add(short_branch(ref))
    try:
        packed = (git_dir / "packed-refs").read_bytes()
    except FileNotFoundError:
        packed = b""
    for line in packed.splitlines():
        ref = line.partition(b" ")[2].strip().decode("utf-8", "replace")
        if line[:1] not in (b"#", b"^") and ref.startswith("refs/heads/") and ref != name:
            found.add(short_branch(ref))
    return sorted(found)


def check_unborn(git_dir: Path, name: str) -> None:
    """The branch ``name`` does not exist: fine for a new repository (no history at all);
    damage when its reflog shows it had commits (its file was deleted); refused when other
    branches exist (an orphan branch, `git checkout --orphan`)."""
    branch = short_branch(name)
    if reflog_values(git_dir, name):
        raise BadRefError(damaged_ref_message(git_dir, name, f"{name} is missing although its reflog has entries"))
    others = other_branches(git_dir, name)
    if others:
        target = "main" if "main" in others else others[0]
        raise GitStateError(f"branch {branch} has no commits yet while other branches have history (an orphan "
                            f"branch, `git checkout --orphan`?); openkb writes only onto existing history: run "
                            f"`git switch {target}` (or `git checkout {target}`)")


def check_writable(git_dir: Path) -> str:
    """The branch a writer commits to (the one `.git/HEAD` names, as `git commit` would), after
    refusing every state Git owns. Raises GitStateError (refused) or BadRefError (damage)."""
    for entry, state, commands in IN_PROGRESS:
        if (git_dir / entry).exists():
            raise GitStateError(f"{state} (.git/{entry} exists); openkb writes nothing while Git owns the "
                                f"repository: finish it with {commands}, then run the command again")
    name, detached = head_target(git_dir)
    if name is None:
        raise GitStateError(f"HEAD is detached at {detached[:12].decode()}; openkb commits only to a branch: "
                            "run `git switch main` (or `git checkout main`), then run the command again")
    if read_branch(git_dir, name) is None:
        check_unborn(git_dir, name)
    return name


def _show(value: bytes) -> str:
    text = value[:40].decode("utf-8", "replace")
    return repr(text + ("…" if len(value) > 40 else ""))


def compare_and_swap(git_dir: Path, old: bytes | None, new: bytes, *, identity: bytes, message: str,
                     name: str = BRANCH) -> None:
    """Move ``name`` from ``old`` to ``new`` durably, or raise RefMovedError if it is not at ``old``.

    Protocol: create ``<ref>.lock`` exclusively, check the current value, write and fsync
    the new value, append the reflogs, rename over the ref, fsync its directory. The
    rename is the commit point.
    """
    ref_path = git_dir / name
    lock_path = ref_path.with_name(ref_path.name + ".lock")
    makedirs(ref_path.parent, sync=True)
    current = read_branch(git_dir, name)
    if current != old:
        raise RefMovedError(
            f"{name} moved from {_short(old)} to {_short(current)} while committing (another process, a plain "
            "`git commit`?, committed meanwhile); nothing was changed: run the command again"
        )
    if not create_lock(lock_path, new + b"\n", sync=True):  # e.g. `git gc` packing refs: wait
        raise RefLockedError(
            f"{lock_path} is still held after waiting {lock_wait():g} s: another git process is "
            f"updating {name}; let it finish and retry, or, if none is running, remove that file and retry"
        )
    try:
        if read_branch(git_dir, name) != old:  # re-check under the ref lock
            raise RefMovedError(f"{name} moved while committing (another process, a plain `git commit`?, committed "
                                "meanwhile); nothing was changed: run the command again")
        _append_reflog(git_dir, name, old, new, identity, message)
        faults.op("ref-update", ref_path)
        replace(lock_path, ref_path)
    except BaseException:
        lock_path.unlink(missing_ok=True)
        raise
    fsync_dir(ref_path.parent)


def _append_reflog(git_dir: Path, name: str, old: bytes | None, new: bytes, identity: bytes, message: str) -> None:
    now = int(time.time())
    offset = local_tz_offset(now)
    sign = "+" if offset >= 0 else "-"
    tz = f"{sign}{abs(offset) // 3600:02d}{abs(offset) % 3600 // 60:02d}"
    subject = message.splitlines()[0] if message else ""
    line = b"%s %s %s %d %s\t%s\n" % (old or ZERO, new, identity, now, tz.encode(), subject.encode("utf-8"))
    for log in (git_dir / "logs" / name, git_dir / "logs" / "HEAD"):
        makedirs(log.parent, sync=True)
        append_bytes(log, line, sync=True)


def _short(sha: bytes | None) -> str:
    return sha[:7].decode() if sha else "(none)"
