"""Untracked views rebuilt from the history: `.openkb/hashes.json` (OpenKB's registry format)
and `wiki/log.md` (OpenKB's operations log).

`.openkb/views.json` records the commit the views reflect and the size of log.md at that
commit, so an update after a commit costs only the new commits, and an interrupted
update is repaired by truncating log.md back to the recorded size.
"""

from __future__ import annotations

import bisect
import json
import os
import time

from .fsutil import append_bytes, fsync_file, makedirs, write_file
from .history import Entry, iter_entries
from .kb import KB
from .registry import Registry

HASHES = ".openkb/hashes.json"
LOG = "wiki/log.md"
STATE = ".openkb/views.json"
LOG_HEADER = "# Operations Log\n\n"

# Fields OpenKB's hashes.json carries for a document.
OPENKB_FIELDS = ("name", "doc_name", "type", "path", "raw_path", "source_path", "pages", "doc_id")

LOG_OPS = {"add": "ingest"}


def hashes_entry(record: dict) -> dict:
    """OpenKB's metadata for one record."""
    return {k: record[k] for k in OPENKB_FIELDS if record.get(k) not in (None, "")}


# The last rendering of hashes.json: the records it was made from, and its entries
# (doc names with a sha256, sorted, and the text of each entry), patched for the next one.
_last_render: dict = {"records": None, "docs": [], "parts": []}


def _entry_text(record: dict) -> str:
    return json.dumps(record["sha256"]) + ": " + json.dumps(hashes_entry(record), ensure_ascii=False)


def hashes_json(records: dict[str, dict], *, base: dict[str, dict] | None = None,
                changed: frozenset[str] | None = None) -> bytes:
    """OpenKB's hashes.json ({sha256: metadata}) for ``records``, in doc-name order.

    The same ``records`` as last time give the last rendering again; with ``base`` (the
    records last rendered) and ``changed`` (the doc names that differ from them), the last
    rendering is patched instead of walking every record. Either way a rewrite after one
    ingest costs a join.
    """
    last = _last_render
    if last["records"] is records:  # e.g. an edit commit: the registry did not change
        docs, parts = last["docs"], last["parts"]
    elif base is not None and changed is not None and last["records"] is base:
        docs, parts = last["docs"], last["parts"]
        for doc in sorted(changed):
            at = bisect.bisect_left(docs, doc)
            if at < len(docs) and docs[at] == doc:
                del docs[at]
                del parts[at]
            record = records.get(doc)
            if record is not None and record.get("sha256"):
                docs.insert(at, doc)
                parts.insert(at, _entry_text(record))
    else:
        docs = [doc for doc in sorted(records) if records[doc].get("sha256")]
        parts = [_entry_text(records[doc]) for doc in docs]
    last.update(records=records, docs=docs, parts=parts)
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode("utf-8")


def log_line(entry: Entry) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.time))
    op = LOG_OPS.get(entry.op, entry.op)
    source = entry.trailers.get("OpenKB-Source")
    what = source.rsplit("/", 1)[-1] if source else (entry.doc or entry.subject)
    return f"## [{stamp}] {op} | {what} ({entry.short})\n\n"


def view_paths() -> list[str]:
    """The view files, for making them durable with the rest of a mutation."""
    return [HASHES, LOG, STATE]


def read_state(kb: KB) -> dict:
    try:
        state = json.loads((kb.root / STATE).read_text(encoding="utf-8"))
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def update_views(kb: KB, registry: Registry, *, full: bool = False) -> None:
    """Bring hashes.json and log.md up to HEAD.

    Cost: proportional to the commits since the views' recorded commit (and to the
    number of documents for hashes.json); ``full`` rebuilds from the whole history.
    """
    head = kb.head()
    state = {} if full else read_state(kb)
    if head is not None and state.get("commit") == head.decode() and (kb.root / HASHES).exists() and (kb.root / LOG).exists():
        return
    tree = kb.head_tree(head)
    view = registry.view(tree)
    makedirs(kb.openkb_dir, sync=False)
    write_file(kb.root / HASHES, hashes_json(view.records, base=view.base_records, changed=view.changed), sync=False)

    log_path = kb.root / LOG
    new_entries: list[Entry] = []
    known = state.get("commit")
    size = state.get("log_size")
    incremental = False
    if known and isinstance(size, int) and log_path.exists() and os.path.getsize(log_path) >= size:
        for entry in iter_entries(kb, head):
            if entry.sha == known:
                incremental = True
                break
            new_entries.append(entry)
    if not incremental:
        new_entries = list(iter_entries(kb, head))
        size = None
    makedirs(log_path.parent, sync=False)
    lines = "".join(log_line(e) for e in reversed(new_entries))
    if size is None:
        write_file(log_path, (LOG_HEADER + prelude(kb) + lines).encode("utf-8"), sync=False)
    else:
        with open(log_path, "r+b") as fh:
            fh.truncate(size)
        append_bytes(log_path, lines.encode("utf-8"), sync=False)
    # The views' content is durable before the state that vouches for it is written.
    fsync_file(kb.root / HASHES)
    fsync_file(log_path)
    state = {"commit": head.decode() if head else None, "log_size": os.path.getsize(log_path)}
    write_file(kb.root / STATE, json.dumps(state).encode("utf-8"), sync=False)


def prelude(kb: KB) -> str:
    """Entries of an adopted OpenKB log (kept in `.openkb/log-before-git.md`), if any."""
    path = kb.root / ".openkb" / "log-before-git.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    if text.startswith(LOG_HEADER):
        text = text[len(LOG_HEADER):]
    return text if text.endswith("\n\n") or not text else text.rstrip("\n") + "\n\n"


def views_are_current(kb: KB) -> bool:
    head = kb.head()
    return read_state(kb).get("commit") == (head.decode() if head else None) and (kb.root / HASHES).exists()
