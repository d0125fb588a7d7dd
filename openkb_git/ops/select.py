"""Selectors naming an ingest: `HEAD`, `HEAD~N`, a log position, a commit id prefix, a doc name,
a branch (`try-papers`, `origin/main`, `try-papers~2`); and revision ranges `A..B` for `log`."""

from __future__ import annotations

import re
from itertools import islice

from ..errors import OpenKBError
from ..history import Entry, entry_of, first_parents, iter_entries
from ..kb import KB

_HEAD_N = re.compile(r"^(?:HEAD|@)(~(\d*))?$")
_REF_N = re.compile(r"^(.+?)(?:~(\d*))?$")
REF_PREFIXES = ("refs/heads/", "refs/remotes/", "refs/tags/")
_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")
DIRECT_STEPS = 64  # HEAD~N up to this far is walked commit by commit, without the memo


class BadSelectorError(OpenKBError):
    """A selector that names no commit, or more than one."""


class AmbiguousSelectorWarning(UserWarning):
    """A selector that is both a log position and a document name (a document `2`, from 2.pdf):
    the document was taken; `#N` names the position, `doc:NAME` the document (docs/selectors.md).
    The CLI prints it on stderr as `openkb: warning: ...`."""

    user_note = True


def _doc_exists(kb: KB, doc: str) -> bool:
    """Whether HEAD has a registry record for ``doc`` (a cheap look-up in HEAD's tree)."""
    from ..paths import path_problem
    from ..registry import record_path

    if path_problem(doc) is not None or "/" in doc:
        return False
    tree = kb.head_tree()
    return tree is not None and kb.objects.lookup(tree, record_path(doc)) is not None


def _latest_of_doc(kb: KB, doc: str, selector: str) -> Entry:
    for entry in iter_entries(kb):
        if entry.doc == doc and entry.op in ("add", "init", "remove"):
            return entry
    raise BadSelectorError(f"{selector!r}: no document {doc!r} in the history (see `openkb list`, `openkb log`)")


def resolve(kb: KB, selector: str) -> Entry:
    """The operation ``selector`` names.

    Tried in order: `HEAD` / `HEAD~N` (N first parents back, as in git); a position as shown
    by `openkb log` (a number below 1000, optionally written `#N`); a commit id prefix (4+ hex
    digits); a doc name (its latest add); a branch, remote-tracking branch or tag, optionally
    `~N`. Raises BadSelectorError naming what was tried.

    A number that is also a document's name (a document `2`, from 2.pdf) names the document,
    with an AmbiguousSelectorWarning naming both; `#N` always names the position and
    `doc:NAME` always the document (docs/selectors.md).
    """
    text = selector.strip()
    if text.startswith("doc:"):
        return _latest_of_doc(kb, text[4:], selector)
    if re.fullmatch(r"\d{1,3}", text) and _doc_exists(kb, text):
        import warnings

        warnings.warn(AmbiguousSelectorWarning(
            f"{text!r} is both a document name and a position in `openkb log`: taking the document {text!r}; "
            f"write `#{text}` for the position, `doc:{text}` to say the document"), stacklevel=2)
        return _latest_of_doc(kb, text, selector)
    match = _HEAD_N.match(text)
    if match:
        return _back(kb, kb.head(), 0 if match.group(1) is None else int(match.group(2) or 1), selector)
    position: int | None = None
    if re.fullmatch(r"#?\d{1,3}", text):
        position = int(text.lstrip("#"))
    if position is not None and position <= DIRECT_STEPS:
        # A few steps back are parsed from the commits (cheaper than loading the log's memo)
        # while they are a linear stretch: there, the log's lines are the first parents.
        sha = kb.head()
        for _ in range(position):
            if sha is None:
                break
            entry = entry_of(kb, sha)
            if entry.is_merge:
                sha = b"merge"
                break
            sha = entry.parent.encode() if entry.parent else None
        if sha is None:
            raise BadSelectorError(f"{selector!r}: the history has fewer than {position + 1} operations")
        if sha != b"merge":
            return entry_of(kb, sha)
    entries = iter_entries(kb)
    if position is not None:
        for pos, entry in enumerate(entries):
            if pos == position:
                return entry
        raise BadSelectorError(f"{selector!r}: the history has fewer than {position + 1} operations")
    hexlike = bool(_HEX.match(text))
    if hexlike:
        direct = _commit_by_prefix(kb, text.lower())
        if direct is not None:
            return direct
    candidates: list[Entry] = []
    doc_match: Entry | None = None
    for entry in entries:
        if hexlike and entry.sha.startswith(text.lower()):
            candidates.append(entry)
        if doc_match is None and entry.doc == text and entry.op in ("add", "init", "remove"):
            doc_match = entry
            if not hexlike:
                break
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        shas = ", ".join(c.short for c in candidates[:5])
        raise BadSelectorError(f"{selector!r} is ambiguous: commits {shas}; give more digits")
    if doc_match is not None:
        return doc_match
    ref = _ref(kb, text)
    if ref is not None:
        return ref
    raise BadSelectorError(
        f"{selector!r} names no operation: not HEAD~N, a log position, a commit id prefix, a document name "
        "or a branch (see `openkb log`)"
    )


