"""Commands of a shared knowledge base's set-up: clone; and the Git hooks' entry point."""

from __future__ import annotations

import click

from .main import cli, echo_json, open_kb


@cli.command()
@click.argument("url")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("-b", "--branch", default=None, help="The knowledge base's branch (default: main, else the "
              "branch the remote's HEAD names).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def clone(url: str, directory: str | None, branch: str | None, as_json: bool) -> None:
    """Clone the knowledge base at URL into DIRECTORY, ready to use.

    Runs `git clone` (any URL Git takes: a path, file://, ssh, https, git://), checks
    out the KB's branch (main, even when the remote's HEAD names another branch,
    as in a bare repository made by plain `git init --bare`), then does what
    `openkb init` does in a clone: declares the merge drivers in .git/config,
    installs the Git hooks that refresh the views after git pull/rebase/checkout,
    and rebuilds the views. A remote whose branch holds no openkb knowledge base
    is refused (exit 1) naming its branches. See docs/team.md.
    """
    from ..ops.clone import clone_kb

    result = clone_kb(url, directory, branch=branch)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json(result.to_json())
        return
    click.echo(f"Cloned the knowledge base {url} into {result.root} (branch {result.branch}, HEAD {result.commit[:7]}):")
    for line in result.done:
        click.echo(f"  {line}")


@cli.command(name="git-hook", hidden=True)
@click.argument("event")
@click.argument("args", nargs=-1)
@click.pass_context
def git_hook(ctx: click.Context, event: str, args: tuple[str, ...]) -> None:
    """What openkb's Git hooks (.git/hooks/post-merge, post-rewrite, post-checkout) run:
    bring the views up to HEAD. Quiet; exit 0 even when it could not (lock held, a rebase
    under way): the next openkb command refreshes them."""
    from ..ops.gitsetup import run_git_hook

    kb = open_kb(ctx)
    try:
        run_git_hook(kb, event, args)
    finally:
        kb.close()
