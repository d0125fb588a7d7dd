"""Issue #14, cases 2, 3, 7, 8 and the config part of 13: recovery never destroys a hand edit,
our journals and OpenKB's never mistaken for each other, and nothing executable or
resource-hungry arrives through Git (tracked hooks, tracked config)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TLDR, assert_consistent, copy_tldr, git, run_openkb

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = DATA / "openkb-0.4.5-journal.json"
OPENKB045 = Path(os.environ.get("OPENKB045_VENV", "/work/openkb045")) / "bin" / "python"
needs_openkb045 = pytest.mark.skipif(not OPENKB045.exists(), reason="the real OpenKB 0.4.5 is not installed "
                                     "(python3 -m venv /work/openkb045 && /work/openkb045/bin/pip install openkb==0.4.5)")

OUR_JOURNALS = Path(".openkb") / "openkb-git" / "journal"
OPENKB_JOURNALS = Path(".openkb") / "journal"


def _kb_with(kb: Path, tmp_path: Path, names=("tar.md",)) -> Path:
    run_openkb("add", copy_tldr(tmp_path / "docs", list(names)), cwd=kb, check=True)
    return kb


def _openkb045(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(OPENKB045), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


# -- case 7: an unparsable journal, and a hand edit made during a crashed run ----------------

def test_an_unparsable_journal_keeps_the_hand_edit_it_resets(kb, tmp_path):
    _kb_with(kb, tmp_path)
    summary = kb / "wiki" / "summaries" / "tar.md"
    edited = summary.read_text() + "\nMy own note, not committed.\n"
    summary.write_text(edited)
    assert "wiki/summaries/tar.md" in run_openkb("status", cwd=kb, check=True).stdout
    (kb / OUR_JOURNALS).mkdir(parents=True, exist_ok=True)
    (kb / OUR_JOURNALS / "abc.json").write_text('{"id": "abc", "op": "add", "ba')
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert "corrupt journal abc.json" in proc.stdout
    backups = list((kb / ".openkb" / "fsck-backup").iterdir())
    assert len(backups) == 1
    folder = backups[0].relative_to(kb).as_posix()
    assert f"kept 1 hand-edited file(s) in {folder}/" in proc.stdout and "wiki/summaries/tar.md" in proc.stdout
    assert (backups[0] / "wiki" / "summaries" / "tar.md").read_text() == edited  # the edit is kept
    assert summary.read_text() == git(kb, "show", "HEAD:wiki/summaries/tar.md")  # and the path reset
    assert_consistent(kb)


def test_a_crashed_runs_own_output_is_reset_and_a_hand_edit_there_is_kept(kb, tmp_path):
    """A parsable journal: a touched path holding the journal's base or new blob is the crashed
    run's doing (reset without a copy); one holding anything else was edited by hand during
    the run, and is copied before the reset."""
    _kb_with(kb, tmp_path, ["tar.md"])
    base = git(kb, "rev-parse", "HEAD").strip()
    run_openkb("add", copy_tldr(tmp_path / "more", ["grep.md"]), cwd=kb, check=True)
    new = git(kb, "rev-parse", "HEAD").strip()
    paths = ["wiki/index.md", "wiki/summaries/grep.md"]

    def blob(commit, path):
        out = subprocess.run(["git", "-C", str(kb), "rev-parse", f"{commit}:{path}"], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None

    (kb / OUR_JOURNALS).mkdir(parents=True, exist_ok=True)
    (kb / OUR_JOURNALS / "run.json").write_text(json.dumps({
        "id": "run", "op": "add", "base": base, "new": new, "paths": paths, "pid": 1,
        "blobs": {p: [blob(base, p), blob(new, p)] for p in paths}}))
    (kb / "wiki" / "index.md").write_text(git(kb, "show", f"{base}:wiki/index.md"))  # not yet projected
    note = "# grep\n\nWritten by hand while the add ran.\n"
    (kb / "wiki" / "summaries" / "grep.md").write_text(note)
    proc = run_openkb("recover", "--json", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["kept"] == ["wiki/summaries/grep.md"]  # the index, at its base blob, is not a hand edit
    assert (kb / data["backup"] / "wiki" / "summaries" / "grep.md").read_text() == note
    assert_consistent(kb)


# -- case 8: our journals and OpenKB's ---------------------------------------------------------

def _place_openkb_journal(kb: Path, journal: dict) -> tuple[Path, Path]:
    """Put an OpenKB journal (captured with another kb_dir) into ``kb`` with the backups it
    names, as OpenKB's snapshot_paths() leaves them: copies of the targets as they are now."""
    old = journal["kb_dir"]
    for entry in journal["entries"]:
        if entry["backup"]:
            target = kb / os.path.relpath(entry["target"], old)
            backup = kb / os.path.relpath(entry["backup"], old)
            backup.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, backup)
    path = kb / OPENKB_JOURNALS / Path(journal["backup_dir"]).name.replace("rollback-", "")
    path = path.with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(journal, indent=2))
    return path, kb / os.path.relpath(journal["backup_dir"], old)


