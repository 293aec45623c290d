"""Connections for the control commands (``setup``, ``controls``, ``block`` … ``rollback``,
``audit``): one :class:`~opsconsole.transport.pool.ConnectionPool`, every server of a service
connected in parallel, and a server that cannot be reached turned into a transport that fails
with the reason, so the core reports it as that server's result while the others proceed.

Also the per-server progress lines on a terminal's stderr.  Used only by the modules of
:mod:`opsconsole.cli`; imports the core, never Textual.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Sequence

from ..config import Config
from ..controls import serverside
from ..transport.base import RunResult, Stream, Transport, TransportError
from ..transport.pool import ConnectionPool

Say = Callable[[str, str], None]
"""say(server, what is happening) — a progress line."""

CONNECT_ATTEMPTS = 2
CONNECT_TIMEOUT = 10.0

_STEPS = {
    "read": "reading the controls",
    "apply": "writing the files, nginx -t, reload",
    "recover": "rolling back an interrupted earlier apply",
    "confirm": "confirming",
    "rollback": "rolling back",
}


def progress_printer() -> Say | None:
    """Progress lines on stderr when it is a terminal (None otherwise: scripts see no noise)."""
    if not sys.stderr.isatty():
        return None

    def say(server: str, what: str) -> None:
        print(f"  {server}: {what}", file=sys.stderr, flush=True)

    return say


class Unreachable:
    """Stands in for a server that could not be connected: every command fails with why."""

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

    async def open_stream(self, argv: Sequence[str], *, privileged: bool = False) -> Stream:
        raise self.error

    async def close(self) -> None:
        return None


class Narrated:
    """A transport that says which step of the server-side program starts on its server."""

    def __init__(self, inner: Transport, say: Say) -> None:
        self.name = inner.name
        self._inner = inner
        self._say = say

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        args = list(argv)
        if serverside.LIB in args:
            i = args.index(serverside.LIB)
            if i + 1 < len(args) and args[i + 1] in _STEPS:
                self._say(self.name, _STEPS[args[i + 1]])
        return await self._inner.run(argv, input=input, timeout=timeout, privileged=privileged)

    async def run_configured(
        self, command: str, *, timeout: float | None = 30.0, privileged: bool = False
    ) -> RunResult:
        return await self._inner.run_configured(command, timeout=timeout, privileged=privileged)

    async def open_stream(self, argv: Sequence[str], *, privileged: bool = False) -> Stream:
        return await self._inner.open_stream(argv, privileged=privileged)

    async def close(self) -> None:
        await self._inner.close()


def make_pool(config: Config) -> ConnectionPool:
    """A pool for one-shot commands: a couple of attempts per server, then its error."""
    return ConnectionPool(
        config.servers, max_attempts=CONNECT_ATTEMPTS, connect_timeout=CONNECT_TIMEOUT
    )


async def connect(
    pool: ConnectionPool, servers: Iterable[str], say: Say | None = None
) -> dict[str, Transport]:
    """Every server in parallel; an unreachable one becomes :class:`Unreachable`."""
    names = list(dict.fromkeys(servers))

    async def one(name: str) -> Transport:
        try:
            transport = await pool.get(name)
        except TransportError as e:
            if say:
                say(name, f"cannot connect: {e}")
            return Unreachable(name, e)
        if say:
            say(name, "connected")
            return Narrated(transport, say)
        return transport

    return dict(zip(names, await asyncio.gather(*(one(n) for n in names)), strict=True))


def unreachable(transports: dict[str, Transport]) -> dict[str, str]:
    """Server -> reason, for the servers that could not be connected."""
    return {n: str(t.error) for n, t in transports.items() if isinstance(t, Unreachable)}
