"""Issue #18 items 5, 6 and 7 (`use`): `openkb search` (an FTS index kept at HEAD, `--history`),
`openkb watch` (real watchdog events, a real subprocess), `openkb use` (a default KB)."""

from __future__ import annotations

import json
import shutil

from conftest import TLDR, assert_consistent, copy_tldr, git, run_openkb


def _search(kb, *args):
    proc = run_openkb("--kb-dir", kb, "search", "--json", *args, check=True)
    return json.loads(proc.stdout)


def _paths(result):
    return [h["path"] for h in result["hits"]]


def test_search_ranks_pages_with_snippets_and_the_ingest_that_last_changed_each(kb, tmp_path):
    docs = copy_tldr(tmp_path / "in", ["tar.md", "gzip.md", "ls.md"])
    run_openkb("--kb-dir", kb, "add", docs, check=True)
    result = _search(kb, "archiving", "utility")
    assert result["hits"], result
    top = result["hits"][0]
    assert top["path"] == "wiki/sources/tar.md"
    assert "**Archiving**" in top["snippet"] and "**utility**" in top["snippet"]
    assert top["last_changed"]["op"] == "add" and top["last_changed"]["doc"] == "tar"
    assert top["last_changed"]["commit"] == git(kb, "log", "-1", "--format=%H", "--", "wiki/sources/tar.md").strip()
    assert "ls" not in {h["path"].rsplit("/", 1)[-1][:-3] for h in result["hits"]}
    # ranked: more matches and title words first; scores never rise down the list
    scores = [h["score"] for h in result["hits"]]
    assert scores == sorted(scores, reverse=True)
    # a second ingest that changes a shared page is named as the page's last change
    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in2", ["zip.md"]), check=True)
    hits = {h["path"]: h for h in _search(kb, "archive", "--limit", "50")["hits"]}
    assert hits["wiki/sources/zip.md"]["last_changed"]["doc"] == "zip"
    assert hits["wiki/sources/tar.md"]["last_changed"]["doc"] == "tar"
    for path, hit in hits.items():  # every hit names what `git log -1 -- path` names
        assert hit["last_changed"]["commit"] == git(kb, "log", "-1", "--format=%H", "--", path).strip(), path
    text = run_openkb("--kb-dir", kb, "search", "archiving", check=True).stdout
    assert "wiki/sources/tar.md" in text and "last changed by add tar" in text
    assert "No page matches" in run_openkb("--kb-dir", kb, "search", "xylophonequartz", check=True).stdout
    assert_consistent(kb)  # the index is untracked and leaves `git status` clean


def test_index_follows_head_whoever_moves_it_and_updates_only_what_changed(kb, tmp_path):
    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in", ["tar.md", "gzip.md"]), check=True)
    first = _search(kb, "archiving")
    assert first["index"]["rebuilt"] is True and _paths(first)
    again = _search(kb, "archiving")
    assert again["index"] == {"rebuilt": False, "updated": 0}
    # another process's commit, made with plain git: the next search sees it, reading only that page
    page = kb / "wiki" / "concepts" / "hand-written.md"
    page.write_text("# Hand written\n\nA zygomorphic flower page.\n")
    git(kb, "add", "wiki/concepts/hand-written.md")
    git(kb, "commit", "-q", "-m", "a page by hand")
    found = _search(kb, "zygomorphic")
    assert _paths(found) == ["wiki/concepts/hand-written.md"]
    assert found["index"] == {"rebuilt": False, "updated": 1}
    assert found["hits"][0]["last_changed"]["subject"] == "a page by hand"
    # one more ingest: only its pages are read again, not the whole wiki
    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in2", ["ls.md"]), check=True)
    changed = git(kb, "diff", "--name-only", "HEAD~1", "HEAD", "--", "wiki").split()
    after = _search(kb, "directory", "contents")
    assert after["index"]["rebuilt"] is False and after["index"]["updated"] == len(changed)
    assert "wiki/sources/ls.md" in _paths(after)
    # `git reset --hard` back: pages gone from HEAD are gone from the hits
    git(kb, "reset", "-q", "--hard", "HEAD~2")
    assert _search(kb, "zygomorphic")["hits"] == []
    assert "wiki/sources/ls.md" not in _paths(_search(kb, "directory", "contents"))
    assert _paths(_search(kb, "archiving")) == _paths(first)


def test_a_damaged_or_lying_index_is_rebuilt_from_the_tree(kb, tmp_path):
    import sqlite3

    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in", ["tar.md", "gzip.md"]), check=True)
    good = _search(kb, "compress")
    index = kb / ".openkb" / "openkb-git" / "search.sqlite"
    assert index.exists()
    # a page the index claims HEAD holds, with text HEAD does not have: the tree wins
    db = sqlite3.connect(index)
    cur = db.execute("INSERT INTO pages (path, blob) VALUES ('wiki/concepts/fake.md', ?)", ("0" * 40,))
    db.execute("INSERT INTO text (rowid, title, body) VALUES (?, 'fake', 'compress compress compress compress')",
               (cur.lastrowid,))
    db.commit()
    db.close()
    lied = _search(kb, "compress")
    assert "wiki/concepts/fake.md" not in _paths(lied) and lied["index"]["rebuilt"] is True
    assert _paths(lied) == _paths(good)
    # garbage bytes instead of a database
    for leftover in index.parent.glob("search.sqlite*"):
        leftover.unlink()
    index.write_bytes(b"this is not a database" * 100)
    again = _search(kb, "compress")
    assert again["index"]["rebuilt"] is True and _paths(again) == _paths(good)
    # gone
    for leftover in index.parent.glob("search.sqlite*"):
        leftover.unlink()
    assert _paths(_search(kb, "compress")) == _paths(good)


def test_search_history_names_the_ingests_that_introduced_and_removed_a_phrase(kb, tmp_path):
    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in", ["tar.md"]), check=True)
    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in2", ["gzip.md"]), check=True)
    phrase = "Archiving utility"
    assert phrase in (kb / "wiki" / "sources" / "tar.md").read_text()
    run_openkb("--kb-dir", kb, "revert", "tar", check=True)
    hist = json.loads(run_openkb("--kb-dir", kb, "search", "--history", "--json", phrase, check=True).stdout)
    assert [(h["op"], h["change"]) for h in hist] == [("revert", "removed"), ("add", "introduced")]
    assert hist[1]["doc"] == "tar" and "wiki/sources/tar.md" in hist[1]["paths"]
    assert hist[1]["commit"] == git(kb, "log", "--format=%H", "-S", phrase, "--", "wiki").split()[-1]
    # the page is gone from HEAD, so a plain search no longer finds it
    assert "wiki/sources/tar.md" not in _paths(_search(kb, "archiving", "utility"))
    text = run_openkb("--kb-dir", kb, "search", "--history", phrase, check=True).stdout
    assert "introduced by add tar" in text and "removed" in text
    assert "No operation" in run_openkb("--kb-dir", kb, "search", "--history", "never written here", check=True).stdout


def test_search_refuses_text_without_words(kb):
    proc = run_openkb("--kb-dir", kb, "search", "--", "***")
    assert proc.returncode != 0 and "nothing to search for" in proc.stderr and "Traceback" not in proc.stderr
