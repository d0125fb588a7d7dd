"""`openkb hooks`: list the KB's hooks and install the samples."""

from __future__ import annotations

import click

from ..hooks import EVENTS, install_sample, list_hooks, samples
from .main import cli, echo_json, open_kb


@cli.group()
def hooks() -> None:
    """Manage the KB's hooks (executables in .openkb/hooks/, untracked).

    A hook runs only if it is not tracked by Git (not in the index, not in HEAD)
    and is owned by you and not writable by group or others; otherwise it is
    refused, reported and never run: code never arrives through a clone.

    \b
    pre-ingest   runs per file after preparation, before its commit. Arguments: the
                 KB paths the ingest will write; OPENKB_STAGED_DIR holds them. A
                 non-zero exit skips that file (its output is the reason); the others
                 go on. Skipped with --no-verify.
    post-ingest  runs after each ingest commit (OPENKB_COMMIT). A non-zero exit warns.
    post-revert  runs after each revert commit (OPENKB_COMMIT, OPENKB_REVERTS). Warns only.

    Every hook gets OPENKB_DIR, OPENKB_DOC, OPENKB_SOURCE, OPENKB_SHA256, runs in the KB
    root and never through a shell. See docs/hooks.md.
    """


@hooks.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Show which hooks are installed and which samples can be installed."""
    kb = open_kb(ctx)
    try:
        installed = list_hooks(kb.hooks_dir, kb.root)
    finally:
        kb.close()
    available = {name: event for name, (event, _path) in samples().items()}
    if as_json:
        echo_json({"hooks": installed, "samples": available})
        return
    for hook in installed:
        if hook["refused"]:
            state = ("tracked: refused" if "tracked by Git" in hook["refused"] else "refused") + f" ({hook['refused']})"
        elif hook["executable"]:
            state = "installed"
        else:
            state = "present, not executable" if hook["installed"] else "-"
        click.echo(f"{hook['event']:<12} {state}")
    if available:
        click.echo("\nsamples (openkb hooks install NAME):")
        for name, event in available.items():
            click.echo(f"  {name:<24} {event}")


@hooks.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Replace an installed hook of the same event.")
@click.pass_context
def install(ctx: click.Context, name: str, force: bool) -> None:
    """Copy sample hook NAME into .openkb/hooks/ as its event's hook."""
    kb = open_kb(ctx)
    try:
        path = install_sample(kb.hooks_dir, name, force=force)
    finally:
        kb.close()
    click.echo(f"installed {name} as {path}")


__all__ = ["hooks", "EVENTS"]
