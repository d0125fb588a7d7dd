"""hashes.json patched from the last rendering equals a full rendering."""

from __future__ import annotations

import json
import os
import random

from openkb_git import views


def record(doc: str, sha: str) -> dict:
    return {"doc_name": doc, "name": f"{doc}.md", "sha256": sha, "type": "md", "path": f"/src/{doc}.md",
            "raw_path": f"raw/{doc}.md", "source_path": f"wiki/sources/{doc}.md"}


def test_patched_rendering_equals_full_rendering():
    rng = random.Random(7)
    records = {f"d{i:03d}": record(f"d{i:03d}", f"{i:064x}") for i in range(200)}
    views.hashes_json(records)
    for step in range(60):
        base = records
        records = dict(base)
        changed = set()
        for _ in range(rng.randint(1, 4)):
            doc = f"d{rng.randint(0, 260):03d}"
            changed.add(doc)
            if doc in records and rng.random() < 0.4:
                del records[doc]
            else:
                records[doc] = record(doc, f"{rng.getrandbits(200):064x}")
        patched = views.hashes_json(records, base=base, changed=frozenset(changed))
        views._last_render["records"] = None  # force the full path for the reference
        full = views.hashes_json(records)
        assert patched == full, step
        assert set(json.loads(full)) == {r["sha256"] for r in records.values()}


def test_unrelated_base_falls_back_to_full_rendering():
    a = {"x": record("x", "1" * 64)}
    b = {"y": record("y", "2" * 64)}
    views.hashes_json(a)
    # `b` does not derive from the last rendering: `changed` must not be trusted
    assert views.hashes_json(b, base={"z": {}}, changed=frozenset()) == views.hashes_json(b)


def test_same_records_again_give_the_same_rendering():
    base = {f"d{i}": record(f"d{i}", f"{i:064x}") for i in range(5)}
    views.hashes_json(base)
    records = dict(base)
    records["new"] = record("new", "f" * 64)
    patched = views.hashes_json(records, base=base, changed=frozenset({"new"}))
    # the registry did not change (an edit commit): the last rendering is reused as is
    assert views.hashes_json(records) == patched
    views._last_render["records"] = None
    assert views.hashes_json(records) == patched
    assert "new" in json.dumps(json.loads(patched))


def test_views_behind_head_are_patched_from_the_registry_changes(kb, tmp_path):
    """A fresh process (recovery) brings hashes.json from the views' commit to HEAD by patching
    the lines of the changed records only: the result equals the full rendering, and a line it
    had no reason to touch is left as it was (so the work is O(changes), not O(documents))."""
    from conftest import assert_consistent, copy_tldr, run_openkb

    run_openkb("add", copy_tldr(tmp_path / "a", ["tar.md", "grep.md", "ls.md"]), cwd=kb, check=True)
    hashes, state = kb / ".openkb" / "hashes.json", kb / ".openkb" / "views.json"
    old_hashes, old_state = hashes.read_bytes(), state.read_bytes()
    run_openkb("add", copy_tldr(tmp_path / "b", ["cat.md", "cp.md"]), cwd=kb, check=True)
    run_openkb("remove", "tar", cwd=kb, check=True)
    current = hashes.read_bytes()

    hashes.write_bytes(old_hashes)  # views left at an older commit, as after a crash
    state.write_bytes(old_state)
    assert run_openkb("recover", cwd=kb, check=True).returncode == 0
    assert hashes.read_bytes() == current
    assert run_openkb("fsck", cwd=kb).returncode == 0

    forged = old_hashes.replace(b'"type": "md", "path": "a/grep.md',
                                b'"type": "mx", "path": "a/grep.md')
    assert forged != old_hashes and len(forged) == len(old_hashes)
    hashes.write_bytes(forged)
    state.write_bytes(old_state)
    run_openkb("recover", cwd=kb, check=True)
    assert b'"type": "mx"' in hashes.read_bytes()  # grep did not change since: its line was not rewritten
    assert ("views", ".openkb/hashes.json") in {(p["check"], p["path"]) for p in json.loads(
        run_openkb("fsck", "--json", cwd=kb).stdout)["problems"]}
    run_openkb("fsck", "--repair", cwd=kb)
    assert hashes.read_bytes() == current
    assert_consistent(kb)


