"""`openkb revert` and `openkb remove`: take one operation's (or one document's) contribution
back out of the KB as a new commit, keeping everything that came later.

Revert is a three-way merge restricted to the paths the operation changed, with
base = the operation's tree, ours = HEAD, theirs = its parent's tree, through the
structure-aware drivers of `openkb_git.merge`. If any path conflicts, nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EXIT_USAGE, OpenKBError
from ..git.objects import ChangeSet
from ..history import Entry, iter_entries
from ..hooks import run_hook
from ..kb import KB
from ..merge import MergeConflict, merge_file, shared_page
from ..fsutil import makedirs, write_file
from ..paths import UnsafePathError, check_worktree_path, path_problem
from ..protocol.commit import Committed, Mutation, commit_mutation
from ..registry import record_path
from .contribution import INDEX_PATH, document_changes, orphan_changes, shared_path
from .edits import commit_edits, find_edits
from .review import changed_paths
from .session import Writer

INGEST_OPS = {"add", "remove", "revert"}  # operations that replace a document's contribution
STRUCTURED_OPS = INGEST_OPS | {"recompile"}  # ... and those whose paths are compiled pages throughout


class RevertConflictError(OpenKBError):
    """The revert would conflict with later changes; nothing was reverted. ``edit_commit``: the
    `edit` commit of the hand edits committed first (they are kept), or None."""

    def __init__(self, message: str, conflicts: list[MergeConflict], edit_commit: str | None = None):
        super().__init__(message)
        self.conflicts = conflicts
        self.edit_commit = edit_commit


def conflict_summary(count: int, edit_commit: str | None) -> str:
    """The first line of a revert conflict report: what happened to the KB, truthfully."""
    if edit_commit is None:
        return f"revert would conflict in {count} path(s); nothing was changed"
    return (f"revert would conflict in {count} path(s); nothing was reverted. Your hand edits were committed "
            f"first as {edit_commit[:7]} (`edit`, kept); resolve the conflict below by hand, or "
            f"`openkb revert {edit_commit[:7]}` to take those edits back, then revert again")


class NothingToRevertError(OpenKBError):
    """The operation cannot be reverted (the first commit) or names no document."""


class MainlineError(OpenKBError):
    """A merge to revert without `--mainline N`, or `--mainline` for an operation that is no merge."""

    exit_code = EXIT_USAGE


def check_mainline(entries: list[Entry], mainline: int | None) -> None:
    """Refuse a merge without ``mainline`` (which parent's side to keep is the user's call, as
    `git revert -m`), and a ``mainline`` that names no parent of the operation."""
    for entry in entries:
        parents = ", ".join(f"{n} = {p[:7]}" for n, p in enumerate(entry.parents, 1))
        if entry.is_merge and mainline is None:
            raise MainlineError(
                f"{entry.short} is a merge ({entry.subject}); reverting it takes back everything one side "
                f"brought in, so say which parent to go back to with --mainline N ({parents}; 1 is the branch "
                f"it was merged into), as `git revert -m`; to undo one operation the merge brought, revert that "
                f"operation instead (see `openkb log`). Nothing was changed")
        if mainline is not None and not entry.is_merge:
            raise MainlineError(f"--mainline {mainline} was given, but {entry.short} ({entry.op} "
                                f"{entry.doc or entry.subject}) is not a merge; drop --mainline to revert it")
        if mainline is not None and not 1 <= mainline <= len(entry.parents):
            raise MainlineError(f"--mainline {mainline}: merge {entry.short} has {len(entry.parents)} parents "
                                f"({parents}); give one of those numbers")


@dataclass
class RevertPlan:
    entry: Entry
    changes: ChangeSet = field(default_factory=dict)
    conflicts: list[MergeConflict] = field(default_factory=list)
    superseded_by: str | None = None  # a later operation replaced this document: nothing to do


def later_operation_on(kb: KB, entry: Entry, doc: str, head: bytes | None) -> Entry | None:
    """The newest operation after ``entry`` (up to ``head``) that changed ``doc``'s record, if any."""
    for later in iter_entries(kb, head):
        if later.sha == entry.sha:
            return None
        if later.doc == doc and later.op in INGEST_OPS:
            return later
    return None


