"""`openkb recompile`: run the compiler again on the stored sources (after an upgrade or a
config change), one `recompile` commit per document, or one for `--all` (docs/revert.md, "Recompile and hand edits").

A document is compiled from its raw copy (`raw/<doc>.<ext>`, the file as it was added) with
the name and source path of its record, exactly as `openkb add` compiled it: with the same
compiler and config a recompile changes nothing. Its pages are merged with hand edits as a
re-ingest's are (ops/compiled.py): a conflict fails that document only, and nothing of it
changes. Runs under the KB lock through the commit protocol, like every writer; `--dry-run`
reads HEAD and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..convert import ConversionError, Limits
from ..errors import DamageError, OpenKBError
from ..git.objects import ChangeSet, ObjectStore
from ..history import Entry, iter_entries
from ..kb import CONFIG_PATH, KB, parse_config
from ..paths import UnsafePathError
from ..protocol.commit import CommittedButIncomplete, Mutation, commit_mutation
from ..registry import RegistryView
from ..compiler.llm import record_trailers
from .add import Shaping, Task, build_footprint, model_question, shaping_of, stored_shaping
from .compiled import (RECOMPILE_ALL, SKIPPED_TRAILER, HandPaths, compiles, compiling_entries, conflict_rows,
                       edit_body, edit_subject, merge_hand_edits)
from .contribution import document_changes
from .edits import commit_edits, find_edits
from .session import Writer

RECOMPILED, UNCHANGED, FAILED, WOULD_CHANGE = "recompiled", "unchanged", "failed", "would change"


class UnknownDocumentsError(OpenKBError):
    """`openkb recompile` named a document the KB does not hold (or none at all)."""

    exit_code = 2


@dataclass
class DocResult:
    doc: str
    status: str  # recompiled | unchanged | failed | would change
    commit: str | None = None
    edit_commit: str | None = None  # the `edit` keeping hand edits over the new compile
    paths: list[str] = field(default_factory=list)
    reason: str = ""
    conflicts: list[dict] = field(default_factory=list)


@dataclass
class RecompileReport:
    results: list[DocResult] = field(default_factory=list)
    all_docs: bool = False
    dry_run: bool = False
    commit: str | None = None  # --all: the one recompile commit
    edit_commit: str | None = None  # --all: the edit keeping hand edits, if any
    edit_commits: list[str] = field(default_factory=list)  # hand edits committed before it started
    llm: dict = field(default_factory=dict)  # compiler: llm: {model, requests, cached, prompt_tokens, completion_tokens}

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> bool:
        return any(r.status == FAILED for r in self.results)

    def to_json(self) -> dict:
        return {"dry_run": self.dry_run, "all": self.all_docs, "commit": self.commit, "edit_commit": self.edit_commit,
                "edit_commits": self.edit_commits,
                **({"llm": self.llm} if self.llm else {}),
                **{key: self.count(status) for key, status in (("recompiled", RECOMPILED), ("unchanged", UNCHANGED),
                                                               ("failed", FAILED), ("would_change", WOULD_CHANGE))},
                "documents": [asdict(r) for r in self.results]}


class Overlay:
    """An object store read through a change set: `read_path` of a changed path gives its new
    content. Lets a run compile document after document against the tree the earlier ones
    left, without writing a tree (a dry run writes nothing)."""

    def __init__(self, objects: ObjectStore, tree: bytes | None):
        self.objects = objects
        self.tree = tree
        self.changes: ChangeSet = {}

    def read_path(self, _tree: bytes | None, path: str) -> bytes | None:
        if path in self.changes:
            return self.changes[path]
        return self.objects.read_path(self.tree, path)

    def update(self, changes: ChangeSet) -> None:
        self.changes.update(changes)


def compile_stored(kb: KB, tree: bytes | None, record: dict, doc: str, shaping: Shaping, limits: Limits):
    """The footprint of ``doc`` compiled again from its raw copy in ``tree``, as `openkb add` made it."""
    task, name, data, sha = _stored(kb, tree, record, doc)
    footprint, _warnings = build_footprint(task, Path(name), data, sha, shaping, None, limits)
    return footprint


def stored_question(kb: KB, tree: bytes | None, record: dict, doc: str, shaping: Shaping, limits: Limits):
    """compile_stored's model call, as a function to run in a thread (add.model_question)."""
    task, name, data, _sha = _stored(kb, tree, record, doc)
    return model_question(task, Path(name), data, shaping, limits)


