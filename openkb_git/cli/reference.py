"""Generate docs/cli.md from the commands' --help (checked by tests/test_docs.py).

    python -m openkb_git.cli.reference > docs/cli.md
"""

from __future__ import annotations

import click

from .main import cli


def iter_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    """(path, command) for every command, depth first, sorted by name."""
    ctx = click.Context(group, info_name="openkb")
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from iter_commands(command, (*prefix, name))


def help_text(path: tuple[str, ...]) -> str:
    """What `openkb PATH --help` prints."""
    runner_args = [*path, "--help"]
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, runner_args, prog_name="openkb", terminal_width=100)
    return result.output


def reference() -> str:
    parts = ["# CLI reference", "",
             "Generated from `--help` by `python -m openkb_git.cli.reference > docs/cli.md`;",
             "`tests/test_docs.py` fails when this file and the commands disagree.", "",
             "## openkb", "", "```", help_text(()).rstrip(), "```", ""]
    for path, _command in iter_commands(cli):
        parts += [f"## openkb {' '.join(path)}", "", "```", help_text(path).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover
    print(reference(), end="")