def merge_trees(kb: KB, paths: list[str], base_tree: bytes | None, ours_tree: bytes | None,
                theirs_tree: bytes | None, *, structured: bool = True) -> dict[str, tuple[bytes | None, object]]:
    """{path: (ours, merged)} for each of ``paths``: merged is bytes, None (delete) or a
    MergeConflict (see `openkb_git.merge.merge_file`). With ``structured`` (the paths of an
    ingest, a removal or a revert), the index is merged last, its `## Concepts` lines
    following the concept pages that exist after the merge."""
    results: dict[str, tuple[bytes | None, object]] = {}
    concept_exists: dict[str, bytes | None] = {}
    for path in paths:
        if path == INDEX_PATH and structured:
            continue
        b, o, t = (kb.objects.read_path(tree, path) for tree in (base_tree, ours_tree, theirs_tree))
        merged = merge_file(path, b, o, t)
        results[path] = (o, merged)
        if shared_page(path) is not None and not isinstance(merged, MergeConflict):
            concept_exists[path] = merged
    if structured and INDEX_PATH in paths:
        b, o, t = (kb.objects.read_path(tree, INDEX_PATH) for tree in (base_tree, ours_tree, theirs_tree))
        page_of = page_reader(concept_exists, lambda path: kb.objects.read_path(ours_tree, path))
        results[INDEX_PATH] = (o, merge_file(INDEX_PATH, b, o, t, concept_exists=concept_exists, page_of=page_of))
    return results


def page_reader(merged: dict[str, bytes | None], read):
    """``page_of`` for the index's merge: a shared page as the merge leaves it — as merged
    (``merged``: {path: page or None}) or, changed by neither side, ``read(path)`` of ours."""
    def page_of(kind: str, slug: str) -> bytes | None:
        path = shared_path(kind, slug)
        return merged[path] if path in merged else read(path)

    return page_of


def plan_revert(kb: KB, entry: Entry, ours_tree: bytes | None, head: bytes | None = None,
                mainline: int | None = None) -> RevertPlan:
    """The change set that takes ``entry``'s contribution out of ``ours_tree`` (the tree of
    ``head``), or its conflicts. A merge is reverted relative to its parent ``mainline``
    (1-based, `check_mainline`): what the other side brought in is taken out.

    An ingest of a document that a later operation re-ingested or removed is superseded:
    its contribution is already gone, and reverting it changes nothing — exactly what the
    history without it would hold."""
    if entry.parent is None:
        raise NothingToRevertError(f"{entry.short} is the first commit of the knowledge base; it cannot be reverted")
    base_tree = kb.objects.get(entry.sha.encode()).tree
    check_mainline([entry], mainline)
    parent = entry.parents[mainline - 1] if mainline else entry.parent
    theirs_tree = kb.objects.get(parent.encode()).tree
    plan = RevertPlan(entry)
    structured = entry.op in STRUCTURED_OPS or entry.is_merge  # a merge's paths are its operations'
    doc = entry.doc
    if structured and doc:
        later = later_operation_on(kb, entry, doc, head)
        if later is None and entry.op == "recompile":  # compiled again since: that compile stands
            from .compiled import compiling_entries

            later = next(iter(compiling_entries(kb, doc, head, stop=entry.sha)), None)
        if later is not None:
            plan.superseded_by = later.sha
            return plan
    if entry.op == "recompile" and not doc and not entry.is_merge:
        # `recompile --all`: the documents changed again since keep what came later
        from .recompile import superseded_in_recompile

        superseded, tree = superseded_in_recompile(kb, entry, head)
        if superseded is not None:
            plan.superseded_by = superseded
            return plan
        if tree is not None:
            theirs_tree = tree
    if entry.op == "add" and doc and not entry.is_merge:
        # Recompiled since (`openkb recompile`): the document's contribution is the newest
        # recompile's, so that is what comes out (ops/recompile.py `rebased_revert`).
        from .recompile import rebased_revert  # here: add's imports are for writers that compile

        rebased = rebased_revert(kb, entry, doc, head)
        if rebased is not None:
            base_tree, theirs_tree = rebased
    paths = sorted(changed_paths(kb, theirs_tree, base_tree))
    for path in paths:  # trees are data from the history: a crafted one is refused, never followed
        problem = path_problem(path)
        if problem:
            raise UnsafePathError(path, problem, f"commit {entry.short} ({entry.subject})")
    for path, (ours, merged) in merge_trees(kb, paths, base_tree, ours_tree, theirs_tree,
                                            structured=structured).items():
        if isinstance(merged, MergeConflict):
            plan.conflicts.append(merged)
        elif merged != ours:
            plan.changes[path] = merged
    return plan


@dataclass
class RevertResult:
    entry: Entry
    commit: str | None
    paths: list[str]
    note: str = ""
    warnings: list[str] = field(default_factory=list)


