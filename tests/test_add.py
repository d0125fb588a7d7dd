"""`openkb add`: one commit per file, duplicates, names, failures, user edits, the lock."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time

from conftest import CORPUS, assert_consistent, copy_tldr, git, run_openkb

FEW = ["tar.md", "git-commit.md", "git-status.md", "grep.md", "curl.md"]


def commits(kb) -> list[str]:
    return git(kb, "log", "--format=%H").split()


def test_add_commits_each_file_once_and_git_agrees(kb, tmp_path):
    src = copy_tldr(tmp_path / "src", FEW)
    proc = run_openkb("add", src, "--jobs", "2", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("added ") == len(FEW)
    assert "5 added, 0 skipped, 0 failed" in proc.stdout
    assert len(commits(kb)) == 1 + len(FEW)
    log = json.loads(run_openkb("log", "--json", cwd=kb, check=True).stdout)
    assert [e["commit"] for e in log] == commits(kb)
    assert [e["doc"] for e in log[:-1]] == ["tar", "grep", "git-status", "git-commit", "curl"]
    for name in FEW:
        doc = name[:-3]
        for path in (f"raw/{doc}.md", f"wiki/sources/{doc}.md", f"wiki/summaries/{doc}.md",
                     f".openkb/registry/{doc}.json"):
            assert (kb / path).is_file(), path
    hashes = json.loads((kb / ".openkb" / "hashes.json").read_text())
    assert sorted(m["doc_name"] for m in hashes.values()) == sorted(n[:-3] for n in FEW)
    assert "ingest | tar.md" in (kb / "wiki" / "log.md").read_text()
    assert_consistent(kb)

    # The same add again: no commit, every file a duplicate.
    again = run_openkb("add", src, cwd=kb)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped  ") == len(FEW) and again.stdout.count(": duplicate of ") == len(FEW)
    assert len(commits(kb)) == 1 + len(FEW)
    assert_consistent(kb)


def test_same_stem_files_get_distinct_stable_names(kb, tmp_path):
    a = copy_tldr(tmp_path / "src" / "common", ["df.md", "tar.md"], "common")
    b = copy_tldr(tmp_path / "src" / "linux", ["df.md"], "linux")
    run_openkb("add", tmp_path / "src", cwd=kb, check=True)
    docs = {d["source"]: d["doc"] for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)}
    assert docs["src/common/df.md"] == "df"  # keyed by the path from the folder given on
    linux_name = docs["src/linux/df.md"]
    assert linux_name.startswith("df-") and len(linux_name) == len("df-") + 8
    # Re-ingest a changed version: same names, one new commit.
    with open(b / "df.md", "a") as fh:
        fh.write("\n- Show the routing table:\n\n`ip route`\n")
    before = len(commits(kb))
    proc = run_openkb("add", tmp_path / "src", cwd=kb, check=True)
    assert f"-> {linux_name}" in proc.stdout
    assert len(commits(kb)) == before + 1
    docs2 = {d["source"]: d["doc"] for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)}
    assert docs2 == docs
    assert_consistent(kb)


def test_bad_files_are_named_and_the_rest_committed(kb, tmp_path):
    src = copy_tldr(tmp_path / "src", ["tar.md"])
    (src / "empty.pdf").write_bytes(b"")
    (src / "noise.pdf").write_bytes(bytes(range(256)) * 8)
    # (Latin-1 text is no bad file any more: it is decoded by detection, tests/test_trust_convert.py.)
    (src / "binary.md").write_bytes(b"\x00\x01\x02binary" * 20)
    proc = run_openkb("add", src, cwd=kb)
    assert proc.returncode == 1
    out = proc.stdout
    assert "failed   " in out and "empty.pdf: " in out and "noise.pdf: " in out and "binary.md: " in out
    assert "added    " in out and "tar.md" in out
    assert "1 added, 0 skipped, 3 failed" in out
    assert not any(p.name.startswith(("empty", "noise", "binary")) for p in (kb / "raw").iterdir())
    assert_consistent(kb)


def test_unsupported_files_in_a_directory_are_skipped_with_reason(kb, tmp_path):
    src = copy_tldr(tmp_path / "src", ["tar.md"])
    (src / "notes.xyz").write_bytes(b"PK\x03\x04")
    proc = run_openkb("add", src, cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert "skipped  " in proc.stdout and "unsupported file type '.xyz'" in proc.stdout


def test_user_edit_of_concept_page_survives_as_edit_commit(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "a", ["git-commit.md"]), cwd=kb, check=True)
    concept = sorted((kb / "wiki" / "concepts").glob("*.md"))[0]
    text = concept.read_text() + "\nMy own note about this concept.\n"
    concept.write_text(text)
    proc = run_openkb("add", copy_tldr(tmp_path / "b", ["tar.md"]), cwd=kb)
    assert proc.returncode == 0, proc.stderr
    log = json.loads(run_openkb("log", "--json", cwd=kb, check=True).stdout)
    assert [e["op"] for e in log[:2]] == ["add", "edit"]
    edit = log[1]["commit"]
    assert f"committed your edits of tracked files as {edit[:7]} (edit)\n" in proc.stderr, proc.stderr
    assert git(kb, "show", "--format=", "--name-only", edit).split() == [str(concept.relative_to(kb))]
    assert "My own note about this concept." in concept.read_text()
    assert "My own note about this concept." in git(kb, "show", f"HEAD:{concept.relative_to(kb).as_posix()}")
    assert_consistent(kb)


def test_same_files_give_the_same_wiki_in_processes_with_other_hash_seeds(tmp_path):
    """Two KBs fed the same files by `openkb add` under different PYTHONHASHSEED values get
    the same wiki/ tree and the same documents' records: nothing depends on set order."""
    src = copy_tldr(tmp_path / "src", FEW)
    shutil.copy(CORPUS / "pdf" / "test_4505.pdf", src)
    trees, listed = [], []
    for seed in ("1", "2"):
        kb = tmp_path / f"kb{seed}"
        env = {"PYTHONHASHSEED": seed}
        run_openkb("init", kb, env=env, check=True)
        run_openkb("add", "--jobs", "1", src, cwd=kb, env=env, check=True)
        trees.append((git(kb, "rev-parse", "HEAD:wiki"), git(kb, "rev-parse", "HEAD:.openkb/registry")))
        listed.append(json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout))
    assert trees[0] == trees[1]
    assert listed[0] == listed[1] and len(listed[0]) == len(FEW) + 1 and all(d["concepts"] for d in listed[0])


