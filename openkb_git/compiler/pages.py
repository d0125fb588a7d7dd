"""Rendering and updating the wiki's pages, in OpenKB 0.4.5's format (docs/layout.md).

- a summary, `wiki/summaries/<doc>.md`: frontmatter `type: "Summary"`, `description`,
  `doc_type` (short | pageindex), `full_text` (`sources/<doc>.md` or `.json`); its body ends
  with `## Related Concepts` and `## Entities`, links to the pages the document contributes to;
- a concept page, `wiki/concepts/<slug>.md`: `type: "Concept"`, `sources` (the contributing
  summaries, `summaries/<doc>.md`, on one line as OpenKB writes them), `description`; its
  `## Related Documents` holds one bullet per contributing document, `- [[summaries/<doc>]]:`
  and what that document says about the concept;
- an entity page, `wiki/entities/<slug>.md`: the same, with `sources` first and the entity's
  type (`type: "Other"` unless the compiler knows better);
- `wiki/index.md`: `## Documents` (`- [[summaries/<doc>]] (short) — <description>`),
  `## Concepts` (`- [[concepts/<slug>]] — <description>`), `## Entities`
  (`- [[entities/<slug>]] (<type>) — <description>`), `## Explorations`.

Shared pages (concept and entity pages, the index) are canonical renderings of a set of keyed
lines, one per contribution, sorted. Updating one key touches only that key's line, in place:
any order of additions and removals gives the same bytes, and text a user added anywhere on
the page keeps its place (a new line goes next to its sorted neighbours, never moving theirs).
A page's generated description is a function of its lines; one the user rewrote is kept.
"""

from __future__ import annotations

import base64
import bisect
import datetime
import json
import math
import re
from collections import OrderedDict

from ..frontmatter import split as split_frontmatter

RELATED_DOCUMENTS = "## Related Documents"
RELATED_CONCEPTS = "## Related Concepts"
ENTITIES = "## Entities"
DOCUMENTS = "## Documents"
CONCEPTS = "## Concepts"
EXPLORATIONS = "## Explorations"
MENTIONS = RELATED_DOCUMENTS  # a shared page's contributions (earlier versions: "## Mentions")
LEGACY_MENTIONS = "## Mentions"

SUMMARY_PREFIX = "- [[summaries/"

# page kind -> (folder, frontmatter type, index section)
KINDS = {"concepts": ("concepts", "Concept", CONCEPTS), "entities": ("entities", "Other", ENTITIES)}


def one_line(text: str) -> str:
    """``text`` on one line, a document's own `[[`/`]]` (e.g. bash's `[[ -d x ]]`) escaped: in a
    page they would read as a wikilink (OpenKB's lint reports it broken)."""
    return " ".join(str(text).split()).replace("[[", "\\[\\[").replace("]]", "\\]\\]")


def display(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def phrase_of(slug: str) -> str:
    return slug.replace("-", " ")


def page_title(kind: str, slug: str) -> str:
    """The `# title` of a shared page: a function of its slug only."""
    if kind == "entities":
        return " ".join(display(word) for word in phrase_of(slug).split())
    return display(phrase_of(slug))


def clip(text: str, limit: int) -> str:
    text = one_line(text)
    if len(text) <= limit:
        return text
    return text[:limit - 1].rsplit(" ", 1)[0] + "…"


def dump_frontmatter(data: dict) -> str:
    """The frontmatter block as OpenKB writes it: one `key: <JSON value>` line per key, in
    order (JSON is YAML; OpenKB's `remove` reads `sources:` from its one line)."""
    return "---\n" + "".join(f"{key}: {_flow_value(value)}\n" for key, value in data.items()) + "---\n"


def _flow_value(value) -> str:
    """``value`` (anything YAML's safe load gives: a page's frontmatter as the user wrote it) on
    one line, as JSON where JSON can say it, and read back by YAML as the same value: a date or
    a time as a YAML timestamp (JSON has none: `created: 2024-01-01`, added by hand to a concept
    page, failed every later document's update of the page), a float with its point (YAML 1.1
    reads `1e+100` as text), bytes as `!!binary`, a set as a list, a character YAML refuses or
    reads as a line break (DEL, NEL, U+2028…) escaped."""
    if isinstance(value, datetime.date):  # a datetime too
        return value.isoformat()
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        return text if "." in mantissa or not e else f"{mantissa}.0e{exponent}"
    if isinstance(value, (bytes, bytearray)):
        return f'!!binary "{base64.b64encode(bytes(value)).decode("ascii")}"'
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(_flow_value(item) for item in items) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flow_value(key)}: {_flow_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, str):  # JSON leaves these as they are: YAML refuses or folds them
        return _NOT_ROUND_TRIP.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(value, ensure_ascii=False))
    return json.dumps(value, ensure_ascii=False)


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