def _stored(kb: KB, tree: bytes | None, record: dict, doc: str):
    raw_path = record.get("raw_path")
    data = kb.objects.read_path(tree, raw_path) if isinstance(raw_path, str) else None
    if data is None:
        raise DamageError(f"the raw copy of {doc} ({raw_path!r}) is missing from HEAD; restore it with "
                          "`openkb fsck --repair`, or add the file again")
    name = record.get("name") if isinstance(record.get("name"), str) and record.get("name") else Path(raw_path).name
    key = record.get("path") if isinstance(record.get("path"), str) else raw_path
    sha = hashlib.sha256(data).hexdigest()
    return Task(n=0, src=name, display=name, key=key, doc=doc), name, data, sha


def last_compiles(kb: KB, docs: list[str], head: bytes | None) -> dict[str, Entry]:
    """{doc: its newest compiling operation still in force} for ``docs``, in one walk of the
    history (ops/compiled.py `compiling_entries`, for many documents at once)."""
    pending = set(docs)
    found: dict[str, Entry] = {}
    reverted: set[str] = set()
    for entry in iter_entries(kb, head):
        if not pending:
            break
        if entry.sha in reverted:
            continue
        if entry.op == "revert" and entry.trailers.get("OpenKB-Reverts"):
            reverted.add(entry.trailers["OpenKB-Reverts"])
        elif entry.op == "remove" and entry.doc in pending:
            pending.discard(entry.doc)
        elif entry.op == "add" or (entry.op == "recompile" and entry.doc):
            if entry.doc in pending:
                found[entry.doc] = entry
                pending.discard(entry.doc)
        elif entry.op in ("recompile", "init"):
            for doc in sorted(pending):
                if compiles(kb, entry, doc):
                    found[doc] = entry
                    pending.discard(doc)
    return found


def recompile(kb: KB, docs: list[str], *, all_docs: bool = False, dry_run: bool = False, wait: float = 0.0,
              allow_edit_commits: bool = True, model: str | None = None,
              on_progress: Callable[[int, int, str], None] | None = None) -> RecompileReport:
    """Recompile ``docs`` (or every document with ``all_docs``); see the module docstring.

    ``model``: compile with the LLM compiler and this model (over the config's). The model's
    calls are made first, in parallel and outside the lock (`ask_model`); under the lock the
    compile reads their answers from the cache. Raises LLMSetupError (no key, no endpoint)."""
    report = RecompileReport(all_docs=all_docs, dry_run=dry_run)
    progress = on_progress or (lambda done, total, what: None)
    config = kb.config
    shaping = shaping_of(kb, config, model=model)
    limits = Limits.from_config(config)
    failed: dict[str, str] = {}
    if shaping.llm is not None:
        failed = ask_model(kb, docs, all_docs, shaping, limits, report, progress)
    if dry_run:
        _run(kb, None, docs, all_docs, shaping, limits, report, progress, dry_run=True, failed=failed)
        return report
    writer = Writer(kb, wait)
    with writer.locked():
        edited = commit_edits(kb, writer.registry, find_edits(kb, kb.head_tree(), refresh=True),
                              allow=allow_edit_commits)
        if edited:
            report.edit_commits.append(edited.sha.decode())
        _run(kb, writer, docs, all_docs, shaping.locked(), limits, report, progress, dry_run=False, failed=failed)
    return report