def test_no_commit_edits_refuses_and_names_files(kb, tmp_path):
    run_openkb("add", copy_tldr(tmp_path / "a", ["git-commit.md"]), cwd=kb, check=True)
    summary = kb / "wiki" / "summaries" / "git-commit.md"
    summary.write_text(summary.read_text() + "edited\n")
    proc = run_openkb("add", "--no-commit-edits", copy_tldr(tmp_path / "b", ["tar.md"]), cwd=kb)
    assert proc.returncode == 1
    assert "wiki/summaries/git-commit.md" in proc.stderr
    assert len(commits(kb)) == 2


def test_second_writer_fails_fast_naming_the_holder(kb, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from openkb_git.lock import KBLock\n"
        "lock = KBLock(Path(sys.argv[1]) / '.openkb'); lock.acquire(5)\n"
        "print('locked', flush=True); time.sleep(30)\n"), str(kb)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        src = copy_tldr(tmp_path / "src", ["tar.md"])
        start = time.monotonic()
        proc = run_openkb("add", src, "--wait", "1", cwd=kb)
        assert proc.returncode == 3
        assert time.monotonic() - start >= 1.0
        assert f"pid {holder.pid}" in proc.stderr and "--wait" in proc.stderr
        # Reads take no lock.
        assert run_openkb("status", cwd=kb).returncode == 0
        assert f"pid {holder.pid}" in run_openkb("status", cwd=kb).stdout
    finally:
        holder.kill()
        holder.wait()


def test_kb_found_by_walking_up_and_by_env(kb, tmp_path):
    sub = kb / "wiki"
    assert run_openkb("status", cwd=sub).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_openkb("status", cwd=elsewhere).returncode == 4
    assert run_openkb("status", cwd=elsewhere, env={"OPENKB_DIR": str(kb)}).returncode == 0


