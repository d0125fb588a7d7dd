"""Issue #18 items 5, 6 and 7 (`use`): `openkb search` (an FTS index kept at HEAD, `--history`),
`openkb watch` (real watchdog events, a real subprocess), `openkb use` (a default KB)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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
    assert top["path"] in ("wiki/sources/tar.md", "wiki/summaries/tar.md")  # tar's page (its summary quotes it)
    assert "**Archiving**" in top["snippet"] and "**utility**" in top["snippet"]
    assert top["last_changed"]["op"] == "add" and top["last_changed"]["doc"] == "tar"
    assert top["last_changed"]["commit"] == git(kb, "log", "-1", "--format=%H", "--", top["path"]).strip()
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
    # damaged inside: the header is intact (it opens), the pages after it are zeros (a query fails)
    data = index.read_bytes()
    index.write_bytes(data[:4096] + b"\0" * (len(data) - 4096))
    for leftover in index.parent.glob("search.sqlite-*"):
        leftover.unlink()
    torn = _search(kb, "compress")
    assert torn["index"]["rebuilt"] is True and _paths(torn) == _paths(good)


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


# -- a file dropped into raw/ ---------------------------------------------------------------


def test_a_file_dropped_into_raw_and_added_is_one_add_not_an_edit_and_reverts_whole(kb):
    (kb / "raw").mkdir(exist_ok=True)
    shutil.copy(TLDR / "common" / "tar.md", kb / "raw" / "mydrop.md")
    proc = run_openkb("add", "raw/mydrop.md", cwd=kb, check=True)
    assert "(edit)" not in proc.stderr
    log = git(kb, "log", "--format=%s").splitlines()
    assert log == ["add: mydrop.md", "init: new knowledge base"], log
    assert "raw/mydrop.md" in git(kb, "show", "--name-only", "--format=", "HEAD").split()
    assert_consistent(kb)
    run_openkb("--kb-dir", kb, "revert", "mydrop", check=True)
    assert not (kb / "raw" / "mydrop.md").exists()
    assert "raw/mydrop.md" not in git(kb, "ls-files").split()
    assert_consistent(kb)


# -- openkb watch ----------------------------------------------------------------------------


class Watcher:
    """A real `openkb watch` process, its output read line by line."""

    def __init__(self, kb, *args, cwd=None):
        import os
        import subprocess
        import sys
        import threading

        self.proc = subprocess.Popen([sys.executable, "-m", "openkb_git", "--kb-dir", str(kb), "watch", "--json",
                                      *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=cwd, env=dict(os.environ))
        self.lines: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def wait_for(self, predicate, timeout=60.0):
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if predicate(line)]
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"not seen within {timeout} s; output so far: {self.lines}; "
                             f"stderr: {self.proc.stderr.read() if self.proc.poll() is not None else ''}")

    def files(self, status=None):
        return [line for line in self.lines if "status" in line and (status is None or line["status"] == status)]

    def interrupt(self, timeout=30.0):
        import signal

        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code, self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_watch_adds_files_as_they_arrive_one_commit_each_and_stops_cleanly_on_ctrl_c(kb, tmp_path):
    import threading
    import time

    watcher = Watcher(kb, "--settle", "1.0")
    try:
        watcher.wait_for(lambda line: "watching" in line)
        assert (kb / "raw").is_dir()
        raw = kb / "raw"
        shutil.copy(TLDR / "common" / "tar.md", raw / "tar.md")
        shutil.copy(TLDR / "common" / "gzip.md", raw / "gzip.md")
        (raw / "notes.xyz").write_text("not a document\n")  # fails: reported, watching goes on
        (raw / ".hidden.md").write_text("# hidden\n")  # never taken
        (raw / "partial.md.part").write_text("# half a download\n")  # never taken
        # a file written slowly, in chunks 0.4 s apart: taken once, whole
        chunks = [f"# slow\n\n> Written in chunks.\n\n"] + [f"- Chunk number {i} of the slow file: `slow {i}`\n"
                                                             for i in range(1, 7)]

        def write_slowly():
            with open(raw / "slow.md", "w") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    fh.flush()
                    time.sleep(0.4)

        writer = threading.Thread(target=write_slowly)
        writer.start()
        writer.join(timeout=30)
        watcher.wait_for(lambda line: line.get("path", "").endswith("slow.md"), timeout=90)
        watcher.wait_for(lambda line: line.get("path", "").endswith("gzip.md"), timeout=90)
        watcher.wait_for(lambda line: line.get("path", "").endswith("tar.md"), timeout=90)
        watcher.wait_for(lambda line: line.get("path", "").endswith("notes.xyz"), timeout=90)
        # after the failure, a new file is still taken
        shutil.copy(TLDR / "common" / "ls.md", raw / "ls.md")
        watcher.wait_for(lambda line: line.get("path", "").endswith("ls.md"), timeout=90)
        time.sleep(2.5)  # our own projection of raw/ files must not come back as news
        code, stderr = watcher.interrupt()
    finally:
        watcher.kill()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    added = {Path(line["path"]).name: line for line in watcher.files("added")}
    assert sorted(added) == ["gzip.md", "ls.md", "slow.md", "tar.md"], watcher.lines
    failed = watcher.files("failed")
    assert [Path(line["path"]).name for line in failed] == ["notes.xyz"] and "unsupported" in failed[0]["reason"]
    assert not watcher.files("skipped"), watcher.lines  # nothing taken twice
    assert watcher.lines[-1] == {"summary": {"added": 4, "skipped": 0, "failed": 1}}
    # one `add` commit per file, no `edit`
    ops = git(kb, "log", "--format=%(trailers:key=OpenKB-Op,valueonly)").split()
    assert ops == ["add"] * 4 + ["init"], ops
    assert (kb / "wiki" / "sources" / "slow.md").read_text().count("slow 6") == 1  # the whole file
    git(kb, "clean", "-fq", "raw/")  # the failed and ignored files are the user's, left untracked
    assert_consistent(kb)


def test_watch_a_folder_outside_the_kb_and_its_errors(kb, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    proc = run_openkb("--kb-dir", kb, "watch", tmp_path / "nowhere")
    assert proc.returncode != 0 and "not a folder" in proc.stderr and "Traceback" not in proc.stderr
    watcher = Watcher(kb, "--settle", "0.5", inbox)
    try:
        watcher.wait_for(lambda line: "watching" in line)
        (inbox / "sub").mkdir()
        shutil.copy(TLDR / "common" / "zip.md", inbox / "sub" / "zip.md")
        line = watcher.wait_for(lambda line: line.get("status") == "added", timeout=90)[0]
        code, _ = watcher.interrupt()
    finally:
        watcher.kill()
    assert code == 0 and line["doc"] == "zip"
    record = json.loads((kb / ".openkb" / "registry" / "zip.json").read_text())
    assert not record["path"].startswith("/")  # no absolute local path in a record
    assert_consistent(kb)


# -- openkb use ------------------------------------------------------------------------------


def test_use_sets_the_default_kb_shared_with_openkb_and_shows_it(kb, tmp_path):
    import os
    import yaml

    home = Path(os.environ["HOME"])  # a temp dir of the test (conftest)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_openkb("log", cwd=elsewhere)
    assert proc.returncode == 4 and "openkb use PATH" in proc.stderr
    assert "No default knowledge base" in run_openkb("use", cwd=elsewhere, check=True).stdout
    # OpenKB's global config with settings of its own: kept
    config = home / ".config" / "openkb" / "global.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(yaml.safe_dump({"known_kbs": ["/some/other/kb"], "model": "gpt-x"}))
    proc = run_openkb("use", kb, cwd=elsewhere, check=True)
    assert str(kb.resolve()) in proc.stdout
    data = yaml.safe_load(config.read_text())
    assert data == {"default_kb": str(kb.resolve()), "known_kbs": ["/some/other/kb", str(kb.resolve())],
                    "model": "gpt-x"}
    shown = json.loads(run_openkb("use", "--json", cwd=elsewhere, check=True).stdout)
    assert shown["default_kb"] == str(kb.resolve()) and shown["valid"] is True
    # used when no --kb-dir and no KB in the cwd or its parents
    log = run_openkb("log", cwd=elsewhere, check=True).stdout
    assert "init" in log
    # a KB in the cwd wins over the default; --kb-dir wins over both
    other = tmp_path / "other"
    run_openkb("init", other, check=True)
    assert json.loads(run_openkb("status", "--json", cwd=other, check=True).stdout)["root"] == str(other.resolve())
    assert json.loads(run_openkb("--kb-dir", other, "status", "--json", cwd=elsewhere,
                                 check=True).stdout)["root"] == str(other.resolve())
    assert json.loads(run_openkb("status", "--json", cwd=elsewhere, check=True).stdout)["root"] == str(kb.resolve())
    # OpenKB's own `use` writes the default we read (its file format, by hand as OpenKB 0.4.5 writes it)
    config.write_text(yaml.safe_dump({"default_kb": str(other.resolve()), "known_kbs": [str(other.resolve())]},
                                     sort_keys=True))
    assert json.loads(run_openkb("status", "--json", cwd=elsewhere, check=True).stdout)["root"] == str(other.resolve())
    # refused: not a KB; a default that is gone is named
    proc = run_openkb("use", elsewhere)
    assert proc.returncode == 4 and "not a knowledge base" in proc.stderr and "Traceback" not in proc.stderr
    shutil.rmtree(other)
    proc = run_openkb("log", cwd=elsewhere)
    assert proc.returncode == 4 and str(other.resolve()) in proc.stderr and "openkb use" in proc.stderr
    config.write_text("default_kb: [unclosed\n")
    proc = run_openkb("log", cwd=elsewhere)
    assert proc.returncode != 0 and "not valid YAML" in proc.stderr and "Traceback" not in proc.stderr


def test_openkb_itself_opens_the_default_kb_set_by_our_use(kb, tmp_path):
    import os
    import subprocess

    openkb045 = Path("/work/openkb045/bin/python")
    if not openkb045.exists():
        import pytest
        pytest.skip("OpenKB 0.4.5 is not installed in /work/openkb045")
    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in", ["tar.md"]), check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_openkb("use", kb, check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(openkb045), "-m", "openkb", "list"], cwd=elsewhere, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and "tar" in proc.stdout, proc.stdout + proc.stderr


def test_watch_does_not_take_the_files_its_own_adds_write(kb, tmp_path):
    import time

    run_openkb("--kb-dir", kb, "add", copy_tldr(tmp_path / "in", ["tar.md"]), check=True)  # doc `tar`, elsewhere
    watcher = Watcher(kb, "--settle", "0.5")
    try:
        watcher.wait_for(lambda line: "watching" in line)
        # another file named tar.md dropped into raw/sub/: its doc name clashes, so the add writes
        # raw/tar-<hash>.md — a file of the KB as HEAD holds it, not a new one
        (kb / "raw" / "sub").mkdir()
        shutil.copy(TLDR / "common" / "gzip.md", kb / "raw" / "sub" / "tar.md")
        line = watcher.wait_for(lambda line: line.get("status") == "added", timeout=90)[0]
        time.sleep(3)
        code, stderr = watcher.interrupt()
    finally:
        watcher.kill()
    assert code == 0, stderr
    assert line["doc"].startswith("tar-"), line
    assert watcher.files() == [line], watcher.lines  # nothing else taken, not even as a duplicate
    assert (kb / "raw" / f"{line['doc']}.md").exists()
    shutil.rmtree(kb / "raw" / "sub")  # the dropped file itself stays the user's, untracked
    assert_consistent(kb)
