"""Where the screens get their data and send their intents: the one seam between UI and core.

:class:`LiveSource` holds what the console runs on — a :class:`~opsconsole.fleet.Fleet`, one
:class:`~opsconsole.fleet.ServicePipeline` per service and a
:class:`~opsconsole.health.HealthMonitor` — and exposes plain reads (snapshots, link and feed
states, health) and intents (preview, apply, confirm, rollback) that call the core functions of
:mod:`opsconsole.controls`.  Screens never see a transport, a file or a parser.

:class:`ConsoleSource` is the protocol the app needs; the snapshot tests give the app an
in-process fake with fixed data instead.  No Textual here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..config import Config
from ..controls import (
    ApplyReport,
    ControlsReport,
    Edit,
    Timeline,
    apply_change,
    collect_timeline,
    confirm_change,
    expire_due,
    local_events,
    read_controls,
    rollback_change,
)
from ..controls import audit as audit_trail
from ..fleet import Fleet, ServerFeed, ServicePipeline
from ..health import FleetHealth, HealthMonitor
from ..stats.snapshot import Snapshot
from ..transport import ServerStatus

log = logging.getLogger(__name__)

TIMELINE_BYTES = 1 << 20
"""The audit screen reads the last MiB of each server's trail (thousands of events)."""

EXPIRY_INTERVAL = 30.0
"""Seconds between two looks for `--ttl` blocks that fell due."""

Progress = Callable[[str, str], None]
"""progress(server, stage): "connected", "applying" — shown per server while an action runs."""


