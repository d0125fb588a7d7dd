"""The project's one base exception, and the exit codes it maps to.

Each concrete error is defined next to the code that raises it; this module
holds only the base class and the table of exit codes (see docs/exit-codes.md).
"""

from __future__ import annotations

# Exit codes. Click keeps 2 for usage errors.
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran, but some of its work failed (e.g. a file could not be added)
EXIT_USAGE = 2  # bad arguments (Click)
EXIT_LOCKED = 3  # another openkb process holds the KB lock
EXIT_NOT_A_KB = 4  # no knowledge base found
EXIT_INTERRUPTED = 130  # SIGINT
EXIT_BROKEN_PIPE = 141  # standard output closed by its reader (128 + SIGPIPE, as git)


class OpenKBError(Exception):
    """Base of every error openkb-git raises on purpose.

    ``exit_code`` is what the CLI exits with when this error ends a command.
    The message says what went wrong and, where possible, what to do next.
    """

    exit_code = EXIT_FAILED