def line_key(line: str, prefix: str) -> str | None:
    """The key of a keyed line ``prefix + key + "]]"`` (followed by nothing, a space or ":")."""
    if not line.startswith(prefix):
        return None
    key, sep, tail = line[len(prefix):].partition("]]")
    if not sep or tail[:1] not in ("", " ", ":") or "|" in key:
        return None
    return key


def _add_section(lines: list[str], heading: str, before: str | None) -> list[str]:
    """``lines`` with an empty section ``heading``: before the section ``before`` when the
    page has it, else at the end."""
    at = lines.index(before) if before is not None and before in lines else None
    if at is None:
        lines = list(lines)
        while lines and lines[-1] == "":
            lines.pop()
        return lines + ([""] if lines else []) + [heading, ""]
    return lines[:at] + [heading, ""] + lines[at:]


def _set_keyed(lines: list[str], heading: str, prefix: str, updates: dict[str, str | None],
               before: str | None = None) -> list[str]:
    """Set (or drop, for None) the line ``prefix + key + "]]"…`` for each key, in the section
    ``heading`` (created when a line is to be set and the page lacks it). Lines are changed in
    place: a new one goes right after the greatest line below it (or before the least, or,
    in a section without any, after its text); other lines keep their order and place."""
    bounds = _section_bounds(lines, heading)
    if bounds is None:
        if all(line is None for line in updates.values()):
            return lines
        lines = _add_section(lines, heading, before)
        bounds = _section_bounds(lines, heading)
    start, end = bounds
    body = lines[start + 1:end]
    for key, line in sorted(updates.items()):
        marker = f"{prefix}{key}]]"
        at = 0
        while at < len(body):
            if body[at].startswith(marker) and body[at][len(marker):len(marker) + 1] in ("", " ", ":"):
                del body[at]
                if 0 < at < len(body) and body[at - 1] == "" and body[at] == "":
                    del body[at]
            else:
                at += 1
        if line is None:
            continue
        keyed = [i for i, text in enumerate(body) if text.startswith(prefix)]
        below = [i for i in keyed if body[i] < line]
        if below:
            body.insert(below[-1] + 1, line)
        elif keyed:
            body.insert(keyed[0], line)
        else:
            last = max((i for i, text in enumerate(body) if text.strip()), default=-1)
            body[last + 1:last + 1] = ["", line] if last >= 0 else [line]
    if not body or body[0] != "":
        body.insert(0, "")
    while len(body) > 1 and body[-1] == "" and body[-2] == "":
        body.pop()
    if end < len(lines) and body[-1] != "":
        body.append("")
    return lines[:start + 1] + body + lines[end:]


def keyed_lines(lines: list[str], heading: str, prefix: str) -> dict[str, str]:
    """{key: line} of the keyed lines in section ``heading``."""
    bounds = _section_bounds(lines, heading)
    if bounds is None:
        return {}
    out = {}
    for line in lines[bounds[0] + 1:bounds[1]]:
        key = line_key(line, prefix)
        if key is not None:
            out[key] = line
    return out


# -- concept and entity pages ---------------------------------------------------------


def mention_line(doc: str, snippet: str) -> str:
    return f"{SUMMARY_PREFIX}{doc}]]: {one_line(snippet)}".rstrip().rstrip(":")