def test_patched_rendering_down_to_empty_and_back():
    """Entries removed one by one from either end down to none, then added back out of order:
    each patched rendering equals a full one (the splices at the ends and of the only entry)."""
    records = {f"d{i}": record(f"d{i}", f"{i:064x}") for i in range(6)}
    views.hashes_json(records)
    for doc in ["d0", "d5", "d2", "d4", "d1", "d3", "d3", "d0", "d5", "d2"]:
        base = records
        records = dict(base)
        if doc in records:
            del records[doc]
        else:
            records[doc] = record(doc, f"{int(doc[1:]) + 100:064x}")
        patched = views.hashes_json(records, base=base, changed=frozenset({doc}))
        views._last_render["records"] = None
        assert patched == views.hashes_json(records), doc
        assert json.loads(patched) == {r["sha256"]: views.hashes_entry(r) for r in records.values()}


def test_first_commit_of_a_process_patches_hashes_json_from_disk(kb, tmp_path):
    """A new process does not render hashes.json from every record: it patches the file on disk
    (vouched for by views.json) and splices later commits into that. The result equals a full
    rendering; a line no commit touched is carried over as it was."""
    from conftest import assert_consistent, copy_tldr, run_openkb

    from openkb_git.kb import KB
    from openkb_git.registry import Registry

    def full_rendering() -> bytes:
        handle = KB(kb)
        views._last_render["records"] = None
        return views.hashes_json(Registry(handle.objects).view(handle.head_tree()).records)

    hashes = kb / ".openkb" / "hashes.json"
    run_openkb("add", copy_tldr(tmp_path / "a", ["tar.md", "grep.md", "ls.md"]), cwd=kb, check=True)
    run_openkb("add", copy_tldr(tmp_path / "b", ["cat.md", "cp.md"]), cwd=kb, check=True)
    assert hashes.read_bytes() == full_rendering()

    old = hashes.read_bytes()
    forged = old.replace(b'"type": "md", "path": "a/grep.md',
                         b'"type": "mx", "path": "a/grep.md')
    assert forged != old and len(forged) == len(old)
    written = hashes.stat()
    hashes.write_bytes(forged)
    # the same size and time as the file views.json vouches for: taken for it (a file changed
    # since, by OpenKB, is read for its new entries and made again: tests/test_openkb_adopt.py)
    os.utime(hashes, ns=(written.st_atime_ns, written.st_mtime_ns))
    run_openkb("add", copy_tldr(tmp_path / "c", ["rm.md", "mv.md"]), cwd=kb, check=True)
    run_openkb("remove", "tar", cwd=kb, check=True)
    assert b'"type": "mx"' in hashes.read_bytes()  # grep's line was patched around, not re-rendered
    assert hashes.read_bytes() == full_rendering().replace(b'"type": "md", "path": "a/grep.md',
                                                           b'"type": "mx", "path": "a/grep.md')
    run_openkb("fsck", "--repair", cwd=kb)
    assert hashes.read_bytes() == full_rendering()
    assert_consistent(kb)


def test_a_rendering_that_does_not_line_up_is_not_seeded():
    records = {f"d{i}": record(f"d{i}", f"{i:064x}") for i in range(3)}
    views._last_render["records"] = None
    two_lines = views._render([views._entry_text(records["d0"]).encode(), views._entry_text(records["d1"]).encode()])
    views._seed_rendering(records, two_lines)
    assert views._last_render["records"] is None
    views._seed_rendering({}, two_lines)
    assert views._last_render["records"] is None
    full = views.hashes_json(records)
    views._last_render["records"] = None
    views._seed_rendering(records, full)
    assert views._last_render["records"] is records and views._last_render["parts"] == full[2:-3].split(b",\n")
