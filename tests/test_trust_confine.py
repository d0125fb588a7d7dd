"""Issue #14, cases 1, 9, 17, 18, 19: confinement of paths that come from data, names within
file-name limits, fsck coverage, reads that never cry wolf, refusal of the KB's own files.

Every test replays the reported case with real git, real files and real `openkb` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TLDR, assert_consistent, copy_tldr, git, run_openkb

DOCS = ["7z.md", "tar.md", "ls.md"]


def _kb_with(tmp_path: Path, names=DOCS) -> tuple[Path, Path]:
    kb = tmp_path / "kb"
    run_openkb("init", kb, check=True)
    src = copy_tldr(tmp_path / "src", names)
    run_openkb("add", *[src / n for n in names], cwd=kb, check=True)
    return kb, src


def _head(kb: Path) -> str:
    return git(kb, "rev-parse", "HEAD").strip()


def _tamper_record(kb: Path, doc: str, extra: str, field: str = "files") -> None:
    path = kb / ".openkb" / "registry" / f"{doc}.json"
    record = json.loads(path.read_text())
    if field == "files":
        record["files"].append(extra)
    else:
        record[field] = extra
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    git(kb, "commit", "-qam", f"tamper {doc}")


def _clone(kb: Path, where: Path) -> Path:
    where.mkdir()
    clone = where / "kb"
    subprocess.run(["git", "clone", "-q", str(kb), str(clone)], check=True)
    return clone


def _assert_no_victim_in_history(kb: Path, text: str) -> None:
    for sha in git(kb, "rev-list", "--all").split():
        assert "victim" not in git(kb, "ls-tree", "-r", "--name-only", sha)
    assert text not in git(kb, "log", "-p", "--all")


# -- case 1: confinement --------------------------------------------------------------------------


def test_remove_of_a_record_naming_a_path_outside_the_kb_is_refused_in_a_clone(tmp_path):
    kb, _src = _kb_with(tmp_path)
    _tamper_record(kb, "7z", "../victim.txt")
    clone = _clone(kb, tmp_path / "elsewhere")
    victim = clone.parent / "victim.txt"
    victim.write_text("the user's own file next to the clone\n")
    head = _head(clone)

    proc = run_openkb("remove", "7z", cwd=clone)

    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert ".openkb/registry/7z.json" in proc.stderr and "../victim.txt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert victim.read_text() == "the user's own file next to the clone\n"
    assert _head(clone) == head
    _assert_no_victim_in_history(clone, "the user's own file")
    assert_consistent(clone)
    fsck = run_openkb("fsck", cwd=clone)
    assert fsck.returncode == 1 and "../victim.txt" in fsck.stdout, fsck.stdout


@pytest.mark.parametrize("field", ["files", "raw_path", "summary_path"])
def test_update_of_a_doc_whose_record_is_unsafe_fails_that_file_only(tmp_path, field):
    kb, src = _kb_with(tmp_path)
    _tamper_record(kb, "7z", "../victim.txt" if field == "files" else "/tmp/victim.txt", field)
    clone = _clone(kb, tmp_path / "elsewhere")
    victim = clone.parent / "victim.txt"
    victim.write_text("precious\n")
    (src / "7z.md").write_text((src / "7z.md").read_text() + "\nA changed line.\n")
    copy_tldr(src, ["cp.md"])
    head = _head(clone)

    proc = run_openkb("add", src / "7z.md", src / "cp.md", cwd=clone)

    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert ".openkb/registry/7z.json" in out and "Traceback" not in out
    assert victim.read_text() == "precious\n"
    log = git(clone, "log", "--format=%s", f"{head}..HEAD").splitlines()
    assert log == ["add: cp.md"], log  # the other file of the run still went in
    _assert_no_victim_in_history(clone, "precious")
    assert_consistent(clone)


def _commit_tree(kb: Path, tree: str, parent: str, message: str) -> str:
    sha = subprocess.run(["git", "-C", str(kb), "commit-tree", tree, "-p", parent, "-m", message],
                         capture_output=True, text=True, check=True).stdout.strip()
    git(kb, "update-ref", "refs/heads/main", sha)
    return sha


def _tree_with_dotdot(kb: Path, base_tree: str, content: str) -> str:
    blob = subprocess.run(["git", "-C", str(kb), "hash-object", "-w", "--stdin"], input=content,
                          capture_output=True, text=True, check=True).stdout.strip()
    inner = subprocess.run(["git", "-C", str(kb), "mktree"], input=f"100644 blob {blob}\tvictim.txt\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    listing = git(kb, "ls-tree", base_tree)
    return subprocess.run(["git", "-C", str(kb), "mktree"], input=listing + f"040000 tree {inner}\t..\n",
                          capture_output=True, text=True, check=True).stdout.strip()


def test_revert_of_a_commit_whose_tree_climbs_out_is_refused(tmp_path):
    kb, _src = _kb_with(tmp_path)
    head = _head(kb)
    clean_tree = git(kb, "rev-parse", "HEAD^{tree}").strip()
    bad = _commit_tree(kb, _tree_with_dotdot(kb, clean_tree, "written outside\n"), head, "edit: crafted\n\nOpenKB-Op: edit")
    undo = _commit_tree(kb, clean_tree, bad, "edit: undo\n\nOpenKB-Op: edit")
    victim = tmp_path / "victim.txt"

    proc = run_openkb("revert", undo[:12], cwd=kb)

    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "../victim.txt" in proc.stderr and undo[:7] in proc.stderr and "Traceback" not in proc.stderr
    assert not victim.exists()
    assert _head(kb) == undo


def test_fsck_repair_with_a_dotdot_entry_in_head_writes_nothing_outside(tmp_path):
    kb, src = _kb_with(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("mine\n")
    _commit_tree(kb, _tree_with_dotdot(kb, git(kb, "rev-parse", "HEAD^{tree}").strip(), "theirs\n"), _head(kb),
                 "edit: crafted\n\nOpenKB-Op: edit")
    head = _head(kb)

    check = run_openkb("fsck", cwd=kb)
    repair = run_openkb("fsck", "--repair", cwd=kb)
    copy_tldr(src, ["cp.md"])
    add = run_openkb("add", src / "cp.md", cwd=kb)

    assert victim.read_text() == "mine\n"
    assert check.returncode == 1 and "tree      ..: unsafe entry" in check.stdout, check.stdout
    assert repair.returncode == 1 and "cannot" in repair.stdout and "git reset --keep" in repair.stdout, repair.stdout
    assert "Traceback" not in repair.stderr + add.stderr
    assert add.returncode == 6 and "'..'" in add.stderr, add.stdout + add.stderr  # no commit on top of it
    assert _head(kb) == head
    assert victim.read_text() == "mine\n"


def test_build_tree_refuses_entries_git_refuses(kb):
    from openkb_git.kb import KB
    from openkb_git.paths import UnsafePathError

    store = KB(kb).objects
    for bad in ["../victim.txt", "wiki/./x.md", "raw/.git/config", "raw//x.md", "/etc/passwd", "wiki/.GIT/x"]:
        with pytest.raises(UnsafePathError):
            store.build_tree(None, {bad: b"x"})
    store.build_tree(None, {"raw/ok.md": b"x"})  # a safe path still builds


def test_find_edits_never_reads_a_dotdot_path(tmp_path):
    from openkb_git.kb import KB
    from openkb_git.ops.edits import find_edits

    kb, _src = _kb_with(tmp_path, ["7z.md"])
    (tmp_path / "victim.txt").write_text("secret\n")
    k = KB(kb)
    assert find_edits(k, k.head_tree(), ["../victim.txt", "raw/../../victim.txt"]) == {}


# -- case 9: names within limits ------------------------------------------------------------------


def test_long_stems_are_shortened_and_every_file_is_tried(tmp_path, kb):
    src = tmp_path / "long"
    src.mkdir()
    stems = ["a" * 239, "b" * 251, "c" * 252, "d" * 200 + "文" * 17, "文" * 80]  # 252 + ".md" = 255
    for n, stem in enumerate(stems):
        (src / f"{stem}.md").write_text(f"# Title {n}\n\nBody text number {n} about archives.\n")
    (src / "zz-last.md").write_text("# Last\n\nThe file after the long ones.\n")

    proc = run_openkb("add", src, cwd=kb)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "6 added" in proc.stdout, proc.stdout
    docs = json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)
    names = [d["doc"] for d in docs]
    assert len(names) == 6 and "zz-last" in names
    longest = max(len(n.encode()) for n in names)
    assert longest <= 218, longest
    for path in git(kb, "-c", "core.quotepath=off", "ls-files", "-z").split("\0")[:-1]:
        assert all(len(part.encode()) + len(".openkb-tmp") + 1 <= 255 for part in path.split("/")), path
    assert_consistent(kb)
    again = run_openkb("add", src, cwd=kb)  # deterministic: the same sources are found again
    assert again.returncode == 0 and "0 added" in again.stdout, again.stdout
    other = tmp_path / "other"
    other.mkdir()
    (other / f"{'c' * 252}.md").write_text("# Another\n\nA different file with the same long stem.\n")
    clash = run_openkb("add", other, cwd=kb)
    assert clash.returncode == 0 and "1 added" in clash.stdout, clash.stdout + clash.stderr
    assert_consistent(kb)


def test_a_kb_stuck_on_a_long_committed_name_is_writable_again(tmp_path):
    """The state the old naming left: a commit naming raw/<245 bytes>.md, projection failed
    on its 260-byte temporary, the journal still there; every writer failed for good."""
    from openkb_git.kb import KB
    from openkb_git.protocol.journal import Journal, new_journal_id, write_journal

    kb, src = _kb_with(tmp_path, ["7z.md"])
    path = f"raw/{'é' * 122}x.md"  # 248-byte file name: `.{name}.openkb-tmp` is 260
    base = _head(kb)
    blob = subprocess.run(["git", "-C", str(kb), "hash-object", "-w", "--stdin"], input="long\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "crafted-index")}
    subprocess.run(["git", "-C", str(kb), "read-tree", "HEAD"], env=env, check=True)
    subprocess.run(["git", "-C", str(kb), "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"],
                   env=env, check=True)
    tree = subprocess.run(["git", "-C", str(kb), "write-tree"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()
    journal_id = new_journal_id()
    new = _commit_tree(kb, tree, base, f"edit: long name\n\nOpenKB-Op: edit\nOpenKB-Journal: {journal_id}")
    write_journal(KB(kb).journal_dir, Journal(id=journal_id, op="edit", base=base, new=new, paths=[path],
                                              blobs={path: [None, blob]}))

    proc = run_openkb("recover", cwd=kb)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (kb / path).read_text() == "long\n"
    copy_tldr(src, ["cp.md"])
    run_openkb("add", src / "cp.md", cwd=kb, check=True)
    assert_consistent(kb)


# -- case 17: the KB's own files are not sources --------------------------------------------------


def test_add_dot_inside_a_kb_never_ingests_its_own_pages(tmp_path):
    kb, _src = _kb_with(tmp_path)
    (kb / "raw" / "dropped.md").write_text("# Dropped\n\nA file dropped into raw/ by hand.\n")

    first = run_openkb("add", ".", cwd=kb)
    second = run_openkb("add", ".", cwd=kb)

    out = first.stdout + first.stderr
    assert "wiki" in out and "refused" in out, out
    docs = [d["doc"] for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)]
    assert sorted(docs) == ["7z", "dropped", "ls", "tar"], docs
    assert "0 added" in second.stdout, second.stdout
    for given in ["wiki/summaries/7z.md", "wiki", ".openkb/registry/7z.json", ".git/HEAD"]:
        proc = run_openkb("add", given, cwd=kb)
        assert proc.returncode == 1 and "refused" in proc.stdout + proc.stderr, (given, proc.stdout, proc.stderr)
    tracked = run_openkb("add", "raw/7z.md", cwd=kb)
    assert tracked.returncode == 0 and "tracked in raw/" in tracked.stdout + tracked.stderr, tracked.stdout
    assert len(json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)) == 4
    assert_consistent(kb)


# -- case 19: fsck covers what users break --------------------------------------------------------


def _fsck(kb: Path, *args) -> subprocess.CompletedProcess:
    return run_openkb("fsck", *args, cwd=kb)


@pytest.mark.parametrize("damage", ["delete", "garbage", "array", "wrong-name"])
def test_a_hand_broken_record_is_not_committed_as_an_edit(tmp_path, damage):
    kb, src = _kb_with(tmp_path)
    record = kb / ".openkb" / "registry" / "7z.json"
    if damage == "delete":
        record.unlink()
    elif damage == "garbage":
        record.write_text('{"doc_name": "7z", "fi')
    elif damage == "array":
        record.write_text("[1, 2]\n")
    else:
        record.write_text(json.dumps({**json.loads(record.read_text()), "doc_name": "other"}))
    head = _head(kb)
    copy_tldr(src, ["cp.md"])

    add = run_openkb("add", src / "cp.md", cwd=kb)

    assert add.returncode == 6 and ".openkb/registry/7z.json" in add.stderr, add.stdout + add.stderr
    assert "git checkout HEAD -- .openkb/registry/7z.json" in add.stderr and "openkb remove 7z" in add.stderr
    assert _head(kb) == head
    check = _fsck(kb)
    assert check.returncode == 1 and ".openkb/registry/7z.json" in check.stdout, check.stdout
    repair = _fsck(kb, "--repair")
    assert repair.returncode == 1, repair.stdout
    assert _fsck(kb).returncode == 0
    run_openkb("add", src / "cp.md", cwd=kb, check=True)
    assert "7z" in run_openkb("list", cwd=kb, check=True).stdout
    assert_consistent(kb)


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_a_committed_missing_record_is_found_and_its_doc_removable(tmp_path, damage):
    kb, _src = _kb_with(tmp_path)
    record = ".openkb/registry/7z.json"
    if damage == "deleted":
        git(kb, "rm", "-q", record)
    else:
        (kb / record).write_text("not json\n")
        git(kb, "add", record)
    git(kb, "commit", "-qm", "someone broke a record")

    check = _fsck(kb)
    assert check.returncode == 1, check.stdout
    for path in ["raw/7z.md", "wiki/summaries/7z.md", "wiki/sources/7z.md", "wiki/index.md"]:
        assert path in check.stdout, (path, check.stdout)
    assert "openkb remove 7z" in check.stdout and "git checkout" in check.stdout

    remove = run_openkb("remove", "7z", cwd=kb)
    assert remove.returncode == 0, remove.stdout + remove.stderr
    tracked = git(kb, "ls-files")
    assert "7z" not in tracked and "[[summaries/7z]]" not in (kb / "wiki" / "index.md").read_text()
    for page in (kb / "wiki" / "concepts").glob("*.md"):
        assert "[[summaries/7z]]" not in page.read_text(), page
    after = _fsck(kb)
    assert after.returncode == 0, after.stdout
    assert_consistent(kb)


def test_a_committed_deleted_summary_is_restored_by_repair(tmp_path):
    kb, _src = _kb_with(tmp_path)
    summary = "wiki/summaries/7z.md"
    content = (kb / summary).read_text()
    git(kb, "rm", "-q", summary)
    git(kb, "commit", "-qm", "deleted a summary by hand")

    check = _fsck(kb)
    assert check.returncode == 1 and summary in check.stdout and "--repair restores it" in check.stdout, check.stdout
    repair = _fsck(kb, "--repair")
    assert repair.returncode == 1 and summary in repair.stdout, repair.stdout
    assert (kb / summary).read_text() == content
    assert _fsck(kb).returncode == 0
    assert_consistent(kb)


def _damage_blob(kb: Path, path: str) -> str:
    blob = git(kb, "rev-parse", f"HEAD:{path}").strip()
    for idx in (kb / ".git" / "objects" / "pack").glob("*.idx"):
        listing = git(kb, "verify-pack", "-v", str(idx))
        for line in listing.splitlines():
            if line.startswith(blob):
                offset = int(line.split()[4])
                pack = idx.with_suffix(".pack")
                data = bytearray(pack.read_bytes())
                data[offset + 8] ^= 0xFF  # inside the deflated content
                pack.chmod(0o644)
                pack.write_bytes(bytes(data))
                return blob
    loose = kb / ".git" / "objects" / blob[:2] / blob[2:]
    data = bytearray(loose.read_bytes())
    data[len(data) // 2] ^= 0xFF
    loose.chmod(0o644)
    loose.write_bytes(bytes(data))
    return blob


def test_a_damaged_blob_is_restored_from_its_intact_working_tree_copy(tmp_path):
    kb, _src = _kb_with(tmp_path)
    blob = _damage_blob(kb, "raw/7z.md")
    assert subprocess.run(["git", "-C", str(kb), "cat-file", "-p", blob], capture_output=True).returncode != 0

    check = _fsck(kb)
    assert check.returncode == 1 and "intact copy" in check.stdout, check.stdout  # raw/ or wiki/sources/7z.md
    assert "--repair writes it back" in check.stdout
    repair = _fsck(kb, "--repair")
    assert "Traceback" not in repair.stderr, repair.stderr
    assert "7z.md" in repair.stdout and "cannot repair" not in repair.stdout, repair.stdout

    assert _fsck(kb).returncode == 0
    assert git(kb, "cat-file", "-p", blob) == (kb / "raw" / "7z.md").read_text()
    assert_consistent(kb)


def test_damage_without_an_intact_copy_says_what_cannot_be_repaired(tmp_path):
    kb, _src = _kb_with(tmp_path)
    _damage_blob(kb, "raw/7z.md")
    for copy in ["raw/7z.md", "wiki/sources/7z.md"]:  # the same content: one blob
        (kb / copy).write_text("changed by hand\n")

    repair = _fsck(kb, "--repair")

    assert repair.returncode == 1 and "Traceback" not in repair.stderr, repair.stdout + repair.stderr
    assert "cannot repair" in repair.stdout and "no intact copy" in repair.stdout, repair.stdout


# -- case 18: reads during a write never cry wolf -------------------------------------------------


def _reads_during_an_add(tmp_path: Path, files: int, rounds: int, pause: float = 0.05) -> tuple[list[str], int, int]:
    import sys

    kb, _src = _kb_with(tmp_path, ["7z.md"])
    names = sorted(p.name for p in (TLDR / "common").glob("*.md"))[10:10 + files]
    src = copy_tldr(tmp_path / "many", names)
    # A pre-ingest hook that pauses keeps the writer going long enough for several reads to
    # overlap it on an idle machine too (the commits, under the lock, are as fast as ever).
    hook = kb / ".openkb" / "hooks" / "pre-ingest"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(f"#!/bin/sh\nsleep {pause}\n")
    hook.chmod(0o755)
    writer = subprocess.Popen([sys.executable, "-m", "openkb_git", "add", "--jobs", "1", str(src)], cwd=kb,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    alarms, reads, during = [], 0, 0
    try:
        while writer.poll() is None and reads < rounds:
            st = run_openkb("status", "--json", cwd=kb)
            status = json.loads(st.stdout)
            if st.returncode != 0 or status["dirty"] or status["pending_journals"]:
                alarms.append(f"status: {status['dirty']} {status['pending_journals']} rc={st.returncode}")
            fs = run_openkb("fsck", "--json", cwd=kb)
            report = json.loads(fs.stdout)
            if fs.returncode not in (0, 3) or report["problems"]:
                alarms.append(f"fsck rc={fs.returncode}: {report['problems'][:3]}")
            reads += 1
            during += writer.poll() is None
    finally:
        out, err = writer.communicate(timeout=600)
    assert writer.returncode == 0, out + err
    assert_consistent(kb)
    assert run_openkb("fsck", cwd=kb).returncode == 0
    return alarms, reads, during


def test_status_and_fsck_during_an_add_raise_no_false_alarm(tmp_path):
    alarms, reads, during = _reads_during_an_add(tmp_path, files=120, rounds=6)
    assert during >= 3, (reads, during)  # the reads really overlapped the writer
    assert alarms == [], alarms


@pytest.mark.slow
def test_many_reads_during_a_long_add_raise_no_false_alarm(tmp_path):
    alarms, reads, during = _reads_during_an_add(tmp_path, files=150, rounds=40, pause=0.4)
    assert during >= 20, (reads, during)
    assert alarms == [], alarms


def test_nothing_is_read_written_or_deleted_beyond_a_committed_symlink(tmp_path):
    """A tree can carry `raw -> ../outside`: a clone checks it out, and every path under raw/
    then leads outside the KB (Git itself refuses to go beyond a symbolic link)."""
    kb, src = _kb_with(tmp_path, ["7z.md", "tar.md"])
    git(kb, "rm", "-rq", "raw")
    os.symlink("../outside", kb / "raw")
    git(kb, "add", "raw")
    git(kb, "commit", "-qm", "raw is a link")
    clone = _clone(kb, tmp_path / "elsewhere")
    outside = clone.parent / "outside"
    outside.mkdir()
    (outside / "7z.md").write_text("precious\n")
    (outside / "tar.md").write_text("also precious\n")
    copy_tldr(src, ["cp.md"])

    results = [run_openkb("remove", "7z", cwd=clone), run_openkb("add", src / "cp.md", cwd=clone),
               run_openkb("fsck", "--repair", cwd=clone), run_openkb("remove", "tar", cwd=clone)]

    assert (outside / "7z.md").read_text() == "precious\n" and (outside / "tar.md").read_text() == "also precious\n"
    assert sorted(p.name for p in outside.iterdir()) == ["7z.md", "tar.md"]
    assert "precious" not in git(clone, "log", "-p", "--all")
    assert all("Traceback" not in r.stderr for r in results), [r.stderr for r in results]
    assert results[1].returncode == 6 and "'raw' is a symbolic link" in results[1].stderr, results[1].stderr
    fsck = run_openkb("fsck", cwd=clone)
    assert fsck.returncode == 1 and "raw: a symbolic link" in fsck.stdout, fsck.stdout
