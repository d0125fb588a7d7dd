"""The crash matrix: stop a mutating command at every durable operation — killed, power
lost (unsynced writes dropped or torn), or an I/O error — and check what is left.

The default run checks a sample of the points of every operation; OPENKB_SLOW=1 checks
every point (see docs/protocol.md). The sample rotates with the commit under test: the seed
(OPENKB_FAULT_SEED, else the checkout's commit count) picks one point in each of 6 equal
stretches of an operation's points, plus its last point, so that successive commits check
every point, each with EIO and with ENOSPC in turn. The seed and the numbers of points
checked are printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, ROOT, SLOW, SUMMARY, TLDR, git, knob
from openkb_git.kb import KB
from openkb_git.ops.fsck import fsck
from openkb_git.ops.session import Writer

SAMPLE = 6  # stretches per mode in the default run: one point of each, plus the last point (every
# document compiled pays the keyphrase library's import, ~1 s a process: 12 stretches took 15 min)
MODES = knob("OPENKB_FAULT_MODES", "kill,power,io").split(",")


def fault_seed() -> tuple[int, str]:
    """(seed, where it came from): OPENKB_FAULT_SEED; else the number of commits of the
    checkout's HEAD, which grows by one a commit, so successive commits take successive
    points; in a shallow clone (where that count says nothing) HEAD's id; outside a Git
    checkout (an unpacked sdist) 0."""
    if knob("OPENKB_FAULT_SEED"):
        return int(knob("OPENKB_FAULT_SEED")), "OPENKB_FAULT_SEED"

    def rev(*args) -> str | None:
        proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", *args], capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None

    head = rev("--verify", "-q", "HEAD")
    if head is None or rev("--show-toplevel") != str(ROOT):
        return 0, "not a git checkout"
    if rev("--is-shallow-repository") == "true":
        return int(head[:12], 16), f"id of HEAD {head[:12]} (shallow clone)"
    count = subprocess.run(["git", "-C", str(ROOT), "rev-list", "--count", "HEAD"], capture_output=True,
                           text=True).stdout.strip()
    return int(count), f"commit count of HEAD {head[:12]}"


SEED, SEED_SOURCE = fault_seed()


def sample_points(total: int, seed: int, mode: int, *, sample: int = SAMPLE) -> dict[int, str]:
    """{point: I/O error kind} for one mode (``mode``: its position) of an operation of
    ``total`` points: the points 1..total in ``sample`` equal stretches; the stretch of size s
    gives its point (seed + stretch + mode) mod s, so s successive seeds take each of its points
    once, and the next s the other error kind ("eio"/"enospc"). The last point always."""
    if total <= sample:
        return {n: ("eio", "enospc")[(n + seed) % 2] for n in range(1, total + 1)}
    out = {}
    for stretch in range(sample):
        start, end = stretch * total // sample, (stretch + 1) * total // sample  # points start+1..end
        size = end - start
        turn = seed + stretch + mode
        n = start + 1 + turn % size
        out[n] = ("eio", "enospc")[(n + turn // size) % 2]
    out.setdefault(total, ("eio", "enospc")[(total + seed) % 2])
    return out


def test_the_rotating_sample_covers_every_point_with_both_errors():
    """Over successive seeds the sample checks every point of an operation in every mode,
    and each point gets both EIO and ENOSPC; one seed's sample stays small."""
    SUMMARY.append(f"fault sample seed {SEED} ({SEED_SOURCE}; OPENKB_FAULT_SEED={SEED} repeats it), "
                   f"modes {','.join(MODES)}" + (", every point (OPENKB_SLOW=1)" if SLOW else ""))
    for total in (1, 7, 12, 13, 25, 176, 301):
        for mode in range(3):
            seen: dict[int, set[str]] = {}
            rounds = 2 * (total // SAMPLE + 1)
            for seed in range(1000, 1000 + rounds):
                picked = sample_points(total, seed, mode)
                assert len(picked) <= SAMPLE + 1 and set(picked) <= set(range(1, total + 1))
                for n, kind in picked.items():
                    seen.setdefault(n, set()).add(kind)
            assert set(seen) == set(range(1, total + 1)), (total, mode)
            assert all(kinds == {"eio", "enospc"} for kinds in seen.values()), (total, mode)


def test_the_test_knobs_reach_the_tests(tmp_path):
    """OPENKB_FAULT_MODES and OPENKB_FAULT_SEED given to pytest are what the tests use,
    though conftest removes every OPENKB_* variable from the tests' environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENKB_")}
    env.update(OPENKB_FAULT_MODES="kill", OPENKB_FAULT_SEED="4711", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
                           f"{__file__}::test_the_rotating_sample_covers_every_point_with_both_errors"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fault sample seed 4711 (OPENKB_FAULT_SEED;" in proc.stdout and "modes kill\n" in proc.stdout, proc.stdout


def openkb(kb: Path, *args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "openkb_git", "--kb-dir", str(kb), *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def docs_of(kb: Path) -> set[str]:
    return {d["doc"] for d in json.loads(openkb(kb, "list", "--json").stdout)}


def check_recovered(kb: Path, before_head: str, before_docs: set[str], must_keep_docs: bool,
                    hand_edits: dict[str, bytes] | None = None, kept: dict[str, bytes] | None = None) -> None:
    """After recovery: HEAD is a whole operation on top of the old one, the working tree,
    index, registry and views match it, nothing committed is lost, nothing is left over.
    ``hand_edits`` ({path: content}) are the user's uncommitted edits: each must be either
    committed or still in the working tree, never lost. ``kept`` ({path: content}) are hand
    edits recovery may reset: each must then be in a backup under `.openkb/fsck-backup/`."""
    hand_edits = hand_edits or {}
    kept = kept or {}
    handle = KB(kb)
    try:
        with Writer(handle).locked():
            pass
        report = fsck(handle)
    finally:
        handle.close()
    problems = [p for p in report.problems if p.path not in hand_edits]
    assert not problems, [f"{p.check} {p.path}: {p.detail}" for p in problems]
    status = [line for line in git(kb, "status", "--porcelain", "--untracked-files=all").splitlines()
              if line[3:] not in hand_edits]
    assert status == []
    for path, content in hand_edits.items():
        assert (kb / path).read_bytes() == content  # kept in the working tree, committed or not
    for path, content in kept.items():
        copies = [c.read_bytes() for c in (kb / ".openkb" / "fsck-backup").glob(f"*/{path}")]
        assert (kb / path).read_bytes() == content or content in copies, (path, len(copies))
    head = git(kb, "rev-parse", "HEAD").strip()
    assert subprocess.run(["git", "-C", str(kb), "merge-base", "--is-ancestor", before_head, head]).returncode == 0
    for folder in ("openkb-git/journal", "openkb-git/staging", "journal", "staging"):
        assert not (kb / ".openkb" / folder).exists() or not any((kb / ".openkb" / folder).iterdir())
    if must_keep_docs:
        assert before_docs <= docs_of(kb)


def trace_ops(template: Path, work: Path, args: list) -> list[str]:
    """The durable operations ("N kind path") of a run of ``args`` on a copy of ``template``."""
    probe = work / "probe"
    shutil.copytree(template, probe, symlinks=True)
    trace = work / "trace.txt"
    trace.unlink(missing_ok=True)
    proc = openkb(probe, *args, env={"OPENKB_FAULT_TRACE": str(trace)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shutil.rmtree(probe)
    return trace.read_text().splitlines()


def run_matrix(name: str, template: Path, work: Path, args: list, *, must_keep_docs: bool = True,
               hand_edits: dict[str, bytes] | None = None, kept: dict[str, bytes] | None = None,
               after=None) -> int:
    """The matrix of ``args`` on copies of ``template``: every point (OPENKB_SLOW=1) or the
    rotating sample. ``after(kb, fault, proc, again)`` checks more, after recovery (``again``:
    False; ``proc``: the run with the fault) and after the operation was run again (True)."""
    total = len(trace_ops(template, work, args))
    before = (git(template, "rev-parse", "HEAD").strip(), docs_of(template))
    checked = 0
    counts = {}
    for position, mode in enumerate(MODES):
        if SLOW:
            points = {n: ("eio", "enospc")[(n + SEED) % 2] for n in range(1, total + 1)}
        else:
            points = sample_points(total, SEED, position)
        for n, kind in sorted(points.items()):
            fault = mode if mode != "io" else kind
            # A new commit object may or may not need a new fan-out folder (its id depends on
            # the time: +2 operations per commit at most), so the last few may not exist in this run.
            if check_point(template, work / f"{mode}-{n}", args, fault, {"OPENKB_FAULT_AT": str(n)}, before,
                           must_keep_docs, hand_edits, kept, may_not_exist=n > total - 8,
                           run_again=not SLOW or n % 5 == 0, after=after):
                checked += 1
                counts[fault] = counts.get(fault, 0) + 1
    line = (f"{name}: {total} durable operations; {checked} crash points checked ("
            + ", ".join(f"{kind} {count}" for kind, count in counts.items()) + f"; seed {SEED})")
    print("\n" + line)
    SUMMARY.append(line + ("" if SLOW else " [sample; OPENKB_SLOW=1 for every point]"))
    return checked


def check_point(template: Path, kb: Path, args: list, fault: str, where: dict[str, str], before: tuple,
                must_keep_docs: bool = True, hand_edits=None, kept=None, *, may_not_exist: bool = False,
                run_again: bool = True, after=None) -> bool:
    """Run ``args`` on a copy of ``template`` with ``fault`` at the point ``where`` names; check
    the failure, then recovery (`check_recovered`); if the operation did not happen, that it
    now succeeds (with ``run_again``). False when the point did not exist in this run."""
    shutil.copytree(template, kb, symlinks=True)
    proc = openkb(kb, *args, env={"OPENKB_FAULT_MODE": fault, **where})
    if proc.returncode == 0 and may_not_exist:
        shutil.rmtree(kb)
        return False
    if fault in ("kill", "power"):
        assert proc.returncode == -9, (fault, where, proc.stdout, proc.stderr)
    else:
        assert proc.returncode == 1, (fault, where, proc.stdout, proc.stderr)
        assert "I/O error" in proc.stdout + proc.stderr, (where, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, (where, proc.stderr)
    check_recovered(kb, before[0], before[1], must_keep_docs, hand_edits, kept)
    if after is not None:
        after(kb, fault, proc, False)
    # The KB stays usable: if the operation did not happen, it now succeeds.
    if git(kb, "rev-parse", "HEAD").strip() == before[0] and run_again:
        again = openkb(kb, *args)
        assert again.returncode == 0, (fault, where, again.stdout, again.stderr)
        if after is not None:
            after(kb, fault, again, True)
    shutil.rmtree(kb)
    return True


@pytest.fixture(scope="module")
def base_kb(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("faults")
    kb = work / "kb"
    src = work / "src"
    src.mkdir()
    for name in ("git-commit.md", "git-add.md", "git-status.md"):
        shutil.copy(TLDR / "common" / name, src / name)
    subprocess.run([sys.executable, "-m", "openkb_git", "init", str(kb)], check=True, capture_output=True)
    assert openkb(kb, "add", "--jobs", "1", src).returncode == 0
    return kb, work


def test_crash_matrix_add_with_long_pdf(base_kb, tmp_path):
    kb, _ = base_kb
    src = tmp_path / "new"
    src.mkdir()
    shutil.copy(CORPUS / "pdf" / "2.pdf", src / "long.pdf")  # 47 pages: a long document
    shutil.copy(TLDR / "common" / "tar.md", src / "tar.md")
    assert run_matrix("add", kb, tmp_path, ["add", "--jobs", "1", src]) > 0


GROUP = ["tar.md", "grep.md", "ls.md"]


@pytest.fixture(scope="module")
def group_kb(tmp_path_factory) -> Path:
    """A KB whose config makes `add --jobs 1` commit its files in groups of three (group commit,
    docs/protocol.md: one journal, objects made durable together, the branch moved once), the
    group preparing its next file for up to 600 s: the same groups in every run."""
    work = tmp_path_factory.mktemp("group")
    kb = work / "kb"
    subprocess.run([sys.executable, "-m", "openkb_git", "init", str(kb)], check=True, capture_output=True)
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text() + "commit_group_files: 3\ncommit_group_seconds: 600\n")
    src = work / "first"
    src.mkdir()
    shutil.copy(TLDR / "common" / "git-commit.md", src / "git-commit.md")
    assert openkb(kb, "add", "--jobs", "1", src).returncode == 0  # commits the config edit, then the file
    return kb


def _journals(kb: Path, count: int) -> list[str]:
    """The OpenKB-Journal trailer of each of the last ``count`` commits, newest first."""
    return git(kb, "log", f"-{count}", "--format=%(trailers:key=OpenKB-Journal,valueonly)").split()


def test_group_commit_makes_one_commit_per_file_and_moves_the_branch_once(group_kb, tmp_path):
    kb = tmp_path / "kb"
    shutil.copytree(group_kb, kb, symlinks=True)
    src = tmp_path / "src"
    src.mkdir()
    for name in GROUP:
        shutil.copy(TLDR / "common" / name, src / name)
    reflog = len(git(kb, "reflog", "main").splitlines())
    proc = openkb(kb, "add", "--jobs", "1", src)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subjects = git(kb, "log", "-3", "--format=%s").splitlines()
    assert subjects == [f"add: {name}" for name in sorted(GROUP, reverse=True)]  # scan order: by name
    assert len(set(_journals(kb, 3))) == 1 and _journals(kb, 4)[3] != _journals(kb, 3)[0]
    assert len(git(kb, "reflog", "main").splitlines()) == reflog + 1  # one move of the branch
    # Each commit is the one an add of its file alone makes: the same tree.
    alone = tmp_path / "alone"
    shutil.copytree(group_kb, alone, symlinks=True)
    for name in sorted(GROUP):
        assert openkb(alone, "add", "--jobs", "1", src / name).returncode == 0
    assert git(alone, "log", "-3", "--format=%T").split() == git(kb, "log", "-3", "--format=%T").split()
    assert len(set(_journals(alone, 3))) == 3
    check_recovered(kb, git(group_kb, "rev-parse", "HEAD").strip(), docs_of(group_kb), True)


def test_a_group_ends_at_its_bound_in_bytes(group_kb, tmp_path, monkeypatch):
    """A group also ends once the objects it built in memory reach GROUP_BYTES (at 50,000
    documents one commit's trees are ~20 MB): here 1 byte, so every file is a group of its own."""
    from openkb_git.ops import add

    kb = tmp_path / "kb"
    shutil.copytree(group_kb, kb, symlinks=True)
    src = tmp_path / "src"
    src.mkdir()
    for name in GROUP:
        shutil.copy(TLDR / "common" / name, src / name)
    monkeypatch.setattr(add, "GROUP_BYTES", 1)
    handle = KB(kb)
    try:
        report = add.add_paths(handle, [src], jobs=1)
    finally:
        handle.close()
    assert [r.status for r in report.results] == ["added"] * 3
    assert len(set(_journals(kb, 3))) == 3


def test_crash_matrix_group_commit(group_kb, tmp_path):
    """No part of a group is ever visible: after a crash at any point, recovery leaves all of its
    files committed or none; an add run again commits the ones that are not."""
    src = tmp_path / "new"
    src.mkdir()
    for name in GROUP:
        shutil.copy(TLDR / "common" / name, src / name)
    before = docs_of(group_kb)
    new = {name[:-3] for name in GROUP}

    def whole_group(kb: Path, fault: str, proc, again: bool) -> None:
        added = docs_of(kb) - before
        if again:
            assert added == new, added
        elif fault in ("kill", "power"):
            assert added in (set(), new), added
        else:  # an I/O error: a file whose preparation failed is out; the others, committed, are said
            said = set(re.findall(r"^(?:added|updated) +.* -> (\S+) \(", proc.stdout, re.M))
            assert added == said, (added, proc.stdout)

    assert run_matrix("group commit", group_kb, tmp_path, ["add", "--jobs", "1", src], after=whole_group) > 0


def test_crash_matrix_revert(base_kb, tmp_path):
    kb, _ = base_kb
    assert run_matrix("revert", kb, tmp_path, ["revert", "git-add"], must_keep_docs=False) > 0


def test_crash_matrix_remove(base_kb, tmp_path):
    kb, _ = base_kb
    assert run_matrix("remove", kb, tmp_path, ["remove", "git-status"], must_keep_docs=False) > 0


def test_crash_matrix_edit_commit(base_kb, tmp_path):
    kb, work = base_kb
    template = tmp_path / "edited"
    shutil.copytree(kb, template, symlinks=True)
    page = sorted((template / "wiki" / "concepts").glob("*.md"))[0]
    page.write_text(page.read_text() + "\nA note of my own.\n")
    edits = {page.relative_to(template).as_posix(): page.read_bytes()}
    # Adding a file already in the KB commits nothing but the hand edit.
    assert run_matrix("edit", template, tmp_path, ["add", "--jobs", "1", work / "src" / "git-add.md"],
                      hand_edits=edits) > 0


def crashed_add(kb: Path, tmp_path: Path) -> Path:
    """A copy of ``kb`` with an add of tar.md killed right after its commit point (a journal left)."""
    template = tmp_path / "crashed"
    shutil.copytree(kb, template, symlinks=True)
    src = tmp_path / "one"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "tar.md")
    killed = openkb(template, "add", "--jobs", "1", src, env={"OPENKB_FAULT_KILL_AT": "ref:moved"})
    assert killed.returncode == -9
    return template


def test_crash_matrix_recovery_keeps_a_hand_edit(base_kb, tmp_path):
    """Recovery of a crashed add, with a hand edit made since on a path the add touched: the
    edit is copied to .openkb/fsck-backup/ (durably) before the reset. At every crash point of
    that recovery, once a later recovery ran, the edit is in the working tree or in a backup."""
    template = crashed_add(base_kb[0], tmp_path)
    edit = (template / "wiki" / "index.md").read_bytes() + b"\n(my note, written while the add was running)\n"
    (template / "wiki" / "index.md").write_bytes(edit)
    assert run_matrix("recover (hand edit backed up)", template, tmp_path, ["recover"],
                      kept={"wiki/index.md": edit}) > 0


def test_crash_matrix_recovery(base_kb, tmp_path):
    template = crashed_add(base_kb[0], tmp_path)
    assert any((template / ".openkb" / "openkb-git" / "journal").glob("*.json"))
    assert run_matrix("recover", template, tmp_path, ["recover"]) > 0


def test_power_loss_between_making_a_commit_durable_and_removing_its_journal(base_kb, tmp_path):
    """Power lost at the named point `durable` (work tree, Git index and views fsynced, the
    journal not yet removed) of add, revert, remove and of recovery: nothing is lost. Whatever
    the sample picks: with the two steps swapped, the journal is gone and the files are not
    durable, so the power loss leaves a torn work tree that no recovery knows of."""
    kb, work = base_kb
    src = tmp_path / "new"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "tar.md")
    before_head, before_docs = git(kb, "rev-parse", "HEAD").strip(), docs_of(kb)
    runs = [(kb, ["add", "--jobs", "1", src], "durable", True), (kb, ["revert", "git-add"], "durable", False),
            (kb, ["remove", "git-status"], "durable", False),
            (crashed_add(kb, tmp_path), ["recover"], "recover:durable", True)]
    for n, (template, args, label, keeps) in enumerate(runs):
        target = tmp_path / f"power-{n}"
        shutil.copytree(template, target, symlinks=True)
        proc = openkb(target, *args, env={"OPENKB_FAULT_MODE": "power", "OPENKB_FAULT_AT": label})
        assert proc.returncode == -9, (args, proc.stdout, proc.stderr)  # the point was reached
        check_recovered(target, before_head, before_docs, keeps)


