"""Per-document registry records (`.openkb/registry/<doc>.json`) and OpenKB's doc-name rules."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .git.memo import ObjectMemo
from .git.objects import ObjectStore
from .kb import REGISTRY_DIR

_SAFE_STEM_RE = re.compile(r"[^\w\-]+")
SUFFIX_LEN = 8
# The longest doc name a stem gives, in UTF-8 bytes, before the clash suffix (-<8 hex>): every
# file name derived from a doc name then fits NAME_MAX (255) with room to spare, temporaries
# included — `.<doc>-<8 hex>.markdown.openkb-tmp` is 1 + 218 + 9 + 9 + 11 = 248 bytes.
MAX_NAME_BYTES = 218
RECORD_MEMO = "records.cache"  # in .openkb/
MEMO_MIN = 64  # a view reading fewer records than this neither loads nor extends the memo


# A record's `compiled_by` for a document whose pages OpenKB's own compiler wrote (one OpenKB
# added, ops/adopt.py; docs/layout.md): `openkb fsck` does not hold its shared pages to the form
# our compiler writes, and removing it deletes the pages it leaves without a source.
OPENKB_COMPILED = "OpenKB"


def record_path(doc: str) -> str:
    return f"{REGISTRY_DIR}/{doc}.json"


def encode_record(record: dict) -> bytes:
    """Deterministic bytes of a record (sorted keys, two-space indent, final newline)."""
    return (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def source_key(src: Path, kb_root: Path, root: Path | None = None) -> str:
    """A source's identity key, the record's ``path`` (docs/layout.md): the same on every machine.

    A file inside the KB (a drop-in under ``raw/``): its posix path relative to the KB. Any
    other file: its posix path relative to the parent of ``root``, the directory given to
    `openkb add`, so the key starts with that directory's own name (``add ~/papers`` gives
    ``papers/attention.pdf``, ``papers/sub/x.pdf``; ``add tldr/common`` and ``add tldr/linux``
    keep their ``ssh.md`` apart as ``common/ssh.md`` and ``linux/ssh.md``); a file given by
    itself (``root`` None) counts as given with its folder: its folder's name and its own
    (``add ~/papers/x.pdf`` gives ``papers/x.pdf``, as ``add ~/papers`` does). Never an
    absolute local path: records and trailers are published to every clone.
    """
    resolved = src.resolve()
    kb = kb_root.resolve()
    if resolved.is_relative_to(kb):
        return resolved.relative_to(kb).as_posix()
    if root is None:
        root = src.parent
    return Path(os.path.relpath(src, root.parent)).as_posix()


def legacy_source_key(src: Path, kb_root: Path) -> str:
    """The key KBs made before relative keys recorded for ``src`` (its absolute path when
    outside the KB): looked up only, so that re-adding a document of such a KB from the same
    place is a re-ingest of it. Never recorded again."""
    resolved = src.resolve()
    root = kb_root.resolve()
    if resolved.is_relative_to(root):
        return resolved.relative_to(root).as_posix()
    return resolved.as_posix()


def sanitize_stem(stem: str) -> str:
    """OpenKB's sanitized stem: NFKC, runs of characters other than word/dash become '-'."""
    normalized = unicodedata.normalize("NFKC", stem)
    return shorten(_SAFE_STEM_RE.sub("-", normalized).strip("-") or "document")


