"""Read-only verbs: log, status, list. They take no lock and read one commit."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..history import Entry, iter_entries
from ..kb import KB
from ..registry import Registry


def entry_json(entry: Entry, position: int | None = None) -> dict:
    return {"commit": entry.sha, "short": entry.short, "position": position,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(entry.time)),
            "op": entry.op, "doc": entry.doc, "subject": entry.subject,
            "source": entry.trailers.get("OpenKB-Source"), "trailers": entry.trailers}


def log_entries(kb: KB, *, doc: str | None = None, op: str | None = None, path: str | None = None,
                limit: int | None = None) -> list[tuple[int, Entry]]:
    """Operations newest first as (position, entry); position 0 is HEAD, 1 is HEAD~1, …"""
    out: list[tuple[int, Entry]] = []
    for position, entry in enumerate(iter_entries(kb)):
        if doc is not None and entry.doc != doc:
            continue
        if op is not None and entry.op != op:
            continue
        if path is not None and not _touches(kb, entry, path):
            continue
        out.append((position, entry))
        if limit is not None and len(out) >= limit:
            break
    return out


def _touches(kb: KB, entry: Entry, path: str) -> bool:
    tree = kb.objects.get(entry.sha.encode()).tree
    parent_tree = kb.objects.get(entry.parent.encode()).tree if entry.parent else None
    path = path.strip("/")
    return kb.objects.lookup(tree, path) != kb.objects.lookup(parent_tree, path)


@dataclass
class Status:
    root: str
    head: str | None
    documents: int
    concepts: int
    commits: int
    dirty: list[str]
    pending_journals: list[str]
    views_current: bool
    lock_holder: dict | None

    def to_json(self) -> dict:
        return asdict(self)


def status(kb: KB) -> Status:
    # Imported here: `log` and `show` import this module and need none of it (start-up time).
    from ..lock import KBLock
    from ..protocol.journal import pending_journals
    from ..views import views_are_current
    from .edits import find_edits

    head = kb.head()
    tree = kb.head_tree(head)
    records = Registry.of(kb).view(tree).records
    concepts = [n for n in kb.objects.list_dir(tree, "wiki/concepts") if n.endswith(".md")]
    commits = sum(1 for _ in iter_entries(kb, head))
    holder = KBLock(kb.openkb_dir).probe()
    return Status(root=str(kb.root), head=head.decode() if head else None, documents=len(records),
                  concepts=len(concepts), commits=commits, dirty=sorted(find_edits(kb, tree)),
                  pending_journals=[p.name for group in pending_journals(kb) for p in group],
                  views_current=views_are_current(kb), lock_holder=holder)


def list_documents(kb: KB) -> list[dict]:
    """One dict per document at HEAD, sorted by doc name."""
    records = Registry.of(kb).view(kb.head_tree()).records
    out = []
    for doc in sorted(records):
        r = records[doc]
        out.append({"doc": doc, "name": r.get("name"), "type": r.get("type"), "pages": r.get("pages"),
                    "title": r.get("title"), "source": r.get("path"), "sha256": r.get("sha256"),
                    "concepts": r.get("concepts", [])})
    return out