def mention_text(line: str, doc: str) -> str:
    """What a document's line on a shared page says (the inverse of `mention_line`)."""
    return line[len(f"{SUMMARY_PREFIX}{doc}]]"):].lstrip(":").strip()


def source_of(doc: str) -> str:
    return f"summaries/{doc}.md"


def page_sources(text: str | bytes | None) -> set[str]:
    """The docs a shared page's `sources:` names (its frontmatter, through the one split); a
    page that is no UTF-8 names none."""
    from ..frontmatter import split

    if not isinstance(text, str):
        try:
            text = (text or b"").decode("utf-8")
        except UnicodeDecodeError:
            return set()
    data = split(text)[0] or {}
    sources = data.get("sources")
    return {d for d in map(doc_of_source, sources) if d} if isinstance(sources, list) else set()


def doc_of_source(source: str) -> str | None:
    """The doc of a `sources:` entry: `summaries/<doc>.md` (OpenKB's form) or a bare name."""
    if not isinstance(source, str):
        return None
    if source.startswith("summaries/") and source.endswith(".md"):
        return source[len("summaries/"):-3]
    return source


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def derived_description(kind: str, slug: str, mentions: dict[str, str]) -> str:
    """The description a shared page gets from its documents' lines ({doc: text}): the first
    sentence of the first document (by name) that says something, else where it is named;
    "" for a page without lines."""
    if not mentions:
        return ""
    for doc in sorted(mentions):
        text = one_line(mentions[doc])
        if text:
            return clip(_SENTENCE_END.split(text, 1)[0], 200)
    docs = sorted(mentions)
    more = f" and {len(docs) - 1} more document(s)" if len(docs) > 1 else ""
    return f"{page_title(kind, slug)}, named in {docs[0]}{more}."


def shared_skeleton(kind: str, slug: str) -> tuple[dict, list[str]]:
    _folder, type_, _section = KINDS[kind]
    title = page_title(kind, slug)
    frontmatter = {"sources": []} if kind == "entities" else {"type": type_, "sources": []}
    frontmatter.setdefault("type", type_)
    return frontmatter, [f"# {title}", "", MENTIONS, ""]


def concept_skeleton(slug: str) -> tuple[dict, list[str]]:
    return shared_skeleton("concepts", slug)


def _mentions_of(lines: list[str]) -> dict[str, str]:
    return {doc: mention_text(line, doc) for doc, line in keyed_lines(lines, MENTIONS, SUMMARY_PREFIX).items()}


def update_shared_page(existing: bytes | None, kind: str, slug: str, doc: str, contribution, *,
                       empty: str = "skeleton", unlink: bool = False) -> bytes | None:
    """Set (``contribution``) or remove (None) ``doc``'s line on the shared page ``slug`` of
    ``kind`` ("concepts" or "entities").

    Returns the page, or None when no source remains and the page is to be deleted: by
    ``empty``, when it holds nothing but the generated skeleton ("skeleton"; text added by
    hand keeps it), whatever it holds ("any": OpenKB's rule, for a page OpenKB's own compiler
    wrote, whose text is the document's), or never ("keep": `openkb remove --keep-empty`).
    Removing ``doc`` also drops the `See also: [[summaries/<doc>]]` lines OpenKB writes, and
    with ``unlink`` (OpenKB's compiler wrote the page for ``doc``) every line that links its
    summary: the summary goes, and no broken link stays."""
    if existing is None:
        if contribution is None:
            return None
        frontmatter, lines = shared_skeleton(kind, slug)
    else:
        fm, body = split_frontmatter(existing.decode("utf-8"))
        frontmatter = dict(fm) if fm is not None else {}
        lines = body.split("\n")
        if lines and lines[0] == "":
            lines = lines[1:]
        while lines and lines[-1] == "":
            lines.pop()
        if LEGACY_MENTIONS in lines and MENTIONS not in lines:
            lines[lines.index(LEGACY_MENTIONS)] = MENTIONS
    before = _mentions_of(lines)
    raw_sources = frontmatter.get("sources")
    sources = {d for d in map(doc_of_source, raw_sources if isinstance(raw_sources, list) else []) if d}
    if contribution is None:
        sources.discard(doc)
    else:
        sources.add(doc)
    line = mention_line(doc, contribution.snippet) if contribution is not None else None
    lines = _set_keyed(lines, MENTIONS, SUMMARY_PREFIX, {doc: line})
    if contribution is None:
        see_also = f"See also: [[summaries/{doc}]]"
        lines = [ln for ln in lines if ln.strip() != see_also]
        if unlink:  # OpenKB's model wrote the page: its lines that link the summary go with it
            links = (f"[[summaries/{doc}]]", f"[[summaries/{doc}|")
            lines = [ln for ln in lines if not any(link in ln for link in links)]
    while lines and lines[-1] == "":
        lines.pop()
    after = _mentions_of(lines)
    frontmatter = _shared_frontmatter(frontmatter, kind, slug, sorted(sources), before, after)
    if not sources and empty != "keep" and (empty == "any" or _is_skeleton(frontmatter, lines, kind, slug)):
        return None
    page = (dump_frontmatter(frontmatter) + "\n" + "\n".join(lines) + "\n").encode("utf-8")
    if all(_KEY.match(key) and _plain(value) for key, value in frontmatter.items()):
        # Read back, the page's frontmatter is this mapping (`key: <JSON string or list of
        # strings>` lines YAML reads exactly): its index line needs no parse of it.
        _remember_keys(page, frontmatter)
    return page


