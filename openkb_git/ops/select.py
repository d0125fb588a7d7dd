"""Selectors naming an ingest: `HEAD`, `HEAD~N`, a log position, a commit id prefix, a doc name."""

from __future__ import annotations

import re
from itertools import islice

from ..errors import OpenKBError
from ..history import Entry, entry_of, iter_entries
from ..kb import KB

_HEAD_N = re.compile(r"^(?:HEAD|@)(~(\d*))?$")
_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")
DIRECT_STEPS = 64  # HEAD~N up to this far is walked commit by commit, without the memo


class BadSelectorError(OpenKBError):
    """A selector that names no commit, or more than one."""


def resolve(kb: KB, selector: str) -> Entry:
    """The operation ``selector`` names.

    Tried in order: `HEAD` / `HEAD~N`; a position as shown by `openkb log` (a number
    below 1000, optionally written `#N`); a commit id prefix (4+ hex digits); a doc name
    (its latest add). Raises BadSelectorError naming what was tried.
    """
    text = selector.strip()
    match = _HEAD_N.match(text)
    position: int | None = None
    if match:
        position = 0 if match.group(1) is None else int(match.group(2) or 1)
    elif re.fullmatch(r"#?\d{1,3}", text):
        position = int(text.lstrip("#"))
    if position is not None and position <= DIRECT_STEPS:
        # A few steps back are parsed from the commits: cheaper than loading the log's memo.
        sha = kb.head()
        for _ in range(position):
            if sha is None:
                break
            sha = entry_of(kb, sha).parent
            sha = sha.encode() if sha else None
        if sha is None:
            raise BadSelectorError(f"{selector!r}: the history has fewer than {position + 1} operations")
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
    raise BadSelectorError(
        f"{selector!r} names no operation: not HEAD~N, a log position, a commit id prefix or a document name "
        "(see `openkb log`)"
    )


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
