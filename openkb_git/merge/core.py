"""Three-way merge drivers. Sides are bytes or None (absent)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import merge3
import yaml

from ..compiler.pages import YAML_LOADER, dump_frontmatter

SET_KEYS = {"sources", "concepts"}
KEYED_SECTIONS = {"Mentions", "Concepts", "Documents"}
_LINK = re.compile(r"^\s*[-*]\s+\[\[([^\]|#]+)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


@dataclass
class MergeConflict:
    """Why a path could not be merged, with both sides' versions in short."""

    path: str
    reason: str
    ours: str = ""
    theirs: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class _Conflict(Exception):
    def __init__(self, reason: str, ours: object = "", theirs: object = ""):
        super().__init__(reason)
        self.reason = reason
        self.ours = _short(ours)
        self.theirs = _short(theirs)


def _short(value: object, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def merge_file(path: str, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None | MergeConflict:
    """Merge one path; see the package docstring for the drivers."""
    if ours == theirs or base in (ours, theirs):
        return _merge_value(path, base, ours, theirs)
    try:
        if path.startswith(".openkb/registry/") and path.endswith(".json"):
            return merge_record(base, ours, theirs)
        if path == "wiki/index.md" or (path.startswith(("wiki/concepts/", "wiki/summaries/")) and path.endswith(".md")):
            return merge_page(base, ours, theirs)
        return merge_text(base, ours, theirs)
    except _Conflict as exc:
        return MergeConflict(path, exc.reason, exc.ours, exc.theirs)


# -- values ---------------------------------------------------------------------


def _merge_value(key: str, base, ours, theirs):
    if ours == theirs:
        return ours
    if base == ours:
        return theirs
    if base == theirs:
        return ours
    raise _Conflict(f"both sides changed {key!r}", ours, theirs)


_MISSING = object()


def _merge_set(base: list, ours: list, theirs: list) -> list:
    b, o, t = set(base), set(ours), set(theirs)
    keep = (o & t) | (o - b) | (t - b)
    return sorted(keep)


def merge_mapping(base: dict, ours: dict, theirs: dict, *, set_keys=frozenset()) -> dict:
    """Key-by-key three-way merge; list-valued ``set_keys`` merge as sets. Order: ours, then new keys."""
    out: dict = {}
    for key in list(ours) + [k for k in theirs if k not in ours]:
        b, o, t = base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING)
        if key in set_keys and all(isinstance(v, list) or v is _MISSING for v in (b, o, t)):
            value = _merge_set(*(v if v is not _MISSING else [] for v in (b, o, t)))
            if value or (o is not _MISSING and t is not _MISSING):
                out[key] = value
            continue
        value = _merge_value(key, b, o, t)
        if value is not _MISSING:
            out[key] = value
    return out


# -- registry records -------------------------------------------------------------


def merge_record(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    if ours is None or theirs is None:
        raise _Conflict("one side deletes the record, the other changes it",
                        "deleted" if ours is None else ours.decode(), "deleted" if theirs is None else theirs.decode())
    b = json.loads(base) if base else {}
    merged = merge_mapping(b, json.loads(ours), json.loads(theirs), set_keys=SET_KEYS)
    return (json.dumps(merged, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# -- plain text --------------------------------------------------------------------


def merge_text(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Line-level three-way merge; raises on overlapping changes or delete/modify."""
    if ours is None or theirs is None:
        raise _Conflict("one side deletes the file, the other changes it",
                        "deleted" if ours is None else ours.decode("utf-8", "replace"),
                        "deleted" if theirs is None else theirs.decode("utf-8", "replace"))
    lines = _merge_lines((base or b"").decode("utf-8").splitlines(True), ours.decode("utf-8").splitlines(True),
                         theirs.decode("utf-8").splitlines(True), "text")
    return "".join(lines).encode("utf-8")


def _merge_lines(base: list[str], ours: list[str], theirs: list[str], where: str) -> list[str]:
    out: list[str] = []
    for group in merge3.Merge3(base, ours, theirs).merge_groups():
        if group[0] == "conflict":
            _tag, _b, o, t = group
            raise _Conflict(f"overlapping edits in {where}", "".join(o), "".join(t))
        out.extend(group[1])
    return out


# -- compiled pages and the index --------------------------------------------------


@dataclass
class _Page:
    frontmatter: dict | None
    preamble: list[str]
    sections: list[tuple[str, list[str]]]  # (heading line, lines after it)


def _parse(data: bytes | None) -> _Page:
    if data is None:
        return _Page(None, [], [])
    text = data.decode("utf-8")
    frontmatter = None
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            loaded = yaml.load(text[4:end + 1], Loader=YAML_LOADER)
            frontmatter = loaded if isinstance(loaded, dict) else {}
            text = text[end + 5:]
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
        value = _merge_value(f"[[{key}]] in ## {name}", b.get(key, _MISSING), o.get(key, _MISSING), t.get(key, _MISSING))
        if value is not _MISSING:
            merged[key] = value
    other = _merge_lines(b_other, o_other, t_other, f"## {name}")
    lines = ["\n"] + other + (["\n"] if other else [])
    lines += [merged[k] for k in sorted(merged)]
    if merged:
        lines.append("\n")
    return lines


def merge_page(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Merge a compiled page (or the index). An absent side counts as an empty page; when the
    result has neither frontmatter nor content it is deleted."""
    b, o, t = _parse(base), _parse(ours), _parse(theirs)
    if (ours is None or theirs is None) and base is None:
        raise _Conflict("both sides created the file differently", ours or b"", theirs or b"")
    fm = None
    if any(p.frontmatter is not None for p in (o, t)):
        fm = merge_mapping(b.frontmatter or {}, o.frontmatter or {}, t.frontmatter or {}, set_keys=SET_KEYS)
    # A side that deleted the page contributes an empty skeleton: take the skeleton from the other.
    if ours is None:
        o = _Page(o.frontmatter, list(b.preamble), [(h, []) for h, _ in b.sections])
    if theirs is None:
        t = _Page(t.frontmatter, list(b.preamble), [(h, []) for h, _ in b.sections])
    preamble = _merge_lines(b.preamble, o.preamble, t.preamble, "the page heading")
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
                raise _Conflict(f"one side removed section {heading.strip()!r}, the other changed it",
                                "".join(ol or []), "".join(tl or []))
            sections += [heading, *present]
            continue
        name = _section_name(heading)
        if name in KEYED_SECTIONS:
            merged = _merge_keyed_section(name, bl or [], ol, tl)
        else:
            merged = _merge_lines(bl or [], ol, tl, f"section {heading.strip()!r}")
        sections += [heading, *merged]
    body = "".join(preamble + sections)
    if fm is not None and not fm.get("sources", True) and _is_skeleton(preamble, sections):
        return None
    if fm is None and not body.strip():
        return None
    out = ""
    if fm is not None:
        out = dump_frontmatter(fm)
    return (out + body).encode("utf-8")


def _is_skeleton(preamble: list[str], sections: list[str]) -> bool:
    """No bullets and nothing but headings and blank lines: a page with no content of its own."""
    for line in preamble + sections:
        if line.strip() and not _HEADING.match(line):
            return False
    return True
