"""Moving the branch to a commit that is already written (a fast-forward, or the last of a
series of replayed operations), with the same steps and the same crash safety as one
mutation (protocol/commit.py):

 1. the new commits' objects are durable (the caller wrote them, ``pending``);
 2. the journal names the old and the new commit and every path that differs;
 3. the branch moves from old to new by compare-and-swap — the commit point;
 4. the differing paths are projected into the working tree and the Git index;
 5. the views are brought up to date; the files fsynced; the journal removed.

A crash before step 3 leaves the branch where it was (the new objects are garbage for
`openkb gc`); after it, recovery resets the journal's paths to the new HEAD.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..faults import checkpoint
from ..git.refs import compare_and_swap
from ..kb import KB
from ..paths import check_worktree_path
from ..registry import Registry
from ..views import update_views, view_paths
from .commit import CommittedButIncomplete, failure_reason, make_durable, project
from .journal import Journal, new_journal_id, remove_journal, write_journal


@dataclass
class Advanced:
    old: bytes | None
    new: bytes
    paths: list[str]


def tree_changes(kb: KB, old_tree: bytes | None, new_tree: bytes | None) -> dict[str, tuple[bytes | None, bytes | None]]:
    """The files that differ (ObjectStore.changed_files), every path confined: it is data from
    the history (a fetch), and an unsafe one raises UnsafePathError, never followed."""
    return kb.objects.changed_files(old_tree, new_tree, confined=True)


def advance_branch(kb: KB, registry: Registry, old: bytes | None, new: bytes, written: list, *, op: str,
                   message: str) -> Advanced:
    """Move the writer's branch from ``old`` to ``new`` (a commit whose objects are durable:
    ``written``, the results of ``write_durably(..., pending=True)``, or [] when they came by a fetch)
    and bring the working tree, the Git index and the views to it.

    Raises RefMovedError (nothing changed) if the branch is no longer at ``old``, and
    CommittedButIncomplete when a step after the commit point fails (the branch moved)."""
    diff = tree_changes(kb, kb.head_tree(old), kb.objects.get(new).tree)
    paths = sorted(diff)
    for path in paths:
        check_worktree_path(kb.root, path, where="a change to check out")
    journal_id = new_journal_id()
    journal = Journal(id=journal_id, op=op, base=old.decode() if old else None, new=new.decode(), paths=paths,
                      blobs={p: [a.decode() if a else None, b.decode() if b else None] for p, (a, b) in diff.items()})
    journal_path = write_journal(kb.journal_dir, journal)
    checkpoint("journal:durable")
    identity = kb.identity().as_bytes()
    try:
        for part in written:
            kb.objects.ensure_written(part)
        compare_and_swap(kb.git_dir, old, new, identity=identity, message=message, name=kb.write_branch())
    except BaseException as exc:
        if kb.head() != new:
            for part in written:
                kb.objects.abandon(part)
            remove_journal(journal_path)
            raise
        if not isinstance(exc, Exception):
            raise
        raise CommittedButIncomplete(new.decode(), message, paths, failure_reason(exc)) from exc
    checkpoint("ref:moved")
    try:
        for part in written:
            kb.objects.secure(part)
        changes = {p: (kb.objects.blob_bytes(b) if b is not None else None) for p, (_a, b) in diff.items()}
        project(kb, changes, {p: b for p, (_a, b) in diff.items() if b is not None})
        checkpoint("projected")
        update_views(kb, registry)
        checkpoint("views")
        make_durable(kb, paths + view_paths())
        remove_journal(journal_path)
    except Exception as exc:
        raise CommittedButIncomplete(new.decode(), message, paths, failure_reason(exc)) from exc
    return Advanced(old=old, new=new, paths=paths)
