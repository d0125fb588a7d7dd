"""Untracked views rebuilt from the history: `.openkb/hashes.json` (OpenKB's registry format)
and `wiki/log.md` (OpenKB's operations log).

`.openkb/views.json` records the commit the views reflect and the size of log.md at that
commit, so an update after a commit costs only the new commits, and an interrupted
update is repaired by truncating log.md back to the recorded size.
"""

from __future__ import annotations

import bisect
import heapq
import json
import os
import time

from .fsutil import append_bytes, fsync_file, makedirs, truncate_file, write_file
from .history import Entry, iter_entries
from .kb import KB, REGISTRY_DIR
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


# The last rendering of hashes.json: the records it was made from, its entries (doc names
# with a sha256, sorted, and the encoded text of each entry) and its bytes, patched for the next.
_last_render: dict = {"records": None, "docs": [], "parts": [], "data": b"{\n\n}\n"}


def _entry_text(record: dict) -> str:
    return json.dumps(record["sha256"]) + ": " + json.dumps(hashes_entry(record), ensure_ascii=False)


def _render(parts: list[bytes]) -> bytes:
    return b"{\n" + b",\n".join(parts) + b"\n}\n"


def _splice(data: bytes, parts: list[bytes], at: int, removed: bytes | None, added: bytes | None) -> bytes:
    """``data`` (the rendering of ``parts`` before the edit) with entry ``at`` removed and/or
    ``added`` put there; ``parts`` is already edited. One copy of the bytes instead of joining
    every entry again (12 MB of 50,000 entries: 26 ms joined, a few ms spliced)."""
    # Where entry `at` starts (`{\n` and each `,\n` counted), or the closing `\n}\n` when it is
    # appended after the last one (which has no `,\n` after it).
    start = min(2 + sum(map(len, parts[:at])) + 2 * at, len(data) - 3)
    end = start  # data[start:end] is replaced by `insert`
    insert = b""
    if removed is not None:
        end += len(removed)
        if data[end:end + 2] == b",\n":
            end += 2
        elif data[start - 2:start] == b",\n":  # the last entry went: so does the comma before it
            start -= 2
    if added is not None:
        if end < len(data) - 3:  # another entry follows
            insert = added + b",\n"
        elif start > 2:
            insert = b",\n" + added
        else:
            insert = added
    view = memoryview(data)
    return b"".join((view[:start], insert, view[end:]))


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
        return last["data"]
    if base is not None and changed is not None and last["records"] is base:
        docs, parts, data = last["docs"], last["parts"], last["data"]
        for doc in sorted(changed):
            at = bisect.bisect_left(docs, doc)
            removed = added = None
            if at < len(docs) and docs[at] == doc:
                del docs[at]
                removed = parts.pop(at)
            record = records.get(doc)
            if record is not None and record.get("sha256"):
                docs.insert(at, doc)
                added = _entry_text(record).encode("utf-8")
                parts.insert(at, added)
            if removed is not None or added is not None:
                data = _splice(data, parts, at, removed, added)
    else:
        docs = [doc for doc in sorted(records) if records[doc].get("sha256")]
        parts = [_entry_text(records[doc]).encode("utf-8") for doc in docs]
        data = _render(parts)
    last.update(records=records, docs=docs, parts=parts, data=data)
    return data


def _seed_rendering(records: dict[str, dict], data: bytes) -> None:
    """Take ``data`` (hashes.json of ``records``, as `_patched_hashes` made it from the file on
    disk) as the last rendering, unless its entries do not line up with the records."""
    docs = [doc for doc in sorted(records) if records[doc].get("sha256")]
    parts = data[2:-3].split(b",\n") if data != _render([]) else []
    if len(parts) == len(docs):
        _last_render.update(records=records, docs=docs, parts=parts, data=data)


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


