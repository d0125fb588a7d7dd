"""`openkb recompile`: compile stored documents again (ops/recompile.py)."""

from __future__ import annotations

import sys

import click

from ..compiler.llm import usage_line
from ..errors import EXIT_FAILED
from ..ops.recompile import FAILED, RECOMPILED, UNCHANGED, WOULD_CHANGE, recompile as kb_recompile
from .ingest import _Progress, conflict_lines, echo_edit_commits
from .main import cli, echo_json, open_kb


@cli.command()
@click.argument("docs", nargs=-1)
@click.option("--all", "all_docs", is_flag=True, help="Recompile every document, as one commit.")
@click.option("--dry-run", is_flag=True, help="Print which documents would change, and a count; change nothing.")
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for another openkb process holding the KB lock before giving up.")
@click.option("--no-commit-edits", is_flag=True,
              help="Refuse (naming the files) instead of committing hand edits of tracked files as an `edit` commit.")
@click.option("--model", default=None, metavar="NAME",
              help="Compile with the LLM compiler and this model (over `model` in .openkb/config.yaml; the "
                   "endpoint and key as configured, see docs/llm.md).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report instead of lines.")
@click.pass_context
def recompile(ctx: click.Context, docs: tuple[str, ...], all_docs: bool, dry_run: bool, wait: float,
              no_commit_edits: bool, model: str | None, as_json: bool) -> None:
    """Compile documents again from their stored sources (after an upgrade or a config change).

    Each DOC (a name from `openkb list`) is converted and compiled again from its raw
    copy (raw/<doc>.<ext>) with its recorded name and source path, exactly as `openkb
    add` compiled it, under the current compiler and .openkb/config.yaml; a document
    whose pages come out the same is left as it is. Each changed document becomes one
    `recompile` commit; with --all, every document is recompiled as one commit (the way
    to bring a KB made by an older version to the current page format). Every such
    commit can be reverted with `openkb revert`, and ingests made before it can still be
    reverted after it.

    With `compiler: llm` (or --model), the model is asked about every document first, in
    parallel (`compile_concurrency` at a time) and without the lock; answers already
    cached (the same model, prompt and text) cost no call. Each commit names the
    model in its trailers (`openkb show`).

    Hand edits of the pages it rewrites (summaries, sources, concept pages, the index)
    are merged three-way, as a re-ingest does: base = what the compiler wrote last for
    the document, ours = the page as it stands, theirs = the new output. An edit that
    does not touch what changed is kept, committed as an `edit` on top of the recompile
    (one step). An edit of what changed is a conflict: that document fails, listed per
    path with both sides, nothing of it changes, and the others go on. Exit code 1 if
    any document failed, 2 for an unknown document name.
    """
    kb = open_kb(ctx)
    progress = _Progress(enabled=sys.stderr.isatty() and not as_json)
    try:
        report = kb_recompile(kb, list(docs), all_docs=all_docs, dry_run=dry_run, wait=wait,
                              allow_edit_commits=not no_commit_edits, model=model, on_progress=progress.update)
    finally:
        progress.clear()
        kb.close()
    if as_json:
        echo_json(report.to_json())
    else:
        echo_edit_commits(report.edit_commits)
        for r in report.results:
            if r.status == RECOMPILED:
                click.echo(f"recompiled {r.doc} ({r.commit[:7]}): {len(r.paths)} path(s) changed")
                if r.edit_commit:
                    click.echo(f"           your hand edits of its pages were kept, as {r.edit_commit[:7]} (edit)")
            elif r.status == WOULD_CHANGE:
                click.echo(f"would recompile {r.doc}: {len(r.paths)} path(s)")
                for path in r.paths:
                    click.echo(f"  {path}")
            elif r.status == FAILED:
                click.echo(f"failed     {r.doc}: {r.reason}" + conflict_lines(r.conflicts, "           "))
        if dry_run:
            summary = (f"{report.count(WOULD_CHANGE)} of {len(report.results)} document(s) would change, "
                       f"{report.count(FAILED)} failed (dry run: nothing was changed)")
        else:
            summary = (f"{report.count(RECOMPILED)} recompiled, {report.count(UNCHANGED)} unchanged, "
                       f"{report.count(FAILED)} failed")
            if report.all_docs and report.commit:
                summary += f" (one commit: {report.commit[:7]})"
        click.echo(summary)
        if report.llm:
            click.echo(usage_line(report.llm))
    if report.failed:
        ctx.exit(EXIT_FAILED)
