"""Commands that take contributions back out: revert, remove; and Git's merge-driver hook."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import EXIT_FAILED
from ..merge import MergeConflict
from ..ops.mergedriver import merge_for_git
from ..ops.revert import AmbiguousDocumentError, RevertConflictError, remove as kb_remove, revert as kb_revert
from ..ops.select import resolve
from .main import cli, echo_json, open_kb


@cli.command()
@click.argument("ingests", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Print the plan (paths to change, or the conflicts) and change nothing.")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the KB lock.")
@click.option("--no-commit-edits", is_flag=True, help="Refuse instead of committing hand edits first.")
@click.option("-m", "--mainline", type=click.IntRange(min=1), default=None,
              help="Revert a merge back to its parent N (1: the branch it was merged into), as `git revert -m`.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def revert(ctx: click.Context, ingests: tuple[str, ...], dry_run: bool, wait: float, no_commit_edits: bool,
           mainline: int | None, as_json: bool) -> None:
    """Undo past operations, keeping everything that came after them.

    Each INGEST (commit id prefix, HEAD~N, log position or document name) gets a new
    `revert` commit (trailer OpenKB-Reverts) that removes its contribution: its
    document's files, its bullets on concept pages, its index lines. The merge is
    three-way and structure-aware, so later ingests that touched the same pages are
    kept. If any path conflicts (e.g. you edited the same passage by hand), nothing
    changes: exit code 1 and, per path, the reason and both sides. Reverting a revert
    re-applies the operation.

    A merge (`git pull`, `git merge` of a branch) is refused (exit code 2) unless
    --mainline N says which parent to go back to: `openkb revert --mainline 1 <merge>`
    takes out everything the merged side brought in, as `git revert -m 1`. To undo
    one operation a merge brought, revert that operation (it is in `openkb log`).
    """
    kb = open_kb(ctx)
    try:
        entries = [resolve(kb, s) for s in ingests]
        try:
            results = kb_revert(kb, entries, wait=wait, dry_run=dry_run, allow_edit_commits=not no_commit_edits,
                                mainline=mainline)
        except RevertConflictError as exc:
            _report_conflicts(exc, as_json)
            ctx.exit(EXIT_FAILED)
    finally:
        kb.close()
    if as_json:
        echo_json([{"reverted": r.entry.sha, "doc": r.entry.doc, "commit": r.commit, "paths": r.paths,
                    "note": r.note} for r in results])
        return
    for r in results:
        if r.commit:
            click.echo(f"reverted {r.entry.short} ({r.entry.doc or r.entry.op}) as {r.commit[:7]}: "
                       f"{len(r.paths)} path(s) changed")
            for warning in r.warnings:
                click.echo(f"warning: {warning}", err=True)
        elif r.note == "dry run":
            click.echo(f"would revert {r.entry.short} ({r.entry.doc or r.entry.op}):")
            for path in r.paths:
                click.echo(f"  {path}")
        else:
            click.echo(f"{r.entry.short}: {r.note}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the plan (each change, and a count) and change nothing.")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the KB lock.")
@click.option("--no-commit-edits", is_flag=True, help="Refuse instead of committing hand edits first.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def rebuild(ctx: click.Context, dry_run: bool, wait: float, no_commit_edits: bool, as_json: bool) -> None:
    """Regenerate the shared pages from the per-document records.

    The compiler's parts of wiki/index.md (document and concept lines) and of the
    concept pages (`sources`, `## Mentions`) are made to agree with the registry
    records, as one `rebuild` commit you can `openkb revert`: mentions of documents
    whose record is gone or does not name the concept are taken out, missing ones put
    back (a mention the page holds is kept; a missing one is compiled again from the
    document's raw file, as `openkb add` does), a missing concept page is written, a
    page left with nothing is deleted, index lines follow the pages. Text you wrote
    elsewhere on a page stays. Run it after resolving a conflict by hand (docs/team.md);
    `openkb fsck` says when it is needed. Nothing to do: no commit, exit 0. Exit 1
    when a missing contribution cannot be compiled again (its raw file is missing or
    differs from its record): the rest is committed, and what is left is listed.
    """
    from ..ops.rebuild import rebuild as kb_rebuild

    kb = open_kb(ctx)
    try:
        result = kb_rebuild(kb, wait=wait, dry_run=dry_run, allow_edit_commits=not no_commit_edits)
    finally:
        kb.close()
    if as_json:
        echo_json(result.to_json())
    else:
        plan = result.plan
        for step in plan.steps:
            click.echo(f"  {step}")
        if dry_run:
            click.echo(f"would rebuild {len(plan.changes)} page(s)" if plan.changes else "nothing to rebuild")
        elif result.commit:
            click.echo(f"rebuilt {len(plan.changes)} page(s) as {result.commit[:7]}")
        else:
            click.echo("nothing to rebuild: the shared pages agree with the records")
        for left in plan.left:
            click.echo(f"openkb: warning: {left}", err=True)
    if result.plan.left:
        ctx.exit(EXIT_FAILED)


def _report_conflicts(exc: RevertConflictError, as_json: bool) -> None:
    conflicts: list[MergeConflict] = exc.conflicts
    if as_json:
        echo_json({"conflicts": [{"path": c.path, "reason": c.reason, "ours": c.ours, "theirs": c.theirs}
                                 for c in conflicts], "edit_commit": exc.edit_commit, "message": str(exc)})
        return
    click.echo(f"openkb: error: {exc}", err=True)
    for c in conflicts:
        click.echo(f"  {c.path}: {c.reason}", err=True)
        click.echo(f"    now (HEAD):   {c.ours}", err=True)
        click.echo(f"    revert wants: {c.theirs}", err=True)


@cli.command()
@click.argument("doc")
@click.option("--dry-run", is_flag=True, help="List the paths that would change and change nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (it is asked only on a terminal).")
@click.option("--keep-raw", is_flag=True,
              help="Leave the original file in raw/, untracked (as a file dropped there); `openkb add "
                   "raw/<file>` takes it in again.")
@click.option("--keep-empty", "--keep-empty-concepts", "keep_empty", is_flag=True,
              help="Keep concept and entity pages the document leaves without a source.")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the KB lock.")
@click.option("--no-commit-edits", is_flag=True, help="Refuse instead of committing hand edits first.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def remove(ctx: click.Context, doc: str, dry_run: bool, yes: bool, keep_raw: bool, keep_empty: bool, wait: float,
           no_commit_edits: bool, as_json: bool) -> None:
    """Remove document DOC and its contribution to shared pages, as one commit.

    DOC is a document's name (`openkb list`), its file name (`tar.md`) or a part of either
    that fits one document only; a part that fits several is refused, listing them. On a
    terminal it asks before removing, unless -y/--yes (or --json). Like any operation it can
    be undone with `openkb revert`.

    A concept or entity page the document leaves without a source is deleted when it holds
    only what the compiler wrote (text you added by hand keeps it), or when OpenKB's own
    compiler wrote it for this document (as OpenKB's `remove` does); --keep-empty keeps
    them all. The original file leaves raw/ unless --keep-raw.
    """
    kb = open_kb(ctx)
    kwargs = {"keep_raw": keep_raw, "keep_empty": keep_empty}
    try:
        if not (yes or dry_run or as_json) and sys.stdin.isatty():
            name, paths = _remove(kb, doc, wait=wait, dry_run=True, allow_edit_commits=not no_commit_edits, **kwargs)
            click.echo(f"remove {name}: {len(paths)} path(s) change")
            for path in paths:
                click.echo(f"  {path}")
            if not click.confirm(f"Remove {name}?", default=False):
                click.echo("nothing was removed", err=True)
                ctx.exit(EXIT_FAILED)
            doc = name
        name, result = _remove(kb, doc, wait=wait, dry_run=dry_run, allow_edit_commits=not no_commit_edits, **kwargs)
    finally:
        kb.close()
    if dry_run:
        if as_json:
            echo_json({"doc": name, "paths": result})
        else:
            click.echo(f"would remove {name}:")
            for path in result:
                click.echo(f"  {path}")
        return
    if as_json:
        echo_json({"doc": name, "commit": result.sha.decode(), "paths": result.paths})
    else:
        click.echo(f"removed {name} as {result.sha.decode()[:7]}: {len(result.paths)} path(s) changed")


def _remove(kb, doc: str, **kwargs):
    try:
        return kb_remove(kb, doc, **kwargs)
    except AmbiguousDocumentError as exc:
        raise click.UsageError(str(exc)) from None


@cli.command(name="merge-driver")
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("ours", type=click.Path(dir_okay=False))
@click.argument("theirs", type=click.Path(dir_okay=False))
@click.argument("path")
def merge_driver(base: str, ours: str, theirs: str, path: str) -> None:
    """Git's merge-driver interface: `openkb merge-driver %O %A %B %P`.

    Merges BASE, OURS and THEIRS of the KB path PATH with openkb's structure-aware
    drivers and writes the result to OURS. Exit 0 when clean; exit 1 on a conflict
    (OURS then holds Git-style conflict markers and the reason goes to stderr).
    `openkb init` configures the repository to use it through .gitattributes.
    """
    conflict = merge_for_git(Path(base), Path(ours), Path(theirs), path)
    if conflict is not None:
        click.echo(f"openkb merge-driver: {conflict}", err=True)
        raise SystemExit(1)
