"""What a running console holds: the session, plus live traffic, health and a watch on controls.

:class:`LiveSession` is the core the TUI runs on (``opsconsole`` and ``opsconsole demo``): one
:class:`~opsconsole.fleet.ServicePipeline` per service (snapshots published once a second from
the fleet's worker thread), the :class:`~opsconsole.health.HealthMonitor` loop, the expiry of
``--ttl`` blocks when they fall due (DESIGN §5), and a watch that reads every service's controls
every few seconds — every second while a change awaits confirmation — and tells its listeners
(:class:`ControlsEvent`), including when a server reverted an unconfirmed change by itself.  Reads
(snapshots, feeds, links, health) are cheap and synchronous; intents are the
:class:`~.core.Session`'s coroutines.  Never imports a front end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..config import Config
from ..controls.report import ControlsReport
from ..controls.state import parse_utc
from ..fleet import ServerFeed, ServicePipeline
from ..health import FleetHealth, HealthMonitor, ServiceHealth, Status
from ..stats.snapshot import Snapshot
from ..transport import ServerStatus
from .core import Session

log = logging.getLogger(__name__)

EXPIRY_INTERVAL = 30.0
"""Seconds between two looks for `--ttl` blocks that fell due."""
CONTROLS_INTERVAL = 5.0
"""Seconds between two reads of a service's controls (badges, countdowns, reverts)."""
PENDING_INTERVAL = 1.0
"""…and while a change of that service awaits confirmation: a revert shows within a second."""
REVERT_SHOWN = 120.0
"""Seconds a service's row keeps saying that its servers reverted an unconfirmed change."""


@dataclass(frozen=True)
class ControlsEvent:
    """A service's controls as just read, and what changed that the operator must hear of."""

    service: str
    report: ControlsReport | None
    """None when no server could be read this time (``error`` says why)."""
    error: str | None = None
    reverted: tuple[str, ...] = ()
    """Servers that reverted the change awaiting confirmation by themselves since the last read
    (their timer ran out)."""
    message: str | None = None
    """For people, when there is news: "web1, web2 reverted the unconfirmed change …"."""
    reverted_at: float | None = None
    """time.time() of the last such revert, kept for ``REVERT_SHOWN`` seconds (the row says so)."""

    @property
    def maintenance(self) -> bool | None:
        """Whether the service is in maintenance (None: not known yet)."""
        if self.report is None:
            return None
        states = [s.state for s in self.report.servers.values() if s.state is not None]
        return any(s.maintenance.on for s in states) if states else None

    def deadline(self) -> str | None:
        """The earliest confirm deadline of the service's servers."""
        if self.report is None:
            return None
        found = [s.confirm_deadline for s in self.report.servers.values() if s.confirm_deadline]
        return min(found) if found else None


ControlsListener = Callable[[ControlsEvent], None]


