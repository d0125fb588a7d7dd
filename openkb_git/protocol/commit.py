"""One mutation = one commit, following docs/protocol.md ("The steps, under the KB lock") step by step.

The caller holds the KB lock, has run recovery, and has computed the change set
against ``base`` (the HEAD it read). This module makes it durable and visible:

 3. blobs, trees and the commit object written and fsynced;
 4. the journal written and fsynced;
 5. the checked-out branch (refs/heads/main by default; the one the writer pinned when it
    took the lock) moved from base to new by compare-and-swap — the commit point
    (until then the new objects' pack has a `.keep`, so a concurrent `git repack -a -d`
    cannot delete it: see ObjectStore.write_durably);
 6. the change set projected into the working tree and the Git index;
 7. the views brought up to date;
 8. projected files fsynced, then the journal removed.
"""

from __future__ import annotations

import stat as statmod
import time
from dataclasses import dataclass, field

from ..faults import checkpoint
from ..fsutil import fsync_dir, fsync_file, makedirs, os_error_text, prune_empty_dirs, remove_file, write_file
from ..git.objects import ChangeSet, blob_id, make_commit
from ..git.refs import compare_and_swap
from ..errors import OpenKBError
from ..kb import KB, local_tz_offset
from ..paths import check_worktree_path
from ..registry import Registry
from ..views import update_views, view_paths
from .journal import Journal, new_journal_id, remove_journal, write_journal


@dataclass
class Mutation:
    """What to commit: operation name, message parts and the full change set."""

    op: str
    subject: str
    changes: ChangeSet
    trailers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    project: bool = True  # False for `edit` commits: the working tree already holds the content
    # A next commit made on top of this one in the same step (one journal, one move of the
    # branch; it may have a next one too): the re-ingest or recompile of a page with hand edits
    # commits the compiler's output as such, then the hand edits merged back as an `edit`
    # (docs/revert.md, "Recompile and hand edits"); several documents OpenKB added, one `add` each.
    then: "Mutation | None" = None
    # The tree this commit makes, built on the one before it in the chain (or on the base) by the
    # caller, which needed it anyway: (tree id, its new objects, {path: blob id}) as build_tree
    # returns them. None: built here.
    built: tuple | None = None

    def message(self, journal_id: str) -> str:
        trailers = {"OpenKB-Op": self.op, **self.trailers, "OpenKB-Journal": journal_id}
        lines = [self.subject, ""]
        if self.body:
            lines += [self.body.rstrip("\n"), ""]
        lines += [f"{k}: {v}" for k, v in trailers.items()]
        return "\n".join(lines) + "\n"


class CommittedButIncomplete(OpenKBError):
    """The commit point was reached (the branch names the new commit) and a later step
    (projection, views, fsync) failed: the operation IS committed; the journal it leaves
    lets the next writer (or `openkb recover`) finish the working tree, index and views."""

    def __init__(self, sha: str, subject: str, paths: list[str], reason: str, chain: tuple[str, ...] = ()):
        self.sha = sha
        self.chain = chain or (sha,)  # every commit made, oldest first (a chain: Mutation.then)
        self.subject = subject
        self.paths = paths  # what recovery will bring to the commit
        self.reason = reason
        super().__init__(f"{subject}: committed as {sha[:7]}, then {reason}; the working tree was not fully updated "
                         f"({len(paths)} path(s) left for recovery); the next openkb command (or `openkb recover`) "
                         "finishes it once the cause is fixed")

    def warning(self) -> str:
        return (f"committed as {self.sha[:7]}; the working tree was not fully updated: {self.reason}; "
                "the next openkb command (or `openkb recover`) finishes it")


def failure_reason(exc: BaseException) -> str:
    """One line naming what failed: "I/O error: No space left on device (path)" for OSError."""
    if isinstance(exc, OSError):
        return f"I/O error: {os_error_text(exc)}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Committed:
    sha: bytes  # the commit the branch names now
    base: bytes | None
    paths: list[str]
    chain: tuple[bytes, ...] = ()  # every commit made, oldest first (more with ``Mutation.then``)
    op: str = ""  # the operation of the last of them


def effective_changes(kb: KB, base_tree: bytes | None, changes: ChangeSet) -> ChangeSet:
    """Drop entries that would not change anything (same bytes, or deleting an absent path)."""
    out: ChangeSet = {}
    for path, data in changes.items():
        entry = kb.objects.lookup(base_tree, path)
        if data is None:
            if entry is not None:
                out[path] = None
        elif entry is None or entry[1] != blob_id(data):
            out[path] = data
    return out


