"""Git's merge-driver hook: the same structure-aware merges, for `git merge` and `git revert`."""

from __future__ import annotations

import sys
from pathlib import Path

from dulwich.repo import Repo

from ..merge import MergeConflict, merge_file
from ..merge.core import _Conflict
from ..merge.wiki import merge_concept_page, merge_index

DRIVERS = {
    "openkb-page": "openkb structure-aware page merge",
    "openkb-index": "openkb index merge (entries keyed by link)",
    "openkb-record": "openkb registry record merge (key by key)",
}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def merge_for_git(base: Path, ours: Path, theirs: Path, path: str) -> MergeConflict | None:
    """Merge three temporary files Git gives us; the result goes to ``ours``. Returns the
    conflict (``ours`` then holds conflict markers) or None."""
    b, o, t = _read(base), _read(ours), _read(theirs)
    try:
        if path.startswith("wiki/concepts/") and path.endswith(".md"):
            result = merge_concept_page(path[len("wiki/concepts/"):-3], b, o, t)
        elif path == "wiki/index.md":
            result = merge_index(b, o, t)
        else:
            result = merge_file(path, b, o, t)
    except _Conflict as exc:
        result = MergeConflict(path, exc.reason, exc.ours, exc.theirs)
    if result is None:
        result = MergeConflict(path, "the merge leaves nothing of this page; delete it (git rm) to resolve",
                               "", "")
    if isinstance(result, MergeConflict):
        ours.write_bytes(b"<<<<<<< ours\n" + (o or b"") + b"=======\n" + (t or b"") + b">>>>>>> theirs\n")
        return result
    ours.write_bytes(result)
    return None


def configure(repo_path: Path) -> None:
    """Declare the merge drivers in the repository's config, calling this interpreter."""
    repo = Repo(str(repo_path))
    try:
        config = repo.get_config()
        command = f'"{sys.executable}" -m openkb_git merge-driver %O %A %B %P'
        for name, description in DRIVERS.items():
            config.set((b"merge", name.encode()), b"name", description.encode())
            config.set((b"merge", name.encode()), b"driver", command.encode())
        config.write_to_path()
    finally:
        repo.close()
