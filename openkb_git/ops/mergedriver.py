"""Git's merge-driver hook: the same structure-aware merges, for `git merge` and `git revert`
(docs/revert.md)."""

from __future__ import annotations

from pathlib import Path

from dulwich.objects import Blob

from ..errors import OpenKBError
from ..history import iter_entries
from ..kb import KB
from ..merge import INDEX_PATH, MergeConflict, merge_file, shared_page
from .gitsetup import DRIVER_COMMAND, DRIVERS, configure, driver_problems  # noqa: F401  (declared there)
from .review import changed_paths
from .revert import merge_trees, page_reader


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _blob_id(data: bytes | None) -> bytes | None:
    return None if data is None else Blob.from_string(data).id


def revert_trees(kb: KB, base: bytes | None, theirs: bytes | None) -> tuple[bytes, bytes] | None:
    """(base tree, theirs tree) of the `git revert` (or `git cherry-pick`) Git is running, found
    as the commit of HEAD's history whose index is ``base`` and whose parent's is ``theirs``
    (or the other way round); None when there is none (a `git merge`).

    Git tells a merge driver only the three versions of one file; the index's `## Concepts`
    lines follow the concept pages after the merge, so the driver needs the two trees."""
    want = (_blob_id(base), _blob_id(theirs))
    for entry in iter_entries(kb):
        tree = kb.objects.get(entry.sha.encode()).tree
        for parent in entry.parents:  # a merge's too: `git revert -m N` of it
            parent_tree = kb.objects.get(parent.encode()).tree
            ids = tuple((found or (None, None))[1] for found in (kb.objects.lookup(tree, INDEX_PATH),
                                                                 kb.objects.lookup(parent_tree, INDEX_PATH)))
            if ids == want:
                return tree, parent_tree
            if ids[::-1] == want:
                return parent_tree, tree
    return None


def merge_heads_trees(kb: KB, environ=None) -> tuple[bytes | None, bytes] | None:
    """(merge base's tree, the other side's tree) of the `git merge` (or `git pull`) Git is
    running, or None. Git gives a driver only %O %A %B %P (three temporary files and the
    path), and writes MERGE_HEAD only after the file merges; but `git merge` exports
    `GITHEAD_<commit>=<name>` for each commit being merged to the processes it starts (the
    drivers too), and HEAD is still our side. With the base both give, the driver merges
    every concept page the two sides changed exactly as `openkb revert` and sync merge them,
    so it knows which pages the merge result holds (a page both sides emptied, which Git
    leaves to `git rm`, is one it does not). An octopus or criss-cross merge is not decided
    here (None: concept lines are then merged by key, and `openkb fsck`/`rebuild` settle it)."""
    import os
    import re
    import subprocess

    heads = [name[len("GITHEAD_"):] for name in (os.environ if environ is None else environ)
             if re.fullmatch(r"GITHEAD_[0-9a-f]{40}", name)]
    head = kb.head()
    if len(heads) != 1 or head is None:
        return None
    try:
        theirs = kb.objects.get(heads[0].encode())
    except (KeyError, ValueError):
        return None
    base = subprocess.run(["git", "-C", str(kb.root), "merge-base", "--all", head.decode(), heads[0]],
                          capture_output=True, text=True).stdout.split()
    if len(base) != 1:
        return None
    return kb.objects.get(base[0].encode()).tree, theirs.tree


def _concept_exists(repo_root: Path, base: bytes | None, theirs: bytes | None) -> dict[str, bytes | None] | None:
    """{path: the page after the merge, None if deleted} for the concept and entity pages the revert changes, merged
    exactly as `openkb revert` merges them; None when the trees are not found or the
    repository cannot be read as a KB (the index's concept lines are then keyed by concept)."""
    try:
        kb = KB(repo_root)
    except OpenKBError:
        return None
    try:
        trees = revert_trees(kb, base, theirs) or merge_heads_trees(kb)
        if trees is None:
            return None
        base_tree, theirs_tree = trees
        changed = set(changed_paths(kb, theirs_tree, base_tree)) | set(changed_paths(kb, kb.head_tree(), base_tree))
        paths = sorted(p for p in changed if shared_page(p) is not None)
        results = merge_trees(kb, paths, base_tree, kb.head_tree(), theirs_tree)
        return {path: merged for path, (_ours, merged) in results.items()
                if not isinstance(merged, MergeConflict)}
    finally:
        kb.close()


def _head_page_reader(repo_root: Path, concept_exists: dict[str, bytes | None] | None):
    """page_of for the index's merge: a shared page as the merge leaves it — merged (in
    ``concept_exists``) or, changed by neither side, as HEAD has it. None without
    ``concept_exists`` (then an index line both sides changed stays a conflict)."""
    if concept_exists is None:
        return None

    def read_head(path: str) -> bytes | None:
        try:
            kb = KB(repo_root)
        except OpenKBError:
            return None
        try:
            return kb.objects.read_path(kb.head_tree(), path)
        finally:
            kb.close()

    return page_reader(concept_exists, read_head)


def merge_for_git(base: Path, ours: Path, theirs: Path, path: str,
                  repo_root: Path | None = None) -> MergeConflict | None:
    """Merge three temporary files Git gives us; the result goes to ``ours``. Returns the
    conflict (``ours`` then holds conflict markers) or None. Git runs drivers at the top of
    the work tree: ``repo_root`` defaults to the current directory."""
    b, o, t = _read(base), _read(ours), _read(theirs)
    concept_exists = None
    if path == INDEX_PATH and b != t and b != o and o != t:
        concept_exists = _concept_exists(repo_root or Path.cwd(), b, t)
    result = merge_file(path, b, o, t, concept_exists=concept_exists,
                        page_of=_head_page_reader(repo_root or Path.cwd(), concept_exists))
    if result is None:
        result = MergeConflict("the merge leaves nothing of this page; delete it (git rm) to resolve", path=path)
    if isinstance(result, MergeConflict):
        ours.write_bytes(b"<<<<<<< ours\n" + (o or b"") + b"=======\n" + (t or b"") + b">>>>>>> theirs\n")
        return result
    ours.write_bytes(result)
    return None
