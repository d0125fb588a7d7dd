"""The `openkb` command group, global options, and the one place errors become exit codes."""

from __future__ import annotations

import click

from .. import __version__
from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, OpenKBError
from ..kb import KB


class OpenKBGroup(click.Group):
    """Maps OpenKBError to its exit code with a one-line message; Click keeps 2 for usage errors."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OpenKBError as exc:
            click.echo(f"openkb: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # the disk or the file system failed under us
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"openkb: error: I/O error: {exc.strerror or exc}{where}; nothing after it was done; "
                       "the next command (or `openkb recover`) brings the KB back to its last commit", err=True)
            ctx.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            click.echo("openkb: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=OpenKBGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="openkb-git")
@click.option("--kb-dir", envvar="OPENKB_DIR", type=click.Path(file_okay=False), default=None,
              help="The knowledge base to use (also OPENKB_DIR). Default: the nearest parent "
                   "directory of the current one that holds .openkb/.")
@click.pass_context
def cli(ctx: click.Context, kb_dir: str | None) -> None:
    """openkb-git: a versioned knowledge base where every ingest is a Git commit.

    Documents go in with `openkb add`; each becomes one commit on branch main,
    readable with `openkb log` and plain `git log`. Reads take no lock; writes
    take the KB lock and recover from any crashed writer first.
    """
    ctx.ensure_object(dict)
    ctx.obj["kb_dir"] = kb_dir


def open_kb(ctx: click.Context) -> KB:
    """The KB named by --kb-dir / OPENKB_DIR or found from the current directory."""
    return KB.find(ctx.obj.get("kb_dir"))


def echo_json(data) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def main() -> None:
    """Console entry point."""
    cli.main(prog_name="openkb")


from . import history, hooks, ingest, review, revert  # noqa: E402,F401  (registers the commands on `cli`)