def _back(kb: KB, sha: bytes | None, steps: int, selector: str) -> Entry:
    """The commit ``steps`` first parents back from ``sha``."""
    short = BadSelectorError(f"{selector!r}: the history has fewer than {steps + 1} operations")
    if sha is None:
        raise short
    if steps > DIRECT_STEPS:
        for left, entry in zip(range(steps, -1, -1), first_parents(kb, sha)):
            if not left:
                return entry
        raise short
    for _ in range(steps):
        parent = entry_of(kb, sha).parent
        if parent is None:
            raise short
        sha = parent.encode()
    return entry_of(kb, sha)


def _ref(kb: KB, text: str) -> Entry | None:
    """The commit a branch, remote-tracking branch or tag names (`try-papers`, `origin/main`,
    `refs/heads/x`), optionally `~N`; None when there is no such ref."""
    match = _REF_N.match(text)
    name, steps = match.group(1), match.group(2)
    sha = ref_commit(kb, name)
    if sha is None:
        return None
    return _back(kb, sha, 0 if steps is None else int(steps or 1), text)


def ref_commit(kb: KB, name: str) -> bytes | None:
    """The commit id of the branch, remote-tracking branch or tag ``name``, or None."""
    from ..git.refs import read_branch
    from ..paths import path_problem

    candidates = [name] if name.startswith("refs/") else [prefix + name for prefix in REF_PREFIXES]
    for ref in candidates:
        if path_problem(ref) is not None or ref.endswith(".lock") or not ref.startswith(REF_PREFIXES):
            continue
        sha = read_branch(kb.git_dir, ref)
        if sha is not None:
            try:
                obj = kb.objects.get(sha)
            except KeyError:
                return None
            while obj.type_name == b"tag":  # an annotated tag: the commit it names
                sha = obj.object[1]
                obj = kb.objects.get(sha)
            return sha if obj.type_name == b"commit" else None
    return None


class BadRangeError(BadSelectorError):
    """A revision range `A..B` whose sides name no commit."""


def resolve_range(kb: KB, text: str) -> tuple[bytes | None, set[str]]:
    """(B's commit, the ids of every commit reachable from A) for `A..B`, as `git log A..B`
    reads it: the operations on B that A does not have. Each side is a branch, remote-tracking
    branch or tag (tried first), else a selector (`resolve`); an empty side is HEAD."""
    left, sep, right = text.partition("..")
    if not sep or right.startswith("."):
        raise BadRangeError(f"{text!r} is not a range A..B (e.g. `main..try-papers`)")
    ends = []
    for side in (left, right):
        side = side.strip()
        if not side:
            ends.append(kb.head())
            continue
        sha = ref_commit(kb, side)
        if sha is None:
            try:
                sha = resolve(kb, side).sha.encode()
            except BadSelectorError as exc:
                raise BadRangeError(f"{side!r} in the range {text!r} names no branch and no operation: {exc}") from None
        ends.append(sha)
    exclude = {entry.sha for entry in iter_entries(kb, ends[0])} if ends[0] else set()
    return ends[1], exclude


def _commit_by_prefix(kb: KB, prefix: str) -> Entry | None:
    """The commit whose id starts with ``prefix`` when exactly one object of the store has
    such an id and it is a commit (found through the pack indexes, without walking the
    history); None otherwise, and the caller walks the history as before."""
    found = list(islice(kb.objects.store.iter_prefix(prefix.encode("ascii")), 2))
    if len(found) != 1:
        return None
    try:
        if kb.objects.get(found[0]).type_name != b"commit":
            return None
    except KeyError:
        return None
    return entry_of(kb, found[0])
