"""The record memo (.openkb/records.cache): a fresh process builds the registry view from it,
and a damaged memo can only make entries missing, never wrong."""

from __future__ import annotations

import pytest

from openkb_git.kb import KB
from openkb_git.ops.session import Writer
from openkb_git.protocol.commit import Mutation, commit_mutation
from openkb_git.registry import MEMO_MIN, RECORD_MEMO, Registry, RecordMemo, encode_record, record_path

DOCS = MEMO_MIN + 16


def record(i: int) -> dict:
    doc = f"doc-{i:03d}"
    return {"doc_name": doc, "name": f"{doc}.md", "sha256": f"{i:064x}", "type": "md", "path": f"/src/{doc}.md",
            "raw_path": f"raw/{doc}.md", "source_path": f"wiki/sources/{doc}.md", "title": f"Dokument №{i}"}


@pytest.fixture
def kb_with_records(kb):
    handle = KB(kb)
    writer = Writer(handle)
    changes = {record_path(f"doc-{i:03d}"): encode_record(record(i)) for i in range(DOCS)}
    with writer.locked():
        commit_mutation(handle, writer.registry, handle.head(), Mutation(op="add", subject="add: records", changes=changes))
    return handle


def fresh_view(kb: KB, forbidden: set[bytes] = frozenset()) -> dict:
    """The records of a view built by a new Registry (as in a new process); reading a blob of
    ``forbidden`` from the object store fails the test."""
    real = kb.objects.blob_bytes

    def blob_bytes(sha):
        assert sha not in forbidden, "read from the object store although the memo holds it"
        return real(sha)

    kb.objects.blob_bytes = blob_bytes
    try:
        return Registry.of(kb).view(kb.head_tree()).records
    finally:
        del kb.objects.blob_bytes


def registry_blobs(kb: KB) -> set[bytes]:
    return {sha for _name, (_mode, sha) in kb.objects.tree_entries(kb.objects.lookup(kb.head_tree(), ".openkb/registry")[1]).items()}


def test_a_fresh_view_is_read_from_the_memo(kb_with_records):
    kb = kb_with_records
    truth = {f"doc-{i:03d}": record(i) for i in range(DOCS)}
    assert Registry(kb.objects).view(kb.head_tree()).records == truth  # no memo: the object store
    memo_file = kb.openkb_dir / RECORD_MEMO
    memo_file.unlink(missing_ok=True)

    assert fresh_view(kb) == truth  # reads the store, writes the memo
    assert set(RecordMemo(memo_file).raw) == registry_blobs(kb)
    assert fresh_view(kb, forbidden=registry_blobs(kb)) == truth  # reads only the memo
    size = memo_file.stat().st_size
    fresh_view(kb)
    assert memo_file.stat().st_size == size  # nothing new: nothing appended


def test_a_forged_entry_is_not_used(kb_with_records):
    kb = kb_with_records
    truth = {f"doc-{i:03d}": record(i) for i in range(DOCS)}
    memo_file = kb.openkb_dir / RECORD_MEMO
    fresh_view(kb)
    data = memo_file.read_bytes()
    forged = data.replace(b'"type": "md"', b'"type": "mx"', 1)  # same length, content no longer its id
    assert forged != data and len(forged) == len(data)
    memo_file.write_bytes(forged)

    assert fresh_view(kb) == truth
    assert RecordMemo(memo_file).raw.keys() == registry_blobs(kb)  # rewritten whole and clean
    assert b'"type": "mx"' not in memo_file.read_bytes()


@pytest.mark.parametrize("damage", ["torn", "garbage", "bad length"])
def test_a_damaged_end_is_dropped_and_rewritten(kb_with_records, damage):
    kb = kb_with_records
    truth = {f"doc-{i:03d}": record(i) for i in range(DOCS)}
    memo_file = kb.openkb_dir / RECORD_MEMO
    fresh_view(kb)
    data = memo_file.read_bytes()
    half = data.index(b"\n", len(data) // 2)  # inside some entry
    if damage == "torn":
        memo_file.write_bytes(data[:half])
    elif damage == "garbage":
        memo_file.write_bytes(data + b"\x00\x17not an entry\n")
    else:
        sha_end = data.index(b" ")
        memo_file.write_bytes(data[:sha_end] + b" 9" + data[data.index(b"\n"):])
    kept = RecordMemo(memo_file).raw
    assert len(kept) < DOCS or damage == "garbage"
    assert fresh_view(kb, forbidden=set(kept)) == truth
    assert RecordMemo(memo_file).raw.keys() == registry_blobs(kb)
    assert RecordMemo(memo_file)._clean



def test_gc_keeps_only_the_records_at_head(kb_with_records):
    import json

    from conftest import run_openkb

    kb = kb_with_records
    memo_file = kb.openkb_dir / RECORD_MEMO
    fresh_view(kb)
    writer = Writer(kb)
    changes = {record_path(f"doc-{i:03d}"): encode_record({**record(i), "title": "changed"}) for i in range(5)}
    changes[record_path("doc-006")] = None
    with writer.locked():
        commit_mutation(kb, writer.registry, kb.head(), Mutation(op="add", subject="add: changed", changes=changes))
    kb.close()
    before = set(RecordMemo(memo_file).raw)
    handle = KB(kb.root)
    live = registry_blobs(handle)
    assert live < before and len(before - live) == 6  # 5 records' old versions, 1 removed record
    result = json.loads(run_openkb("gc", "--json", cwd=kb.root, check=True).stdout)
    assert result["memo_records_dropped"] == 6
    assert set(RecordMemo(memo_file).raw) == live
    assert Registry.of(handle).view(handle.head_tree()).records["doc-001"]["title"] == "changed"
