"""A document's whole footprint in the KB as a change set against a tree.

Adding (or re-adding) a document writes its own files and sets its contribution on
each shared page; removing it deletes its files and takes its contribution back.
Both go through `document_changes`, so the two are exact inverses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..compiler import Contribution, update_concept_page, update_index
from ..git.objects import ChangeSet, ObjectStore
from ..registry import RegistryView, encode_record, record_path

INDEX_PATH = "wiki/index.md"


def concept_path(slug: str) -> str:
    return f"wiki/concepts/{slug}.md"


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


def document_changes(objects: ObjectStore, tree: bytes | None, view: RegistryView, doc: str,
                     footprint: Footprint | None) -> ChangeSet:
    """The change set that makes ``tree`` hold ``footprint`` for ``doc`` (None: no trace of ``doc``)."""
    old = view.records.get(doc) or {}
    changes: ChangeSet = {}
    new_files = footprint.files if footprint else {}
    for path in old.get("files", []):
        if path not in new_files:
            changes[path] = None
    changes.update(new_files)

    new_concepts = footprint.concepts if footprint else {}
    index_concepts: dict[str, bool] = {}
    for slug in sorted(set(old.get("concepts", [])) | set(new_concepts)):
        path = concept_path(slug)
        page = objects.read_path(tree, path)
        updated = update_concept_page(page, slug, doc, new_concepts.get(slug))
        changes[path] = updated
        if page is None and updated is not None:
            index_concepts[slug] = True
        elif page is not None and updated is None:
            index_concepts[slug] = False

    index = objects.read_path(tree, INDEX_PATH)
    changes[INDEX_PATH] = update_index(index, docs={doc: footprint.index_line if footprint else None},
                                       concepts=index_concepts)
    changes[record_path(doc)] = encode_record(footprint.record) if footprint else None
    return changes