def commit_mutation(kb: KB, registry: Registry, base: bytes | None, mutation: Mutation, *,
                    one_pack: bool = False) -> Committed | None:
    """Commit ``mutation`` on top of ``base``; returns None when it changes nothing. A chain
    (``Mutation.then``) is made durable together and the branch moved once, to its last
    commit; ``one_pack`` writes all its objects as one pack (a group of ingests: ops/add.py).

    Raises RefMovedError (nothing changed) if the branch is no longer at ``base``, and
    CommittedButIncomplete when a step after the commit point fails (the commit stands).
    """
    base_tree = kb.head_tree(base)
    changes = effective_changes(kb, base_tree, mutation.changes)
    if not changes:
        return None
    paths = sorted(changes)
    for path in paths:  # before anything is written: never write or delete beyond a symbolic link
        check_worktree_path(kb.root, path, where="a change to commit")
    journal_id = new_journal_id()

    checkpoint("objects:start")
    if mutation.built is not None:
        tree, objects, blob_ids = mutation.built[0], list(mutation.built[1]), dict(mutation.built[2])
    else:
        tree, objects, blob_ids = kb.objects.build_tree(base_tree, changes)
    identity = kb.identity().as_bytes()
    now = int(time.time())
    message = mutation.message(journal_id)
    commit = make_commit(tree, base, message, identity, now, local_tz_offset(now))
    objects.append(commit)
    chain = (commit.id,)
    follow, op = mutation.then, mutation.op
    while follow is not None:
        # A tree not built by the caller (``built``) is built from the base (the one before is not
        # readable until written); the working tree gets the last one's content. Only the follow's
        # own paths are looked up and checked here: the others were, for the commits before it.
        final = {path: data for path, data in changes.items() if path not in follow.changes}
        final.update(effective_changes(kb, base_tree, follow.changes))
        if final != changes:
            if follow.built is not None:  # on the tree of the commit before it, which is the chain's last
                tree2, objects2, built_ids = follow.built
                blob_ids2 = {**blob_ids, **built_ids}
            else:
                tree2, objects2, blob_ids2 = kb.objects.build_tree(base_tree, final)
            commit = make_commit(tree2, commit.id, follow.message(journal_id), identity, now, local_tz_offset(now))
            objects += objects2 + [commit]
            chain += (commit.id,)
            changes, blob_ids, op = final, blob_ids2, follow.op
            paths = sorted(final)  # what the first commit alone changed is as in the base
            for path in follow.changes:
                check_worktree_path(kb.root, path, where="a change to commit")
        follow = follow.then
    written = kb.objects.write_durably(objects, pending=True, one_pack=one_pack)
    checkpoint("objects:durable")

    # A mutation whose content the working tree already holds (an `edit`, an adopted add) is
    # journaled as an edit: recovery of one that did not happen leaves the files as they are.
    journal = Journal(id=journal_id, op=mutation.op if mutation.project else "edit", base=base.decode() if base else None,
                      new=commit.id.decode(), paths=paths, blobs=journal_blobs(kb, base_tree, changes, blob_ids))
    journal_path = write_journal(kb.journal_dir, journal)
    checkpoint("journal:durable")

    try:
        kb.objects.ensure_written(written)  # a concurrent `git gc` may have pruned loose ones
        compare_and_swap(kb.git_dir, base, commit.id, identity=identity, message=f"openkb {mutation.subject}",
                         name=kb.write_branch())
    except BaseException as exc:
        if kb.head() != commit.id:  # the commit point was not reached: nothing to finish
            kb.objects.abandon(written)
            remove_journal(journal_path)
            raise
        if not isinstance(exc, Exception):
            raise
        # Past the commit point (e.g. syncing the ref's folder failed): recovery finishes it.
        raise CommittedButIncomplete(commit.id.decode(), mutation.subject, paths, failure_reason(exc),
                                     tuple(sha.decode() for sha in chain)) from exc
    kb.trust_head(commit.id)  # just written and durable: head() need not read it back to check it
    checkpoint("ref:moved")

    try:
        kb.objects.secure(written)  # the pack's .keep goes: the branch reaches its objects now
        project(kb, changes, blob_ids, write=mutation.project)
        checkpoint("projected")
        update_views(kb, registry)
        checkpoint("views")
        make_durable(kb, paths + view_paths())
        checkpoint("durable")  # everything the journal vouches for is on disk; only now may it go
        remove_journal(journal_path)
    except Exception as exc:  # the operation is committed: say so, and what is left (the journal)
        raise CommittedButIncomplete(commit.id.decode(), mutation.subject, paths, failure_reason(exc),
                                     tuple(sha.decode() for sha in chain)) from exc
    checkpoint("journal:removed")
    return Committed(sha=commit.id, base=base, paths=paths, chain=chain, op=op)


def journal_blobs(kb: KB, base_tree: bytes | None, changes: ChangeSet, blob_ids: dict[str, bytes]) -> dict[str, list]:
    """{path: [blob at base or None, blob at new or None]} for the journal (trees are warm here)."""
    out = {}
    for path, data in changes.items():
        entry = kb.objects.lookup(base_tree, path)
        old = entry[1].decode() if entry is not None and not statmod.S_ISDIR(entry[0]) else None
        out[path] = [old, blob_ids[path].decode() if data is not None else None]
    return out


def project(kb: KB, changes: ChangeSet, blob_ids: dict[str, bytes], *, write: bool = True) -> None:
    """Write (or delete) each changed path in the working tree, then set its Git index entry."""
    index_updates: dict[str, bytes | None] = {}
    for path, data in changes.items():
        target = kb.root / path
        if data is None:
            remove_file(target, sync=False)
            prune_empty_dirs(target.parent, kb.root)
            index_updates[path] = None
        else:
            if write:
                makedirs(target.parent, sync=False)
                write_file(target, data, sync=False)
            index_updates[path] = blob_ids[path]
        checkpoint("project:path")
    kb.index.update(kb.root, index_updates, sync=False)


def make_durable(kb: KB, paths: list[str]) -> None:
    """fsync every projected file and the directories that changed, then the Git index."""
    dirs = set()
    for path in paths:
        target = kb.root / path
        fsync_file(target)
        parent = target.parent
        while parent != kb.root and not parent.exists():
            parent = parent.parent
        while parent != kb.root:
            dirs.add(parent)
            parent = parent.parent
    dirs.add(kb.root)
    for directory in dirs:
        fsync_dir(directory)
    fsync_file(kb.index.path)
    fsync_dir(kb.git_dir)
