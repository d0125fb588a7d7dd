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


@cli.command()
@click.argument("dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--settle", type=click.FloatRange(min=0.1, max=3600), default=2.0, show_default=True,
              help="Seconds a file's size and modification time must stay the same before it is added.")
@click.option("--wait", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for the KB lock (another openkb or OpenKB writing) before that file fails.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file as it is done, "
                                                      "and the summary as the last one.")
@click.pass_context
def watch(ctx: click.Context, dirs: tuple[str, ...], settle: float, wait: float, as_json: bool) -> None:
    """Add new and changed files of DIRs as they arrive (default: the KB's raw/).

    Each file is taken once it has stopped changing for --settle seconds (a
    download or a copy still being written is waited for), then added as
    `openkb add FILE` would: one commit each, duplicates skipped, hooks run. A
    file dropped into raw/ becomes an `add` of that file. A file that fails is
    reported and watching goes on. Hidden files and partial downloads (*.part,
    *.crdownload, *.tmp, *~) are left alone. Ctrl-C (or SIGTERM) stops after
    the file being added, with a summary; the exit code is then 0.
    """
    import json
    import signal
    import threading
    from pathlib import Path

    from ..ops.add import ADDED, FAILED, SKIPPED
    from ..ops.watch import watch as run_watch, watch_dirs

    kb = open_kb(ctx)
    root = kb.root
    kb.close()
    folders = [Path(d).absolute() for d in dirs] if dirs else watch_dirs(root)
    stop = threading.Event()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())

    def on_ready(watched):
        if as_json:
            click.echo(json.dumps({"watching": [str(f) for f in watched]}), nl=True)
        else:
            click.echo(f"Watching {', '.join(str(f) for f in watched)} for new files. Press Ctrl-C to stop.")

    def on_result(r):
        if as_json:
            click.echo(json.dumps({"path": r.path, "status": r.status, "doc": r.doc, "commit": r.commit,
                                   "reason": r.reason, "warnings": r.warnings}, ensure_ascii=False))
        elif r.status == ADDED:
            click.echo(f"added    {r.path} -> {r.doc} ({(r.commit or '')[:7]})")
            for warning in r.warnings:
                click.echo(f"         warning: {warning}")
        elif r.status == SKIPPED:
            click.echo(f"skipped  {r.path}: {r.reason}")
        else:
            click.echo(f"failed   {r.path}: {r.reason}")

    def on_error(message):
        click.echo(message, err=True)

    try:
        report = run_watch(root, folders, settle=settle, wait=wait, on_result=on_result, on_error=on_error,
                           on_ready=on_ready, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        click.echo(json.dumps({"summary": {k: v for k, v in report.to_json().items() if k != "files"}}))
    else:
        click.echo(f"stopped watching: {report.count(ADDED)} added, {report.count(SKIPPED)} skipped, "
                   f"{report.count(FAILED)} failed")


@cli.command()
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def use(path: str | None, as_json: bool) -> None:
    """Set the default knowledge base to PATH, or show it (no PATH).

    The default is used when neither --kb-dir / OPENKB_DIR nor a KB in the
    current directory or its parents is found. It is kept in OpenKB's own
    global config, ~/.config/openkb/global.yaml (`default_kb`, also added to
    `known_kbs`), so OpenKB and openkb-git open the same default KB; its other
    settings are kept.
    """
    from ..ops.use import set_default_kb, show_default_kb

    if path is not None:
        root = set_default_kb(path)
        if as_json:
            echo_json(show_default_kb())
        else:
            click.echo(f"Default knowledge base: {root}")
        return
    shown = show_default_kb()
    if as_json:
        echo_json(shown)
    elif shown["default_kb"] is None:
        click.echo(f"No default knowledge base (set one with `openkb use PATH`; kept in {shown['config']}).")
    else:
        note = "" if shown["valid"] else "  (not a knowledge base now: run `openkb use PATH` to choose another)"
        click.echo(f"Default knowledge base: {shown['default_kb']}{note}")
