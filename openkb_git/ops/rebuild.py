"""`openkb rebuild`: regenerate the shared pages (the compiler-owned lines of wiki/index.md,
the concept pages) from the per-document records, as one revertible `rebuild` commit.

After a hand fix of a conflict Git settled without a driver (modify/delete, a page the
driver said to `git rm`), the shared pages can disagree with the records: a concept page
that keeps the mention of a document that is gone, lacks one a record names, or is
missing; index lines of pages that do not exist, or none for pages that do. `openkb fsck`
reports those (check_pages); this module makes them agree again.

What each document contributes is decided this way (deterministic, and cheap): a mention
line a page already holds for a document whose record names the concept is kept as it is
(it is the line the compiler wrote when the document was added: reused, not recompiled);
only a missing contribution is recomputed, by converting and compiling the document's
stored raw file again through the path `openkb add` takes (ops/add.py build_footprint), so
it is byte for byte the line `openkb add` writes. Mentions (and `sources` entries) of
documents whose record is gone, or does not name the concept, are taken out. Only the
compiler's parts are touched: text a user wrote elsewhere on a page stays (each change is
one `update_concept_page` / `update_index` of one key). A concept page left with no
source and nothing of the user's is deleted, as a removal does.
"""

from __future__ import annotations

import hashlib
import stat as statmod
from dataclasses import dataclass, field
from pathlib import Path

from ..compiler import Contribution, update_index, update_shared_page
from ..compiler.pages import (DOCUMENTS, KINDS, LEGACY_MENTIONS, MENTIONS, mention_text, page_sources, phrase_of,
                              record_index_line, shared_index_line)
from ..errors import OpenKBError
from ..git.objects import ChangeSet
from ..kb import KB
from ..protocol.commit import Mutation, commit_mutation
from ..registry import Registry
from .contribution import INDEX_PATH, shared_path
from .edits import commit_edits, find_edits
from .session import Writer

_SUMMARY = "- [[summaries/"


@dataclass
class RebuildPlan:
    changes: ChangeSet = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)  # one line per change, for the commit body and --dry-run
    left: list[str] = field(default_factory=list)  # what cannot be recomputed (e.g. a raw file missing)

    def to_json(self) -> dict:
        return {"paths": sorted(self.changes), "steps": self.steps, "left": self.left, "count": len(self.changes)}


@dataclass
class RebuildResult:
    plan: RebuildPlan
    commit: str | None = None
    dry_run: bool = False

    def to_json(self) -> dict:
        return {"commit": self.commit, "dry_run": self.dry_run, **self.plan.to_json()}


def _keyed(page: bytes | None, heading: str, prefix: str) -> dict[str, str]:
    from .fsck import _section_lines

    return _section_lines(page, heading, prefix)


class _Recompiler:
    """Each document's concept and entity contributions, compiled again from its stored raw file (once)."""

    def __init__(self, kb: KB, tree: bytes | None, records: dict[str, dict]):
        self.kb, self.tree, self.records = kb, tree, records
        self.done: dict[str, dict[str, dict[str, Contribution]] | None] = {}

    def contribution(self, doc: str, slug: str, kind: str = "concepts") -> Contribution | None:
        if doc not in self.done:
            self.done[doc] = self._compile(doc)
        found = self.done[doc]
        return None if found is None else found[kind].get(slug)

    def _compile(self, doc: str) -> dict[str, dict[str, Contribution]] | None:
        from ..convert import ConversionError, Limits
        from .add import Task, build_footprint, stored_shaping

        record = self.records[doc]
        raw = self.kb.objects.read_path(self.tree, str(record.get("raw_path", "")))
        sha = record.get("sha256")
        key = record.get("path") if isinstance(record.get("path"), str) else f"{doc}"
        if raw is None or not isinstance(sha, str) or hashlib.sha256(raw).hexdigest() != sha:
            return None
        name = record.get("name") if isinstance(record.get("name"), str) and record.get("name") else Path(key).name
        src = Path(key).with_name(name)
        config = self.kb.config
        named = record.get("concepts") if isinstance(record.get("concepts"), list) else []
        # as many concepts as it was added with (`concepts_per_doc` may have changed since: it
        # applies to documents added from then on); the compiler takes its top keyphrases
        shaping = stored_shaping(self.kb, config, record, max(len(named), 1))
        try:
            footprint, _warnings = build_footprint(Task(0, str(src), name, key, doc), src, raw, sha, shaping,
                                                   None, Limits.unlimited())
        except (ConversionError, ValueError, OpenKBError):
            return None
        return {"concepts": dict(footprint.concepts), "entities": dict(footprint.entities)}


