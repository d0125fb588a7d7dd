"""Commands that change the KB: init, add, recover."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..compiler.llm import usage_line
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED
from ..ops.add import ADDED, FAILED, SKIPPED, FileResult, add_paths
from ..ops.edits import edit_commit_line
from ..ops.fetch import looks_like_url
from ..ops.init import init_kb
from ..ops.session import Writer
from .main import cli, echo_json, open_kb, shown as _shown


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def init(directory: str, as_json: bool) -> None:
    """Create a knowledge base in DIRECTORY (default: here) as a Git repository.

    Writes .gitignore, .gitattributes and .openkb/config.yaml and makes the first
    commit on branch main. Run inside an existing OpenKB knowledge base (it has
    .openkb/hashes.json, raw/, wiki/), it adopts it: the current files become the
    first commit and hashes.json becomes per-document registry records.

    Run in a clone of an openkb knowledge base (a plain `git clone`), it sets the
    clone up instead: declares the merge drivers in .git/config, installs the Git
    hooks that refresh the views after git pull/rebase/checkout, rebuilds the
    views, and commits `raw/** -diff` to an older .gitattributes (docs/team.md).
    Another Git repository is refused (exit 1). A folder inside a project's
    repository (`openkb init kb`) works: the KB is its own repository there, an
    untracked folder for the project's (a note says how to ignore it).
    """
    result = init_kb(Path(directory))
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json({"root": str(result.root), "commit": result.commit,
                   "adopted_documents": result.adopted_documents, "adopted_files": result.adopted_files,
                   "existing": result.existing, "done": result.done, "warnings": result.warnings,
                   "notes": result.notes})
        return
    if result.existing:
        click.echo(f"Set up the knowledge base in {result.root} (HEAD {result.commit[:7]}):")
        for line in result.done:
            click.echo(f"  {line}")
    elif result.adopted_documents or result.adopted_files:
        click.echo(f"Adopted OpenKB knowledge base in {result.root}: {result.adopted_documents} document(s), "
                   f"{result.adopted_files} file(s) in commit {result.commit[:7]}")
    else:
        click.echo(f"Initialized empty knowledge base in {result.root} (commit {result.commit[:7]})")
    for note in result.notes:
        click.echo(f"note: {note}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(), metavar="PATH_OR_URL...")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Worker processes preparing files in parallel (default: config `jobs`, else CPU count).")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for another openkb process holding the KB lock before giving up.")
@click.option("--no-commit-edits", is_flag=True,
              help="Refuse (naming the files) instead of committing hand edits of tracked files as an `edit` commit.")
@click.option("--no-verify", is_flag=True, help="Skip the pre-ingest hook.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report instead of lines.")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures and the summary.")
@click.pass_context
def add(ctx: click.Context, paths: tuple[str, ...], jobs: int | None, wait: float, no_commit_edits: bool,
        no_verify: bool, as_json: bool, quiet: bool) -> None:
    """Add files, directories (recursively) and http(s) URLs to the knowledge base.

    Each new or changed file becomes one commit, in the order files are found
    (sorted). Files are converted in parallel outside the live KB, then committed
    one at a time under the KB lock. Files whose content is already in the KB are
    skipped as duplicates (whatever folder or machine they come from); files that
    cannot be converted are reported with the reason and the others go on. Exit
    code 1 if any file failed, 130 if interrupted.

    A document is recorded by its source path, never an absolute local path: for a
    file in a directory given, its path from that directory's own name on
    (`openkb add ~/papers`: `papers/attention.pdf`, `papers/sub/x.pdf`); for a file
    given by itself, its folder's name and its own (`openkb add ~/papers/attention.pdf`:
    `papers/attention.pdf`); inside the KB, its KB path (`raw/x.pdf`). A changed file at a recorded source path updates
    that document, from any folder or clone: add the same folder again to re-ingest
    (see docs/layout.md, "Source paths").

    A URL is downloaded into staging (never into the KB itself) and its type is
    read from the content: a PDF is added as a PDF, an HTML page as Markdown of
    its main text (trafilatura), Markdown and text as they are. The URL is the
    document's source (recorded as `url`), so adding it again updates it. A URL
    that cannot be fetched (timeout, too many redirects, larger than
    `max_fetch_mb`, an HTTP error) fails with the reason; the others go on.

    Supported: PDF, EPUB, XPS, MOBI, FB2, SVG, Markdown, text, HTML, Word
    (.docx), PowerPoint (.pptx), Excel (.xlsx, .xls), CSV.

    \b
    Word, PowerPoint and Excel files need the office extra (markitdown):
      pip install 'openkb-git[office]'

    Hooks: `.openkb/hooks/pre-ingest` may reject a file (skipped with its message);
    `post-ingest` runs after each commit (see `openkb hooks --help`).
    """
    kb = open_kb(ctx)
    progress = _Progress(enabled=sys.stderr.isatty() and not as_json)

    def on_result(result: FileResult) -> None:
        if as_json:
            return
        if quiet and result.status != FAILED:
            return
        progress.clear()
        click.echo(_result_line(result))

    try:
        report = add_paths(kb, [p if looks_like_url(p) else Path(p) for p in paths], jobs=jobs, wait=wait,
                           allow_edit_commits=not no_commit_edits, verify=not no_verify, on_result=on_result,
                           on_progress=progress.update)
    finally:
        progress.clear()
        kb.close()
    if as_json:
        echo_json(report.to_json())
    else:
        for kept in report.kept_edits:
            click.echo(f"recovery of a crashed writer copied hand-edited files before resetting them to {kept}", err=True)
        echo_edit_commits(report.edit_commits, report.edit_ops)
        summary = (f"{report.count(ADDED)} added, {report.count(SKIPPED)} skipped, {report.count(FAILED)} failed")
        if report.not_tried:
            summary += f" ({report.not_tried} not tried)"
        if report.interrupted:
            summary += " (interrupted: files not yet committed were left out)"
        click.echo(summary)
        if report.llm:
            click.echo(usage_line(report.llm))
        if report.unfinished:
            shas = ", ".join(sha[:7] for sha in report.unfinished)
            click.echo(f"openkb: error: {len(report.unfinished)} commit(s) made ({shas}) but the working tree was not "
                       "fully updated after them; " + (
                           "later in this run recovery finished them: the KB is consistent" if report.finished_later
                           else "the next openkb command (or `openkb recover`) finishes it once the cause is fixed"),
                       err=True)
        if report.stopped:
            click.echo(f"openkb: error: {_shown(report.stopped)}", err=True)
    if report.interrupted:
        ctx.exit(128 + report.signum if report.signum else EXIT_INTERRUPTED)  # 130, 143, 129
    if report.stopped:
        ctx.exit(report.stop_code)
    if report.failed:
        ctx.exit(EXIT_FAILED)


def _result_line(result: FileResult) -> str:
    if result.status == ADDED:
        verb = "updated " if result.updated else "added   "
        line = f"{verb} {_shown(result.path)} -> {result.doc} ({result.commit[:7]})"
        if result.edit_commit:
            line += f"\n         your hand edits of its pages were kept, as {result.edit_commit[:7]} (edit)"
        for warning in result.warnings:
            line += f"\n         warning: {warning}"
        return line
    if result.status == SKIPPED:
        return f"skipped  {_shown(result.path)}: {result.reason}"
    return f"failed   {_shown(result.path)}: {result.reason}" + conflict_lines(result.conflicts, "         ")


def conflict_lines(conflicts: list[dict], indent: str) -> str:
    """Each conflicting path with its reason and both sides, as `openkb revert` lists them."""
    out = ""
    for c in conflicts:
        out += (f"\n{indent}{_shown(c['path'])}: {c['reason']}\n{indent}  now (HEAD):       {c['ours']}"
                f"\n{indent}  compiler wants:   {c['theirs']}")
    return out


def echo_edit_commits(shas: list[str], ops: dict[str, str] | None = None) -> None:
    """Say (on stderr) which commits took the user's hand edits in before a write."""
    for sha in shas:
        click.echo(edit_commit_line(sha, (ops or {}).get(sha, "edit")), err=True)