def _interrupted_openkb_add(kb: Path) -> str:
    """What OpenKB's interrupted add of ls.md leaves: a partial raw file, a changed index and
    hashes.json; plus a hand note the user wrote before. Returns the note's content."""
    (kb / "raw" / "ls.md").write_text("# ls\n\nhalf of it")
    (kb / "wiki" / "index.md").write_text((kb / "wiki" / "index.md").read_text() + "- [[summaries/ls]]\n")
    (kb / ".openkb" / "hashes.json").write_text("{}")
    note = kb / "wiki" / "summaries" / "tar.md"
    note.write_text(note.read_text() + "\nA hand note.\n")
    return note.read_text()


def _check_rolled_back(kb: Path, journal: Path, backup_dir: Path, note: str, tmp_path: Path) -> None:
    assert not (kb / "raw" / "ls.md").exists()  # OpenKB's partial file, removed as OpenKB does
    assert (kb / "wiki" / "index.md").read_text() == git(kb, "show", "HEAD:wiki/index.md")
    assert not journal.exists() and not backup_dir.exists()
    assert (kb / "wiki" / "summaries" / "tar.md").read_text() == note  # the hand note lives
    run_openkb("add", copy_tldr(tmp_path / "third", ["ls.md"]), cwd=kb, check=True)
    assert git(kb, "show", "HEAD~1:wiki/summaries/tar.md") == note  # committed as an edit
    assert git(kb, "log", "-1", "--format=%s", "HEAD~1").startswith("edit:")
    assert_consistent(kb)


def test_an_openkb_journal_is_rolled_back_as_openkb_does(kb, tmp_path):
    """The journal written by the real OpenKB 0.4.5's snapshot_paths() (the captured fixture)."""
    _kb_with(kb, tmp_path)
    journal, backup_dir = _place_openkb_journal(kb, json.loads(FIXTURE.read_text()))
    note = _interrupted_openkb_add(kb)
    fsck = run_openkb("fsck", cwd=kb)
    assert fsck.returncode != 0 and "an interrupted OpenKB mutation" in fsck.stdout
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert f"OpenKB journal {journal.name}: rolled back OpenKB's interrupted add" in proc.stdout
    _check_rolled_back(kb, journal, backup_dir, note, tmp_path)