def shorten(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` when it fits ``limit`` UTF-8 bytes; else its longest prefix (cut at a character
    boundary) that leaves room for ``-<sha256(name)[:8]>``, with that suffix: deterministic,
    and two long names that share a prefix still differ."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= limit:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:SUFFIX_LEN]
    head = encoded[: limit - SUFFIX_LEN - 1].decode("utf-8", "ignore").rstrip("-")  # "ignore": a cut character
    return f"{head}-{digest}"


def suffixed_name(candidate: str, key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:SUFFIX_LEN]
    return f"{candidate}-{digest}"


@dataclass
class RegistryView:
    """All records at one tree, indexed by doc name, by source key and by content hash."""

    records: dict[str, dict] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    by_sha: dict[str, str] = field(default_factory=dict)
    # Docs whose committed record file is not a JSON object: not in ``records``, never silently
    # (`list`, `status` warn naming the file; `fsck` reports it, see docs/layout.md).
    invalid: set[str] = field(default_factory=set)
    # When derived from another view: that view's records and the doc names that differ.
    base_records: dict[str, dict] | None = field(default=None, repr=False, compare=False)
    changed: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    def doc_for(self, key: str, aliases: tuple[str, ...] = ()) -> str | None:
        """The document of the source ``key`` (or, failing that, of the first of ``aliases``,
        the keys older KBs recorded for the same file, see `legacy_source_key`), if any."""
        for k in (key, *aliases):
            doc = self.by_key.get(k) if k else None
            if doc:
                return doc
        return None

    def name_for(self, key: str, stem: str, reserved: dict[str, str] | None = None,
                 aliases: tuple[str, ...] = ()) -> str:
        """The stable doc name for the source ``key``: its existing name if seen before
        (under ``key`` or one of its ``aliases``);
        else the sanitized stem; else, when another source owns that name (in the
        registry, in ``reserved``: {name: key}, or a garbled record of that name), a
        deterministic ``-<sha256(key)[:8]>`` suffix.
        """
        known = self.doc_for(key, aliases)
        if known:
            return known
        candidate = sanitize_stem(stem)
        reserved = reserved or {}
        owner = reserved.get(candidate)
        # A name whose committed record is garbled stays taken: whose source it was is unknown,
        # and reusing it would overwrite that record and its files unseen.
        if candidate in self.records or candidate in self.invalid or (owner is not None and owner != key):
            return suffixed_name(candidate, key)
        return candidate

    def invalid_paths(self) -> list[str]:
        """The record files of ``invalid``, sorted."""
        return sorted(record_path(doc) for doc in self.invalid)


class Registry:
    """Builds RegistryViews for trees, reading only record blobs it has not parsed before.

    Consecutive views share work: when the registry folder's tree changed, only the
    entries that differ are re-read and re-indexed.
    """

    def __init__(self, objects: ObjectStore, memo_path: os.PathLike | None = None):
        self.objects = objects
        self.memo_path = memo_path  # see RecordMemo; None: always read the object store
        self._parsed: dict[bytes, dict] = {}
        self._last: tuple[bytes | None, dict, RegistryView] | None = None

    @classmethod
    def of(cls, kb) -> "Registry":
        """The registry of ``kb``, with its record memo (`.openkb/records.cache`)."""
        return cls(kb.objects, kb.openkb_dir / RECORD_MEMO)

    def _read_many(self, shas: list[bytes]) -> None:
        """Parse the records of ``shas`` ahead of a view that needs them all: from the memo,
        the rest from the object store (then added to the memo)."""
        if len(shas) < MEMO_MIN or self.memo_path is None:
            return
        memo = RecordMemo(self.memo_path)
        raws = []
        for sha in shas:
            raw = memo.raw.get(sha)
            if raw is None:
                raw = self.objects.blob_bytes(sha)
                memo.add(sha, raw)
            raws.append(raw)
        memo.flush()
        for sha, raw in zip(shas, raws):  # json.loads of each, or of all joined: the same time
            self._parse(sha, raw)

    def view(self, tree: bytes | None) -> RegistryView:
        folder = self.objects.lookup(tree, REGISTRY_DIR) if tree else None
        folder_sha = folder[1] if folder else None
        if self._last is not None and self._last[0] == folder_sha:
            return self._last[2]
        entries = self.objects.tree_entries(folder_sha) if folder_sha else {}
        if self._last is None:
            view, old_entries = RegistryView(), {}
        else:
            prev = self._last[2]
            view = RegistryView(dict(prev.records), dict(prev.by_key), dict(prev.by_sha), set(prev.invalid),
                                base_records=prev.records)
            old_entries = self._last[1]
        derived = self.objects.derivation(folder_sha) if folder_sha else None
        if self._last is not None and derived is not None and derived[0] == self._last[0]:
            names = derived[1]  # built here from the previous folder: only these entries differ
        else:
            names = {n for n, v in entries.items() if old_entries.get(n) != v} | (old_entries.keys() - entries.keys())
        self._read_many([entries[n][1] for n in names
                         if n in entries and n.endswith(b".json") and entries[n][1] not in self._parsed])
        changed_docs = []
        for name in sorted(names):
            if not name.endswith(b".json"):
                continue
            doc = name[: -len(b".json")].decode("utf-8", "surrogateescape")
            changed_docs.append(doc)
            view.invalid.discard(doc)
            old = view.records.pop(doc, None)
            # (a record is data from the history: a `path` or `sha256` that is not text is not
            # indexed, `openkb fsck` reports it, and nothing else trips over it)
            if old is not None:
                if _text(old.get("path")) and view.by_key.get(old["path"]) == doc:
                    del view.by_key[old["path"]]
                if _text(old.get("sha256")) and view.by_sha.get(old["sha256"]) == doc:
                    del view.by_sha[old["sha256"]]
            if name in entries:
                record = self._record(entries[name][1])
                if record is None:
                    view.invalid.add(doc)
                    continue
                view.records[doc] = record
                if _text(record.get("path")):
                    view.by_key[record["path"]] = doc
                if _text(record.get("sha256")):
                    view.by_sha[record["sha256"]] = doc
        view.changed = frozenset(changed_docs)
        self._last = (folder_sha, entries, view)
        return view

    @property
    def warm(self) -> bool:
        """True once a view was built (the next view is derived from it)."""
        return self._last is not None

    def record(self, sha: bytes) -> dict | None:
        """The record in blob ``sha`` (None when it is not a JSON object)."""
        return self._record(sha)

    def _record(self, sha: bytes) -> dict | None:
        record = self._parsed.get(sha)
        return record if record is not None else self._parse(sha, self.objects.blob_bytes(sha))

    def _parse(self, sha: bytes, raw: bytes) -> dict | None:
        try:
            record = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        self._parsed[sha] = record
        return record


class RecordMemo(ObjectMemo):
    """Registry record blobs by id, kept in `.openkb/records.cache` so that a fresh process
    builds the registry view without looking up every record in the packs (50,000 records:
    about 10 s of pack lookups, against a fraction of a second read from here). Every entry
    is checked against its id when loaded (git/memo.py: one rule for every memo), so an entry
    is never wrong, only missing. Safe to delete.
    """

    def __init__(self, path: os.PathLike):
        super().__init__(path, b"blob")


def _text(value) -> bool:
    return isinstance(value, str) and bool(value)
