"""Hand edits of compiled pages, merged three-way when a document is compiled again
(a re-ingest of a changed file, `openkb recompile`; docs/revert.md, "Recompile and hand edits").

For every compiled page the new compile rewrites (the summary, the source page, the
document's contribution to concept pages, its index line):

- base   = what the compiler wrote last for the document: the page in the tree of the
           document's last compiling commit (its newest `add`, or a `recompile` that covered
           it, not since reverted);
- ours   = the page as it stands (HEAD, hand edits committed as `edit` commits first);
- theirs = the compiler's new output,

merged by the same drivers as revert (`openkb_git.merge.merge_file`). Where a hand edit
survives, the operation is committed as two commits in one step (one journal, one move of
the branch): the compiler's output as such, then the hand edits merged back as an `edit`.
So the tree of every compiling commit holds the compiler's own output — the base of the
next merge, found in the history with nothing stored beside it — and `openkb blame`
credits the hand text to an edit. A path that cannot be merged is a conflict: nothing of
that document changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..git.objects import ChangeSet
from ..history import Entry, iter_entries
from ..kb import KB
from ..merge import INDEX_PATH, MergeConflict, concept_slug, merge_file
from ..registry import record_path

RECOMPILE_ALL = "OpenKB-Recompile"  # trailer of `openkb recompile --all`: value "all"
SKIPPED_TRAILER = "OpenKB-Recompile-Skipped"  # JSON list of the docs such a commit did not compile
COMPILING_OPS = ("add", "recompile", "init")

# The pages a person may edit by hand (merged); every other path a compile writes (raw/,
# images, the registry record) is the compiler's alone and takes its new content.
MERGED_PREFIXES = ("wiki/summaries/", "wiki/sources/", "wiki/concepts/")


def merged_path(path: str) -> bool:
    return path == INDEX_PATH or (path.endswith(".md") and path.startswith(MERGED_PREFIXES))


def compiles(kb: KB, entry: Entry, doc: str) -> bool:
    """Whether operation ``entry`` compiled ``doc`` (so its tree holds the compiler's output for it)."""
    if entry.op == "add" or (entry.op == "recompile" and entry.doc):
        return entry.doc == doc
    if entry.op == "init":  # a KB OpenKB made, adopted: its pages are OpenKB's compiler's output
        return kb.objects.lookup(kb.objects.get(entry.sha.encode()).tree, record_path(doc)) is not None
    if entry.op != "recompile" or entry.trailers.get(RECOMPILE_ALL) != "all" or not entry.parent:
        return False
    try:
        skipped = json.loads(entry.trailers.get(SKIPPED_TRAILER, "[]"))
    except ValueError:
        skipped = []
    if doc in skipped:
        return False
    parent_tree = kb.objects.get(entry.parent.encode()).tree
    return kb.objects.lookup(parent_tree, record_path(doc)) is not None


def compiling_entries(kb: KB, doc: str, head: bytes | None, *, stop: str | None = None, seen=None):
    """The operations that compiled ``doc``, newest first, from ``head`` back to ``stop`` (a
    commit id, not included) or the first commit; those reverted since (and not re-applied by
    reverting the revert) are left out. A `remove` of ``doc`` ends the walk: what came before
    it is no longer the document's. ``seen(entry)`` is called for each commit walked."""
    reverted: set[str] = set()
    for entry in iter_entries(kb, head):
        if seen is not None:
            seen(entry)
        if entry.sha == stop:
            return
        if entry.sha in reverted:
            continue
        if entry.op == "revert" and entry.trailers.get("OpenKB-Reverts"):
            reverted.add(entry.trailers["OpenKB-Reverts"])
            continue
        if entry.op == "remove" and entry.doc == doc:
            return
        if entry.op in COMPILING_OPS and compiles(kb, entry, doc):
            yield entry


def compile_base(kb: KB, doc: str, head: bytes | None) -> tuple[Entry | None, set[str] | None]:
    """``doc``'s last compile (the newest of `compiling_entries`) and the paths hand operations changed since it
    (`HandPaths.since`), in one walk of the history; (None, None) when it has none."""
    hand = HandPaths(kb, head)
    for entry in compiling_entries(kb, doc, head, seen=hand.see):
        return entry, hand.since(entry.sha)
    return None, None


# The operations that may carry hand edits of compiled pages: `openkb`'s own `edit` commits, a
# plain `git commit`, and what came from elsewhere (a merge, a sync's replay). Every other
# operation writes what the compiler (or a revert of its output) made.
HAND_OPS = frozenset({"edit", "commit", "merge", "sync"})


class HandPaths:
    """The paths the hand operations (HAND_OPS) changed after a given commit, up to ``head``:
    a path none of them touched holds the compiler's output, whatever its base page says
    (e.g. a page of an earlier version's format), so the new compile takes it whole. One walk
    of the history for all the documents of a run; hand operations are few."""

    def __init__(self, kb: KB, head: bytes | None):
        self.kb = kb
        self.order: dict[str, int] = {}
        self.hand: list[tuple[int, set[str]]] = []
        self._entries = iter_entries(kb, head)
        self._done = False

    def _until(self, sha: str) -> None:
        while not self._done and sha not in self.order:
            entry = next(self._entries, None)
            if entry is None:
                self._done = True
                return
            self.see(entry)

    def see(self, entry: Entry) -> None:
        """Take in ``entry``, the next older commit of the walk (from a walk of the caller's
        over the same history: then this one's own walk is not needed up to there)."""
        if entry.sha in self.order:
            return
        self.order[entry.sha] = len(self.order)
        if entry.op in HAND_OPS:
            tree = self.kb.objects.get(entry.sha.encode()).tree
            touched: set[str] = set()
            for parent in entry.parents or (None,):
                old = self.kb.objects.get(parent.encode()).tree if parent else None
                touched |= set(self.kb.objects.changed_files(old, tree))
            self.hand.append((self.order[entry.sha], touched))

    def since(self, sha: str) -> set[str]:
        """The paths hand operations newer than commit ``sha`` changed."""
        self._until(sha)
        at = self.order.get(sha, len(self.order))
        return set().union(*(paths for index, paths in self.hand if index < at))


@dataclass
class HandMerge:
    """A compile's change set split in two: the compiler's output (``pure``) and the hand edits
    merged back on top (``edits``, {path: merged content}); or the conflicts."""

    pure: ChangeSet
    edits: ChangeSet = field(default_factory=dict)
    conflicts: list[MergeConflict] = field(default_factory=list)


def merge_hand_edits(kb: KB, base_tree: bytes | None, ours_tree: bytes | None, changes: ChangeSet, *,
                     ours=None, hand: set[str] | None = None) -> HandMerge:
    """Merge ``changes`` (the compiler's new output for one document, computed against
    ``ours_tree``) with the hand edits ``ours_tree`` holds since ``base_tree`` (the tree of the
    document's last compile; None when the history has none: nothing counts as a hand edit).
    ``ours``: what to read "ours" from instead of the object store (an object with
    `read_path(tree, path)`, e.g. ops/recompile.py's Overlay). ``hand``: the paths hand
    operations changed since the base (HandPaths.since); the others take the new output whole.

    The index is merged last, its `## Concepts` lines following the concept pages that exist
    after the merge, as in a revert."""
    result = HandMerge(pure=dict(changes))
    reader = ours
    if base_tree is None:
        return result
    finals: dict[str, bytes | None] = {}
    concept_exists: dict[str, bool] = {}
    paths = sorted(p for p in changes if merged_path(p))
    for path in [p for p in paths if p != INDEX_PATH] + [p for p in paths if p == INDEX_PATH]:
        theirs = changes[path]
        ours = (reader or kb.objects).read_path(ours_tree, path)
        base = kb.objects.read_path(base_tree, path)
        if ours == base or ours == theirs or (hand is not None and path not in hand):
            merged = theirs
        elif path == INDEX_PATH:
            merged = merge_file(path, base, ours, theirs, concept_exists=concept_exists)
        else:
            merged = merge_file(path, base, ours, theirs)
        if isinstance(merged, MergeConflict):
            result.conflicts.append(merged)
            continue
        finals[path] = merged
        slug = concept_slug(path)
        if slug is not None:
            concept_exists[slug] = merged is not None
    if result.conflicts:
        return result
    for path, merged in finals.items():
        if merged != changes[path]:
            result.edits[path] = merged
    return result


def conflict_rows(conflicts: list[MergeConflict]) -> list[dict]:
    return [{"path": c.path, "reason": c.reason, "ours": c.ours, "theirs": c.theirs} for c in conflicts]


def edit_subject(doc: str, edits: ChangeSet) -> str:
    return f"edit: hand edits of {len(edits)} page(s) of {doc} kept over its new compile"


def edit_body(edits: ChangeSet) -> str:
    return "\n".join(f"kept: {path}" for path in sorted(edits))
