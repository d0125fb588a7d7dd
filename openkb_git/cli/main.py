"""The `openkb` command group, global options, and the one place errors become exit codes."""

from __future__ import annotations

import click

from .. import __version__
from ..errors import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, OpenKBError


# Which module of this package defines each command: a command's module (and what it imports,
# e.g. deepdiff for `show`, pymupdf for `add`) is loaded only when that command runs, so a
# quick read such as `openkb log` does not pay for the import of every other command.
COMMAND_MODULES = {
    "init": "ingest", "add": "ingest", "recover": "ingest", "fsck": "ingest", "gc": "ingest",
    "recompile": "recompile",
    "log": "history", "status": "history", "list": "history", "lint": "history",
    "show": "review", "diff": "review", "blame": "review",
    "revert": "revert", "remove": "revert", "merge-driver": "revert",
    "rebuild": "revert",
    "hooks": "hooks",
    "sync": "sync", "pull": "sync", "push": "sync",
    "clone": "team", "git-hook": "team",
    "search": "search", "watch": "search", "use": "search",
}


class OpenKBGroup(click.Group):
    """Maps OpenKBError to its exit code with a one-line message; Click keeps 2 for usage errors.

    Commands are registered by their modules (``@cli.command()``), imported on first use.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str):
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            import importlib

            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OpenKBError as exc:
            click.echo(f"openkb: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:  # `openkb log | head`: the reader has gone; stop quietly, as git does
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            ctx.exit(EXIT_BROKEN_PIPE)
        except OSError as exc:  # the disk or the file system failed under us
            click.echo(f"openkb: error: {os_error_message(exc)}", err=True)
            ctx.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("openkb: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def os_error_message(exc: OSError) -> str:
    """What an OSError that ended a command means for the KB, without claiming more than is known.

    Failures after a commit point arrive as CommittedButIncomplete (an OpenKBError) with the
    commit named; an OSError reaching here happened before one, or outside any mutation."""
    import errno

    from ..fsutil import os_error_text

    text = os_error_text(exc)
    if exc.errno == errno.EROFS:
        return (f"cannot write: {text}. Make the knowledge base writable (remount it read-write), then run the "
                "command again. The step that failed was not committed; what was committed before it stays")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"no permission: {text}. Fix the permissions of that path (make the knowledge base writable for "
                "a command that changes it), then run the command again. The step that failed was not committed; "
                "what was committed before it stays")
    return (f"I/O error: {text}; the command stopped there. The step that failed was not "
            "committed; what was committed before it stays (`openkb log`); once the cause is fixed (e.g. disk "
            "space freed), the next openkb command (or `openkb recover`) undoes what that step left behind")


@click.group(cls=OpenKBGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="openkb-git")
@click.option("--kb-dir", envvar="OPENKB_DIR", type=click.Path(file_okay=False), default=None,
              help="The knowledge base to use (also OPENKB_DIR). Default: the nearest parent "
                   "directory of the current one that holds .openkb/, else the default set by "
                   "`openkb use`.")
@click.pass_context
def cli(ctx: click.Context, kb_dir: str | None) -> None:
    """openkb-git: a versioned knowledge base where every ingest is a Git commit.

    Documents go in with `openkb add`; each becomes one commit on the branch
    checked out (main by default), readable with `openkb log` and plain `git
    log`. Reads take no lock; writes take the KB lock and recover from any
    crashed writer first. Writes are refused (exit 5) during a merge, rebase,
    cherry-pick, revert or bisect and on a detached HEAD; a damaged ref or
    object is reported as damage (exit 6).
    """
    ctx.ensure_object(dict)
    ctx.obj["kb_dir"] = kb_dir
    from ..ops import session

    session.notice = lambda message: click.echo(f"openkb: {message}", err=True)


def open_kb(ctx: click.Context):
    """The KB named by --kb-dir / OPENKB_DIR or found from the current directory."""
    from ..kb import KB

    return KB.find(ctx.obj.get("kb_dir"))


def echo_json(data) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def shown(path: str) -> str:
    """A path printable on one line: control characters (a newline in a file name) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in path)


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=None) -> None:
    """A warning class with ``user_note = True`` (e.g. ops/select.py's ambiguous selector) is a
    note for the user: one line on stderr, `openkb: warning: ...`; others as Python shows them."""
    if getattr(category, "user_note", False):
        click.echo(f"openkb: warning: {message}", err=True)
    else:
        _default(message, category, filename, lineno, file, line)


def main() -> None:
    """Console entry point."""
    import warnings

    import functools

    warnings.showwarning = functools.partial(_show_warning, _default=warnings.showwarning)
    import os
    import sys

    # `openkb-git` (the second name, beside OpenKB's own `openkb`) says so in its usage lines.
    cli.main(prog_name="openkb-git" if os.path.basename(sys.argv[0]) == "openkb-git" else "openkb")