@needs_openkb045
def test_a_journal_written_now_by_the_real_openkb_is_rolled_back(kb, tmp_path):
    _kb_with(kb, tmp_path)
    made = _openkb045(str(DATA / "make_openkb_journal.py"), str(kb), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    data = json.loads(made.stdout)
    journal = kb / OPENKB_JOURNALS / f"{Path(data['backup_dir']).name[len('rollback-'):]}.json"
    assert journal.exists() and (kb / "raw" / "ls.md").exists()
    note = _interrupted_openkb_add(kb)
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0, proc.stderr
    _check_rolled_back(kb, journal, Path(data["backup_dir"]), note, tmp_path)


def test_an_openkb_journal_naming_a_path_outside_the_kb_is_refused(kb, tmp_path):
    _kb_with(kb, tmp_path)
    victim = kb.parent / "victim.txt"
    victim.write_text("outside")
    journal = json.loads(FIXTURE.read_text())
    journal["entries"].append({"target": journal["kb_dir"] + "/../victim.txt", "backup": None})
    path, backup_dir = _place_openkb_journal(kb, journal)
    proc = run_openkb("add", copy_tldr(tmp_path / "more", ["ls.md"]), cwd=kb)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "run OpenKB's recovery" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_text() == "outside" and path.exists() and backup_dir.exists()
    assert "ls" not in run_openkb("list", cwd=kb, check=True).stdout


def _crash_after_the_commit_point(kb: Path, tmp_path: Path) -> Path:
    killed = run_openkb("add", "--jobs", "1", copy_tldr(tmp_path / "crash", ["ls.md"]), cwd=kb,
                        env={"OPENKB_FAULT_KILL_AT": "ref:moved"})
    assert killed.returncode == -9
    ours = list((kb / OUR_JOURNALS).glob("*.json"))
    assert len(ours) == 1 and not list((kb / OPENKB_JOURNALS).glob("*.json"))  # never where OpenKB reads
    return ours[0]


@needs_openkb045
def test_openkbs_recovery_never_sees_our_journal(kb, tmp_path):
    _kb_with(kb, tmp_path)
    ours = _crash_after_the_commit_point(kb, tmp_path)
    env_home = tmp_path / "home"
    env_home.mkdir()
    theirs = _openkb045("-c", "import sys, json; from pathlib import Path; from openkb.locks import kb_lock\n"
                              "with kb_lock(Path(sys.argv[1]) / '.openkb', exclusive=True): pass\n"
                              "from openkb.mutation import recover_pending_journals\n"
                              "print(json.dumps(recover_pending_journals(Path(sys.argv[1]))))", str(kb))
    assert theirs.returncode == 0, theirs.stderr
    assert json.loads(theirs.stdout) == [] and ours.exists()  # OpenKB left it alone
    assert run_openkb("recover", cwd=kb).returncode == 0
    assert "ls" in run_openkb("list", cwd=kb, check=True).stdout  # the committed add is finished
    assert_consistent(kb)


def test_a_journal_of_ours_in_the_old_folder_is_still_recovered(kb, tmp_path):
    """A KB that crashed under an earlier version, which kept journals in .openkb/journal/."""
    _kb_with(kb, tmp_path)
    ours = _crash_after_the_commit_point(kb, tmp_path)
    (kb / OPENKB_JOURNALS).mkdir(parents=True, exist_ok=True)
    ours.rename(kb / OPENKB_JOURNALS / ours.name)
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0 and "recovered 1 journal(s)" in proc.stdout, proc.stdout + proc.stderr
    assert "ls" in run_openkb("list", cwd=kb, check=True).stdout
    assert_consistent(kb)


def test_openkbs_staging_and_unknown_journals_are_left_alone(kb, tmp_path):
    _kb_with(kb, tmp_path, ["tar.md"])
    theirs = kb / ".openkb" / "staging" / "add-ls-1a2b3c4d"
    (theirs / "raw").mkdir(parents=True)
    (theirs / "raw" / "ls.md").write_text("OpenKB's staging")
    stray = kb / OPENKB_JOURNALS / "stray.json"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text('{"id": "abc", "op": "add", "ba')  # torn: whose it is cannot be told
    summary = kb / "wiki" / "summaries" / "tar.md"
    summary.write_text("edited by hand\n")
    proc = run_openkb("recover", cwd=kb)
    assert proc.returncode == 0
    assert "left .openkb/journal/stray.json alone" in proc.stdout
    assert (theirs / "raw" / "ls.md").exists() and stray.exists()
    assert summary.read_text() == "edited by hand\n"  # nothing was reset on its account


# -- case 2: hooks that arrive through Git --------------------------------------------------

def _write_hook(kb: Path, event: str, marker: Path, mode: int = 0o755) -> Path:
    hook = kb / ".openkb" / "hooks" / event
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(f"#!/bin/sh\necho {event} >> '{marker}'\n")
    hook.chmod(mode)
    return hook


def test_hooks_that_arrive_through_a_clone_are_refused_not_run(kb, tmp_path):
    _kb_with(kb, tmp_path, ["tar.md"])
    marker = tmp_path / "ran.txt"
    for event in ("pre-ingest", "post-ingest"):
        _write_hook(kb, event, marker)
    git(kb, "add", "-f", ".openkb/hooks/pre-ingest", ".openkb/hooks/post-ingest")
    git(kb, "commit", "-q", "-m", "hooks for everyone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(kb), str(clone)], check=True)
    assert os.access(clone / ".openkb" / "hooks" / "pre-ingest", os.X_OK)  # checked out, executable
    listed = run_openkb("hooks", "list", cwd=clone, check=True).stdout
    assert "pre-ingest   tracked: refused" in listed and "post-ingest  tracked: refused" in listed
    assert json.loads(run_openkb("hooks", "list", "--json", cwd=clone, check=True).stdout)["hooks"][0]["refused"]
    added = run_openkb("add", copy_tldr(tmp_path / "more", ["ls.md", "grep.md"]), cwd=clone)
    assert added.returncode == 0, added.stdout + added.stderr
    assert not marker.exists()  # neither hook ran
    assert added.stdout.count("pre-ingest hook refused") == 1 and added.stdout.count("post-ingest hook refused") == 1
    assert "tracked by Git" in added.stdout
    # Untracked again (the user's own decision), the same files are the user's hooks and run.
    git(clone, "rm", "-q", "--cached", ".openkb/hooks/pre-ingest", ".openkb/hooks/post-ingest")
    git(clone, "commit", "-q", "-m", "untrack hooks")
    run_openkb("add", copy_tldr(tmp_path / "third", ["cat.md"]), cwd=clone, check=True)
    assert marker.read_text().split() == ["pre-ingest", "post-ingest"]


def test_a_hook_writable_by_others_is_refused(kb, tmp_path):
    marker = tmp_path / "ran.txt"
    _write_hook(kb, "pre-ingest", marker, mode=0o777)
    assert "refused" in run_openkb("hooks", "list", cwd=kb, check=True).stdout
    added = run_openkb("add", copy_tldr(tmp_path / "docs", ["tar.md"]), cwd=kb)
    assert added.returncode == 0 and "writable by group or others" in added.stdout and not marker.exists()


# -- case 3 and 13: config that arrives through Git ----------------------------------------

def _children_peak(proc: subprocess.Popen) -> int:
    """The most child processes ``proc`` had at once, polled from /proc until it exits."""
    peak = 0
    while proc.poll() is None:
        count = 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == proc.pid:
                    count += 1
        peak = max(peak, count)
    return peak


def test_jobs_from_a_cloned_config_are_capped_by_the_cpu_count(kb, tmp_path):
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text().replace("jobs: null", "jobs: 200"))
    assert "jobs: 200" in config.read_text()
    git(kb, "commit", "-q", "-am", "jobs: 200 for everyone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(kb), str(clone)], check=True)
    cpus = os.cpu_count() or 1
    names = sorted(p.name for p in (TLDR / "common").glob("b*.md"))[:cpus + 6]
    src = copy_tldr(tmp_path / "docs", names)
    proc = subprocess.Popen([sys.executable, "-m", "openkb_git", "add", str(src)], cwd=clone,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = _children_peak(proc)
    out, err = proc.communicate()
    assert proc.returncode == 0, out + err
    assert out.count("added    ") == len(names)
    assert 1 <= peak <= cpus, (peak, cpus)  # 200 asked for, at most one worker per CPU used


@pytest.mark.parametrize("setting, message", [
    ("max_file_mb: abc", "max_file_mb: 'abc' is not a number"),
    ('jobs: "two"', "jobs: 'two' is not a whole number"),
    ("jobs: 0", "jobs: 0 is out of range"),
    ("jobs: [1,", "is not valid YAML at line"),
])
def test_a_bad_config_value_is_an_error_naming_the_key_and_never_an_edit(kb, tmp_path, setting, message):
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text().replace("jobs: null", setting))
    head = git(kb, "rev-parse", "HEAD")
    proc = run_openkb("add", copy_tldr(tmp_path / "docs", ["tar.md"]), cwd=kb)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"openkb: error: .openkb/config.yaml: {message}" in proc.stderr or \
        (".openkb/config.yaml " + message) in proc.stderr, proc.stderr
    assert git(kb, "rev-parse", "HEAD") == head  # no `edit` commit of the bad config, no ingest


def test_a_bad_tracked_config_is_an_error_naming_the_key(kb, tmp_path):
    _kb_with(kb, tmp_path, ["tar.md"])
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text() + "max_file_mb: -5\n")
    git(kb, "commit", "-q", "-am", "a bad value, committed with git (or arrived by a pull)")
    head = git(kb, "rev-parse", "HEAD")
    proc = run_openkb("add", copy_tldr(tmp_path / "more", ["ls.md"]), cwd=kb)
    assert proc.returncode == 1 and "max_file_mb: -5 is out of range" in proc.stderr
    assert "Traceback" not in proc.stderr and git(kb, "rev-parse", "HEAD") == head


def test_no_writer_commits_a_bad_config_as_an_edit(kb, tmp_path):
    """`revert` reads no setting, but commits hand edits first: a bad config among them is
    refused with the key named, not committed."""
    _kb_with(kb, tmp_path, ["tar.md"])
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text() + 'pageindex_threshold: "many"\n')
    head = git(kb, "rev-parse", "HEAD")
    proc = run_openkb("revert", head.strip(), cwd=kb)
    assert proc.returncode == 1 and "pageindex_threshold: 'many' is not a whole number" in proc.stderr, \
        proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and git(kb, "rev-parse", "HEAD") == head


def test_a_writer_that_recovers_says_where_the_hand_edit_went(kb, tmp_path):
    _kb_with(kb, tmp_path, ["tar.md"])
    summary = kb / "wiki" / "summaries" / "tar.md"
    summary.write_text("# tar\n\nmine\n")
    (kb / OUR_JOURNALS).mkdir(parents=True, exist_ok=True)
    (kb / OUR_JOURNALS / "abc.json").write_text('{"id": "abc", "op": "add", "ba')
    proc = run_openkb("add", copy_tldr(tmp_path / "more", ["ls.md"]), cwd=kb)
    assert proc.returncode == 0, proc.stderr
    assert "copied hand-edited files before resetting them to .openkb/fsck-backup/" in proc.stderr
    assert "wiki/summaries/tar.md" in proc.stderr
    (backup,) = (kb / ".openkb" / "fsck-backup").iterdir()
    assert (backup / "wiki" / "summaries" / "tar.md").read_text() == "# tar\n\nmine\n"
    assert_consistent(kb)