# What `json.dumps(ensure_ascii=False)` leaves as it is and PyYAML does not read back as
# itself in a double-quoted scalar: the characters it refuses (not "printable"), those it reads
# as line breaks (folded), the byte-order mark, lone surrogates.
_NOT_ROUND_TRIP = re.compile("[^\x00-\x7E\xA0-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD\U00010000-\U0010FFFF]")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _plain(value) -> bool:
    """A string, or a list of strings, whose JSON text YAML reads back as the same value."""
    if isinstance(value, list):
        return all(isinstance(item, str) and _plain(item) for item in value)
    return isinstance(value, str) and _NOT_ROUND_TRIP.search(value) is None


# The `description` and `type` of the last pages read or written, by their bytes: a document's
# update reads each of its concept pages' index line before and after (a popular concept's page
# lists thousands of sources, whose YAML costs milliseconds), and the page before is the page
# the last document wrote.
_KEYS_MEMO: "OrderedDict[bytes, tuple]" = OrderedDict()
_KEYS_MEMO_SIZE = 256


def _remember_keys(page: bytes, fm: dict | None) -> tuple:
    keys = (fm or {}).get("description"), (fm or {}).get("type")
    _KEYS_MEMO[page] = keys
    if len(_KEYS_MEMO) > _KEYS_MEMO_SIZE:
        _KEYS_MEMO.popitem(last=False)
    return keys


def _page_keys(page: bytes) -> tuple:
    """(description, type) of ``page``'s frontmatter, as YAML gives them (None when absent)."""
    keys = _KEYS_MEMO.get(page)
    if keys is not None:
        _KEYS_MEMO.move_to_end(page)
        return keys
    try:
        fm, _body = split_frontmatter(page.decode("utf-8"))
    except UnicodeDecodeError:
        fm = None
    return _remember_keys(page, fm)


def _shared_frontmatter(existing: dict, kind: str, slug: str, sources: list[str], before: dict, after: dict) -> dict:
    """OpenKB's keys in OpenKB's order (concepts: type, sources, description; entities: sources,
    type, description), then any other key as it was. A description other than the one the
    page's lines gave before (the user's) is kept; the generated one follows the lines."""
    skeleton, _lines = shared_skeleton(kind, slug)
    description = existing.get("description")
    if description in (None, "", derived_description(kind, slug, before)):
        description = derived_description(kind, slug, after)
    type_ = existing.get("type") if isinstance(existing.get("type"), str) and existing.get("type") else skeleton["type"]
    out: dict = {}
    for key in skeleton:
        out[key] = type_ if key == "type" else [source_of(d) for d in sources]
    if description:
        out["description"] = description
    for key, value in existing.items():
        if key not in out and key not in ("description", "title"):
            out[key] = value
    if "title" in existing and existing["title"] != page_title(kind, slug):
        out["title"] = existing["title"]  # (earlier versions wrote the title here: kept only when the user's)
    return out


