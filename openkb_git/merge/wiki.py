"""Merges of the shared wiki pages through the compiler, so a merged page is byte for byte
what the compiler would write for the merged set of contributions.

A concept page's contributions are its `## Mentions` bullets keyed by `[[summaries/<doc>]]`;
the index's are its `## Documents` lines keyed by `[[summaries/<doc>]]` and its
`## Concepts` lines keyed by `[[concepts/<slug>]]`. Each key is merged three-way; the
result is "ours" with exactly the keys that changed re-applied by the compiler, so text
the user wrote elsewhere on the page stays as it is in ours.
"""

from __future__ import annotations

import re

from ..compiler import Contribution, update_concept_page, update_index
from .core import _MISSING, _Conflict, _merge_value

_MENTION = re.compile(r"^- \[\[summaries/([^\]]+)\]\]:? ?(.*)$")
_DOC_LINE = re.compile(r"^- \[\[summaries/([^\]]+)\]\]")
_CONCEPT_LINE = re.compile(r"^- \[\[concepts/([^\]]+)\]\]")


def _keyed_lines(data: bytes | None, pattern: re.Pattern, section: str | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    if data is None:
        return out
    current = None
    for line in data.decode("utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            continue
        if section is not None and current != section:
            continue
        match = pattern.match(line)
        if match:
            out[match.group(1)] = line
    return out


def _merge_keys(what: str, b: dict, o: dict, t: dict) -> dict[str, str | None]:
    """Keys whose merged value differs from ours: {key: merged line, or None to drop}."""
    changes: dict[str, str | None] = {}
    for key in sorted(set(b) | set(o) | set(t)):
        value = _merge_value(f"{what} [[{key}]]", b.get(key, _MISSING), o.get(key, _MISSING), t.get(key, _MISSING))
        if value is _MISSING:
            if key in o:
                changes[key] = None
        elif o.get(key) != value:
            changes[key] = value
    return changes


def phrase_of(slug: str) -> str:
    return slug.replace("-", " ")


def merge_concept_page(slug: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Three-way merge of `wiki/concepts/<slug>.md` by contributing document."""
    changes = _merge_keys("the mention of", _keyed_lines(base, _MENTION), _keyed_lines(ours, _MENTION),
                          _keyed_lines(theirs, _MENTION))
    page = ours
    for doc, line in changes.items():
        contribution = None
        if line is not None:
            contribution = Contribution(phrase=phrase_of(slug), snippet=_MENTION.match(line).group(2))
        page = update_concept_page(page, slug, doc, contribution)
    return page


def merge_index(base: bytes | None, ours: bytes | None, theirs: bytes | None,
                concept_exists: dict[str, bool] | None = None) -> bytes:
    """Three-way merge of `wiki/index.md`: document lines keyed by link target; concept lines
    keyed likewise, or set from ``concept_exists`` ({slug: page exists after the merge})."""
    docs = _merge_keys("the index line of", _keyed_lines(base, _DOC_LINE, "Documents"),
                       _keyed_lines(ours, _DOC_LINE, "Documents"), _keyed_lines(theirs, _DOC_LINE, "Documents"))
    if concept_exists is None:
        concept_lines = _merge_keys("the index line of", _keyed_lines(base, _CONCEPT_LINE, "Concepts"),
                                    _keyed_lines(ours, _CONCEPT_LINE, "Concepts"),
                                    _keyed_lines(theirs, _CONCEPT_LINE, "Concepts"))
        concepts = {slug: line is not None for slug, line in concept_lines.items()}
    else:
        present = set(_keyed_lines(ours, _CONCEPT_LINE, "Concepts"))
        concepts = {slug: exists for slug, exists in concept_exists.items() if exists != (slug in present)}
    return update_index(ours, docs=docs, concepts=concepts)


__all__ = ["merge_concept_page", "merge_index", "_Conflict"]
