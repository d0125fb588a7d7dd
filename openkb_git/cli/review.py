"""Review commands: show, diff, blame. None of them takes the KB lock."""

from __future__ import annotations

import sys
import time

import click

from ..history import Entry
from ..ops.read import entry_json, position_of
from ..ops.review import Change, FileChange, blame as kb_blame, compare, diff_points, kb_path, show as kb_show
from ..ops.select import resolve
from .main import cli, echo_json, open_kb, shown as _shown


def _color_enabled(ctx_color: bool | None) -> bool:
    return sys.stdout.isatty() if ctx_color is None else ctx_color


def _style_line(line: str, color: bool) -> str:
    if not color:
        return line
    if line.startswith(("+++", "---")):
        return click.style(line, bold=True)
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


def _echo_change(change: Change, *, stat: bool, name_only: bool, color: bool) -> None:
    if name_only:
        for f in change.files:
            click.echo(f.path)
        return
    width = max((len(f.path) for f in change.files), default=0)
    for f in change.files:
        counts = _counts(f)
        click.echo(f" {f.status:<8} {f.path:<{width}}  {counts}")
    total_add = sum(f.added for f in change.files)
    total_del = sum(f.removed for f in change.files)
    click.echo(f" {len(change.files)} file(s) changed, {total_add} insertion(s), {total_del} deletion(s)")
    if stat:
        return
    for f in change.files:
        _echo_file(f, color)


def _counts(f: FileChange) -> str:
    """`+A -R` for the lines of text; `N field(s)` when only data changed (a registry record,
    the config, a page's frontmatter: listed field by field, not as lines)."""
    if f.binary:
        return "binary"
    if f.fields and not (f.added or f.removed):
        return f"{len(f.fields)} field(s)"
    return f"+{f.added} -{f.removed}"


def _echo_file(f: FileChange, color: bool) -> None:
    click.echo("")
    click.echo(click.style(f"== {f.path} ({f.status})", bold=True) if color else f"== {f.path} ({f.status})")
    for fc in f.fields:
        click.echo(f"  {fc.describe()}")
    if f.binary:
        click.echo("  (binary content)")
    for line in f.diff:
        click.echo(_style_line(line.rstrip("\n"), color))


def _header(entry: Entry) -> list[str]:
    date = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(entry.time))
    lines = [f"commit {entry.sha}", f"op:       {entry.op}"]
    if entry.is_merge:
        lines.append(f"parents:  {' '.join(p[:7] for p in entry.parents)}")
    if entry.doc:
        lines.append(f"document: {entry.doc}")
    if entry.trailers.get("OpenKB-Source"):
        lines.append(f"source:   {entry.trailers['OpenKB-Source']}")
    if entry.trailers.get("OpenKB-Reverts"):
        lines.append(f"reverts:  {entry.trailers['OpenKB-Reverts']}")
    if entry.trailers.get("OpenKB-Model"):  # the LLM compiler's (docs/llm.md)
        lines.append(f"model:    {_shown(entry.trailers['OpenKB-Model'])} "
                     f"(prompt {_shown(entry.trailers.get('OpenKB-Prompt', '?'))})")
    lines += [f"date:     {date}", f"author:   {entry.author}", "", f"    {entry.subject}", ""]
    return lines


