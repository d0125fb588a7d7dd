"""A document's whole footprint in the KB as a change set against a tree.

Adding (or re-adding) a document writes its own files and sets its contribution on
each shared page; removing it deletes its files and takes its contribution back.
Both go through `document_changes`, so the two are exact inverses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..compiler import Contribution, update_index, update_shared_page
from ..compiler.pages import shared_index_line
from ..git.objects import ChangeSet, ObjectStore
from ..paths import check_document_path, check_record_paths, path_problem
from ..registry import OPENKB_COMPILED, RegistryView, encode_record, record_path

INDEX_PATH = "wiki/index.md"


def concept_path(slug: str) -> str:
    return f"wiki/concepts/{slug}.md"


def entity_path(slug: str) -> str:
    return f"wiki/entities/{slug}.md"


def shared_path(kind: str, slug: str) -> str:
    """The path of shared page ``slug`` of ``kind`` ("concepts" or "entities")."""
    return f"wiki/{kind}/{slug}.md"


def summary_path(doc: str) -> str:
    return f"wiki/summaries/{doc}.md"


@dataclass
class Footprint:
    """What a document brings: its own files, its record, and its shared-page contributions."""

    doc: str
    files: dict[str, bytes]  # own files: raw, sources (+images), summary
    record: dict
    concepts: dict[str, Contribution] = field(default_factory=dict)
    index_line: str = ""
    entities: dict[str, Contribution] = field(default_factory=dict)
    usage: dict = field(default_factory=dict)  # the LLM compiler's requests and tokens (not stored)

    def contributions(self, kind: str) -> dict[str, Contribution]:
        return self.concepts if kind == "concepts" else self.entities


def document_changes(objects: ObjectStore, tree: bytes | None, view: RegistryView, doc: str,
                     footprint: Footprint | None, *, keep_empty: bool = False) -> ChangeSet:
    """The change set that makes ``tree`` hold ``footprint`` for ``doc`` (None: no trace of ``doc``).

    A shared page left with no source is deleted when it holds only the compiler's skeleton,
    or when OpenKB's own compiler wrote it for ``doc`` (a document OpenKB added: its text is
    the document's, as OpenKB's `remove` deletes it); with ``keep_empty``, never.

    The old record is data from the history (a clone, a pull): every path it names is checked
    first, and an unsafe one raises UnsafePathError naming the record — never followed."""
    old = view.records.get(doc) or {}
    check_record_paths(old, where=record_path(doc))
    changes: ChangeSet = {}
    new_files = footprint.files if footprint else {}
    for path in new_files:
        check_document_path(path, where=f"the new files of {doc}")
    for path in old.get("files", []):
        if path not in new_files:
            changes[path] = None
    changes.update(new_files)

    index_updates: dict[str, dict[str, str | None]] = {"concepts": {}, "entities": {}}
    openkb = old.get("compiled_by") == OPENKB_COMPILED
    empty = "keep" if keep_empty else "any" if openkb else "skeleton"
    for kind in ("concepts", "entities"):
        new_pages = footprint.contributions(kind) if footprint else {}
        named = old.get(kind) if isinstance(old.get(kind), list) else []
        for slug in sorted(set(named) | set(new_pages)):
            path = shared_path(kind, slug)
            page = objects.read_path(tree, path)
            updated = update_shared_page(page, kind, slug, doc, new_pages.get(slug), empty=empty,
                                         unlink=openkb and footprint is None)
            changes[path] = updated
            line = shared_index_line(kind, slug, updated)
            if line != shared_index_line(kind, slug, page):
                index_updates[kind][slug] = line

    index = objects.read_path(tree, INDEX_PATH)
    changes[INDEX_PATH] = update_index(index, docs={doc: footprint.index_line if footprint else None},
                                       concepts=index_updates["concepts"], entities=index_updates["entities"])
    changes[record_path(doc)] = encode_record(footprint.record) if footprint else None
    return changes


DOCUMENT_FOLDERS = ("raw", "wiki/sources", "wiki/summaries")


def document_files(objects: ObjectStore, tree: bytes | None):
    """(path, mode, blob id) of every safe file in the folders documents own."""
    for folder in DOCUMENT_FOLDERS:
        for path, mode, sha in objects.walk_files(tree, folder):
            if not path_problem(path):
                yield path, mode, sha


def owner_by_layout(path: str) -> str | None:
    """The doc a file belongs to by OpenKB's layout (raw/<doc>.<ext>, wiki/summaries/<doc>.md,
    wiki/sources/<doc>.<ext>, wiki/sources/images/<doc>/...), or None."""
    parts = path.split("/")
    if parts[:3] == ["wiki", "sources", "images"] and len(parts) > 4:
        return parts[3]
    if (len(parts) == 2 and parts[0] == "raw") or (len(parts) == 3 and parts[:2] in (["wiki", "sources"],
                                                                                   ["wiki", "summaries"])):
        stem, dot, _ext = parts[-1].rpartition(".")
        return stem if dot and stem else None
    return None


def orphan_changes(objects: ObjectStore, tree: bytes | None, view: RegistryView, doc: str) -> ChangeSet:
    """The change set that takes out a document whose record is gone or invalid, by its files:
    those OpenKB's layout gives to ``doc`` and no valid record owns, its record file, its index
    line and its lines on concept and entity pages. Empty when there is no trace of ``doc``."""
    owned = {p for record in view.records.values() for p in record.get("files", []) if isinstance(p, str)}
    changes: ChangeSet = {path: None for path, _m, _s in document_files(objects, tree)
                          if owner_by_layout(path) == doc and path not in owned}
    if objects.lookup(tree, record_path(doc)) is not None and doc not in view.records:
        changes[record_path(doc)] = None
    index = objects.read_path(tree, INDEX_PATH)
    mention = f"[[summaries/{doc}]]".encode("utf-8")
    if not changes and (index is None or mention not in index):
        return {}
    index_updates: dict[str, dict[str, str | None]] = {"concepts": {}, "entities": {}}
    for kind in ("concepts", "entities"):
        for name, (_mode, _sha) in objects.list_dir(tree, f"wiki/{kind}").items():
            if not name.endswith(".md"):
                continue
            path = f"wiki/{kind}/{name}"
            page = objects.read_path(tree, path)
            if page is not None and mention in page:
                updated = update_shared_page(page, kind, name[:-3], doc, None)
                changes[path] = updated
                line = shared_index_line(kind, name[:-3], updated)
                if line != shared_index_line(kind, name[:-3], page):
                    index_updates[kind][name[:-3]] = line
    if index is not None:
        changes[INDEX_PATH] = update_index(index, docs={doc: None}, concepts=index_updates["concepts"],
                                           entities=index_updates["entities"])
    return changes


class _Overlay:
    """``objects`` read through a change set (for `document_changes` run one after another)."""

    def __init__(self, objects: ObjectStore, changes: ChangeSet):
        self.objects, self.changes = objects, changes

    def read_path(self, tree: bytes | None, path: str) -> bytes | None:
        if path in self.changes:
            return self.changes[path]
        return self.objects.read_path(tree, path)


def removed_by_hand(objects: ObjectStore, tree: bytes | None, view: RegistryView,
                    edits: dict[str, bytes | None]) -> tuple[list[str], ChangeSet]:
    """The documents ``edits`` take out whole — every file the record names deleted, the
    record left: what OpenKB's own `openkb remove` does (it knows nothing of our records) — and
    the change set that removes them as `openkb remove` would, merged with ``edits`` on every
    shared page both touch (base = ``tree``, ours = the edit, theirs = our removal: the merge
    drivers of revert), so the result is the compiler's pages for the documents left, with
    any other hand edit kept; on a page where the two conflict, the edit as it is (`openkb fsck`
    then says what disagrees with the records). ([], {}) when there is none."""
    from ..merge import MergeConflict, merge_file

    docs = []
    for path, data in edits.items():
        parts = path.split("/")
        if data is not None or len(parts) != 3 or parts[:2] != ["wiki", "summaries"] or not path.endswith(".md"):
            continue
        doc = parts[2][:-3]
        record = view.records.get(doc)
        if record is None or record_path(doc) in edits or check_record_problems(record):
            continue
        files = record.get("files")
        if isinstance(files, list) and files and all(p in edits and edits[p] is None for p in files):
            docs.append(doc)
    if not docs:
        return [], {}
    removal: ChangeSet = {}
    reader = _Overlay(objects, removal)
    for doc in sorted(docs):
        removal.update(document_changes(reader, tree, view, doc, None))
    changes: ChangeSet = {}
    for path, theirs in sorted(removal.items()):
        if path not in edits:
            changes[path] = theirs
            continue
        ours, base = edits[path], objects.read_path(tree, path)
        merged = ours if ours == theirs else merge_file(path, base, ours, theirs)
        # where the edit and our removal disagree, the edit stands (OpenKB's `remove` rewrites
        # lines our removal drops, e.g. its `lint --fix` unlinks `[[summaries/<doc>]]`)
        changes[path] = ours if isinstance(merged, MergeConflict) else merged
    return sorted(docs), changes


def check_record_problems(record: dict) -> bool:
    from ..paths import record_path_problems

    return bool(record_path_problems(record))
