"""The one interface every way of reaching a server implements (SSH or this machine).

Callers (the log follower, the controls, the health probes) speak only to :class:`Transport`; they
never see asyncssh or subprocess.  Commands are argument vectors, never shell strings: the
implementation quotes each argument (``shlex.join``), so no operator string is ever spliced into a
shell.  The one exception is :meth:`Transport.run_configured`, for command strings the operator put
in the config file on purpose (``nginx_test``), which are run with ``sh -c``.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..text import unprefixed


@dataclass(frozen=True)
class RunResult:
    """Outcome of a finished command."""

    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def error_text(self) -> str:
        """The command's own message, for the operator (stderr first, else stdout)."""
        text = (self.stderr or self.stdout).decode("utf-8", "replace").strip()
        return text or f"exit status {self.exit_status}"


class Stream(Protocol):
    """A running command whose stdout is read incrementally (e.g. ``tail -F``)."""

    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes of stdout; ``b""`` once the command has ended or the link dropped."""
        ...

    async def close(self) -> None:
        """Stop the command (closing its channel ends an ``exec``'d remote process)."""
        ...

    @property
    def exit_status(self) -> int | None: ...

    async def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the command has ended (after ``read`` returned ``b""``); its exit status,
        or None if it ended without one (a dropped link) or ``timeout`` passed first."""
        ...

    async def stderr_text(self) -> str:
        """What the command wrote to stderr so far (for error messages after it ended)."""
        ...


class Transport(Protocol):
    """A connection to one server.

    ``privileged=True`` asks for the command to run under ``sudo -n`` when the server is configured
    with ``sudo = true``; otherwise it changes nothing (the command runs as the login user).
    """

    name: str

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        """Run a command to completion.  Raises TransportError if the server cannot be reached."""
        ...

    async def run_configured(
        self, command: str, *, timeout: float | None = 30.0, privileged: bool = False
    ) -> RunResult:
        """Run a command string the operator wrote in the config file (``nginx_test``) with
        ``sh -c``.  Never pass anything else here: the string reaches a shell as it is."""
        ...

    async def open_stream(
        self, argv: Sequence[str], *, privileged: bool = False, input: bytes | None = None
    ) -> Stream:
        """Start a long-running command and return its stdout stream (``input``: written to
        its stdin, then end of file; otherwise stdin is empty)."""
        ...

    async def close(self) -> None: ...


class TransportError(Exception):
    """The server could not be reached or the connection broke (as opposed to a failed command).

    The text is for the operator: it names the server and says what went wrong.
    """

    retryable: bool = True
    """False when trying again cannot help until the operator acts (a wrong host key, a refused
    key): the connection pool then stops retrying instead of hammering the server's auth log."""


class LinkState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RETRYING = "retrying"
    FAILED = "failed"


@dataclass(frozen=True)
class ServerStatus:
    """What the front ends show for one server's connection."""

    server: str
    state: LinkState
    detail: str = ""
    """The reason of the last failure, or empty."""
    retry_at: float | None = None
    """time.monotonic() of the next attempt while RETRYING."""

    def describe(self) -> str:
        """For people, beside the server's name: ``retrying in 4s: cannot reach …`` (the
        reason without the name in front), ``retrying now: …`` during the next attempt."""
        if self.state is LinkState.RETRYING and self.retry_at is not None:
            left = max(0.0, self.retry_at - time.monotonic())
            text = f"retrying in {left:.0f}s"
        elif self.state is LinkState.CONNECTING and self.detail:
            text = "retrying now"  # an attempt after a failure: the detail is that failure
        else:
            text = self.state.value
        return f"{text}: {unprefixed(self.detail, self.server)}" if self.detail else text


@dataclass
class Backoff:
    """Exponential backoff with jitter, for reconnecting without synchronised retry storms.

    ``next_delay()`` returns ``initial``, then doubles up to ``maximum``, each value spread by
    ±``jitter`` (a fraction); ``reset()`` after a success starts again from ``initial``.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    _current: float = 0.0

    def next_delay(self) -> float:
        base = (
            self.initial if self._current == 0.0 else min(self.maximum, self._current * self.factor)
        )
        self._current = base
        return max(0.0, base * (1.0 + random.uniform(-self.jitter, self.jitter)))

    def reset(self) -> None:
        self._current = 0.0


class Unreachable:
    """Stands in for a server that could not be connected: every command fails with why.

    The session layer hands one to the core for each server it cannot reach, so every intent
    reports that server's failure in its own words while the other servers proceed."""

    def __init__(self, name: str, error: TransportError) -> None:
        self.name = name
        self.error = error

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        raise self.error

    async def run_configured(
        self, command: str, *, timeout: float | None = 30.0, privileged: bool = False
    ) -> RunResult:
        raise self.error

    async def open_stream(
        self, argv: Sequence[str], *, privileged: bool = False, input: bytes | None = None
    ) -> Stream:
        raise self.error

    async def close(self) -> None:
        return None