def named_points(name: str, template: Path, work: Path, args: list, specs: list[str], *,
                 must_keep_docs: bool = True) -> int:
    """Kill, power loss and an I/O error at each point ``specs`` names (OPENKB_FAULT_OP:
    ``kind[@text][+K]``), each of which the run must have; the same checks as the matrix."""
    ops = trace_ops(template, work, args)
    before = (git(template, "rev-parse", "HEAD").strip(), docs_of(template))
    checked = 0
    for i, spec in enumerate(specs):
        kind, _, text = spec.partition("+")[0].partition("@")
        assert any(op.split(" ", 2)[1] == kind and text in op.split(" ", 2)[2] for op in ops), (spec, ops)
        for fault in ("kill", "power", ("eio", "enospc")[(i + SEED) % 2]):
            assert check_point(template, work / f"{fault}-{i}", args, fault, {"OPENKB_FAULT_OP": spec}, before,
                               must_keep_docs)
            checked += 1
    SUMMARY.append(f"{name}: {checked} named crash points checked ({', '.join(specs)})")
    return checked


def test_faults_at_the_truncation_the_removals_of_folders_and_the_staging(base_kb, tmp_path):
    """The operations the injector did not see before (log.md cut back before an append, a
    folder pruned, a staging folder removed by the add and by recovery), and the Git index
    written before the first journal: each is a point, and the KB works after it."""
    kb, _ = base_kb
    src = tmp_path / "new"
    src.mkdir()
    shutil.copy(TLDR / "common" / "tar.md", src / "tar.md")
    named_points("add", kb, tmp_path, ["add", "--jobs", "1", src], ["truncate@log.md", "rmtree@staging"])
    # The Git index refreshed before any journal exists: its index.lock, left by the dead
    # writer, is taken for stale (the KB lock's holder never released it) and removed.
    named_points("add", kb, tmp_path, ["add", "--jobs", "1", src], ["fsync@index.lock", "rename@.git/index"])
    named_points("remove", kb, tmp_path, ["remove", "git-status"], ["rmdir@wiki"], must_keep_docs=False)
    named_points("recover", crashed_add(kb, tmp_path), tmp_path, ["recover"], ["rmtree@staging"])