def ask_model(kb: KB, docs: list[str], all_docs: bool, shaping: Shaping, limits: Limits, report: RecompileReport,
              progress) -> dict[str, str]:
    """The LLM compiler's calls for the documents to recompile, as HEAD holds them, made
    `compile_concurrency` at a time without the lock; their answers land in the cache.
    Returns {doc: why it failed} for the documents whose call failed."""
    from concurrent.futures import ThreadPoolExecutor

    from ..compiler.llm import preflight
    from ..registry import Registry

    tree = kb.head_tree()
    view = Registry.of(kb).view(tree)
    chosen = _chosen(view, docs, all_docs)
    preflight(shaping.llm)
    report.llm = {"model": shaping.llm.model, "requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0}

    failed: dict[str, str] = {}
    asked = 0

    def count(doc: str, answer) -> None:
        nonlocal asked
        usage, why = answer
        for key, value in usage.items():
            if key in report.llm:
                report.llm[key] += value
        if why is not None:
            failed[doc] = why
        asked += 1
        progress(asked, len(chosen), f"asking {shaping.llm.model}: {doc} ({report.llm['requests']} calls)")

    # Converted here, one after the other (PyMuPDF is not thread-safe); asked in threads.
    width = max(1, min(shaping.llm.concurrency, len(chosen) or 1))
    with ThreadPoolExecutor(max_workers=width) as pool:
        pending: list = []
        for doc in chosen:
            try:
                question = stored_question(kb, tree, view.records[doc], doc, shaping, limits)
            except (ConversionError, UnsafePathError, DamageError) as exc:
                failed[doc] = str(exc)
                continue
            pending.append((doc, pool.submit(question)))
            while len(pending) > 2 * width:
                doc_done, future = pending.pop(0)
                count(doc_done, future.result())
        for doc_done, future in pending:
            count(doc_done, future.result())
    return failed


def _chosen(view: RegistryView, docs: list[str], all_docs: bool) -> list[str]:
    if all_docs:
        return sorted(view.records)
    if not docs:
        raise UnknownDocumentsError("name the documents to recompile, or give --all (see `openkb list`)")
    unknown = [doc for doc in docs if doc not in view.records]
    if unknown:
        raise UnknownDocumentsError(f"no document named {', '.join(map(repr, unknown))} (see `openkb list`); "
                                    "nothing was recompiled")
    return list(dict.fromkeys(docs))


def _run(kb: KB, writer: Writer | None, docs: list[str], all_docs: bool, shaping: Shaping, limits: Limits,
         report: RecompileReport, progress, *, dry_run: bool, failed: dict[str, str] | None = None) -> None:
    from ..registry import Registry

    registry = writer.registry if writer else Registry.of(kb)
    head = kb.head()
    tree = kb.head_tree(head)
    view = registry.view(tree)
    chosen = _chosen(view, docs, all_docs)
    bases = last_compiles(kb, chosen, head)
    hand_paths = HandPaths(kb, head)
    pure, merged = Overlay(kb.objects, tree), Overlay(kb.objects, tree)
    diverged = False  # whether `merged` holds hand edits `pure` does not
    skipped: list[str] = []
    for done, doc in enumerate(chosen):
        progress(done, len(chosen), doc)
        if not all_docs and done and not dry_run:  # one commit per document: the next one starts from the new HEAD
            head = kb.head()
            tree = kb.head_tree(head)
            view = registry.view(tree)
            pure, merged = Overlay(kb.objects, tree), Overlay(kb.objects, tree)
            hand_paths = HandPaths(kb, head)
        result = DocResult(doc, UNCHANGED)
        report.results.append(result)
        if failed and doc in failed:  # its model call failed (ask_model): the reason, not the cache's miss
            result.status, result.reason = FAILED, failed[doc]
            skipped.append(doc)
            continue
        try:
            footprint = compile_stored(kb, tree, view.records[doc], doc, shaping, limits)
            changes_pure = document_changes(pure, tree, view, doc, footprint)
            changes = changes_pure if not diverged else document_changes(merged, tree, view, doc, footprint)
        except (ConversionError, UnsafePathError, DamageError) as exc:
            result.status, result.reason = FAILED, str(exc)
            skipped.append(doc)
            continue
        base = bases.get(doc)
        hand = merge_hand_edits(kb, kb.objects.get(base.sha.encode()).tree if base else None, tree, changes,
                                ours=merged, hand=hand_paths.since(base.sha) if base else None)
        if hand.conflicts:
            result.status = FAILED
            result.conflicts = conflict_rows(hand.conflicts)
            result.reason = (f"hand edits conflict with the new compile in {len(hand.conflicts)} path(s); nothing "
                             f"of {doc} was changed: edit those pages (or revert your edit), then recompile it again")
            skipped.append(doc)
            continue
        final = {**changes, **hand.edits}
        net = {path: data for path, data in final.items() if merged.read_path(None, path) != data}
        if not net:
            # Nothing to show for it: left out (and, where its pages hold hand edits, named as not
            # compiled, so the base of its next merge stays its last compile).
            if any(pure.read_path(None, path) != data for path, data in changes_pure.items()):
                skipped.append(doc)
            continue
        result.paths = sorted(net)
        pure.update(changes_pure)
        merged.update(final)
        diverged = diverged or bool(hand.edits)
        if dry_run:
            result.status = WOULD_CHANGE
            continue
        if not all_docs:
            record = view.records[doc]
            then = None
            if hand.edits:
                then = Mutation(op="edit", subject=edit_subject(doc, hand.edits), body=edit_body(hand.edits),
                                changes=hand.edits)
            mutation = Mutation(op="recompile", subject=f"recompile: {record.get('name', doc)}", changes=changes_pure,
                                trailers={"OpenKB-Doc": doc, "OpenKB-Source": str(record.get("path", "")),
                                          "OpenKB-Source-Sha256": str(footprint.record.get("sha256", "")),
                                          **record_trailers(footprint.record)},
                                then=then)
            _commit(kb, writer, head, mutation, result, report)
    progress(len(chosen), len(chosen), "")
    if not all_docs or dry_run:
        return
    changed = [r for r in report.results if r.status == WOULD_CHANGE or (r.status == UNCHANGED and r.paths)]
    if not changed:
        return
    edits = {path: data for path, data in merged.changes.items() if pure.read_path(None, path) != data}
    trailers = {RECOMPILE_ALL: "all", **(shaping.llm.trailers() if shaping.llm else {})}
    if skipped:
        trailers[SKIPPED_TRAILER] = json.dumps(sorted(skipped), ensure_ascii=False)
    then = None
    if edits:
        then = Mutation(op="edit", subject=f"edit: hand edits of {len(edits)} page(s) kept over the recompile",
                        body=edit_body(edits), changes=edits)
    mutation = Mutation(op="recompile", subject=f"recompile: {len(changed)} of {len(chosen)} document(s)",
                        changes=dict(pure.changes), trailers=trailers, then=then)
    holder = DocResult("", RECOMPILED)
    _commit(kb, writer, head, mutation, holder, report)
    report.commit, report.edit_commit = holder.commit, holder.edit_commit
    for r in changed:
        r.status, r.commit, r.edit_commit = RECOMPILED, holder.commit, holder.edit_commit


def _commit(kb: KB, writer: Writer, head: bytes | None, mutation: Mutation, result: DocResult,
            report: RecompileReport) -> None:
    try:
        committed = commit_mutation(kb, writer.registry, head, mutation)
    except CommittedButIncomplete as exc:
        result.status, result.commit = RECOMPILED, exc.sha
        result.reason = exc.warning()
        raise
    if committed is None:
        result.status = UNCHANGED
        return
    result.status = RECOMPILED
    result.commit = committed.chain[0].decode()
    result.edit_commit = committed.chain[1].decode() if len(committed.chain) > 1 else None


def rebased_revert(kb: KB, entry: Entry, doc: str, head: bytes | None) -> tuple[bytes | None, bytes | None] | None:
    """For the revert of ``entry`` (an `add` of ``doc``) after a recompile of ``doc``: (base,
    theirs) trees to merge with HEAD instead of the add's own tree and its parent's, or None
    when no recompile of ``doc`` came after it.

    The contribution to take out is then the newest recompile's (R): base = R's tree, theirs =
    R's tree with ``doc`` as it was before ``entry`` compiled as R compiled it (with the config
    R's tree holds): without the document when ``entry`` added it, else its earlier version. So
    reverting an ingest made before `openkb recompile --all` gives the KB that recompiling
    every other document would have made (docs/revert.md, "Recompile and hand edits")."""
    from ..registry import Registry

    later = next(iter(compiling_entries(kb, doc, head, stop=entry.sha)), None)
    if later is None or later.op != "recompile":
        return None
    base_tree = kb.objects.get(later.sha.encode()).tree
    registry = Registry.of(kb)
    view = registry.view(base_tree)
    if doc not in view.records:
        return None
    parent_tree = kb.objects.get(entry.parent.encode()).tree if entry.parent else None
    before = registry.view(parent_tree).records.get(doc)
    footprint = None
    if before is not None:
        config = parse_config(kb.objects.read_path(base_tree, CONFIG_PATH) or b"")
        try:
            footprint = compile_stored(kb, parent_tree, before, doc, stored_shaping(kb, config, before),
                                       Limits.unlimited())  # within the limits: it was converted before
        except ConversionError:
            return None
    changes = document_changes(kb.objects, base_tree, view, doc, footprint)
    theirs_tree, objects, _ids = kb.objects.build_tree(base_tree, changes)
    kb.objects.write_durably(objects)  # unreferenced until a revert commits it; gc-able otherwise
    return base_tree, theirs_tree


def superseded_in_recompile(kb: KB, entry: Entry, head: bytes | None) -> tuple[str | None, bytes | None]:
    """For the revert of ``entry``, a `recompile --all`: (the sha of a later `recompile --all`
    that supersedes it, None) or (None, the tree to use as "theirs"), where the documents a later
    operation re-ingested, removed, reverted or recompiled keep what that recompile made of them
    (their contribution is no longer the recompile's: the revert leaves them alone), or (None,
    None) when there are none."""
    from ..registry import Registry

    later_docs: set[str] = set()
    for later in iter_entries(kb, head):
        if later.sha == entry.sha:
            break
        if later.op == "recompile" and not later.doc and later.trailers.get(RECOMPILE_ALL) == "all":
            return later.sha, None
        if later.doc and later.op in ("add", "remove", "revert", "recompile"):
            later_docs.add(later.doc)
    if not later_docs or not entry.parent:
        return None, None
    base_tree = kb.objects.get(entry.sha.encode()).tree
    theirs_tree = kb.objects.get(entry.parent.encode()).tree
    registry = Registry.of(kb)
    ours_view, theirs_view = registry.view(base_tree), registry.view(theirs_tree)
    config = parse_config(kb.objects.read_path(base_tree, CONFIG_PATH) or b"")
    changes: ChangeSet = {}
    reader = Overlay(kb.objects, theirs_tree)
    for doc in sorted(later_docs):
        if doc not in ours_view.records or doc not in theirs_view.records or not compiles(kb, entry, doc):
            continue
        try:
            footprint = compile_stored(kb, base_tree, ours_view.records[doc], doc,
                                       stored_shaping(kb, config, ours_view.records[doc]), Limits.unlimited())
        except ConversionError:
            continue
        doc_changes = document_changes(reader, theirs_tree, theirs_view, doc, footprint)
        reader.update(doc_changes)
        changes.update(doc_changes)
    if not changes:
        return None, None
    tree, objects, _ids = kb.objects.build_tree(theirs_tree, changes)
    kb.objects.write_durably(objects)  # unreferenced until a revert commits it; gc-able otherwise
    return None, tree