class ConsoleSource(Protocol):
    """What the app reads and asks for.  Reads are cheap and synchronous (in-memory state);
    anything that talks to a server is a coroutine the app runs in a worker."""

    config: Config

    @property
    def read_only(self) -> bool: ...

    @property
    def operator(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def services(self) -> list[str]: ...

    def snapshot(self, service: str, top_n: int = 10) -> Snapshot: ...

    def feeds(self, service: str) -> dict[str, ServerFeed]: ...

    def links(self) -> dict[str, ServerStatus]: ...

    def health(self) -> FleetHealth: ...

    def refresh_health(self) -> None: ...

    def audit(self, service: str | None = None) -> list[dict[str, Any]]: ...

    async def timeline(self) -> Timeline: ...

    async def controls(self, service: str) -> ControlsReport: ...

    async def preview(self, service: str, edit: Edit) -> ApplyReport: ...

    async def apply(
        self,
        service: str,
        edit: Edit,
        *,
        confirm_within: float | None = None,
        progress: Progress | None = None,
    ) -> ApplyReport: ...

    async def settle(
        self, service: str, mode: str, *, progress: Progress | None = None
    ) -> ApplyReport: ...


class LiveSource:
    """The live fleet of a config: connections, log pipelines, health loop, controls."""

    def __init__(
        self, config: Config, *, audit_path: Path | None = None, connect_timeout: float = 15.0
    ) -> None:
        """``connect_timeout``: how long an action waits for a server before saying which one
        cannot be reached (the pool keeps retrying in the background)."""
        self.config = config
        self.connect_timeout = connect_timeout
        self.fleet = Fleet(config)
        self.pipelines: dict[str, ServicePipeline] = {
            name: self.fleet.pipeline(name) for name in config.services
        }
        self.monitor = HealthMonitor(config, self.fleet.pool)
        self.audit_path = audit_path or audit_trail.default_trail()
        self._started = False
        self._expiry: asyncio.Task[None] | None = None

    @property
    def read_only(self) -> bool:
        return self.config.console.read_only

    @property
    def operator(self) -> str:
        return self.config.console.operator

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for pipeline in self.pipelines.values():
            pipeline.start()
        self.monitor.start()
        if not self.read_only:
            self._expiry = asyncio.create_task(self._expire_blocks(), name="expire blocks")

    async def _expire_blocks(self, every: float = EXPIRY_INTERVAL) -> None:
        """A running console removes `--ttl` blocks when they fall due (DESIGN §5), each service
        in its turn; an unreachable server is tried again next round."""
        while True:
            await asyncio.sleep(every)
            for service in self.config.services:
                try:
                    transports = await self.fleet.transports(service, timeout=10.0)
                    await expire_due(
                        self.config, service, transports, self.operator,
                        audit_trail=self.audit_path,
                    )  # fmt: skip
                except Exception as e:  # a failed round must not end the loop
                    log.warning("expiring blocks of %s failed: %s", service, e)

    async def stop(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._expiry
        with contextlib.suppress(Exception):
            await self.monitor.stop(grace=1.0)
        await asyncio.gather(*(p.stop() for p in self.pipelines.values()), return_exceptions=True)
        await self.fleet.close()

    # -- reads (in memory) ------------------------------------------------------------------

    def services(self) -> list[str]:
        return list(self.config.services)

    def snapshot(self, service: str, top_n: int = 10) -> Snapshot:
        return self.pipelines[service].snapshot(top_n=top_n)

    def feeds(self, service: str) -> dict[str, ServerFeed]:
        return dict(self.pipelines[service].feeds)

    def links(self) -> dict[str, ServerStatus]:
        return self.fleet.pool.statuses()

    def health(self) -> FleetHealth:
        return self.monitor.snapshot()

    def refresh_health(self) -> None:
        self.monitor.refresh()

    def audit(self, service: str | None = None) -> list[dict[str, Any]]:
        services = [service] if service is not None else list(self.config.services)
        return local_events(self.config, services, self.audit_path)

    async def timeline(self, timeout: float = 5.0) -> Timeline:
        """Every server's audit trail (all consoles' changes, the servers' own reverts and
        recoveries) merged with the local trail; a server not reachable within ``timeout`` is
        named in ``errors`` and the others are still read."""
        servers = sorted({n for svc in self.config.services.values() for n in svc.servers})
        return await collect_timeline(
            self.config,
            await self.fleet.reach(servers, timeout=timeout),
            services=list(self.config.services),
            since=None,
            trail=self.audit_path,
            max_bytes=TIMELINE_BYTES,
        )

    # -- intents (over SSH, run in workers) -------------------------------------------------

    async def controls(self, service: str) -> ControlsReport:
        transports = await self.fleet.transports(service, timeout=self.connect_timeout)
        return await read_controls(self.config, service, transports)

    async def preview(self, service: str, edit: Edit) -> ApplyReport:
        transports = await self.fleet.transports(service, timeout=self.connect_timeout)
        return await apply_change(
            self.config, service, transports, edit, operator=self.operator, dry_run=True
        )

    async def apply(
        self,
        service: str,
        edit: Edit,
        *,
        confirm_within: float | None = None,
        progress: Progress | None = None,
    ) -> ApplyReport:
        transports = await self._connect(service, progress)
        return await apply_change(
            self.config,
            service,
            transports,
            edit,
            operator=self.operator,
            confirm_within=confirm_within,
            audit_trail=self.audit_path,
        )

    async def settle(
        self, service: str, mode: str, *, progress: Progress | None = None
    ) -> ApplyReport:
        """``mode`` "confirm" keeps a commit-confirmed change, "rollback" reverts it."""
        transports = await self._connect(service, progress)
        settle = confirm_change if mode == "confirm" else rollback_change
        return await settle(
            self.config, service, transports, operator=self.operator, audit_trail=self.audit_path
        )

    async def _connect(self, service: str, progress: Progress | None) -> dict[str, Any]:
        def connected(server: str) -> None:
            if progress is not None:
                progress(server, "connected")

        transports = await self.fleet.transports(
            service, timeout=self.connect_timeout, on_connected=connected
        )
        if progress is not None:
            for server in transports:
                progress(server, "applying")
        return transports