def update_views(kb: KB, registry: Registry, *, full: bool = False, patch: bool = False, journal=None) -> None:
    """Bring hashes.json and log.md up to HEAD.

    Cost: proportional to the commits since the views' recorded commit (and to the
    number of documents for hashes.json); ``full`` rebuilds from the whole history.
    With ``patch`` (recovery, a one-off in a fresh process) hashes.json is patched from the
    registry changes instead of building the registry view (which a process that goes on
    committing wants warm); ``journal`` names the blobs of the paths it touched, so the
    registry's tree need not even be read.
    """
    head = kb.head()
    prior = read_state(kb)
    state = {} if full else prior
    if head is not None and state.get("commit") == head.decode() and (kb.root / HASHES).exists() and (kb.root / LOG).exists():
        return
    tree = kb.head_tree(head)
    makedirs(kb.openkb_dir, sync=False)
    patched = _patched_hashes(kb, registry, state, tree, journal) if patch and not full and not registry.warm else None
    if patched is not None:  # e.g. recovery in a fresh process: O(registry changes), not O(documents)
        hashes, consistent = patched
    else:
        view = registry.view(tree)
        rendered = _last_render["records"]
        if not full and (rendered is None or (rendered is not view.records and rendered is not view.base_records)):
            # A fresh process (the first commit of an `add`): rather than rendering every
            # record, patch the file on disk and keep that as the rendering to splice next.
            seeded = _patched_hashes(kb, registry, state, tree, journal)
            if seeded is not None:
                _seed_rendering(view.records, seeded[0])
        hashes = hashes_json(view.records, base=view.base_records, changed=view.changed)
        if view.base_records is not None and "names_consistent" in state:
            consistent = state["names_consistent"] and all(
                view.records[doc].get("doc_name") == doc for doc in view.changed if doc in view.records)
        else:
            consistent = all(record.get("doc_name") == doc for doc, record in view.records.items())
    write_file(kb.root / HASHES, hashes, sync=False)

    log_path = kb.root / LOG
    new_entries: list[Entry] = []
    known = prior.get("commit")
    size = prior.get("log_size")
    incremental = False
    if known and isinstance(size, int) and log_path.exists() and os.path.getsize(log_path) >= size:
        walk = iter_entries(kb, head)
        for entry in walk:
            if entry.sha == known:
                # Appending is right only when every commit the file does not list came before
                # the one it ends with (a pull can bring older operations: then it is rewritten).
                incremental = walk.cut and not full
                break
            new_entries.append(entry)
        walk.close()
        # Whatever the file gets, the lines another tool appended after the state's size are kept
        # first (those of ours there, an update cut short, are the new commits' lines).
        if _keep_foreign_log(kb, log_path, size, {log_line(e).rstrip("\n") for e in new_entries}):
            incremental = False  # rewritten with them in place
    if not incremental:
        new_entries = list(iter_entries(kb, head))
        size = None
    makedirs(log_path.parent, sync=False)
    lines = "".join(log_line(e) for e in reversed(new_entries))
    if size is None:
        write_file(log_path, render_log(kb, new_entries).encode("utf-8"), sync=False)
    else:
        truncate_file(log_path, size)
        append_bytes(log_path, lines.encode("utf-8"), sync=False)
    # The views' content is durable before the state that vouches for it is written.
    fsync_file(kb.root / HASHES)
    fsync_file(log_path)
    state = {"commit": head.decode() if head else None, "log_size": os.path.getsize(log_path),
             "hashes_size": len(hashes), "hashes_mtime": os.stat(kb.root / HASHES).st_mtime_ns,
             "names_consistent": consistent}
    write_file(kb.root / STATE, json.dumps(state).encode("utf-8"), sync=False)


def _patched_hashes(kb: KB, registry: Registry, state: dict, tree: bytes | None, journal=None) -> tuple[bytes, bool] | None:
    """hashes.json at ``tree``, made by patching the file written for the state's commit with
    the registry records that changed since: (bytes, names consistent), or None when the
    file cannot be trusted for that (then the caller rebuilds it from every record).

    The file has one entry per line in doc-name order, and every record's ``doc_name`` is its
    doc name (``names_consistent``), so an entry is found by bisection on its line."""
    known, size = state.get("commit"), state.get("hashes_size")
    if not state.get("names_consistent") or not isinstance(known, str) or not isinstance(size, int):
        return None
    try:
        data = (kb.root / HASHES).read_bytes()
    except OSError:
        return None
    if len(data) != size or not data.startswith(b"{\n") or not data.endswith(b"\n}\n"):
        return None
    body = data[2:-3].split(b",\n")  # one entry a line; JSON text never holds a raw newline
    if body == [b""]:
        body = []
    changes = _registry_changes(kb, known, tree, journal)
    if changes is None:
        return None
    keys: dict[int, str] = {}

    def doc_at(i: int) -> str:
        if i not in keys:
            (entry,) = json.loads(b"{" + body[i] + b"}").values()
            keys[i] = entry["doc_name"]
        return keys[i]

    try:
        for name in sorted(changes):
            if not name.endswith(b".json"):
                continue
            doc = name[: -len(b".json")].decode("utf-8", "surrogateescape")
            at = bisect.bisect_left(range(len(body)), doc, key=doc_at)
            if at < len(body) and doc_at(at) == doc:
                del body[at]
            keys.clear()
            new = changes[name]
            record = registry.record(new) if new is not None else None
            if record is None or not record.get("sha256"):
                continue
            if record.get("doc_name") != doc:
                return None
            body.insert(at, _entry_text(record).encode("utf-8"))
    except (ValueError, KeyError, TypeError):  # a line that is not what this module writes
        return None
    return b"{\n" + b",\n".join(body) + b"\n}\n", True