class _Progress:
    """A one-line progress bar on stderr, only on a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.shown = False

    def update(self, done: int, total: int, what: str) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        line = f"[{bar}] {done}/{total} {what}"[: max(20, _columns() - 1)]
        sys.stderr.write("\r\x1b[2K" + line)
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.shown = False


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 80


@cli.command()
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the KB lock.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_context
def recover(ctx: click.Context, wait: float, as_json: bool) -> None:
    """Finish or undo an interrupted mutation and remove orphaned staging.

    Resets every path named by a journal of a crashed writer to HEAD (working
    tree and Git index), rebuilds the views, removes the journals. A hand edit
    found on a path it resets is copied to .openkb/fsck-backup/<time>/ first
    (named in the output). An interrupted OpenKB run's journal
    (.openkb/journal/) is rolled back as OpenKB does. Every command that takes
    the KB lock does this first; running it by hand is always safe.
    """
    kb = open_kb(ctx)
    try:
        writer = Writer(kb, wait)
        with writer.locked():
            pass
    finally:
        kb.close()
    reports = writer.recoveries
    data = {"journals": [j for r in reports for j in r.journals], "finished": [j for r in reports for j in r.finished],
            "corrupt": [c for r in reports for c in r.corrupt],
            "paths_reset": sum(r.paths_reset for r in reports),
            "staging_removed": sum(r.staging_removed for r in reports),
            "views_rebuilt": any(r.views_rebuilt for r in reports),
            "backup": next((r.backup for r in reports if r.backup), None), "kept": [k for r in reports for k in r.kept],
            "openkb_journals": [o for r in reports for o in r.openkb],
            "foreign": sorted({f for r in reports for f in r.foreign})}
    if as_json:
        echo_json(data)
        return
    if not reports:
        click.echo("nothing to recover")
        return
    for message in data["openkb_journals"]:
        click.echo(message)
    for name in data["foreign"]:
        click.echo(f"left .openkb/journal/{name} alone: not a journal openkb-git can read as its own or OpenKB's")
    for corrupt in data["corrupt"]:
        if corrupt.startswith("index: "):
            click.echo(f"{corrupt[len('index: '):]}: rebuilt from HEAD; the working tree's files were kept "
                       "(those that differ from HEAD show as edits)")
        else:
            click.echo(f"corrupt journal {corrupt}: reset every tracked path to HEAD "
                       "(files that differed from HEAD were copied first)")
    if data["kept"]:
        names = ", ".join(data["kept"][:20]) + (" …" if len(data["kept"]) > 20 else "")
        click.echo(f"kept {len(data['kept'])} hand-edited file(s) in {data['backup']}/ before resetting them: {names}; "
                   "copy back what you want to keep")
    if not (data["journals"] or data["corrupt"] or data["paths_reset"] or data["staging_removed"]
            or data["views_rebuilt"]):
        return
    click.echo(recovery_summary(data))


def recovery_summary(data: dict) -> str:
    """One line saying what recovery actually repaired (a torn index is not a journal)."""
    repaired = []
    if data["journals"]:
        finished = len(data["finished"])
        repaired.append(f"{len(data['journals'])} journal(s) ({finished} finished: committed before the crash, "
                        f"{len(data['journals']) - finished} rolled back)")
    corrupt_journals = [c for c in data["corrupt"] if not c.startswith("index: ")]
    if corrupt_journals:
        repaired.append(f"{len(corrupt_journals)} corrupt journal(s)")
    if len(corrupt_journals) < len(data["corrupt"]):
        repaired.append("a torn Git index (rebuilt from HEAD)")
    done = [f"{data['paths_reset']} path(s) reset", f"{data['staging_removed']} staging folder(s) removed"]
    if data["views_rebuilt"]:
        done.append("views rebuilt")
    return f"recovered {' and '.join(repaired)}: {', '.join(done)}" if repaired else f"recovered: {', '.join(done)}"


@cli.command()
@click.option("--repair", is_flag=True,
              help="Reset what is wrong to HEAD: working tree (hand edits are copied to .openkb/fsck-backup/ first), "
                   "Git index, views. History is never rewritten.")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the KB lock (with --repair).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def fsck(ctx: click.Context, repair: bool, wait: float, as_json: bool) -> None:
    """Check the knowledge base against its history.

    Checks the object store, HEAD's tree against the working tree, the Git index
    against HEAD, registry records against the files they name, the parts of the
    pages the compiler writes (index lines, concept pages' sources and mentions)
    against the records (--repair regenerates them, as `openkb rebuild` does), and the views
    (hashes.json, log.md) against the history; each problem comes with its repair,
    and what --repair cannot fix is listed with what to do. Normal life is a note,
    not damage: views behind HEAD (after a plain `git pull`, in a fresh clone),
    uncommitted hand edits, merge drivers not configured in .git/config. Exit 0
    when nothing but notes was found, 1 when anything else was wrong (even if
    --repair fixed it), 3 when a writer kept running so the working tree could not
    be checked (run it again later).
    """
    from ..ops.fsck import fsck as kb_fsck, repair as kb_repair

    kb = open_kb(ctx)
    try:
        report = kb_repair(kb, wait=wait) if repair else kb_fsck(kb)
    finally:
        kb.close()
    if as_json:
        echo_json(report.to_json())
    else:
        for p in report.problems:
            label = "note" if p.note else p.check
            click.echo(f"{label:<9} {p.path}: {p.detail}" + (f" ({p.check})" if p.note else ""))
            if p.fix and not repair:
                click.echo(f"{'':<9} to repair: {p.fix}")
        if not repair and any(p.note for p in report.problems):
            click.echo(f"{'':<9} notes are not damage: `openkb fsck --repair` or the next openkb write brings the views "
                       "up to HEAD; `--repair` also resets hand edits (copied first), or commit them with `openkb add`")
        for warning in report.warnings:
            click.echo(f"{'note':<9} {warning}")
        if report.backup:
            click.echo(f"hand edits copied to {report.backup}/ before the reset")
        if report.repaired:
            click.echo(f"repaired {len(report.repaired)} path(s): the working tree, index and views match HEAD again")
        for p in report.unrepaired:
            click.echo(f"cannot repair {p.path} ({p.detail}): {p.fix}")
        if report.writer is not None:
            from ..ops.read import writer_message

            click.echo(f"not checked: {writer_message(report.writer)}; the working tree, index, registry and "
                       "views are checked when no writer is active: run `openkb fsck` again when it is done")
        if report.ok and not report.unrepaired:
            head = report.head[:7] if report.head else "(none)"
            if report.problems and not repair:
                click.echo(f"ok: HEAD {head}: no damage (only the notes above)")
            else:
                click.echo(f"ok: HEAD {head}, working tree, index, registry and views agree")
    if report.damage:
        ctx.exit(EXIT_FAILED)
    if report.writer is not None:
        ctx.exit(EXIT_LOCKED)


@cli.command()
@click.option("--prune-grace", type=click.IntRange(min=0), default=14 * 24 * 3600, show_default=True,
              help="Unreachable objects younger than this many seconds are kept.")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the KB lock.")
@click.option("--reuse-deltas", is_flag=True,
              help="Keep the deltas packs already have and look only for new ones (faster; what the "
                   "automatic gc does): versions a group commit stored in one pack then stay whole.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def gc(ctx: click.Context, prune_grace: int, wait: float, reuse_deltas: bool, as_json: bool) -> None:
    """Repack all objects into one pack (with deltas) and prune unreachable ones.

    Each commit writes its small objects as one small pack and its large ones (big
    folders' trees, big files) as loose objects; small packs are merged as they pile
    up, but only gc finds all deltas: it finds every one again, as `git gc
    --aggressive` does (window 50, depth 250), since Git never tries a delta between two
    objects stored whole in one pack, as a group commit stores the versions of index.md
    it makes (git's pack-objects then needs about 550 MB for the 7,425 tldr pages). Takes
    the KB lock and recovers first, so objects of an in-flight mutation are never
    touched. Also removes a pack left without its index by a crash, once older than
    --prune-grace, and drops from .openkb/records.cache the registry records no longer
    at HEAD. Runs by itself every `gc_auto_commits` commits during `add` (config,
    default 1000; 0 turns it off), reusing deltas; when it comes due with no loose
    object and few packs (an add committing in groups writes none), once at the end of
    that add instead.
    """
    from ..ops.gc import gc as kb_gc

    kb = open_kb(ctx)
    try:
        result = kb_gc(kb, grace=prune_grace, wait=wait, recompute=not reuse_deltas)
    finally:
        kb.close()
    if as_json:
        echo_json(result.to_json())
    else:
        click.echo(f"packed with {result.tool}: .git {result.size_before / 1e6:.1f} MB -> {result.size_after / 1e6:.1f} MB"
                   + (f"; {result.orphan_packs_removed} pack(s) without an index removed" if result.orphan_packs_removed else "")
                   + (f"; {result.memo_records_dropped} old record(s) dropped from the record memo"
                      if result.memo_records_dropped else ""))
