"""Merges of the shared wiki pages through the compiler, so a merged page is byte for byte
what the compiler would write for the merged set of contributions (docs/revert.md).

A concept page's contributions are its `## Mentions` bullets keyed by `[[summaries/<doc>]]`;
the index's are its `## Documents` lines keyed by `[[summaries/<doc>]]` and its
`## Concepts` lines keyed by `[[concepts/<slug>]]`. Each key is merged three-way. The rest
of the page (its text without those lines, the frontmatter without `sources:`) is merged
too: when only "ours" changed it (the usual case: a revert of an ingest, which changes
keyed lines only), the result is "ours" with exactly the keys that changed re-applied by
the compiler, so text the user wrote elsewhere stays as it is; when only "theirs" changed
it, the keys are re-applied to "theirs"; when both did, the rests are merged line by line
and every key is applied to the result. An absent page counts as the compiler's skeleton.
"""

from __future__ import annotations

import re

from ..compiler import Contribution, update_concept_page, update_index
from ..compiler.pages import CONCEPTS, DOCUMENTS, INDEX_SKELETON, MENTIONS, concept_skeleton, phrase_of
from ..frontmatter import dump as dump_frontmatter, split as split_frontmatter
from .core import MISSING, merge_text, merge_value

_MENTION = re.compile(r"^- \[\[summaries/([^\]]+)\]\]:? ?(.*)$")
_DOC_LINE = re.compile(r"^- \[\[summaries/([^\]]+)\]\]")
_CONCEPT_LINE = re.compile(r"^- \[\[concepts/([^\]]+)\]\]")

# (section heading, pattern of its keyed lines) per kind of page
_CONCEPT_KEYS = ((MENTIONS, _MENTION),)
_INDEX_KEYS = ((DOCUMENTS, _DOC_LINE), (CONCEPTS, _CONCEPT_LINE))


def _lines(data: bytes | None, keys) -> tuple[dict[str, dict[str, str]], list[str]]:
    """({heading: {key: line}} for the keyed lines, the other lines)."""
    keyed: dict[str, dict[str, str]] = {heading: {} for heading, _ in keys}
    other: list[str] = []
    patterns = dict(keys)
    current = None
    for line in (data or b"").decode("utf-8").split("\n"):
        if line.startswith(("# ", "## ")):
            current = line.rstrip()
        pattern = patterns.get(current)
        match = pattern.match(line) if pattern is not None else None
        if match:
            keyed[current][match.group(1)] = line
        else:
            other.append(line)
    return keyed, other


def _rest(data: bytes, keys) -> str:
    """The page without its keyed lines and without `sources:` (which follows them)."""
    fm, body = split_frontmatter(data.decode("utf-8"))
    head = dump_frontmatter({k: v for k, v in fm.items() if k != "sources"}) if fm is not None else ""
    return head + "\n".join(_lines(body.encode("utf-8"), keys)[1])


def _same(a: str, b: str) -> bool:
    """The same text but for blank lines (the compiler re-renders those)."""
    return [line for line in a.split("\n") if line.strip()] == [line for line in b.split("\n") if line.strip()]


def _merge_keys(what: str, b: dict, o: dict, t: dict) -> dict[str, str]:
    """The merged {key: line}; raises MergeConflict for a key both sides changed differently."""
    merged: dict[str, str] = {}
    for key in sorted(set(b) | set(o) | set(t)):
        value = merge_value(f"{what} [[{key}]]", b.get(key, MISSING), o.get(key, MISSING), t.get(key, MISSING))
        if value is not MISSING:
            merged[key] = value
    return merged


def _updates(current: dict[str, str], merged: dict[str, str]) -> dict[str, str | None]:
    """What turns ``current`` into ``merged``: {key: line, or None to drop}."""
    changes: dict[str, str | None] = {key: None for key in current if key not in merged}
    changes.update({key: line for key, line in merged.items() if current.get(key) != line})
    return dict(sorted(changes.items()))


def _start(base: bytes | None, ours: bytes | None, theirs: bytes | None, skeleton: bytes, keys):
    """The page to apply the merged keys to, and which side it is: "ours", "theirs" or "rest"
    (the merged rest of the page, holding no keyed lines)."""
    b, o, t = (_rest(side if side is not None else skeleton, keys) for side in (base, ours, theirs))
    if _same(b, t) or _same(o, t):
        return ours, "ours"
    if _same(o, b):
        return theirs, "theirs"
    return merge_text(b.encode("utf-8"), o.encode("utf-8"), t.encode("utf-8")), "rest"


def merge_concept_page(slug: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Three-way merge of `wiki/concepts/<slug>.md` by contributing document; None when
    no source and no text of the user's remains (the page is then deleted)."""
    sides = [_lines(side, _CONCEPT_KEYS)[0][MENTIONS] for side in (base, ours, theirs)]
    merged = _merge_keys("the mention of", *sides)
    fm, lines = concept_skeleton(slug)
    skeleton = (dump_frontmatter(fm) + "\n" + "\n".join(lines) + "\n").encode("utf-8")
    page, start = _start(base, ours, theirs, skeleton, _CONCEPT_KEYS)
    current = {"ours": sides[1], "theirs": sides[2], "rest": {}}[start]
    if start == "rest" and not merged:
        return None if _same(page.decode("utf-8"), _rest(skeleton, _CONCEPT_KEYS)) else page
    for doc, line in _updates(current, merged).items():
        contribution = None
        if line is not None:
            contribution = Contribution(phrase=phrase_of(slug), snippet=_MENTION.match(line).group(2))
        page = update_concept_page(page, slug, doc, contribution)
    return page


def merge_index(base: bytes | None, ours: bytes | None, theirs: bytes | None,
                concept_exists: dict[str, bool] | None = None) -> bytes:
    """Three-way merge of `wiki/index.md`: document lines keyed by link target; concept lines
    keyed likewise, or set from ``concept_exists`` ({slug: page exists after the merge}, for
    the concept pages the merge changed: the other concept lines stay as in ours)."""
    sides = [_lines(side, _INDEX_KEYS)[0] for side in (base, ours, theirs)]
    docs = _merge_keys("the index line of", *(side[DOCUMENTS] for side in sides))
    if concept_exists is None:
        concepts = set(_merge_keys("the index line of", *(side[CONCEPTS] for side in sides)))
    else:
        concepts = {slug for slug in sides[1][CONCEPTS] if concept_exists.get(slug, True)}
        concepts |= {slug for slug, exists in concept_exists.items() if exists}
    skeleton = ("\n".join(INDEX_SKELETON) + "\n").encode("utf-8")
    page, start = _start(base, ours, theirs, skeleton, _INDEX_KEYS)
    current = {"ours": sides[1], "theirs": sides[2], "rest": {DOCUMENTS: {}, CONCEPTS: {}}}[start]
    doc_updates = _updates(current[DOCUMENTS], docs)
    concept_updates = {slug: slug in concepts for slug in sorted(set(current[CONCEPTS]) ^ concepts)}
    return update_index(page, docs=doc_updates, concepts=concept_updates)


__all__ = ["merge_concept_page", "merge_index"]