def _registry_changes(kb: KB, known: str, tree: bytes | None, journal) -> dict[bytes, bytes | None] | None:
    """{entry name: new blob id or None} of the registry entries that differ between commit
    ``known`` and ``tree``: from the journal when both are its base or new commit (it names
    every path the mutation touched), else by diffing the two registry trees."""
    head = kb.head()
    head = head.decode() if head else None
    ends = {journal.base, journal.new} if journal is not None else set()
    blobs = journal.blobs_at(head) if journal is not None and known in ends and head in ends else None
    if blobs is not None:
        prefix = REGISTRY_DIR + "/"
        return {path[len(prefix):].encode("utf-8", "surrogateescape"): sha.encode() if sha else None
                for path, sha in blobs.items() if path.startswith(prefix) and "/" not in path[len(prefix):]}
    try:
        base_tree = kb.objects.get(known.encode()).tree
    except (KeyError, ValueError, AttributeError):
        return None
    old_folder = kb.objects.lookup(base_tree, REGISTRY_DIR)
    new_folder = kb.objects.lookup(tree, REGISTRY_DIR)
    diff = kb.objects.diff_tree(old_folder[1] if old_folder else None, new_folder[1] if new_folder else None)
    return {name: (new[1] if new is not None else None) for name, (_old, new) in diff.items()}


# Lines OpenKB's own commands appended to log.md (`ingest`, `remove`, `query`, `lint`, …), kept
# here (local and untracked, as log.md itself) so each rewrite of the view keeps them, in time order.
FOREIGN_LOG = ".openkb/openkb-git/openkb-log.md"


def _keep_foreign_log(kb: KB, log_path, size: int, ours: set[str]) -> bool:
    """Move the lines another tool appended to log.md after our last write (beyond ``size``) to
    FOREIGN_LOG; True when there were any. ``ours``: the lines of the commits since that write
    (an update of ours cut short leaves some there, to be written again), not kept; nor a
    line FOREIGN_LOG holds already (kept before a crash, or before the state recorded it)."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(size)
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return False
    foreign = [line for line in tail.split("\n") if line.startswith("## [") and line not in ours]
    if not foreign:
        return False
    target = kb.root / FOREIGN_LOG
    try:
        kept = set(target.read_text(encoding="utf-8").split("\n"))
    except OSError:
        kept = set()
    fresh = [line for line in dict.fromkeys(foreign) if line not in kept]
    if fresh:
        makedirs(target.parent, sync=False)
        append_bytes(target, "".join(line + "\n\n" for line in fresh).encode("utf-8"), sync=True)
    return True


def rewrite_hashes(kb: KB, registry: Registry) -> None:
    """hashes.json made again from the records at HEAD, and views.json told so: another tool
    rewrote it and nothing of that is to be recorded (when the views are behind HEAD, the
    next update_views does it)."""
    state = read_state(kb)
    head = kb.head()
    if head is None or state.get("commit") != head.decode():
        return
    data = hashes_json(registry.view(kb.head_tree(head)).records)
    write_file(kb.root / HASHES, data, sync=True)
    state.update(hashes_size=len(data), hashes_mtime=os.stat(kb.root / HASHES).st_mtime_ns)
    write_file(kb.root / STATE, json.dumps(state).encode("utf-8"), sync=True)


def render_log(kb: KB, entries: list[Entry]) -> str:
    """log.md for ``entries`` (newest first): OpenKB's header, an adopted OpenKB log's lines,
    then one line per operation, with the lines OpenKB's own commands appended since merged in
    by their time."""
    ours = [log_line(e) for e in reversed(entries)]
    try:
        text = (kb.root / FOREIGN_LOG).read_text(encoding="utf-8")
    except OSError:
        text = ""
    if text:
        theirs = [line + "\n\n" for line in text.split("\n") if line.startswith("## [")]
        ours = list(heapq.merge(ours, theirs, key=lambda line: line[4:23]))
    return LOG_HEADER + prelude(kb) + "".join(ours)


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
