"""Merges of the shared wiki pages through the compiler, so a merged page is byte for byte
what the compiler would write for the merged set of contributions (docs/revert.md).

A concept or entity page's contributions are its `## Related Documents` bullets keyed by
`[[summaries/<doc>]]` (its generated description follows them); the index's are its
`## Documents` lines keyed by `[[summaries/<doc>]]`, its `## Concepts` lines keyed by
`[[concepts/<slug>]]` and its `## Entities` lines keyed by `[[entities/<slug>]]`. Each key is merged three-way. The rest
of the page (its text without those lines, the frontmatter without `sources:`) is merged
too: when only "ours" changed it (the usual case: a revert of an ingest, which changes
keyed lines only), the result is "ours" with exactly the keys that changed re-applied by
the compiler, so text the user wrote elsewhere stays as it is; when only "theirs" changed
it, the keys are re-applied to "theirs"; when both did, the rests are merged line by line
and every key is applied to the result. An absent page counts as the compiler's skeleton.
"""

from __future__ import annotations

import re

from ..compiler import Contribution, update_index, update_shared_page
from ..compiler.pages import (CONCEPTS, DOCUMENTS, ENTITIES, INDEX_SKELETON, KINDS, LEGACY_MENTIONS, MENTIONS,
                              concept_index_line, derived_description, dump_frontmatter, generated_description, mention_text, phrase_of,
                              refresh_description, shared_index_line, shared_skeleton)
from ..frontmatter import split as split_frontmatter
from .core import MISSING, MergeConflict, merge_text, merge_value

_MENTION = re.compile(r"^- \[\[summaries/([^\]|]+)\]\](?=$|[: ])")
_DOC_LINE = re.compile(r"^- \[\[summaries/([^\]|]+)\]\]")
_CONCEPT_LINE = re.compile(r"^- \[\[concepts/([^\]|]+)\]\]")
_ENTITY_LINE = re.compile(r"^- \[\[entities/([^\]|]+)\]\]")

# (section heading, pattern of its keyed lines) per kind of page
_SHARED_KEYS = ((MENTIONS, _MENTION),)
_INDEX_KEYS = ((DOCUMENTS, _DOC_LINE), (CONCEPTS, _CONCEPT_LINE), (ENTITIES, _ENTITY_LINE))


def _lines(data: bytes | None, keys) -> tuple[dict[str, dict[str, str]], list[str]]:
    """({heading: {key: line}} for the keyed lines, the other lines)."""
    keyed: dict[str, dict[str, str]] = {heading: {} for heading, _ in keys}
    other: list[str] = []
    patterns = dict(keys)
    current = None
    for line in (data or b"").decode("utf-8").split("\n"):
        if line.startswith(("# ", "## ")):
            if line.rstrip() == LEGACY_MENTIONS and MENTIONS in patterns:
                line = MENTIONS  # a page of an earlier version: its contributions, by their new name
            current = line.rstrip()
        pattern = patterns.get(current)
        match = pattern.match(line) if pattern is not None else None
        if match:
            keyed[current][match.group(1)] = line
        else:
            other.append(line)
    return keyed, other


def _rest(data: bytes, keys, kind: str | None = None, slug: str = "") -> str:
    """The page without its keyed lines, without `sources:` (which follows them) and, on a
    shared page, without a description its lines give (the compiler's: it follows them too)."""
    fm, body = split_frontmatter(data.decode("utf-8"))
    keyed, other = _lines(body.encode("utf-8"), keys)
    drop = {"sources"}
    if fm is not None and kind is not None:
        mentions = {doc: mention_text(line, doc) for doc, line in keyed[MENTIONS].items()}
        if fm.get("description") == derived_description(kind, slug, mentions):
            drop.add("description")
    head = dump_frontmatter({k: v for k, v in fm.items() if k not in drop}) if fm is not None else ""
    return head + "\n".join(other)


def _same(a: str, b: str) -> bool:
    """The same text but for blank lines (the compiler re-renders those)."""
    return [line for line in a.split("\n") if line.strip()] == [line for line in b.split("\n") if line.strip()]


def _merge_keys(what: str, b: dict, o: dict, t: dict, settle=None) -> dict[str, str]:
    """The merged {key: line}; for a key both sides changed differently, ``settle(key)`` (the
    line, or MISSING for none) or, without it, MergeConflict."""
    merged: dict[str, str] = {}
    for key in sorted(set(b) | set(o) | set(t)):
        try:
            value = merge_value(f"{what} [[{key}]]", b.get(key, MISSING), o.get(key, MISSING), t.get(key, MISSING))
        except MergeConflict:
            if settle is None:
                raise
            value = settle(key)
        if value is not MISSING:
            merged[key] = value
    return merged


def _updates(current: dict[str, str], merged: dict[str, str]) -> dict[str, str | None]:
    """What turns ``current`` into ``merged``: {key: line, or None to drop}."""
    changes: dict[str, str | None] = {key: None for key in current if key not in merged}
    changes.update({key: line for key, line in merged.items() if current.get(key) != line})
    return dict(sorted(changes.items()))


