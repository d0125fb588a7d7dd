"""The generic three-way merges: values, mappings, registry records, line-level text, and
structured Markdown pages (the summaries). Sides are bytes or None (absent). The shared
pages (concept pages, the index) merge through the compiler: see merge/wiki.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import merge3

from ..errors import OpenKBError
from ..compiler.pages import dump_frontmatter  # OpenKB's frontmatter lines, as the compiler writes them
from ..frontmatter import split as split_frontmatter

SET_KEYS = {"sources", "concepts"}
KEYED_SECTIONS = {"Related Concepts", "Entities", "Concepts"}  # a summary's `- [[concepts/<slug>]]` and
# `- [[entities/<slug>]]` lists ("Concepts": a summary of a version before OpenKB's format)
_LINK = re.compile(r"^\s*[-*]\s+\[\[([^\]|#]+)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
MISSING = object()  # a key or value absent on one side


class MergeConflict(OpenKBError):
    """A path that cannot be merged: why, and both sides' versions in short.

    The drivers raise it (``path`` is filled in by `openkb_git.merge.merge_file`, which
    returns it); `openkb revert` lists every one and changes nothing (docs/revert.md)."""

    def __init__(self, reason: str, ours: object = "", theirs: object = "", path: str = ""):
        super().__init__(reason)
        self.path = path
        self.reason = reason
        self.ours = _short(ours)
        self.theirs = _short(theirs)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def _short(value: object, limit: int = 160) -> str:
    if value is MISSING:
        return "(absent)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- values ---------------------------------------------------------------------


def merge_value(key: str, base, ours, theirs):
    """Three-way merge of one value (MISSING for absent); raises MergeConflict when both
    sides changed it differently."""
    if ours == theirs:
        return ours
    if base == ours:
        return theirs
    if base == theirs:
        return ours
    raise MergeConflict(f"both sides changed {key!r}", ours, theirs)



def _merge_set(base: list, ours: list, theirs: list) -> list:
    b, o, t = set(base), set(ours), set(theirs)
    keep = (o & t) | (o - b) | (t - b)
    return sorted(keep)


def merge_mapping(base: dict, ours: dict, theirs: dict, *, set_keys=frozenset()) -> dict:
    """Key-by-key three-way merge; list-valued ``set_keys`` merge as sets. Order: ours, then new keys."""
    out: dict = {}
    for key in list(ours) + [k for k in theirs if k not in ours]:
        b, o, t = base.get(key, MISSING), ours.get(key, MISSING), theirs.get(key, MISSING)
        if key in set_keys and all(isinstance(v, list) or v is MISSING for v in (b, o, t)):
            value = _merge_set(*(v if v is not MISSING else [] for v in (b, o, t)))
            if value or (o is not MISSING and t is not MISSING):
                out[key] = value
            continue
        value = merge_value(key, b, o, t)
        if value is not MISSING:
            out[key] = value
    return out


# -- registry records -------------------------------------------------------------


def merge_record(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    if ours is None or theirs is None:
        raise MergeConflict("one side deletes the record, the other changes it",
                            "deleted" if ours is None else ours.decode(), "deleted" if theirs is None else theirs.decode())
    b = json.loads(base) if base else {}
    o, t = json.loads(ours), json.loads(theirs)
    if not base and isinstance(o, dict) and isinstance(t, dict) and o.get("sha256") and \
            _apart_from_source(o) == _apart_from_source(t):
        # Both sides added one content under one name, each found at its own source path (another
        # folder, another machine): one document, as one KB says "duplicate". The source path first
        # in sort order keeps the record, the same choice on every side.
        merged = min(o, t, key=lambda record: str(record.get("path")))
    else:
        merged = merge_mapping(b, o, t, set_keys=SET_KEYS)
    return (json.dumps(merged, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


_SOURCE_FIELDS = ("path", "name")  # where the file was found and what it was called there


def _apart_from_source(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in _SOURCE_FIELDS}


# -- plain text --------------------------------------------------------------------


def merge_text(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Line-level three-way merge; raises on overlapping changes or delete/modify."""
    if ours is None or theirs is None:
        raise MergeConflict("one side deletes the file, the other changes it",
                            "deleted" if ours is None else ours.decode("utf-8", "replace"),
                            "deleted" if theirs is None else theirs.decode("utf-8", "replace"))
    lines = merge_lines((base or b"").decode("utf-8").splitlines(True), ours.decode("utf-8").splitlines(True),
                         theirs.decode("utf-8").splitlines(True), "text")
    return "".join(lines).encode("utf-8")


