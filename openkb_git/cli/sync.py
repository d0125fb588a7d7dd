"""Commands that share the KB through a Git remote: sync, pull, push."""

from __future__ import annotations

import click

from ..errors import EXIT_FAILED
from ..ops.sync import SyncConflictError, SyncResult, pull as kb_pull, push_only, sync as kb_sync
from .main import cli, echo_json, open_kb

_REMOTE = click.argument("remote", required=False)
_BRANCH = click.option("--branch", "branch", default=None, metavar="B",
                       help="The remote's branch (default: the upstream's, else the KB branch's own name).")
_WAIT = click.option("--wait", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Seconds to wait for the KB lock.")
_NO_EDITS = click.option("--no-commit-edits", is_flag=True, help="Refuse instead of committing hand edits first.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")



def _options(command):
    """The arguments and options sync, pull and push share, and the context."""
    for decorate in (click.pass_context, _JSON, _NO_EDITS, _WAIT, _BRANCH, _REMOTE):
        command = decorate(command)
    return command

def _run(ctx: click.Context, action, remote: str | None, branch: str | None, wait: float, no_commit_edits: bool,
         as_json: bool) -> None:
    kb = open_kb(ctx)
    progress = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    try:
        try:
            result = action(kb, remote, branch, wait=wait, allow_edit_commits=not no_commit_edits, progress=progress)
        except SyncConflictError as exc:
            _report_conflicts(exc, as_json)
            ctx.exit(EXIT_FAILED)
    finally:
        kb.close()
    if as_json:
        echo_json(result.to_json())
    else:
        _report(result)


def _report(r: SyncResult) -> None:
    where = f"{r.remote}/{r.remote_branch}"
    if r.edit_commit:
        click.echo(f"committed hand edits first as {r.edit_commit[:7]}")
    if r.fast_forwarded:
        click.echo(f"fast-forwarded {r.branch} to {where} ({(r.after or '')[:7]})")
    landed = [x for x in r.replayed if x.commit]
    if r.rebuild_commit:
        click.echo(f"regenerated the shared pages from the records as {r.rebuild_commit[:7]} (openkb rebuild)")
    if r.replayed:
        click.echo(f"replayed {len(landed)} of {len(r.replayed)} operation(s) on {where}")
        for x in r.replayed:
            if x.commit:
                click.echo(f"  {x.original[:7]} -> {x.commit[:7]} {x.subject}")
            else:
                click.echo(f"  {x.original[:7]} {x.subject}: {x.note}")
    if r.pushed:
        click.echo(f"pushed {r.branch} to {where} ({(r.after or '')[:7]})")
    if not (r.fast_forwarded or r.replayed or r.pushed):
        click.echo(f"{r.branch} is up to date with {where}" if r.remote_head else f"{where} does not exist yet")


def _report_conflicts(exc: SyncConflictError, as_json: bool) -> None:
    if as_json:
        echo_json({"error": str(exc), "operation": exc.entry.sha, "edit_commit": exc.edit_commit,
                   "conflicts": [{"path": c.path, "reason": c.reason, "ours": c.ours, "theirs": c.theirs}
                                 for c in exc.conflicts]})
        return
    click.echo(f"openkb: error: {exc}", err=True)
    for c in exc.conflicts:
        click.echo(f"  {c.path}: {c.reason}", err=True)
        click.echo(f"    remote has:     {c.ours}", err=True)
        click.echo(f"    this KB wants:  {c.theirs}", err=True)
    if exc.edit_commit:
        click.echo(f"(your hand edits were committed first, as {exc.edit_commit[:7]})", err=True)
    click.echo(f"To resolve it by hand: `git pull --rebase`, fix the paths Git lists, `git add` them, `git rebase "
               f"--continue`, `openkb recover`, then run the command again; to keep the remote's version instead, drop "
               f"{exc.entry.short} (`git rebase -i`). See docs/team.md, \"Sync\"", err=True)


@cli.command()
@_options
def sync(ctx: click.Context, remote: str | None, branch: str | None, wait: float, no_commit_edits: bool,
         as_json: bool) -> None:
    """Fetch from REMOTE, integrate its operations with ours, push.

    REMOTE defaults to the branch's upstream, else `origin`. Our operations the
    remote lacks are replayed on top of its head, one commit each (author, message
    and trailers kept), as one KB doing the remote's operations and then ours would
    have done them: ingests set their document's footprint, removals and reverts are
    done again, hand edits are merged three-way. Behind only, the branch
    fast-forwards. The views are rebuilt. When the push is rejected because the
    remote moved meanwhile, all again (up to 5 times). Hand edits not committed
    yet are committed first as an `edit`. If replaying an operation conflicts (the
    same text edited on both sides), nothing changes: exit code 1 and, per path,
    the reason and both sides.
    """
    _run(ctx, kb_sync, remote, branch, wait, no_commit_edits, as_json)


@cli.command()
@_options
def pull(ctx: click.Context, remote: str | None, branch: str | None, wait: float, no_commit_edits: bool,
         as_json: bool) -> None:
    """Fetch from REMOTE and integrate its operations with ours (no push).

    The same integration as `openkb sync`: a fast-forward, or our operations the
    remote lacks replayed on top of its head; conflicts change nothing (exit 1).
    """
    _run(ctx, kb_pull, remote, branch, wait, no_commit_edits, as_json)


@cli.command()
@_options
def push(ctx: click.Context, remote: str | None, branch: str | None, wait: float, no_commit_edits: bool,
         as_json: bool) -> None:
    """Push our operations to REMOTE.

    Refused (exit 1, nothing pushed) when the remote has operations this KB lacks:
    run `openkb sync`, which integrates them first. Sets the upstream on the first push.
    """
    _run(ctx, push_only, remote, branch, wait, no_commit_edits, as_json)