def test_pdf_and_long_pdf(kb, tmp_path):
    src = tmp_path / "pdf"
    src.mkdir()
    shutil.copy(CORPUS / "pdf" / "2.pdf", src / "2.pdf")  # 47 pages: long document
    shutil.copy(CORPUS / "pdf" / "attention-is-all-you-need.pdf", src / "attention.pdf")
    proc = run_openkb("add", src, cwd=kb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    long_source = json.loads((kb / "wiki" / "sources" / "2.json").read_text())
    assert len(long_source) == 47 and long_source[0]["page"] == 1
    record = json.loads((kb / ".openkb" / "registry" / "2.json").read_text())
    assert record["type"] == "long_pdf" and record["pages"] == 47 and record["tree"]
    assert (kb / "wiki" / "sources" / "attention.md").is_file()
    assert_consistent(kb)


def test_a_copied_kb_gets_its_index_refreshed_and_same_size_edits_still_count(kb, tmp_path):
    """After the KB is copied (new inodes) or files are touched, the first writer reads the
    files whose stat data changed, and refreshes the index entries of those whose content did
    not change (as `git update-index --refresh`), so later checks trust them again; a file
    whose content changed keeps counting as an edit even when its size and mtime were kept."""
    from openkb_git.kb import KB

    run_openkb("add", copy_tldr(tmp_path / "a", FEW), cwd=kb, check=True)
    copy = tmp_path / "copy"
    shutil.copytree(kb, copy, symlinks=True)  # new inodes: no stat data matches any more
    summary = copy / "wiki" / "summaries" / "grep.md"
    st = summary.stat()
    text = summary.read_bytes()
    summary.write_bytes(text.replace(b"grep", b"GREP", 1))  # same size
    os.utime(summary, ns=(st.st_atime_ns, st.st_mtime_ns))

    def stale(root) -> list[str]:
        index = KB(root).index
        out = []
        for key in index.paths():
            path = key.decode()
            entry, now = index.stat(path), os.lstat(root / path)
            if (entry.size, entry.mtime, entry.ino) != (now.st_size, (int(now.st_mtime), now.st_mtime_ns % 10**9), now.st_ino):
                out.append(path)
        return out

    tracked = len(KB(copy).index.paths())
    assert len(stale(copy)) == tracked
    proc = run_openkb("add", copy_tldr(tmp_path / "b", ["ls.md"]), cwd=copy)
    assert proc.returncode == 0, proc.stderr
    assert "(edit)" in proc.stderr
    assert git(copy, "show", "--format=", "--name-only", "HEAD~1").split() == ["wiki/summaries/grep.md"]
    assert "GREP" in git(copy, "show", "HEAD~1:wiki/summaries/grep.md")
    assert stale(copy) == []
    assert_consistent(copy)


def test_a_parallel_add_commits_the_prepared_files_in_groups(kb, tmp_path):
    """With parallel preparation, the files already prepared when one is committed go with it:
    one chain of commits, one journal, the branch moved once (group commit, docs/protocol.md),
    each file still its own commit with the tree a one-at-a-time add makes — and duplicates,
    failures and a document given twice handled inside a group as alone."""
    from conftest import TLDR

    names = sorted(p.name for p in (TLDR / "common").glob("s*.md"))[:30]
    src = copy_tldr(tmp_path / "src", names)
    shutil.copy(src / names[0], src / "zz-duplicate.md")  # the same content again: a duplicate
    (src / "zz-broken.pdf").write_bytes(b"%PDF-1.4 not really")  # fails to convert
    reference = tmp_path / "reference"
    run_openkb("init", reference, check=True)
    alone = run_openkb("add", "--jobs", "1", src, cwd=reference)  # one file, one commit, at a time
    grouped = run_openkb("add", "--jobs", "2", src, cwd=kb)
    assert grouped.returncode == alone.returncode == 1, grouped.stdout + grouped.stderr
    assert grouped.stdout.splitlines()[-1] == alone.stdout.splitlines()[-1] == "30 added, 1 skipped, 1 failed"
    assert git(kb, "log", "--format=%T").split()[:-1] == git(reference, "log", "--format=%T").split()[:-1]
    assert git(kb, "log", "--format=%s").split("\n") == git(reference, "log", "--format=%s").split("\n")
    journals = git(kb, "log", "-30", "--format=%(trailers:key=OpenKB-Journal,valueonly)").split()
    groups = [len(list(run)) for _key, run in itertools.groupby(journals)]
    assert sum(groups) == 30 and max(groups) > 1, groups
    moves = [line for line in git(kb, "reflog", "main").splitlines() if "openkb add:" in line]
    assert len(moves) == len(groups)
    assert_consistent(kb)