def _is_skeleton(frontmatter: dict, lines: list[str], kind: str, slug: str) -> bool:
    """The page holds what `shared_skeleton` generates and nothing of the user's."""
    skeleton_fm, skeleton_lines = shared_skeleton(kind, slug)
    if set(frontmatter) - set(skeleton_fm) or frontmatter.get("type") != skeleton_fm["type"]:
        return False
    return [line for line in lines if line] == [line for line in skeleton_lines if line]


def generated_description(page: bytes | None, kind: str, slug: str) -> str | None:
    """The description ``page``'s lines give it (None: no page, or one that cannot be read)."""
    if page is None:
        return None
    try:
        _fm, body = split_frontmatter(page.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    return derived_description(kind, slug, _mentions_of(body.split("\n")))


def refresh_description(page: bytes | None, kind: str, slug: str, generated: set) -> bytes | None:
    """``page`` with the description its lines give, where it holds one of ``generated`` (a
    description the compiler wrote for another set of lines: left by a tool that took a line
    out without knowing the rule, e.g. OpenKB's `remove`); else ``page`` as it is."""
    if page is None:
        return None
    fm, body = split_frontmatter(page.decode("utf-8"))
    if fm is None or fm.get("description") not in generated:
        return page
    wanted = derived_description(kind, slug, _mentions_of(body.split("\n")))
    if fm.get("description") == wanted:
        return page
    fm = dict(fm)
    if wanted:
        fm["description"] = wanted
    else:
        fm.pop("description", None)
    return (dump_frontmatter(fm) + body).encode("utf-8")


def update_concept_page(existing: bytes | None, slug: str, doc: str, contribution) -> bytes | None:
    return update_shared_page(existing, "concepts", slug, doc, contribution)


def update_entity_page(existing: bytes | None, slug: str, doc: str, contribution) -> bytes | None:
    return update_shared_page(existing, "entities", slug, doc, contribution)


def page_description(page: bytes | None) -> str:
    """The `description` of a page's frontmatter ("" when none)."""
    if page is None:
        return ""
    value = _page_keys(page)[0]
    return one_line(value) if isinstance(value, str) else ""


def page_type(page: bytes | None, kind: str) -> str:
    value = _page_keys(page)[1] if page is not None else None
    return one_line(value) if isinstance(value, str) and value.strip() else KINDS[kind][1]


# -- the index ------------------------------------------------------------------------

INDEX_SKELETON = ["# Knowledge Base Index", "", DOCUMENTS, "", CONCEPTS, "", ENTITIES, "", EXPLORATIONS]
INDEX_SECTIONS = (  # (section, prefix of its keyed lines, section it goes before when missing)
    ("docs", DOCUMENTS, "- [[summaries/", CONCEPTS),
    ("concepts", CONCEPTS, "- [[concepts/", ENTITIES),
    ("entities", ENTITIES, "- [[entities/", EXPLORATIONS),
)


def _brief(description: str) -> str:
    description = one_line(description)
    return f" — {description}" if description else ""


def concept_index_line(slug: str, description: str = "") -> str:
    return f"- [[concepts/{slug}]]{_brief(description)}"


def entity_index_line(slug: str, entity_type: str = "Other", description: str = "") -> str:
    return f"- [[entities/{slug}]] ({one_line(entity_type).lower() or 'other'}){_brief(description)}"


def shared_index_line(kind: str, slug: str, page: bytes | None) -> str | None:
    """The index line of shared page ``slug`` of ``kind`` as ``page`` holds it (None: no page)."""
    if page is None:
        return None
    if kind == "entities":
        return entity_index_line(slug, page_type(page, kind), page_description(page))
    return concept_index_line(slug, page_description(page))


def doc_marker(doc_type: str) -> str:
    """OpenKB's `(short|pageindex)` of a document of type ``doc_type`` (a record's `type`)."""
    return "pageindex" if doc_type in ("long_pdf", "pageindex_cloud", "pageindex") else "short"


def index_line(doc: str, description: str, doc_type: str = "short") -> str:
    return f"- [[summaries/{doc}]] ({doc_marker(doc_type)}){_brief(description)}"


def record_index_line(doc: str, record: dict) -> str | None:
    """The index line a record gives its document (None: not compiled by openkb). A record
    of a version before OpenKB's format (no `description`) gives the line it was written with."""
    if not isinstance(record.get("title"), str):
        return None
    if isinstance(record.get("description"), str):
        return index_line(doc, record["description"], str(record.get("type", "")))
    return f"- [[summaries/{doc}]] — {one_line(record['title']) or doc}"


def _as_lines(kind: str, updates: dict | None) -> dict[str, str | None]:
    out = {}
    for key, value in (updates or {}).items():
        if value is True:
            value = concept_index_line(key) if kind == "concepts" else entity_index_line(key)
        elif value is False:
            value = None
        out[key] = value
    return out


def index_updates(docs: dict | None = None, concepts: dict | None = None, entities: dict | None = None) -> dict:
    """The updates `update_index` takes, per section, as {key: line or None}."""
    return {"docs": dict(docs or {}), "concepts": _as_lines("concepts", concepts),
            "entities": _as_lines("entities", entities)}


LEGACY_INDEX_TITLE = b"# Index\n"  # the index of earlier versions: "# Index", Documents, Concepts


def _upgraded_index(existing: bytes) -> bytes:
    """An index of an earlier version in today's skeleton: OpenKB's title, and the Entities and
    Explorations sections at the end, as `INDEX_SKELETON` has them."""
    text = b"# Knowledge Base Index\n" + existing[len(LEGACY_INDEX_TITLE):]
    lines = text.decode("utf-8").split("\n")
    for heading in (ENTITIES, EXPLORATIONS):
        if heading not in lines:
            while lines and lines[-1] == "":
                lines.pop()
            lines += ["", heading]
    return ("\n".join(lines).rstrip("\n") + "\n").encode("utf-8")


def update_index(existing: bytes | None = None, *, docs: dict | None = None, concepts: dict | None = None,
                 entities: dict | None = None) -> bytes:
    """Set or drop document lines (``docs``: doc -> line or None), concept lines (``concepts``:
    slug -> line, or None to drop it; True for a line without a description) and entity lines
    (``entities``, likewise) in wiki/index.md."""
    updates = index_updates(docs, concepts, entities)
    if existing is not None and existing.startswith(LEGACY_INDEX_TITLE):
        existing = _upgraded_index(existing)
    if existing is not None:
        fast = _update_index_in_place(existing, updates)
        if fast is not None:
            return fast
    return _render_index(existing, updates)


def _render_index(existing: bytes | None, updates: dict[str, dict]) -> bytes:
    """update_index line by line: any shape of page (sections missing, hand-added text)."""
    if existing is None:
        lines = list(INDEX_SKELETON)
    else:
        lines = existing.decode("utf-8").split("\n")
        while lines and lines[-1] == "":
            lines.pop()
    for kind, heading, prefix, before in INDEX_SECTIONS:
        if updates[kind]:
            lines = _set_keyed(lines, heading, prefix, updates[kind], before=before)
    while lines and lines[-1] == "":
        lines.pop()
    return ("\n".join(lines) + "\n").encode("utf-8")


def _update_index_in_place(existing: bytes, updates: dict[str, dict]) -> bytes | None:
    """update_index for an index whose sections are in canonical form (what openkb writes:
    the heading, one blank line, sorted bullets and nothing else), by splicing the
    bullets changed into the bytes; None for any other shape (update_index then re-renders
    the page line by line). The bytes are the same either way (UTF-8 sorts as the code
    points do); the index of a KB of N documents holds N + concepts lines, and this spares
    decoding them and a pass over them in Python."""
    text = existing
    if not text.endswith(b"\n") or text.endswith(b"\n\n"):
        return None
    for kind, heading, prefix, _before in INDEX_SECTIONS:
        if not updates[kind]:
            continue
        text = _splice_keyed(text, heading.encode(), prefix.encode(),
                             {key.encode("utf-8"): None if line is None else line.encode("utf-8")
                              for key, line in updates[kind].items()})
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
    if any(line is not None and (b"\n" in line or not line.startswith(prefix)) for line in updates.values()):
        return None  # not a bullet of this section: the slow path decides
    # The text this function returned last, with the bullets of its sections known canonical
    # (and the bytes they take): the next update of a run (the next document, or the next
    # section of this one) starts from it, and is spared splitting and checking thousands of
    # lines again, and searching the rest of the page for the next heading (1 MB of index.md at
    # 7,425 documents). Compared whole (a memcmp), never trusted by identity.
    known = _last_splice[1] if _last_splice[0] is not None and text == _last_splice[0] else {}
    first = body + 1
    remembered = known.get((heading, prefix))
    if remembered is not None:
        bullets, stop = list(remembered[0]), first + remembered[1]
        # Canonical: "\n" + bullets joined by "\n" + "\n" (+ "\n" before a following heading).
        tail = b"\n" if stop + 1 == len(text) else b"\n\n"
        end = stop + len(tail)
    else:
        ends = [at + 1 for at in (text.find(b"\n# ", body - 1), text.find(b"\n## ", body - 1)) if at != -1]
        end = min(ends) if ends else len(text)
        tail = b"\n" if end == len(text) else b"\n\n"
        stop = end - len(tail)
    if (stop <= first or text[body:first] != b"\n" or not text.startswith(tail, stop)
            or not text.startswith(prefix, first)):
        return None
    if remembered is None:
        if text.count(b"\n", first, stop) != text.count(b"\n" + prefix, first, stop):
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
    joined = b"\n".join(bullets)
    out = b"".join((text[:body], b"\n", joined, tail, text[end:]))
    # Only this section's bytes changed: the others' bullets, known in ``text``, stay known.
    _last_splice[:] = [out, {**known, (heading, prefix): (bullets, len(joined))}]
    return out


# [the last text _splice_keyed returned, {(heading, prefix): (its bullets, their bytes joined)}]
_last_splice: list = [None, {}]


# -- summary pages --------------------------------------------------------------------


def full_text_of(source_path: str) -> str:
    """OpenKB's `full_text` (relative to wiki/) of a source path in the KB."""
    return source_path[len("wiki/"):] if source_path.startswith("wiki/") else source_path


def render_summary(doc: str, *, title: str, doc_type: str, source_path: str, pages: int | None,
                   concepts: list[str], summary: list[str], headings: list[tuple[int, str]],
                   description: str = "", entities: list[str] = (), language: str = "") -> bytes:
    frontmatter: dict = {"type": "Summary", "description": one_line(description) or one_line(title) or doc,
                         "doc_type": doc_marker(doc_type), "full_text": full_text_of(source_path),
                         "title": one_line(title)}
    if pages is not None:
        frontmatter["pages"] = pages
    if language:
        frontmatter["language"] = language
    out = [f"# {one_line(title)}", "", "## Summary", ""]
    out += [one_line(" ".join(summary)) if summary else "(no text to summarize)", ""]
    outline = _outline(headings)
    if outline == [f"- {one_line(title)}"]:
        outline = []  # the page's title as its one heading (a tldr page): no outline to show
    if outline:
        out += ["## Outline", ""] + outline + [""]
    if concepts:
        out += [RELATED_CONCEPTS, ""] + sorted(f"- [[concepts/{slug}]]" for slug in concepts) + [""]
    if entities:
        out += [ENTITIES, ""] + sorted(f"- [[entities/{slug}]]" for slug in entities) + [""]
    if not concepts and not entities:
        out += ["Listed in the [[index]]."]  # (a page without links is an orphan to OpenKB's lint)
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