def revert(kb: KB, entries: list[Entry], *, wait: float = 0.0, dry_run: bool = False,
           allow_edit_commits: bool = True, mainline: int | None = None) -> list[RevertResult]:
    """Revert each operation in order, one commit each. All are planned first: if any
    conflicts, nothing changes and RevertConflictError lists every conflict. A merge needs
    ``mainline`` (`check_mainline`)."""
    check_mainline(entries, mainline)
    writer = Writer(kb, wait, adopt=not dry_run)
    with writer.locked():
        edited = None if dry_run else commit_edits(kb, writer.registry, find_edits(kb, kb.head_tree(), refresh=True),
                                                   allow=allow_edit_commits)  # (a dry run commits nothing)
        edit_commit = edited.sha.decode() if edited is not None else None
        tree = kb.head_tree()
        plans: list[RevertPlan] = []
        for entry in entries:
            plan = plan_revert(kb, entry, tree, kb.head(), mainline)
            plans.append(plan)
            if plan.changes and not plan.conflicts:
                tree, objects, _ids = kb.objects.build_tree(tree, plan.changes)
                kb.objects.write_durably(objects)  # unreferenced until committed; gc-able if we stop
        conflicts = [c for p in plans for c in p.conflicts]
        if conflicts:
            raise RevertConflictError(conflict_summary(len(conflicts), edit_commit), conflicts, edit_commit)
        results = []
        for plan in plans:
            if plan.superseded_by or not plan.changes:
                note = (f"nothing to revert: {plan.entry.doc or 'every document'} was changed again by "
                        f"{plan.superseded_by[:7]}"
                        if plan.superseded_by else "nothing to revert: its changes are already undone")
                results.append(RevertResult(plan.entry, None, [], note))
                continue
            if dry_run:
                results.append(RevertResult(plan.entry, None, sorted(plan.changes), "dry run"))
                continue
            merge = plan.entry.is_merge
            mutation = Mutation(
                op="revert", subject=f"revert: {plan.entry.subject}", changes=plan.changes,
                body=(f"This reverts merge {plan.entry.sha}, back to its parent {mainline} "
                      f"({plan.entry.parents[mainline - 1]})." if merge else
                      f"This reverts {plan.entry.op} {plan.entry.sha}."),
                trailers={**({"OpenKB-Doc": plan.entry.doc} if plan.entry.doc else {}),
                          "OpenKB-Reverts": plan.entry.sha, **({"OpenKB-Mainline": str(mainline)} if merge else {})},
            )
            committed = commit_mutation(kb, writer.registry, kb.head(), mutation)
            results.append(RevertResult(plan.entry, committed.sha.decode() if committed else None,
                                        sorted(plan.changes)))
    for result in results:
        if result.commit:
            hook = run_hook(kb.hooks_dir, "post-revert", kb.root, {
                "OPENKB_DOC": result.entry.doc or "", "OPENKB_SOURCE": result.entry.trailers.get("OpenKB-Source", ""),
                "OPENKB_SHA256": result.entry.trailers.get("OpenKB-Source-Sha256", ""),
                "OPENKB_COMMIT": result.commit, "OPENKB_REVERTS": result.entry.sha})
            if not hook.ok:
                result.warnings.append(f"post-revert hook failed: {hook.message}")
            elif hook.refused and hook.message:
                result.warnings.append(hook.message)
    return results


class UnknownDocumentError(OpenKBError):
    """No document of that name at HEAD."""


class AmbiguousDocumentError(OpenKBError):
    """A name that fits several documents; ``candidates`` lists them."""

    def __init__(self, message: str, candidates: list[str]):
        super().__init__(message)
        self.candidates = candidates


def _file_name(record: dict) -> str:
    name = record.get("name")
    if isinstance(name, str) and name:
        return name
    path = record.get("path")
    return Path(path).name if isinstance(path, str) else ""


def find_document(view, query: str) -> str | None:
    """The document ``query`` names, as OpenKB's `remove` takes it: a document name, else a
    file name (`tar.md`), else a unique part of either, compared without case. None when
    nothing fits (the caller may still find an orphan's files by that name); several that fit
    raise AmbiguousDocumentError listing them."""
    if query in view.records:
        return query
    names = {doc: _file_name(record) for doc, record in view.records.items() if isinstance(record, dict)}

    def one(found: list[str], how: str) -> str | None:
        if len(found) > 1:
            listed = ", ".join(f"{doc} ({names[doc]})" for doc in found[:10]) + (" …" if len(found) > 10 else "")
            raise AmbiguousDocumentError(f"{query!r} {how} {len(found)} documents: {listed}; give its document name "
                                         "(see `openkb list`)", found)
        return found[0] if found else None

    exact = sorted(doc for doc, name in names.items() if name == query)
    if exact:
        return one(exact, "is the file name of")
    lowered = query.casefold()
    if not lowered:
        return None
    return one(sorted(doc for doc, name in names.items()
                      if lowered in doc.casefold() or lowered in name.casefold()), "is part of the names of")