class LiveSession(Session):
    """The live fleet of a config: connections, log pipelines, health loop, controls watch."""

    def __init__(
        self,
        config: Config,
        *,
        audit_trail_path: Path | None = None,
        connect_timeout: float = 15.0,
        top_n: int = 20,
    ) -> None:
        super().__init__(
            config, live=True, audit_trail_path=audit_trail_path, connect_timeout=connect_timeout
        )
        self.pipelines: dict[str, ServicePipeline] = {
            name: self.fleet.pipeline(name, top_n=top_n) for name in config.services
        }
        self.monitor = HealthMonitor(config, self.fleet.pool)
        self._controls: dict[str, ControlsEvent] = {}
        self._listeners: list[ControlsListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, *, watch_controls: bool = True) -> None:
        if self._started:
            return
        self._started = True
        for pipeline in self.pipelines.values():
            pipeline.start()
        self.monitor.start()
        if not self.read_only:
            self._tasks.append(asyncio.create_task(self._expire_loop(), name="expire blocks"))
        if watch_controls:
            self._tasks.append(asyncio.create_task(self._watch_loop(), name="controls watch"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        with contextlib.suppress(Exception):
            await self.monitor.stop(grace=1.0)
        await asyncio.gather(*(p.stop() for p in self.pipelines.values()), return_exceptions=True)
        await self.close()

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
        """Health as probed, with a site in maintenance judged as such (its 503 is on purpose,
        not an outage)."""
        fleet = self.monitor.snapshot()
        services = dict(fleet.services)
        for name, h in fleet.services.items():
            known = self._controls.get(name)
            if known is not None and known.maintenance:
                services[name] = in_maintenance(h)
        return replace(fleet, services=services)

    def refresh_health(self) -> None:
        self.monitor.refresh()

    def known_controls(self, service: str) -> ControlsEvent | None:
        """The last read of ``service``'s controls (None before the first)."""
        return self._controls.get(service)

    # -- the controls watch -----------------------------------------------------------------

    def on_controls(self, listener: ControlsListener) -> None:
        self._listeners.append(listener)

    async def refresh_controls(self, service: str) -> ControlsEvent:
        """Read ``service``'s controls now, tell the listeners, and return what was read."""
        try:
            report = await asyncio.wait_for(self.controls(service), 30.0)
        except Exception as e:  # shown as the row's badge; the watch goes on
            event = ControlsEvent(service, None, str(e) or type(e).__name__)
        else:
            event = self._compare(service, report)
        old = self._controls.get(service)
        if event.report is None and old is not None and old.report is not None:
            event = replace(event, report=old.report)  # keep the last known
        if event.reverted:
            event = replace(event, reverted_at=time.time())
        elif old is not None and old.reverted_at and time.time() - old.reverted_at < REVERT_SHOWN:
            event = replace(event, reverted_at=old.reverted_at)
        self._controls[service] = event
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a front end's bug must not stop the watch
                log.exception("controls listener failed")
        return event

    def _compare(self, service: str, report: ControlsReport) -> ControlsEvent:
        old = self._controls.get(service)
        if old is None or old.report is None:
            return ControlsEvent(service, report)
        now = datetime.now(UTC)
        settled_here = self.settled.get(service, 0.0) > time.monotonic() - 2 * CONTROLS_INTERVAL
        reverted: list[str] = []
        versions: set[str] = set()
        for name, before in old.report.servers.items():
            after = report.servers.get(name)
            if before.confirm_deadline is None or before.state is None or after is None:
                continue
            if after.state is None or after.confirm_deadline is not None:
                continue
            timed_out = parse_utc(before.confirm_deadline) <= now
            if after.state.version != before.state.version and timed_out and not settled_here:
                reverted.append(name)
                versions.add(f"{before.state.version} → {after.state.version}")
        if not reverted:
            return ControlsEvent(service, report)
        message = (
            f"{', '.join(reverted)} reverted the unconfirmed change on {service} by "
            f"{'itself' if len(reverted) == 1 else 'themselves'} (version "
            f"{', '.join(sorted(versions))}): nobody confirmed it in time"
        )
        return ControlsEvent(service, report, reverted=tuple(reverted), message=message)

    async def _watch_loop(self) -> None:
        gate = asyncio.Semaphore(8)
        due: dict[str, float] = {}

        async def one(service: str) -> None:
            async with gate:
                event = await self.refresh_controls(service)
            pending = event.deadline() is not None
            due[service] = time.monotonic() + (PENDING_INTERVAL if pending else CONTROLS_INTERVAL)

        while True:
            now = time.monotonic()
            ready = [s for s in self.config.services if due.get(s, 0.0) <= now]
            if ready:
                await asyncio.gather(*(one(s) for s in ready))
            await asyncio.sleep(0.5)

    async def _expire_loop(self, every: float = EXPIRY_INTERVAL) -> None:
        """A running console removes `--ttl` blocks when they fall due (DESIGN §5), each service
        in its turn; a service with an unreachable server is tried again next round."""
        while True:
            await asyncio.sleep(every)
            for service in self.config.services:
                try:
                    await self.expire_due(service)
                except Exception as e:  # a failed round must not end the loop
                    log.warning("expiring blocks of %s failed: %s", service, e)


def in_maintenance(health: ServiceHealth) -> ServiceHealth:
    """A site in maintenance mode: its 503 is the maintenance page, not an outage."""
    probe = health.probe
    if probe is None or probe.http_status != 503:
        return health
    return replace(health, status=Status.MAINTENANCE, reasons=("maintenance mode (HTTP 503)",))
