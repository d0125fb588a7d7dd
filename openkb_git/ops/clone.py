"""`openkb clone`: a real `git clone` of a remote knowledge base, on its KB branch, set up as
`openkb init` sets up a clone (merge drivers, Git hooks, views)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OpenKBError
from ..fsutil import remove_tree
from .init import is_kb_repository, setup_existing

KB_BRANCH = "main"


class CloneError(OpenKBError):
    """The remote cannot be cloned as a knowledge base (Git failed, no branch, no KB on it)."""


@dataclass
class CloneResult:
    root: Path
    url: str
    branch: str
    remote_head: str | None  # the branch the remote's HEAD names (None: detached or unknown)
    commit: str
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"root": str(self.root), "url": self.url, "branch": self.branch, "remote_head": self.remote_head,
                "commit": self.commit, "done": self.done, "warnings": self.warnings}


def remote_branches(url: str) -> tuple[dict[str, str], str | None]:
    """({branch: commit id} of the remote, the branch its HEAD names or None), by `git ls-remote`."""
    proc = _git("ls-remote", "--symref", "--", url, "HEAD", "refs/heads/*")
    if proc.returncode != 0:
        raise CloneError(f"cannot read the remote {url} (git ls-remote exited {proc.returncode}: "
                         f"{_last_line(proc.stderr)}); check the URL and your access to it")
    branches: dict[str, str] = {}
    head = None
    for line in proc.stdout.splitlines():
        left, _tab, name = line.partition("\t")
        if left.startswith("ref: refs/heads/") and name == "HEAD":
            head = left[len("ref: refs/heads/"):]
        elif name.startswith("refs/heads/"):
            branches[name[len("refs/heads/"):]] = left
    return branches, head


def choose_branch(url: str, branches: dict[str, str], head: str | None, wanted: str | None) -> str:
    """The branch to check out: ``wanted``, else main, else the one the remote's HEAD names."""
    names = ", ".join(sorted(branches)) or "none"
    if wanted is not None:
        if wanted not in branches:
            raise CloneError(f"the remote {url} has no branch {wanted!r} (its branches: {names})")
        return wanted
    if not branches:
        raise CloneError(f"the remote {url} holds no branches (an empty repository): push a knowledge base to it "
                         f"first (in the KB: `git remote add origin {url}` and `git push -u origin {KB_BRANCH}`)")
    if KB_BRANCH in branches:
        return KB_BRANCH
    if head in branches:
        return head
    raise CloneError(f"the remote {url} has no branch {KB_BRANCH!r} and its HEAD names no branch it has "
                     f"(its branches: {names}); name the knowledge base's branch with `--branch NAME`")


def clone_kb(url: str, directory: str | os.PathLike | None = None, *, branch: str | None = None) -> CloneResult:
    """`git clone` ``url`` into ``directory`` (default: the URL's last part without `.git`, as
    Git names it) on the KB branch (``branch``, else main, else the remote HEAD's), then set the
    clone up as `openkb init` does in a clone. Git's own progress and messages go to stderr.
    Raises CloneError when Git is missing or fails, or the branch holds no openkb KB (the
    directory it created is then removed)."""
    if shutil.which("git") is None:
        raise CloneError("`openkb clone` runs Git, which is not installed (not on PATH): install git")
    branches, head = remote_branches(url)
    chosen = choose_branch(url, branches, head, branch)
    target = Path(directory) if directory is not None else Path(_default_dir(url))
    target = target.expanduser().resolve()
    existed = target.exists()
    proc = subprocess.run(["git", "clone", "--branch", chosen, "--", url, str(target)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=None)
    if proc.returncode != 0:
        raise CloneError(f"git clone of {url} failed (exit {proc.returncode}; Git's message is above); "
                         "nothing was set up")
    if not is_kb_repository(target):
        if not existed:
            remove_tree(target)
        others = ", ".join(sorted(set(branches) - {chosen})) or "no other branch"
        raise CloneError(f"branch {chosen!r} of {url} holds no openkb knowledge base (no .openkb/config.yaml); "
                         f"the remote's other branches: {others}" + ("; the clone was removed" if not existed else "")
                         + ". Clone a KB's branch with `--branch NAME`, or use `git clone` for a plain repository")
    if head != chosen:  # e.g. a bare remote made by plain `git init --bare`: its HEAD names master
        _git("-C", str(target), "remote", "set-head", "origin", chosen)
    setup = setup_existing(target)
    result = CloneResult(root=target, url=url, branch=chosen, remote_head=head, commit=setup.commit,
                         done=[f"cloned {url} (branch {chosen})"] + setup.done, warnings=setup.warnings)
    if head != chosen:
        named = "names no branch" if head is None else f"names {head!r}"
        result.warnings.insert(0, f"the remote's HEAD {named} (a bare repository made by plain `git init --bare` "
                               f"names master); checked out the knowledge base's branch {chosen!r}. To make plain "
                               f"`git clone` do the same, run `git symbolic-ref HEAD refs/heads/{chosen}` in the bare "
                               "repository (docs/team.md)")
    return result


def _default_dir(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name[:-len(".git")] if name.endswith(".git") else name
    if not name or name in (".", ".."):
        raise CloneError(f"cannot derive a directory name from {url}; give one: `openkb clone {url} DIR`")
    return name


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"