def merge_lines(base: list[str], ours: list[str], theirs: list[str], where: str) -> list[str]:
    out: list[str] = []
    for group in merge3.Merge3(base, ours, theirs).merge_groups():
        if group[0] == "conflict":
            _tag, _b, o, t = group
            raise MergeConflict(f"overlapping edits in {where}", "".join(o), "".join(t))
        out.extend(group[1])
    return out


# -- structured pages (summaries) ---------------------------------------------------


@dataclass
class _Page:
    frontmatter: dict | None
    preamble: list[str]
    sections: list[tuple[str, list[str]]]  # (heading line, lines after it)


def _parse(data: bytes | None) -> _Page:
    if data is None:
        return _Page(None, [], [])
    frontmatter, text = split_frontmatter(data.decode("utf-8"))
    preamble: list[str] = []
    sections: list[tuple[str, list[str]]] = []
    for line in text.splitlines(True):
        match = _HEADING.match(line)
        if match and len(match.group(1)) == 2:
            sections.append((line, []))
        elif sections:
            sections[-1][1].append(line)
        else:
            preamble.append(line)
    return _Page(frontmatter, preamble, sections)


def _section_name(heading: str) -> str:
    return _HEADING.match(heading).group(2)


def _bullets(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """Bullets keyed by link target, and the other lines (blank lines dropped)."""
    keyed: dict[str, str] = {}
    other: list[str] = []
    for line in lines:
        match = _LINK.match(line)
        if match:
            keyed[match.group(1).strip()] = line if line.endswith("\n") else line + "\n"
        elif line.strip():
            other.append(line)
    return keyed, other


def _merge_keyed_section(name: str, base: list[str], ours: list[str], theirs: list[str]) -> list[str]:
    b, b_other = _bullets(base)
    o, o_other = _bullets(ours)
    t, t_other = _bullets(theirs)
    merged: dict[str, str] = {}
    for key in sorted(set(b) | set(o) | set(t)):
        value = merge_value(f"[[{key}]] in ## {name}", b.get(key, MISSING), o.get(key, MISSING), t.get(key, MISSING))
        if value is not MISSING:
            merged[key] = value
    other = merge_lines(b_other, o_other, t_other, f"## {name}")
    lines = ["\n"] + other + (["\n"] if other else [])
    lines += [merged[k] for k in sorted(merged)]
    if merged:
        lines.append("\n")
    return lines


def merge_page(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Merge a structured Markdown page (a summary): frontmatter key by key (`concepts:` and
    `sources:` as sets), bullets of keyed sections by link target, other text line by line.
    An absent side counts as an empty page; a result with neither frontmatter nor content
    is deleted (None)."""
    b, o, t = _parse(base), _parse(ours), _parse(theirs)
    if (ours is None or theirs is None) and base is None:
        raise MergeConflict("both sides created the file differently", ours or b"", theirs or b"")
    fm = None
    if any(p.frontmatter is not None for p in (o, t)):
        fm = merge_mapping(b.frontmatter or {}, o.frontmatter or {}, t.frontmatter or {}, set_keys=SET_KEYS)
    # A side that deleted the page contributes an empty skeleton: take the skeleton from the other.
    if ours is None:
        o = _Page(o.frontmatter, list(b.preamble), [(h, []) for h, _ in b.sections])
    if theirs is None:
        t = _Page(t.frontmatter, list(b.preamble), [(h, []) for h, _ in b.sections])
    preamble = merge_lines(b.preamble, o.preamble, t.preamble, "the page heading")
    b_map = {h: lines for h, lines in b.sections}
    o_map = {h: lines for h, lines in o.sections}
    t_map = {h: lines for h, lines in t.sections}
    order = [h for h, _ in o.sections] + [h for h, _ in t.sections if h not in o_map]
    sections: list[str] = []
    for heading in order:
        bl, ol, tl = b_map.get(heading), o_map.get(heading), t_map.get(heading)
        if ol is None or tl is None:
            present = ol if ol is not None else tl
            if bl is not None and present == bl:
                continue  # removed on one side, unchanged on the other
            if bl is not None:
                raise MergeConflict(f"one side removed section {heading.strip()!r}, the other changed it",
                                    "".join(ol or []), "".join(tl or []))
            sections += [heading, *present]
            continue
        name = _section_name(heading)
        if name in KEYED_SECTIONS:
            merged = _merge_keyed_section(name, bl or [], ol, tl)
        else:
            merged = merge_lines(bl or [], ol, tl, f"section {heading.strip()!r}")
        sections += [heading, *merged]
    body = "".join(preamble + sections)
    if fm is None and not body.strip():
        return None
    return ((dump_frontmatter(fm) if fm is not None else "") + body).encode("utf-8")