def remove(kb: KB, query: str, *, wait: float = 0.0, dry_run: bool = False,
           allow_edit_commits: bool = True, keep_raw: bool = False,
           keep_empty: bool = False) -> tuple[str, Committed | list[str]]:
    """Remove the document ``query`` names (`find_document`: its name, its file name or a
    unique part of either) and its contribution to shared pages as one `remove` commit.

    With ``keep_empty`` a shared page left without a source stays (`document_changes`). With
    ``keep_raw`` the document's files under raw/ leave the commit (no record would own them)
    but stay in the working tree, untracked, as files dropped into raw/ are: `openkb add
    raw/<file>` takes one in again (were the process killed between the commit and putting
    them back, they are in the history: `openkb revert` of the removal).

    Returns (the document's name, the commit), or with ``dry_run`` (name, the paths that
    would change)."""
    writer = Writer(kb, wait, adopt=not dry_run)
    with writer.locked():
        tree = kb.head_tree()
        view = writer.registry.view(tree)
        # A name no record has but files still carry (a record deleted by hand) is that
        # document's, before any file name or part of a name another document's fits.
        orphan = query not in view.records and (query in view.invalid or orphan_changes(kb.objects, tree, view, query))
        doc = None if orphan else find_document(view, query)
        if doc is None:
            name, result = query, _remove_orphan(kb, writer, query, dry_run=dry_run,
                                                 allow_edit_commits=allow_edit_commits)
        else:
            name, result = doc, _remove_recorded(kb, writer, doc, dry_run=dry_run, keep_empty=keep_empty,
                                                 allow_edit_commits=allow_edit_commits)
        if keep_raw and isinstance(result, Committed):
            _put_back_raw(kb, result)
        return name, result


def _put_back_raw(kb: KB, removal: Committed) -> None:
    """The raw/ files ``removal`` deleted, written back into the working tree (untracked)."""
    before = kb.head_tree(removal.base)
    for path in removal.paths:
        if not path.startswith("raw/") or (kb.root / path).exists():
            continue
        data = kb.objects.read_path(before, path)
        if data is not None:
            check_worktree_path(kb.root, path, where="a raw file kept by --keep-raw")
            makedirs((kb.root / path).parent, sync=True)
            write_file(kb.root / path, data, sync=True)


def _remove_recorded(kb: KB, writer: Writer, doc: str, *, dry_run: bool, allow_edit_commits: bool,
                     keep_empty: bool = False) -> Committed | list[str]:
    """`remove` of a document with a registry record (the lock held)."""
    tree = kb.head_tree()
    view = writer.registry.view(tree)
    changes = document_changes(kb.objects, tree, view, doc, None, keep_empty=keep_empty)
    edits = find_edits(kb, tree, sorted(changes), refresh=True)
    if dry_run:
        return sorted(changes)
    edits.pop(record_path(doc), None)  # a hand-deleted or broken record of the doc being removed
    if edits:
        commit_edits(kb, writer.registry, edits, allow=allow_edit_commits)
        tree = kb.head_tree()
        view = writer.registry.view(tree)
        changes = document_changes(kb.objects, tree, view, doc, None, keep_empty=keep_empty)
    record = view.records[doc]
    mutation = Mutation(op="remove", subject=f"remove: {record.get('name', doc)}", changes=changes,
                        trailers={"OpenKB-Doc": doc, "OpenKB-Source": record.get("path", "")})
    return commit_mutation(kb, writer.registry, kb.head(), mutation)


def _remove_orphan(kb: KB, writer: Writer, doc: str, *, dry_run: bool,
                   allow_edit_commits: bool) -> Committed | list[str]:
    """`remove` of a document whose registry record is gone or invalid: by its files."""
    tree = kb.head_tree()
    view = writer.registry.view(tree)
    changes = orphan_changes(kb.objects, tree, view, doc)
    if not changes:
        raise UnknownDocumentError(f"no document named {doc!r} (see `openkb list`)")
    if dry_run:
        return sorted(changes)
    edits = find_edits(kb, tree, sorted(changes), refresh=True)
    if edits:
        commit_edits(kb, writer.registry, edits, allow=allow_edit_commits)
        tree = kb.head_tree()
        changes = orphan_changes(kb.objects, tree, writer.registry.view(tree), doc)
    mutation = Mutation(op="remove", subject=f"remove: {doc} (its registry record was missing or invalid)",
                        changes=changes, trailers={"OpenKB-Doc": doc})
    return commit_mutation(kb, writer.registry, kb.head(), mutation)
