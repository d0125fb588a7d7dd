"""Commands to find things in a KB and to watch for new files: search, watch, use."""

from __future__ import annotations

import time

import click

from .main import cli, echo_json, open_kb


@cli.command()
@click.argument("text", nargs=-1, required=True)
@click.option("-n", "--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="At most this many hits (with --history: operations).")
@click.option("--history", is_flag=True,
              help="Instead of pages, list the operations that introduced or removed TEXT "
                   "(exact, case-sensitive), newest first, as `git log -S`.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def search(ctx: click.Context, text: tuple[str, ...], limit: int, history: bool, as_json: bool) -> None:
    """Search the wiki pages of HEAD for TEXT, offline; best hits first.

    Every word must occur (any order, any case; "archives" also finds "archive");
    a "quoted phrase" must occur as written; a word ending in * is a prefix. Each
    hit shows its page, a snippet with the words in **bold**, and the
    operation (commit, op, document) that last changed the page.

    The index is a cache in .openkb/openkb-git/search.sqlite, never tracked:
    each search brings it to HEAD from the pages that changed since the commit
    it reflects (commits by any tool, `git pull`, `git reset` included), and a
    missing or damaged one is rebuilt from HEAD's tree. Hand edits not yet
    committed are not searched.
    """
    from ..ops.search import search as run_search, search_history

    words = " ".join(text)
    kb = open_kb(ctx)
    try:
        if history:
            hits = search_history(kb, words, limit=limit)
        else:
            result = run_search(kb, words, limit=limit)
    finally:
        kb.close()
    if history:
        if as_json:
            echo_json([h.to_json() for h in hits])
            return
        if not hits:
            click.echo(f"No operation changed {words!r} in a wiki page.")
            return
        for h in hits:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(h.time))
            click.echo(f"{h.commit[:7]}  {when}  {h.change:<10} by {h.op} {h.doc or h.subject}  "
                       f"({', '.join(h.paths[:3])}{', …' if len(h.paths) > 3 else ''})")
        return
    if as_json:
        echo_json(result.to_json())
        return
    if not result.hits:
        click.echo(f"No page matches {words!r}.")
        return
    shown = len(result.hits)
    click.echo(f"{result.total} page(s) match {words!r}" + (f"; the best {shown}:" if shown < result.total else ":"))
    for hit in result.hits:
        click.echo(f"\n{hit.path}  {hit.title}")
        click.echo(f"    {hit.snippet}")
        if hit.last:
            last = hit.last
            click.echo(f"    last changed by {last['op']} {last['doc'] or last['subject']} ({last['commit'][:7]})")