def _start(base: bytes | None, ours: bytes | None, theirs: bytes | None, skeleton: bytes, keys,
           kind: str | None = None, slug: str = ""):
    """The page to apply the merged keys to, and which side it is: "ours", "theirs" or "rest"
    (the merged rest of the page, holding no keyed lines)."""
    b, o, t = (_rest(side if side is not None else skeleton, keys, kind, slug) for side in (base, ours, theirs))
    if _same(b, t) or _same(o, t):
        return ours, "ours"
    if _same(o, b):
        return theirs, "theirs"
    return merge_text(b.encode("utf-8"), o.encode("utf-8"), t.encode("utf-8")), "rest"


def merge_shared_page(kind: str, slug: str, base: bytes | None, ours: bytes | None,
                      theirs: bytes | None) -> bytes | None:
    """Three-way merge of `wiki/<kind>/<slug>.md` (a concept or entity page) by contributing
    document; None when no source and no text of the user's remains (the page is then deleted)."""
    sides = [_lines(side, _SHARED_KEYS)[0][MENTIONS] for side in (base, ours, theirs)]
    merged = _merge_keys("the mention of", *sides)
    fm, lines = shared_skeleton(kind, slug)
    skeleton = (dump_frontmatter(fm) + "\n" + "\n".join(lines) + "\n").encode("utf-8")
    page, start = _start(base, ours, theirs, skeleton, _SHARED_KEYS, kind, slug)
    current = {"ours": sides[1], "theirs": sides[2], "rest": {}}[start]
    if start == "rest" and not merged:
        return None if _same(page.decode("utf-8"), _rest(skeleton, _SHARED_KEYS, kind, slug)) else page
    for doc, line in _updates(current, merged).items():
        contribution = None
        if line is not None:
            contribution = Contribution(phrase=phrase_of(slug), snippet=mention_text(line, doc))
        page = update_shared_page(page, kind, slug, doc, contribution)
    generated = {generated_description(side, kind, slug) for side in (base, ours, theirs)} - {None, ""}
    return refresh_description(page, kind, slug, generated)


def merge_concept_page(slug: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    return merge_shared_page("concepts", slug, base, ours, theirs)


def _shared_key(key: str) -> tuple[str, str]:
    """(kind, slug) of a key of ``pages``: a page path (`wiki/<kind>/<slug>.md`) or a bare concept slug."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "wiki" and parts[1] in KINDS and parts[2].endswith(".md"):
        return parts[1], parts[2][:-3]
    return "concepts", key


def merge_index(base: bytes | None, ours: bytes | None, theirs: bytes | None,
                pages: dict[str, object] | None = None, page_of=None) -> bytes:
    """Three-way merge of `wiki/index.md`: document lines keyed by link target; concept and
    entity lines keyed likewise; given ``pages`` ({path of a shared page the merge changed:
    the page after the merge, None when deleted}), the lines of those pages are set from them
    (their descriptions: a brief is derived data, so two sides that changed it are no conflict),
    the other lines still merged by key (a hand edit of one on either side is kept); where both
    sides changed such a line differently, ``page_of(kind, slug)`` (the page as the merge leaves
    it, None when absent) settles it: the line its page gives. (A bare slug mapped to
    True/False says only whether a concept page exists.)"""
    sides = [_lines(side, _INDEX_KEYS)[0] for side in (base, ours, theirs)]
    docs = _merge_keys("the index line of", *(side[DOCUMENTS] for side in sides))
    shared: dict[str, dict[str, str]] = {}
    for kind, (_folder, _type, section) in KINDS.items():
        if pages is None:
            shared[section] = _merge_keys("the index line of", *(side[section] for side in sides))
            continue
        followed = {slug for page_kind, slug in map(_shared_key, pages) if page_kind == kind}
        def settle(slug, kind=kind):
            line = shared_index_line(kind, slug, page_of(kind, slug))
            return MISSING if line is None else line

        lines = _merge_keys("the index line of", *({k: v for k, v in side[section].items() if k not in followed}
                                                   for side in sides), settle if page_of is not None else None)
        for key, page in pages.items():
            page_kind, slug = _shared_key(key)
            if page_kind != kind:
                continue
            if page is True:
                line = lines.get(slug) or concept_index_line(slug)
            elif page is False or page is None:
                line = None
            else:
                line = shared_index_line(kind, slug, page)
            if line is None:
                lines.pop(slug, None)
            else:
                lines[slug] = line
        shared[section] = lines
    skeleton = ("\n".join(INDEX_SKELETON) + "\n").encode("utf-8")
    page, start = _start(base, ours, theirs, skeleton, _INDEX_KEYS)
    current = {"ours": sides[1], "theirs": sides[2], "rest": {DOCUMENTS: {}, CONCEPTS: {}, ENTITIES: {}}}[start]
    return update_index(page, docs=_updates(current[DOCUMENTS], docs),
                        concepts=_updates(current[CONCEPTS], shared[CONCEPTS]),
                        entities=_updates(current[ENTITIES], shared[ENTITIES]))


__all__ = ["merge_concept_page", "merge_index", "merge_shared_page"]
