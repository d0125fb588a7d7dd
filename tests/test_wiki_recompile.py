"""Hand edits merged, not overwritten, on re-ingest and `openkb recompile`; the recompile
command; the migration of a KB by `openkb recompile --all` (issue #16, items 3-5;
docs/revert.md, "Recompile and hand edits")."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import TLDR, assert_consistent, git, run_openkb

NOTE = "\nMy own note: prefer --zstd for speed.\n"
EXTRA = "\n- List the contents of an archive, very verbosely:\n\n`tar tvvf {{path/to/source.tar}}`\n"


def head_file(root: Path, path: str) -> str:
    return git(root, "show", f"HEAD:{path}")


def ops(root: Path) -> list[str]:
    """The `OpenKB-Op` of every commit, oldest first."""
    out = git(root, "log", "--reverse", "--format=%(trailers:key=OpenKB-Op,valueonly)%x00")
    return [op.strip() for op in out.split("\x00") if op.strip()]


def setup_tar(tmp_path: Path, names=("tar.md",)) -> tuple[Path, Path]:
    root, src = tmp_path / "kb", tmp_path / "src"
    run_openkb("init", root, check=True)
    src.mkdir()
    for name in names:
        shutil.copy(TLDR / "common" / name, src / name)
    run_openkb("add", src, cwd=root, check=True)
    return root, src


def test_hand_paragraph_on_a_summary_survives_a_reingest(tmp_path):
    """The issue's case: a paragraph added by hand to wiki/summaries/tar.md, then tar.md changed
    and added again: the edit was committed, then removed by the next commit with no warning.
    Now it stays (and stays through a second re-ingest, whose base is the first one's compile)."""
    root, src = setup_tar(tmp_path)
    summary = root / "wiki" / "summaries" / "tar.md"
    summary.write_text(summary.read_text() + NOTE)
    with (src / "tar.md").open("a") as fh:
        fh.write(EXTRA)
    proc = run_openkb("add", src / "tar.md", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "My own note" in head_file(root, "wiki/summaries/tar.md")
    assert "tar tvvf" in head_file(root, "wiki/sources/tar.md")  # the new version is in
    assert "hand edits of its pages were kept" in proc.stdout
    assert ops(root)[-3:] == ["edit", "add", "edit"]  # your edit, the compile as such, your edit kept
    assert_consistent(root)

    with (src / "tar.md").open("a") as fh:
        fh.write("\n- Extract one file from an archive:\n\n`tar xf {{path/to/source.tar}} {{path/to/file}}`\n")
    run_openkb("add", src / "tar.md", cwd=root, check=True)
    assert "My own note" in head_file(root, "wiki/summaries/tar.md")
    assert "tar xf" in head_file(root, "wiki/sources/tar.md")
    assert_consistent(root)


def test_a_conflicting_hand_edit_fails_that_document_only(tmp_path):
    """A hand edit of the very lines the new compile changes: that document fails, listed per
    path with both sides; nothing of it changes; the other file of the batch goes in."""
    root, src = setup_tar(tmp_path, ("tar.md", "zip.md"))
    summary = root / "wiki" / "summaries" / "tar.md"
    text = summary.read_text()
    heading = next(line for line in text.splitlines() if line.startswith("# "))
    edited = text.replace(heading + "\n", heading + " (my title)\n", 1)
    summary.write_text(edited)
    # A new title: the compiler rewrites the very line the hand edit changed.
    original = (TLDR / "common" / "tar.md").read_text()
    title, rest = original.split("\n", 1)
    (src / "tar.md").write_text(f"{title}, revised\n{rest}")
    (src / "zip.md").write_text((TLDR / "common" / "zip.md").read_text() + "\n- Zip again:\n\n`zip -r again.zip dir`\n")
    before_sources = head_file(root, "wiki/sources/tar.md")
    proc = run_openkb("add", src, cwd=root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed   " in proc.stdout and "nothing of tar was changed" in proc.stdout
    assert "wiki/summaries/tar.md: " in proc.stdout and "now (HEAD):" in proc.stdout
    assert "compiler wants:" in proc.stdout
    assert "updated  " in proc.stdout and "-> zip" in proc.stdout  # zip changed: an update
    assert head_file(root, "wiki/summaries/tar.md") == edited  # the hand edit, committed, nothing else
    assert head_file(root, "wiki/sources/tar.md") == before_sources
    assert "Zip again" in head_file(root, "wiki/sources/zip.md")
    report = json.loads(run_openkb("add", "--json", src, cwd=root).stdout)
    [tar] = [f for f in report["files"] if f["doc"] == "tar"]
    assert tar["status"] == "failed" and tar["conflicts"][0]["path"] == "wiki/summaries/tar.md"
    assert_consistent(root)


# -- openkb recompile, the migration ----------------------------------------------------------

DOCS = ["git-add.md", "git-commit.md", "gzip.md", "tar.md", "zip.md"]


def tree_files(root: Path) -> dict[str, bytes]:
    """Tracked content at HEAD (the views are untracked, so not in it)."""
    from openkb_git.kb import KB

    kb = KB(root)
    try:
        return {p: kb.objects.blob_bytes(s) for p, _m, s in kb.objects.walk_files(kb.head_tree())}
    finally:
        kb.close()


def set_concepts_per_doc(root: Path, k: int) -> None:
    config = root / ".openkb" / "config.yaml"
    text = config.read_text()
    assert "concepts_per_doc: 5" in text
    config.write_text(text.replace("concepts_per_doc: 5", f"concepts_per_doc: {k}"))


def build_kb(base: Path, names: list[str], k: int | None) -> Path:
    """A KB of ``names`` (one `openkb add` of their folder `src`), made with concepts_per_doc ``k``
    from the start (None: the default, 5)."""
    root, src = base / "kb", base / "src"
    run_openkb("init", root, check=True)
    if k is not None:
        set_concepts_per_doc(root, k)
        git(root, "commit", "-qam", "config")
    src.mkdir()
    for name in names:
        shutil.copy(TLDR / "common" / name, src / name)
    run_openkb("add", src, cwd=root, check=True)
    return root


def test_recompile_without_a_change_changes_nothing(tmp_path):
    """Same compiler, same config: the raw copy compiles to the very pages `openkb add` wrote."""
    root = build_kb(tmp_path, DOCS, None)
    head = git(root, "rev-parse", "HEAD")
    dry = run_openkb("recompile", "--all", "--dry-run", cwd=root, check=True)
    assert "0 of 5 document(s) would change" in dry.stdout
    report = json.loads(run_openkb("recompile", "--all", "--json", cwd=root, check=True).stdout)
    assert report["recompiled"] == 0 and report["unchanged"] == 5 and report["commit"] is None
    run_openkb("recompile", "tar", "zip", cwd=root, check=True)
    assert git(root, "rev-parse", "HEAD") == head
    unknown = run_openkb("recompile", "nosuchdoc", cwd=root)
    assert unknown.returncode == 2 and "no document named 'nosuchdoc'" in unknown.stderr
    assert run_openkb("recompile", cwd=root).returncode == 2  # neither DOC nor --all
    assert_consistent(root)


def test_migration_by_recompile_all_then_reverts_of_old_ingests(tmp_path):
    """A KB made under the old settings is brought to the new ones by one `recompile --all`
    commit (the same tree as a KB made under them from the start); the recompile reverts
    exactly; an ingest made before it still reverts, to the KB made without that document."""
    root = build_kb(tmp_path / "old", DOCS, None)
    set_concepts_per_doc(root, 2)  # the compiler's output changes: fewer concepts per document
    before = git(root, "rev-parse", "HEAD")
    dry = run_openkb("recompile", "--all", "--dry-run", cwd=root, check=True)
    assert "of 5 document(s) would change" in dry.stdout and "would recompile tar:" in dry.stdout
    assert git(root, "rev-parse", "HEAD") == before  # a dry run writes nothing (not even the config edit)
    assert git(root, "status", "--porcelain") == " M .openkb/config.yaml\n"

    proc = run_openkb("recompile", "--all", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ops(root)[-2:] == ["edit", "recompile"]  # the config edit, then one recompile commit
    assert "recompile" in run_openkb("log", "-n", "1", cwd=root, check=True).stdout
    assert run_openkb("fsck", cwd=root).returncode == 0
    assert_consistent(root)
    assert tree_files(root) == tree_files(build_kb(tmp_path / "new", DOCS, 2))

    recompiled = tree_files(root)
    run_openkb("revert", "HEAD", cwd=root, check=True)  # the recompile, exactly
    assert git(root, "diff", "HEAD~2", "HEAD", "--stat") == ""
    run_openkb("revert", "HEAD", cwd=root, check=True)  # reverting the revert re-applies it
    assert tree_files(root) == recompiled

    proc = run_openkb("revert", "gzip", cwd=root)  # gzip's ingest, made before the recompile
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_consistent(root)
    assert tree_files(root) == tree_files(build_kb(tmp_path / "without", [d for d in DOCS if d != "gzip.md"], 2))

    # The recompile reverted after that: every other document back to the old settings' pages;
    # gzip, changed since (reverted), stays as it is now: gone.
    recompile = git(root, "log", "--format=%H", "--grep=^OpenKB-Recompile: all$").split()[-1]
    proc = run_openkb("revert", recompile, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    old_settings = tree_files(build_kb(tmp_path / "old-without", [d for d in DOCS if d != "gzip.md"], None))
    now = tree_files(root)
    assert now.pop(".openkb/config.yaml") != old_settings.pop(".openkb/config.yaml")  # the config edit stays
    assert now == old_settings
    assert_consistent(root)


# -- the property: a hand edit outside the changed region survives; a conflicting one changes
# nothing and is reported -----------------------------------------------------------------------

import difflib  # noqa: E402

from hypothesis import HealthCheck, Phase, given, settings, strategies as st  # noqa: E402

PROPERTY_DOCS = ["tar.md", "zip.md", "gzip.md"]


def _kb_api(root: Path):
    from openkb_git.kb import KB

    return KB(root)


def _operate(root: Path, src: Path, mode: str, name: str):
    """Re-ingest ``name`` changed, or recompile it after a config change; returns the doc's result."""
    from openkb_git.ops.add import add_paths
    from openkb_git.ops.recompile import recompile

    kb = _kb_api(root)
    try:
        if mode == "reingest":
            report = add_paths(kb, [src / name], jobs=1)
            return report.results[0].status, report.results[0].conflicts
        report = recompile(kb, [name[:-3]])
        [result] = report.results
        return result.status, result.conflicts
    finally:
        kb.close()


def _prepare(base: Path, mode: str, name: str) -> tuple[Path, Path]:
    root, src = base / "kb", base / "src"
    from openkb_git.ops.add import add_paths
    from openkb_git.ops.init import init_kb

    init_kb(root)
    src.mkdir()
    for doc in PROPERTY_DOCS:
        shutil.copy(TLDR / "common" / doc, src / doc)
    kb = _kb_api(root)
    try:
        assert not add_paths(kb, [src], jobs=1).failed
    finally:
        kb.close()
    if mode == "reingest":  # a new title and a new first example
        title, rest = (TLDR / "common" / name).read_text().split("\n", 1)
        (src / name).write_text(f"{title}, revised\n{rest.replace(chr(10) + '- ', chr(10) + '- Show help:' + chr(10) * 2 + '`x --help`' + chr(10) * 2 + '- ', 1)}")
    else:
        set_concepts_per_doc(root, 1)
    return root, src


def _text_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def _body_start(lines: list[str]) -> int:
    """The first line after the frontmatter."""
    if lines and lines[0] == "---":
        return lines.index("---", 1) + 1
    return 0


@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate], suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(mode=st.sampled_from(["reingest", "recompile"]), name=st.sampled_from(PROPERTY_DOCS),
       conflicting=st.booleans(), where=st.integers(0, 10_000), data=st.data())
def test_hand_edits_survive_outside_the_change_and_conflicts_change_nothing(tmp_path_factory, mode, name,
                                                                             conflicting, where, data):
    base = tmp_path_factory.mktemp("hand")
    root, src = _prepare(base, mode, name)
    page = f"wiki/summaries/{name[:-3]}.md" if mode == "recompile" else data.draw(
        st.sampled_from([f"wiki/summaries/{name[:-3]}.md", f"wiki/sources/{name}"]))
    # What the compiler writes without hand edits: the same operation on a copy.
    shutil.copytree(root, base / "pure")
    status, _ = _operate(base / "pure", src, mode, name)
    assert status in ("added", "recompiled")
    old = (root / page).read_text().split("\n")
    new = (base / "pure" / page).read_text().split("\n")
    start = _body_start(old)
    equal = [(i1, i2) for tag, i1, i2, _j1, _j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
             if tag == "equal"]
    if conflicting:  # change a text line the compiler rewrites
        changed = [i for i in range(start, len(old)) if old[i].strip() and not old[i].startswith("- ")
                   and not any(i1 <= i < i2 for i1, i2 in equal)]
        if not changed:
            return  # nothing of that kind changes here (e.g. only the concept lists)
        i = changed[where % len(changed)]
        old[i] = old[i] + " (my own wording)"
    else:  # a paragraph of one's own between two lines that stay, away from any change
        spots = [i for i1, i2 in equal for i in range(max(i1 + 1, start), i2 - 2)
                 if not old[i].startswith("- ") and not old[i + 1].startswith("- ")]
        if not spots:
            return
        i = spots[where % len(spots)]
        old[i + 1:i + 1] = ["", "A paragraph of my own, kept by hand.", ""]
    edited = "\n".join(old)
    before = tree_files(root)
    (root / page).write_text(edited)
    status, conflicts = _operate(root, src, mode, name)
    after = tree_files(root)
    after.pop(".openkb/config.yaml"), before.pop(".openkb/config.yaml")  # the config edit, committed
    if conflicting:
        assert status == "failed" and [c["path"] for c in conflicts] == [page]
        assert after == {**before, page: edited.encode()}  # the hand edit committed; nothing else changed
    else:
        assert status in ("added", "recompiled")
        kept = after[page].decode()
        assert "A paragraph of my own, kept by hand." in kept
        # The new output with the paragraph in it (blank lines aside: the drivers re-render those).
        assert _text_lines(kept.replace("A paragraph of my own, kept by hand.", "", 1)) == _text_lines("\n".join(new))
        pure = tree_files(base / "pure")
        pure.pop(".openkb/config.yaml")
        assert {p: v for p, v in after.items() if p != page} == {p: v for p, v in pure.items() if p != page}
    assert_consistent(root)


def test_a_crash_never_leaves_the_compile_without_the_kept_hand_edits(tmp_path):
    """The compile and the `edit` keeping hand edits are one step: killed before the branch moved
    or after, recovery leaves the KB before both or after both, never between, and the hand
    paragraph is in the working tree either way."""
    for label in ("journal:durable", "ref:moved"):
        root, src = setup_tar(tmp_path / label.replace(":", "-"))
        summary = root / "wiki" / "summaries" / "tar.md"
        summary.write_text(summary.read_text() + NOTE)
        git(root, "commit", "-qam", "my note")  # committed by hand: the step killed is the re-ingest's
        before = git(root, "rev-parse", "HEAD")
        with (src / "tar.md").open("a") as fh:
            fh.write(EXTRA)
        proc = run_openkb("add", src / "tar.md", cwd=root, env={"OPENKB_FAULT_MODE": "kill", "OPENKB_FAULT_AT": label})
        assert proc.returncode != 0, (label, proc.stdout, proc.stderr)
        run_openkb("recover", cwd=root, check=True)
        if label == "ref:moved":  # after the commit point: both commits
            assert ops(root)[-2:] == ["add", "edit"] and git(root, "rev-parse", "HEAD~2") == before
        else:
            assert git(root, "rev-parse", "HEAD") == before, label
        assert "My own note" in head_file(root, "wiki/summaries/tar.md"), label
        assert "My own note" in summary.read_text(), label
        assert ("tar tvvf" in head_file(root, "wiki/sources/tar.md")) == (label == "ref:moved"), label
        assert_consistent(root)


# A KB written by openkb-git before issue #16's page format (3f8a562: `## Mentions` concept
# pages, `type: md` summaries, a "# Index" index), as a Git bundle: tar, zip, gzip, git-add and
# git-commit from tldr/common, each added alone from a folder `in/`.
BEFORE_16 = Path(__file__).parent / "data" / "kb-before-16.bundle"
BEFORE_16_DOCS = ["git-add.md", "git-commit.md", "gzip.md", "tar.md", "zip.md"]


def test_a_kb_made_before_the_page_format_is_migrated_by_one_recompile_all(tmp_path):
    """Item 5: `recompile --all` brings a KB of the earlier format to today's, in one commit, to
    the very tree a KB built today has; an old ingest's revert after it is exact."""
    old = tmp_path / "old"
    subprocess.run(["git", "clone", "-q", str(BEFORE_16), str(old)], check=True)
    run_openkb("init", cwd=old, check=True)  # a plain clone of a KB: set up, not refused
    assert "## Mentions" in (old / "wiki" / "concepts" / "archive.md").read_text()
    head = git(old, "rev-parse", "HEAD").strip()
    proc = run_openkb("recompile", "--all", cwd=old)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 recompiled, 0 unchanged, 0 failed" in proc.stdout
    assert git(old, "rev-parse", "HEAD~1").strip() == head  # one commit, no `edit` after it
    assert run_openkb("fsck", cwd=old).returncode == 0

    def fresh(names: list[str], where: Path) -> Path:
        root = where / "kb"
        run_openkb("init", root, check=True)
        (where / "in").mkdir()
        for name in names:
            shutil.copy(TLDR / "common" / name, where / "in" / name)
            run_openkb("add", where / "in" / name, cwd=root, check=True)
        return root

    def content(root: Path) -> dict[str, bytes]:
        # (the .gitignore a KB was made with stays: a KB made since also ignores OpenKB's lint
        # reports and graph, which an older one gets in .git/info/exclude)
        return {p: data for p, data in tree_files(root).items() if p not in (".openkb/config.yaml", ".gitignore")}

    assert content(old) == content(fresh(BEFORE_16_DOCS, tmp_path / "new"))
    run_openkb("revert", "gzip", cwd=old, check=True)  # an ingest made before the migration
    without = fresh([n for n in BEFORE_16_DOCS if n != "gzip.md"], tmp_path / "without")
    assert {p: d for p, d in content(old).items() if p.startswith("wiki/")} == \
        {p: d for p, d in content(without).items() if p.startswith("wiki/")}
    assert_consistent(old)