def plan_rebuild(kb: KB, tree: bytes | None, records: dict[str, dict]) -> RebuildPlan:
    """The change set that makes the shared pages of ``tree`` agree with ``records``."""
    from .fsck import _concept_sources, recorded_docs

    plan = RebuildPlan()
    recorded = recorded_docs(kb, tree) | set(records)  # an invalid record's document is left as it is
    recompiler = _Recompiler(kb, tree, records)
    index_updates: dict[str, dict[str, str | None]] = {}
    index = kb.objects.read_path(tree, INDEX_PATH)
    for kind, (folder, _type, section) in KINDS.items():
        wanted, compiled = _concept_sources(records, kind)
        pages = {name[:-3] for name, (mode, _sha) in kb.objects.list_dir(tree, f"wiki/{folder}").items()
                 if name.endswith(".md") and not statmod.S_ISDIR(mode)}
        final: dict[str, bytes | None] = {}
        for slug in sorted(pages | set(wanted)):
            path = shared_path(kind, slug)
            original = page = kb.objects.read_path(tree, path)
            docs = wanted.get(slug, set())
            try:
                mentions = _keyed(page, MENTIONS, _SUMMARY) or _keyed(page, LEGACY_MENTIONS, _SUMMARY)
            except UnicodeDecodeError:
                mentions = {}
            sources = page_sources(page)
            for doc in sorted((set(mentions) | sources) - docs):
                if doc in compiled or doc not in recorded:  # (a record without concepts is OpenKB's: left)
                    page = update_shared_page(page, kind, slug, doc, None)
                    plan.steps.append(f"{path}: took out {doc} "
                                      f"({'its record does not name ' + slug if doc in records else 'no record'})")
            for doc in sorted(docs):
                if doc in mentions and doc in sources:
                    continue
                if doc in mentions:
                    contribution = Contribution(phrase=phrase_of(slug), snippet=mention_text(mentions[doc], doc))
                    how = "its mention kept, its source set"
                else:
                    contribution = recompiler.contribution(doc, slug, kind)
                    how = "compiled again from its raw file"
                if contribution is None:
                    plan.left.append(f"{path}: the contribution of {doc} cannot be compiled again (its raw file is "
                                     "missing or differs from its record, or it no longer names the page): "
                                     f"add the document again (`openkb add`) or take it out (`openkb remove {doc}`)")
                    continue
                page = update_shared_page(page, kind, slug, doc, contribution)
                plan.steps.append(f"{path}: {doc} ({how})")
            if page != original:
                plan.changes[path] = page
            final[slug] = page
        listed = _keyed(index, section, f"- [[{folder}/")
        updates: dict[str, str | None] = {}
        for slug, page in final.items():
            line = shared_index_line(kind, slug, page) if (page is None or slug in wanted) else listed.get(slug)
            if listed.get(slug) != line and (line is not None or slug in listed):
                updates[slug] = line
        for slug in sorted(set(listed) - set(final)):
            updates[slug] = None
        index_updates[kind] = updates
    lines = _keyed(index, DOCUMENTS, f"{_SUMMARY}")
    doc_updates = {}
    for doc, r in sorted(records.items()):
        line = record_index_line(doc, r)
        if line is not None and lines.get(doc) != line:
            doc_updates[doc] = line
    if doc_updates or any(index_updates.values()):
        new = update_index(index, docs=doc_updates, concepts=index_updates["concepts"],
                           entities=index_updates["entities"])
        if new != index:
            plan.changes[INDEX_PATH] = new
            plan.steps += [f"{INDEX_PATH}: line of {doc} from its record" for doc in doc_updates]
            plan.steps += [f"{INDEX_PATH}: {kind[:-1].replace('entitie', 'entity')} {slug} "
                           f"{'set' if line is not None else 'dropped'}"
                           for kind, updates in index_updates.items() for slug, line in sorted(updates.items())]
    return plan


def commit_rebuild(kb: KB, writer: Writer, *, why: str = "") -> RebuildResult:
    """Plan the rebuild of HEAD and commit it as one `rebuild` (the caller holds the lock)."""
    tree = kb.head_tree()
    plan = plan_rebuild(kb, tree, Registry(kb.objects).view(tree).records)
    result = RebuildResult(plan)
    if not plan.changes:
        return result
    subject = f"rebuild: {len(plan.changes)} shared page(s) from the records" + (f" ({why})" if why else "")
    mutation = Mutation(op="rebuild", subject=subject, body="\n".join(plan.steps), changes=plan.changes,
                        trailers={"OpenKB-Rebuilt": str(len(plan.changes))})
    committed = commit_mutation(kb, writer.registry, kb.head(), mutation)
    result.commit = committed.sha.decode() if committed else None
    return result


def rebuild(kb: KB, *, wait: float = 0.0, dry_run: bool = False, allow_edit_commits: bool = True) -> RebuildResult:
    """Regenerate the shared pages from the records: one `rebuild` commit, or none when they
    agree already (``dry_run``: the plan only)."""
    writer = Writer(kb, wait, adopt=not dry_run)
    with writer.locked():
        if dry_run:
            tree = kb.head_tree()
            return RebuildResult(plan_rebuild(kb, tree, writer.registry.view(tree).records), dry_run=True)
        commit_edits(kb, writer.registry, find_edits(kb, kb.head_tree(), refresh=True), allow=allow_edit_commits)
        return commit_rebuild(kb, writer)