def test_faults_around_git_pack_objects(tmp_path):
    """The add whose commit merges packs with `git pack-objects`: killed just before Git runs,
    an I/O error there, and kill / power loss at each of the fsyncs that bring Git's files
    inside the crash model (pack, index, folder) and at the first removal of an old pack."""
    from openkb_git.git import packs

    kb = tmp_path / "kb"
    subprocess.run([sys.executable, "-m", "openkb_git", "init", str(kb)], check=True, capture_output=True)
    names = iter(sorted(p.name for p in (TLDR / "common").glob("[a-z]*.md")))
    pack_dir = kb / ".git" / "objects" / "pack"
    for i in range(3 * packs.MERGE_AT):  # a pack a commit; merged once MERGE_AT pile up (sizes permitting)
        last = tmp_path / f"s{i}"
        last.mkdir()
        name = next(names)
        shutil.copy(TLDR / "common" / name, last / name)
        if len(list(pack_dir.glob("*.idx"))) >= packs.MERGE_AT:
            ops = trace_ops(kb, tmp_path, ["add", "--jobs", "1", last])
            if any(op.endswith("/pack-objects") for op in ops):
                break
        assert openkb(kb, "add", "--jobs", "1", last).returncode == 0
    at = next(i for i, op in enumerate(ops) if op.endswith("/pack-objects"))
    assert [op.split()[1] for op in ops[at:at + 5]] == ["write", "fsync", "fsync", "fsync-dir", "unlink"], ops[at:at + 5]
    assert named_points("pack-objects", kb, tmp_path, ["add", "--jobs", "1", last],
                        [f"write@pack-objects+{k}" for k in range(5)]) == 15
