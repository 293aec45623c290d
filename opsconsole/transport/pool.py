"""One connection per server, opened on demand, shared, and re-opened when it drops.

Called by the app core (``fleet.py``), the CLI commands and the health checks: everything that needs
a server asks ``await pool.get(name)`` and never opens a connection itself.  Imports: the standard
library, :mod:`opsconsole.config` and this package.

- Handshakes run concurrently but at most ``max_handshakes`` at a time: a real sshd drops bursts of
  unauthenticated connections beyond its ``MaxStartups`` (default 10:30:100, LAB-NOTES).
- A failed attempt is retried with exponential backoff and jitter (0.5 s doubling to 30 s, ±20 %),
  forever or ``max_attempts`` times.  A refused host key, a refused login or an unreadable client
  key is not retried: the server is FAILED until :meth:`ConnectionPool.reset` (retrying a refused
  login only fills the server's auth log and can get the console banned by fail2ban).
- A connection that drops is re-opened at once in the background; ``get()`` waits for it.
- Every change of a server's :class:`~.base.ServerStatus` is sent to the listeners, so front ends
  show "connecting / connected / retrying in 4s: … / failed: …".
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import ServerConfig
from .base import Backoff, LinkState, ServerStatus, Transport, TransportError
from .local import LocalTransport

if TYPE_CHECKING:  # asyncssh is imported with the first SSH connection (local-only: never)
    from .ssh import SSHTransport

log = logging.getLogger(__name__)

StatusListener = Callable[[ServerStatus], None]


@dataclass
class _Slot:
    server: ServerConfig
    status: ServerStatus
    transport: Transport | None = None
    error: TransportError | None = None
    connecting: asyncio.Task[Transport] | None = None
    watcher: asyncio.Task[None] | None = None
    attempts: int = 0


class ConnectionPool:
    """Hands out one shared :class:`~.base.Transport` per configured server."""

    def __init__(
        self,
        servers: Mapping[str, ServerConfig],
        *,
        max_handshakes: int = 8,
        connect_timeout: float = 10.0,
        keepalive_interval: float = 15.0,
        backoff: Callable[[], Backoff] = Backoff,
        max_attempts: int | None = None,
        ssh_config: Sequence[str] | None = None,
        on_status: StatusListener | None = None,
    ) -> None:
        """``max_attempts=None`` retries until connected (the TUI); a number suits one-shot
        commands.  ``backoff`` builds the retry policy of one server.  ``ssh_config`` replaces
        ``~/.ssh/config`` (see :func:`~.ssh.connect_ssh`)."""
        if max_handshakes < 1:
            raise ValueError("max_handshakes must be at least 1")
        self._slots = {
            name: _Slot(server, ServerStatus(name, LinkState.CONNECTING, "not connected yet"))
            for name, server in servers.items()
        }
        self._handshakes = asyncio.Semaphore(max_handshakes)
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive_interval
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._ssh_config = ssh_config
        self._listeners: list[StatusListener] = [on_status] if on_status else []
        self._closed = False
        self.handshakes_in_flight = 0
        self.peak_handshakes = 0
        """Most handshakes that were ever in progress at once (bounded by ``max_handshakes``)."""

    # -- status -----------------------------------------------------------------------------

    def add_listener(self, listener: StatusListener) -> Callable[[], None]:
        """Call ``listener`` on every status change; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def status(self, server: str) -> ServerStatus:
        return self._slot(server).status

    def statuses(self) -> dict[str, ServerStatus]:
        return {name: slot.status for name, slot in self._slots.items()}

    def _set(
        self, slot: _Slot, state: LinkState, detail: str = "", retry_at: float | None = None
    ) -> None:
        slot.status = ServerStatus(slot.server.name, state, detail, retry_at)
        for listener in list(self._listeners):
            try:
                listener(slot.status)
            except Exception:  # a front end's bug must not break the connections
                log.exception("status listener failed")

    def _slot(self, server: str) -> _Slot:
        try:
            return self._slots[server]
        except KeyError:
            known = ", ".join(sorted(self._slots)) or "none"
            raise TransportError(f"no server {server!r} configured (known: {known})") from None

    # -- connections ------------------------------------------------------------------------

    async def get(self, server: str) -> Transport:
        """The server's live connection, connecting (and waiting through retries) if needed.

        Raises the TransportError of the last attempt once the server is FAILED: at once for a
        host-key or login refusal (until :meth:`reset`), after ``max_attempts`` otherwise.
        """
        slot = self._slot(server)
        if self._closed:
            raise TransportError(f"{server}: the connection pool is closed")
        if slot.transport is not None and not _is_closed(slot.transport):
            return slot.transport
        if slot.error is not None and not slot.error.retryable:
            raise slot.error
        if slot.connecting is None or slot.connecting.done():
            slot.connecting = asyncio.create_task(self._connect(slot), name=f"connect {server}")
            slot.connecting.add_done_callback(_consume)
        # Shielded: one caller giving up must not cancel the attempt the others wait on.
        return await asyncio.shield(slot.connecting)

    def reset(self, server: str) -> None:
        """Forget a FAILED server's error so the next get() tries again (after the operator
        fixed known_hosts or the key)."""
        slot = self._slot(server)
        if slot.status.state is LinkState.FAILED:
            slot.error = None
            self._set(slot, LinkState.CONNECTING)  # reads "connecting" until the next get()

    async def _connect(self, slot: _Slot) -> Transport:
        server = slot.server
        if server.is_local:
            slot.transport = LocalTransport(server.name, sudo=server.sudo)
            self._set(slot, LinkState.CONNECTED)
            return slot.transport
        backoff = self._backoff()
        attempt = 0
        while True:
            attempt += 1
            slot.attempts += 1
            self._set(slot, LinkState.CONNECTING, slot.status.detail if attempt > 1 else "")
            try:
                transport = await self._handshake(server)
            except TransportError as e:
                if not e.retryable or (self._max_attempts and attempt >= self._max_attempts):
                    slot.error = e
                    self._set(slot, LinkState.FAILED, str(e))
                    raise
                delay = backoff.next_delay()
                self._set(slot, LinkState.RETRYING, str(e), time.monotonic() + delay)
                await asyncio.sleep(delay)
                continue
            slot.transport, slot.error = transport, None
            self._set(slot, LinkState.CONNECTED)
            slot.watcher = asyncio.create_task(self._watch(slot, transport))
            return transport

    async def _handshake(self, server: ServerConfig) -> SSHTransport:
        from .ssh import connect_ssh

        async with self._handshakes:
            self.handshakes_in_flight += 1
            self.peak_handshakes = max(self.peak_handshakes, self.handshakes_in_flight)
            try:
                return await connect_ssh(
                    server,
                    connect_timeout=self._connect_timeout,
                    keepalive_interval=self._keepalive,
                    ssh_config=self._ssh_config,
                )
            finally:
                self.handshakes_in_flight -= 1

    async def _watch(self, slot: _Slot, transport: SSHTransport) -> None:
        """Re-open a connection that ends without the pool closing it."""
        await transport.wait_closed()
        if self._closed or slot.transport is not transport:
            return
        slot.transport = None
        log.info("%s: connection lost, reconnecting", slot.server.name)
        self._set(slot, LinkState.RETRYING, "connection lost", time.monotonic())
        if slot.connecting is None or slot.connecting.done():
            slot.connecting = asyncio.create_task(self._connect(slot))
            slot.connecting.add_done_callback(_consume)

    async def close(self) -> None:
        """Close every connection and stop every attempt; get() raises afterwards."""
        self._closed = True
        tasks = []
        for slot in self._slots.values():
            for task in (slot.connecting, slot.watcher):
                if task is not None and not task.done():
                    task.cancel()
                    tasks.append(task)
        if tasks:
            await asyncio.wait(tasks)  # unlike awaiting each, never swallows our own cancellation
        await asyncio.gather(
            *(s.transport.close() for s in self._slots.values() if s.transport is not None),
            return_exceptions=True,
        )
        for slot in self._slots.values():
            slot.transport = None


def _is_closed(transport: Transport) -> bool:
    ssh = sys.modules.get(f"{__package__}.ssh")  # not imported: no SSH transport exists
    return ssh is not None and isinstance(transport, ssh.SSHTransport) and transport.closed


def _consume(task: asyncio.Task[Transport]) -> None:
    """Retrieve a finished attempt's exception: it may have had no waiter (a background
    reconnect), and its error is kept in the server's status anyway."""
    if not task.cancelled():
        task.exception()