@cli.command()
@click.argument("ingest", default="HEAD")
@click.option("--stat", is_flag=True, help="Only the list of files with line counts.")
@click.option("--name-only", is_flag=True, help="Only the changed paths.")
@click.option("--color/--no-color", default=None, help="Colour the diff (default: on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the operation and every file change.")
@click.pass_context
def show(ctx: click.Context, ingest: str, stat: bool, name_only: bool, color: bool | None, as_json: bool) -> None:
    """Show what one operation changed.

    INGEST is a commit id prefix, HEAD~N, a position from `openkb log`, a
    document name (its latest ingest), or a branch (its tip; `try-papers~1`).
    Prints the operation, document, source and date; the files added, modified and
    removed with line counts; unified diffs of pages; and frontmatter and registry
    changes as "field X changed from A to B". For a merge: its parents, and what it
    brought into its first parent (the operations of the other side, together).
    """
    kb = open_kb(ctx)
    try:
        entry, change = kb_show(kb, resolve(kb, ingest), with_text=not (stat or name_only))
        position = position_of(kb, entry) if as_json else None
    finally:
        kb.close()
    if as_json:
        echo_json({"operation": entry_json(entry, position), **change.to_json()})
        return
    if not name_only:
        for line in _header(entry):
            click.echo(line)
    _echo_change(change, stat=stat, name_only=name_only, color=_color_enabled(color))


_AFTER_DASHES = "openkb.diff.after_dashes"


class _PathsAfterDashes(click.Command):
    """Keeps the arguments after `--` apart (Click would merge them into POINTS): they are paths."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            at = args.index("--")
            ctx.meta[_AFTER_DASHES] = args[at + 1:]
            args = args[:at]
        return super().parse_args(ctx, args)


@cli.command(cls=_PathsAfterDashes)
@click.argument("points", nargs=-1, required=True)
@click.option("--stat", is_flag=True, help="Only the list of files with line counts.")
@click.option("--name-only", is_flag=True, help="Only the changed paths.")
@click.option("--color/--no-color", default=None, help="Colour the diff (default: on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def diff(ctx: click.Context, points: tuple[str, ...], stat: bool, name_only: bool,
         color: bool | None, as_json: bool) -> None:
    """Show the changes between two points of the history: A [B] [-- PATH...].

    A and B are selectors as for `openkb show`; B defaults to HEAD. Paths (files or
    folders, relative to the current directory inside the KB, as in git) limit the
    output: `openkb diff HEAD~5 HEAD -- wiki/concepts`. Before `--`,
    an argument that is neither a selector nor a path the KB has is an error (exit 2),
    as in git.
    """
    kb = open_kb(ctx)
    try:
        old, new, paths = diff_points(kb, list(points), ctx.meta.get(_AFTER_DASHES, []))
        change = compare(kb, old.sha, new.sha, paths or None, with_text=not (stat or name_only))
    finally:
        kb.close()
    if as_json:
        echo_json(change.to_json())
        return
    _echo_change(change, stat=stat, name_only=name_only, color=_color_enabled(color))


@cli.command()
@click.argument("page")
@click.option("--at", "at", default=None, help="Blame the page as of this point (a selector); default HEAD.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per line.")
@click.pass_context
def blame(ctx: click.Context, page: str, at: str | None, as_json: bool) -> None:
    """For each line of PAGE (a path in the KB, e.g. wiki/concepts/x.md), the
    operation that last wrote it: short commit id and document (and the model, for
    lines the LLM compiler wrote: docs/llm.md). Lines a merge
    brought in are credited to the operation that wrote them on its side, as
    `git blame` does; a merge is named only for lines written while merging.

    PAGE is taken relative to the current directory, as in git (`openkb blame
    archive.md` in wiki/concepts; an absolute path inside the KB works too); run
    from outside the KB (--kb-dir), relative to the KB's root."""
    kb = open_kb(ctx)
    try:
        start = resolve(kb, at) if at else None
        lines = kb_blame(kb, kb_path(kb, page), start)
    finally:
        kb.close()
    if as_json:
        echo_json([{"line": b.line, "commit": b.commit, "doc": b.doc, "op": b.op, "model": b.model or None,
                    "text": b.text} for b in lines])
        return
    width = max((len(b.doc or b.op) for b in lines), default=0)
    models = max((len(b.model) for b in lines), default=0)  # a column only when a model wrote a line
    for b in lines:
        model = f" {_shown(b.model):<{models}}" if models else ""
        click.echo(f"{b.commit[:7]} {(b.doc or b.op):<{width}}{model} {b.line:>4}) {b.text}")
