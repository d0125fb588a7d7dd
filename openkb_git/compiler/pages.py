"""Rendering and updating the wiki's pages.

Shared pages (concept pages, the index) are canonical renderings of a set of keyed
lines: a line per contributing document, sorted. Updating one key re-renders only that
section, so any order of additions and removals gives the same bytes, and text a user
added outside the managed sections is left as it is.
"""

from __future__ import annotations

import bisect

from ..frontmatter import dump as dump_frontmatter, split as split_frontmatter

MENTIONS = "## Mentions"
DOCUMENTS = "## Documents"
CONCEPTS = "## Concepts"


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def display(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def phrase_of(slug: str) -> str:
    return slug.replace("-", " ")


# -- keyed sections -------------------------------------------------------------------


def _section_bounds(lines: list[str], heading: str) -> tuple[int, int] | None:
    """(index of the heading line, index after the section's last line) or None."""
    try:
        start = lines.index(heading)
    except ValueError:
        return None
    end = start + 1
    while end < len(lines) and not lines[end].startswith(("## ", "# ")):
        end += 1
    return start, end


def _set_keyed(lines: list[str], heading: str, prefix: str, updates: dict[str, str | None]) -> list[str]:
    """Set (or drop, for None) the bullet ``prefix + key + "]]"…`` for each key, in the
    section ``heading`` (created at the end when missing). Bullets stay sorted."""
    bounds = _section_bounds(lines, heading)
    if bounds is None:
        if lines and lines[-1] != "":
            lines.append("")
        lines += [heading, ""]
        bounds = (len(lines) - 2, len(lines))
    start, end = bounds
    body = lines[start + 1:end]
    while body and body[-1] == "":
        body.pop()
    bullets = [line for line in body if line.startswith(prefix)]
    other = [line for line in body if not line.startswith(prefix) and line != ""]
    bullets.sort()
    for key, line in sorted(updates.items()):
        marker = f"{prefix}{key}]]"
        at = bisect.bisect_left(bullets, marker)
        while at < len(bullets) and bullets[at].startswith(marker):
            if bullets[at][len(marker):len(marker) + 1] in ("", " ", ":"):
                del bullets[at]
            else:
                at += 1
        if line is not None:
            bisect.insort(bullets, line)
    section = [heading, ""] + other + ([""] if other and bullets else []) + bullets
    if end < len(lines):
        section.append("")
    return lines[:start] + section + lines[end:]


# -- concept pages --------------------------------------------------------------------


def mention_line(doc: str, snippet: str) -> str:
    return f"- [[summaries/{doc}]]: {one_line(snippet)}".rstrip()


def concept_skeleton(slug: str) -> tuple[dict, list[str]]:
    title = display(phrase_of(slug))
    return {"title": title, "sources": []}, [f"# {title}", "", MENTIONS, ""]


def update_concept_page(existing: bytes | None, slug: str, doc: str, contribution) -> bytes | None:
    """Set (``contribution``) or remove (None) ``doc``'s mention on concept page ``slug``.

    Returns the page, or None when no source remains and the page holds nothing but
    the generated skeleton (then it should be deleted)."""
    if existing is None:
        if contribution is None:
            return None
        frontmatter, lines = concept_skeleton(slug)
    else:
        fm, body = split_frontmatter(existing.decode("utf-8"))
        frontmatter = fm if fm is not None else {}
        lines = body.split("\n")
        if lines and lines[0] == "":
            lines = lines[1:]
        while lines and lines[-1] == "":
            lines.pop()
    sources = set(frontmatter.get("sources") or [])
    if contribution is None:
        sources.discard(doc)
    else:
        sources.add(doc)
    frontmatter.setdefault("title", display(phrase_of(slug)))
    frontmatter["sources"] = sorted(sources)
    line = mention_line(doc, contribution.snippet) if contribution is not None else None
    lines = _set_keyed(lines, MENTIONS, "- [[summaries/", {doc: line})
    while lines and lines[-1] == "":
        lines.pop()
    if not sources and _is_skeleton(frontmatter, lines, slug):
        return None
    return (dump_frontmatter(frontmatter) + "\n" + "\n".join(lines) + "\n").encode("utf-8")


def _is_skeleton(frontmatter: dict, lines: list[str], slug: str) -> bool:
    """The concept page holds what `concept_skeleton` generates and nothing of the user's."""
    skeleton_fm, skeleton_lines = concept_skeleton(slug)
    if set(frontmatter) - {"title", "sources"} or frontmatter.get("title") != skeleton_fm["title"]:
        return False
    return [line for line in lines if line] == [line for line in skeleton_lines if line]


# -- the index ------------------------------------------------------------------------

INDEX_SKELETON = ["# Index", "", DOCUMENTS, "", CONCEPTS]


def concept_index_line(slug: str) -> str:
    return f"- [[concepts/{slug}]] — {display(phrase_of(slug))}"


def update_index(existing: bytes | None = None, *, docs: dict | None = None, concepts: dict | None = None) -> bytes:
    """Set or drop document lines (``docs``: doc -> line or None) and concept lines
    (``concepts``: slug -> True to list it, False to drop it) in wiki/index.md."""
    if existing is not None:
        fast = _update_index_in_place(existing, docs, concepts)
        if fast is not None:
            return fast
    return _render_index(existing, docs, concepts)


def _render_index(existing: bytes | None, docs: dict | None, concepts: dict | None) -> bytes:
    """update_index line by line: any shape of page (sections missing, hand-added text)."""
    if existing is None:
        lines = list(INDEX_SKELETON)
    else:
        lines = existing.decode("utf-8").split("\n")
        while lines and lines[-1] == "":
            lines.pop()
    if docs or existing is None:
        lines = _set_keyed(lines, DOCUMENTS, "- [[summaries/", dict(docs or {}))
    if concepts or existing is None:
        updates = {slug: (concept_index_line(slug) if present else None) for slug, present in (concepts or {}).items()}
        lines = _set_keyed(lines, CONCEPTS, "- [[concepts/", updates)
    while lines and lines[-1] == "":
        lines.pop()
    return ("\n".join(lines) + "\n").encode("utf-8")


def _update_index_in_place(existing: bytes, docs: dict | None, concepts: dict | None) -> bytes | None:
    """update_index for an index whose sections are in canonical form (what openkb writes:
    the heading, one blank line, sorted bullets and nothing else), by splicing the
    bullets changed into the bytes; None for any other shape (update_index then re-renders
    the page line by line). The bytes are the same either way (UTF-8 sorts as the code
    points do); the index of a KB of N documents holds N + concepts lines, and this spares
    decoding them and a pass over them in Python."""
    text = existing
    if not text.endswith(b"\n") or text.endswith(b"\n\n"):
        return None
    for heading, prefix, updates in (
            (DOCUMENTS, "- [[summaries/", dict(docs or {})),
            (CONCEPTS, "- [[concepts/", {slug: (concept_index_line(slug) if present else None)
                                         for slug, present in (concepts or {}).items()})):
        if not updates:
            continue
        text = _splice_keyed(text, heading.encode(), prefix.encode(),
                             {key.encode("utf-8"): None if line is None else line.encode("utf-8")
                              for key, line in updates.items()})
        if text is None:
            return None
    return text


def _splice_keyed(text: bytes, heading: bytes, prefix: bytes, updates: dict[bytes, bytes | None]) -> bytes | None:
    """_set_keyed on the bytes of a page ending with one newline, for a canonical section."""
    if text.startswith(heading + b"\n"):
        start = 0
    else:
        start = text.find(b"\n" + heading + b"\n") + 1
        if start == 0:
            return None  # missing: the slow path creates it
    if text.find(heading + b"\n") != start:
        return None  # an earlier line holds the heading text as its tail: let the slow path decide
    body = start + len(heading) + 1
    ends = [at + 1 for at in (text.find(b"\n# ", body - 1), text.find(b"\n## ", body - 1)) if at != -1]
    end = min(ends) if ends else len(text)
    # Canonical: "\n" + bullets joined by "\n" + "\n" (+ "\n" before a following heading).
    tail = b"\n" if end == len(text) else b"\n\n"
    first, stop = body + 1, end - len(tail)
    if (stop <= first or text[body:first] != b"\n" or not text.startswith(tail, stop)
            or not text.startswith(prefix, first)
            or text.count(b"\n", first, stop) != text.count(b"\n" + prefix, first, stop)):
        return None
    bullets = text[first:stop].split(b"\n")
    if bullets != sorted(bullets):
        return None
    for key, line in sorted(updates.items()):
        marker = prefix + key + b"]]"
        at = bisect.bisect_left(bullets, marker)
        while at < len(bullets) and bullets[at].startswith(marker):
            if bullets[at][len(marker):len(marker) + 1] in (b"", b" ", b":"):
                del bullets[at]
            else:
                at += 1
        if line is not None:
            bisect.insort(bullets, line)
    if not bullets:
        return None  # an emptied section: its exact shape is the slow path's
    return b"".join((text[:body], b"\n", b"\n".join(bullets), tail, text[end:]))


def index_line(doc: str, title: str) -> str:
    return f"- [[summaries/{doc}]] — {one_line(title) or doc}"


# -- summary pages --------------------------------------------------------------------


def render_summary(doc: str, *, title: str, doc_type: str, source_path: str, pages: int | None,
                   concepts: list[str], summary: list[str], headings: list[tuple[int, str]]) -> bytes:
    frontmatter: dict = {"doc": doc, "title": one_line(title), "type": doc_type, "source": source_path}
    if pages is not None:
        frontmatter["pages"] = pages
    frontmatter["concepts"] = list(concepts)
    out = [f"# {one_line(title)}", "", "## Summary", ""]
    out += [" ".join(summary) if summary else "(no text to summarize)", ""]
    outline = _outline(headings)
    if outline:
        out += ["## Outline", ""] + outline + [""]
    out += ["## Concepts", ""]
    out += sorted(f"- [[concepts/{slug}]]" for slug in concepts)
    while out and out[-1] == "":
        out.pop()
    return (dump_frontmatter(frontmatter) + "\n" + "\n".join(out) + "\n").encode("utf-8")


def _outline(headings: list[tuple[int, str]], limit: int = 50) -> list[str]:
    items = [(level, one_line(text)) for level, text in headings if one_line(text)][:limit]
    if not items:
        return []
    top = min(level for level, _ in items)
    out = []
    previous = 0
    for level, text in items:
        depth = min(level - top, previous + 1)
        out.append("  " * depth + f"- {text}")
        previous = depth
    return out
