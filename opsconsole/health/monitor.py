"""The health loop the TUI runs: every server and service re-probed on an interval.

Role: one asyncio task per server and per service runs *probe → publish → wait → re-arm*.  The
wait starts only when the probe has finished, so a slow or hanging host never has two probes in
flight, and a slow host never delays the others.  Each result goes to ``on_update`` (the TUI posts
it as a message) and into :meth:`HealthMonitor.snapshot`.  :meth:`HealthMonitor.refresh` asks for
a probe now ("r" in the TUI) without breaking the one-in-flight rule.

Imports: the standard library, :mod:`opsconsole.config` and this
package.  Never Textual: the UI subscribes with a plain callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..config import Config
from .check import TransportSource, check_server, check_service
from .http import Client, make_client
from .local import console_metrics
from .report import FleetHealth, HostMetrics, ServerHealth, ServiceHealth, Status

log = logging.getLogger(__name__)

HealthUpdate = ServerHealth | ServiceHealth
Key = tuple[str, str]
"""("server", name) or ("service", name): servers and services may share a name."""


class HealthMonitor:
    """Periodic health of a fleet.  ``await run()`` until cancelled (or :meth:`stop`)."""

    def __init__(
        self,
        config: Config,
        source: TransportSource,
        *,
        interval: float | None = None,
        on_update: Callable[[HealthUpdate], None] | None = None,
        client: Client | None = None,
    ) -> None:
        self.config = config
        self.source = source
        self.interval = interval if interval is not None else config.health.interval
        self.on_update = on_update
        self._client = client
        self._servers: dict[str, ServerHealth] = {
            name: ServerHealth(name, Status.UNKNOWN, ("not checked yet",))
            for name in config.servers
        }
        self._services: dict[str, ServiceHealth] = {
            name: ServiceHealth(name, s.url, Status.UNKNOWN, ("not checked yet",))
            for name, s in config.services.items()
        }
        self._console: HostMetrics | None = None
        self._wake: dict[Key, asyncio.Event] = {}
        self._in_flight: set[Key] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def snapshot(self) -> FleetHealth:
        """The latest result of every item (``unknown`` until its first probe ends)."""
        return FleetHealth(dict(self._servers), dict(self._services), self._console)

    @property
    def in_flight(self) -> frozenset[Key]:
        """Items being probed right now."""
        return frozenset(self._in_flight)

    def refresh(self, kind: str | None = None, name: str | None = None) -> None:
        """Probe an item (or every item) as soon as its current probe, if any, has finished."""
        for (k, n), event in self._wake.items():
            if (kind is None or k == kind) and (name is None or n == name):
                event.set()

    async def run(self) -> None:
        own = self._client is None
        client = self._client or make_client()
        try:
            async with asyncio.TaskGroup() as group:
                for server in self.config.servers.values():
                    group.create_task(
                        self._loop(("server", server.name), self._server_probe(server.name)),
                        name=f"health:server:{server.name}",
                    )
                for service in self.config.services.values():
                    group.create_task(
                        self._loop(
                            ("service", service.name), self._service_probe(service.name, client)
                        ),
                        name=f"health:service:{service.name}",
                    )
                group.create_task(self._loop(("console", ""), self._console_probe))
        finally:
            if own:
                await client.aclose()

    def start(self) -> asyncio.Task[None]:
        """Run in the background; the same task is returned on a second call."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="health-monitor")
        return self._task

    async def stop(self, grace: float | None = None) -> None:
        """Let the probes in flight finish (up to ``grace``, default the probe timeout + 1 s), so
        no probe is left running on a server, then end the loop; cancel whatever is still late."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self.refresh()
        try:
            wait = grace if grace is not None else self.config.health.timeout + 1
            await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self._stopping = False

    def _server_probe(self, name: str) -> Callable[[], Awaitable[None]]:
        server = self.config.servers[name]

        async def probe() -> None:
            result = await check_server(self.config, server, self.source)
            self._servers[name] = result
            self._publish(result)

        return probe

    def _service_probe(self, name: str, client: Client) -> Callable[[], Awaitable[None]]:
        service = self.config.services[name]

        async def probe() -> None:
            result = await check_service(self.config, service, client)
            self._services[name] = result
            self._publish(result)

        return probe

    async def _console_probe(self) -> None:
        with contextlib.suppress(Exception):  # the console's reading never stops the loop
            self._console = await console_metrics()

    def _publish(self, update: HealthUpdate) -> None:
        if self.on_update is None:
            return
        try:
            self.on_update(update)
        except Exception:  # a front end's bug must not stop the health loop
            log.exception("health update handler failed for %s", update.name)

    async def _loop(self, key: Key, probe: Callable[[], Awaitable[None]]) -> None:
        wake = self._wake.setdefault(key, asyncio.Event())
        while not self._stopping:
            wake.clear()
            self._in_flight.add(key)
            try:
                await probe()
            finally:
                self._in_flight.discard(key)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await wake.wait()
