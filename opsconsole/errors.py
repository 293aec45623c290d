"""Exceptions shared by the core and the front ends.

Every error the operator can cause maps to one exit status (DESIGN §7): ``UsageError`` and
``ConfigError`` are exit 2 (bad usage, bad config or invalid input: nothing was written);
``OperationError`` is exit 1 (an operation failed on a server).  The CLI turns these into one-line
messages; nothing here imports a front end.
"""

from __future__ import annotations


class OpsConsoleError(Exception):
    """Base of every error opsconsole reports to an operator without a traceback."""

    exit_status = 1


class UsageError(OpsConsoleError):
    """Bad usage or invalid operator input; nothing was changed anywhere."""

    exit_status = 2


class ConfigError(UsageError):
    """A problem in a config file, naming the file, the key path and what was expected."""

    def __init__(self, file: str, key: str, expected: str) -> None:
        self.file = file
        self.key = key
        self.expected = expected
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + expected)


class OperationError(OpsConsoleError):
    """An operation failed on a server (and was rolled back where that applies)."""

    exit_status = 1
