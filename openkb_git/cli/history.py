"""Read commands: log, status, list. None of them takes the KB lock."""

from __future__ import annotations

import time

import click

from ..ops.read import LOG_OPS, entry_json, list_documents, log_entries, status as kb_status, writer_message
from .main import cli, echo_json, open_kb


@cli.command()
@click.argument("doc", required=False, metavar="[DOC | A..B]")
@click.option("--op", type=click.Choice(LOG_OPS), help="Only operations of this kind.")
@click.option("--path", "path", help="Only operations that changed this path (relative to the current directory "
                                     "inside the KB, as in git).")
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="At most this many lines.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def log(ctx: click.Context, doc: str | None, op: str | None, path: str | None, max_count: int | None,
        as_json: bool) -> None:
    """Show the history: one line per operation, newest first.

    Columns: position (`openkb show N` names that line), short commit id, date,
    operation, document. Operations brought in by merges (`git pull`, `git merge`
    of a branch) are listed too, newest first, never before one they build on (the
    order of `git log --date-order`); a merge commit itself is an operation `merge`
    with its parents. Give DOC to see only that document's operations (a name no
    operation has is an error, exit 2).

    A range A..B lists the operations on B that A does not have, as `git log A..B`:
    `openkb log main..try-papers` reviews a branch before merging it, `openkb log
    main..origin/main` what a `git fetch` brought. A and B are branches,
    remote-tracking branches, tags or selectors (an empty side is HEAD); such lines
    have no position.
    """
    kb = open_kb(ctx)
    try:
        revisions = doc if doc is not None and ".." in doc else None
        if path is not None:
            from ..ops.review import kb_path

            path = kb_path(kb, path)
        entries = log_entries(kb, doc=None if revisions else doc, op=op, path=path, limit=max_count,
                              revisions=revisions)
    finally:
        kb.close()
    if as_json:
        echo_json([entry_json(e, pos) for pos, e in entries])
        return
    lines = [f"{'-' if pos is None else pos:>5}  {e.short}  {time.strftime('%Y-%m-%d %H:%M', time.localtime(e.time))}  "
             f"{e.op:<7} {_what(e)}\n" for pos, e in entries]
    click.echo("".join(lines), nl=False)


def _what(entry) -> str:
    if entry.is_merge:
        return f"{entry.subject} (parents {', '.join(p[:7] for p in entry.parents)})"
    return entry.doc or entry.subject


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show documents, concepts, commits, hand-edited files and pending journals."""
    kb = open_kb(ctx)
    try:
        st = kb_status(kb)
    finally:
        kb.close()
    if as_json:
        echo_json(st.to_json())
        return
    click.echo(f"Knowledge base: {st.root}")
    click.echo(f"  HEAD:       {st.head[:7] if st.head else '(none)'}")
    click.echo(f"  documents:  {st.documents}")
    click.echo(f"  concepts:   {st.concepts}")
    click.echo(f"  commits:    {st.commits}")
    if st.writer is not None:
        click.echo(f"  edited:     not checked: {writer_message(st.writer)}; run `openkb status` again when it is done")
    else:
        click.echo(f"  edited:     {len(st.dirty)}" + ("" if not st.dirty else "  (" + ", ".join(st.dirty[:10]) + ")"))
        click.echo(f"  journals:   {len(st.pending_journals)}" + ("  (run `openkb recover`)" if st.pending_journals else ""))
    if st.openkb_added:
        click.echo(f"  by OpenKB:  {len(st.openkb_added)} document(s) OpenKB added, recorded as `add` commits by the "
                   f"next write (`openkb recover`): " + ", ".join(st.openkb_added[:10]))
    for path in st.invalid_records:
        click.echo(f"  invalid:    {path} is not a valid record (not a JSON object): its document is not counted; "
                   "run `openkb fsck`")
    if not st.views_current:
        click.echo("  views:      stale (rebuilt by the next write or `openkb recover`)")
    for warning in st.warnings:
        click.echo(f"  warning:    {warning}")
    if st.lock_holder is not None:
        click.echo(f"  locked by:  pid {st.lock_holder.get('pid', '?')} `{st.lock_holder.get('command', '?')}`")


@cli.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the documents in the knowledge base."""
    kb = open_kb(ctx)
    try:
        docs, invalid = list_documents(kb)
    finally:
        kb.close()
    for path in invalid:  # on stderr: `list --json` stays a list of documents
        click.echo(f"warning: {path} is not a valid record (not a JSON object): its document is not listed; "
                   "run `openkb fsck` to see its files and how to restore the record", err=True)
    if as_json:
        echo_json(docs)
        return
    if not docs:
        click.echo("no documents yet; add some with `openkb add PATH`")
        return
    click.echo(f"Documents ({len(docs)}):")
    click.echo(f"  {'DOC':<40} {'TYPE':<9} {'PAGES':>5}  SOURCE FILE")
    for d in docs:
        pages = str(d["pages"]) if d["pages"] else ""
        click.echo(f"  {d['doc']:<40} {d['type'] or '':<9} {pages:>5}  {d['name']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the sections as JSON.")
@click.pass_context
def lint(ctx: click.Context, as_json: bool) -> None:
    """Run OpenKB's structural lint of the wiki, offline.

    The six checks of OpenKB 0.4.5's `openkb lint` without its LLM part, with its rules and
    its report's headings: broken [[links]], orphaned pages, raw files without a wiki entry,
    index sync, invalid frontmatter and OKF conformance (a non-empty `type` and
    `description`), over the work tree as OpenKB reads it. It writes nothing (OpenKB saves
    its report under wiki/reports/). Exit 1 when it finds anything.
    """
    from ..ops.lint import lint as kb_lint
    from ..registry import Registry

    kb = open_kb(ctx)
    try:
        records = Registry.of(kb).view(kb.head_tree()).records
        report = kb_lint(kb.root, records)
    finally:
        kb.close()
    if as_json:
        echo_json(report.to_json())
    else:
        click.echo(report.text(), nl=False)
    if report.count:
        ctx.exit(1)
