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
EXIT_REFUSED = 5  # the repository is in a state openkb does not own (detached HEAD, merge/rebase in progress, ...)
EXIT_DAMAGED = 6  # the repository or KB data is damaged or unsafe (bad ref, missing object, unsafe path)
EXIT_INTERRUPTED = 130  # SIGINT
EXIT_BROKEN_PIPE = 141  # standard output closed by its reader (128 + SIGPIPE, as git)


class OpenKBError(Exception):
    """Base of every error openkb-git raises on purpose.

    ``exit_code`` is what the CLI exits with when this error ends a command.
    The message says what went wrong and, where possible, what to do next.
    """

    exit_code = EXIT_FAILED


class RefusedStateError(OpenKBError):
    """The repository is in a state another tool owns; the message names the command that ends it."""

    exit_code = EXIT_REFUSED


class DamageError(OpenKBError):
    """Data openkb reads is damaged or breaks the trust rules (docs/protocol.md, "Trust boundaries"); the message names
    what and where, and what to do (usually `openkb fsck`)."""

    exit_code = EXIT_DAMAGED
