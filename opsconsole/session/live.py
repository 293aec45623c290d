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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..controls.report import ControlsReport
from ..controls.stage import SiteStage, StageMemory
from ..controls.state import ControlState, parse_utc
from ..errors import OperationError
from ..fleet import FeedState, ServerFeed, ServicePipeline
from ..health import FleetHealth, HealthMonitor, ServiceHealth, Status
from ..stats.snapshot import Snapshot
from ..transport import ServerStatus
from .board import live_stage
from .core import Session

if TYPE_CHECKING:  # numpy is imported only once an analysis runs
    from ..detect.analysis import Analysis
    from ..detect.effects import Effects
    from ..export import Exporter

log = logging.getLogger(__name__)

EXPIRY_INTERVAL = 30.0
"""Seconds between two looks for `--ttl` blocks that fell due."""
CONTROLS_INTERVAL = 5.0
"""Seconds between two reads of a service's controls (badges, countdowns, reverts)."""
PENDING_INTERVAL = 1.0
"""…and while a change of that service awaits confirmation: a revert shows within a second."""
REVERT_SHOWN = 120.0
STAGE_INTERVAL = 1.0
"""Seconds between two updates of the recovery stages (the fleet's Stage column)."""
"""Seconds a service's row keeps saying that its servers reverted an unconfirmed change."""
SUGGEST_WATCHED = 15.0
"""Seconds between the end of one analysis of a service whose screen is open and the next."""
SLICE_KEPT = 86400.0
"""A saved slice of normal traffic (before a flood) stands for it at most this long."""
SUGGEST_FLEET = 60.0
"""…of every other service (the fleet row's excess), at least; more when analyses are slow."""
SURGE_FACTOR = 2.0
SURGE_MIN_RPS = 5.0
SURGE_AFTER = 10.0
"""A service whose live rate (last 30 s) reaches ``SURGE_FACTOR`` times, and ``SURGE_MIN_RPS``
more than, its rate when it was last analysed is analysed next, ``SURGE_AFTER`` seconds after
the last analysis at the soonest: a flood reaches the fleet's Excess column in seconds, not at
the service's next turn."""


@dataclass(frozen=True)
class SuggestEvent:
    """The last analysis of a service (``suggest``, DESIGN §10) and what its rules stop now."""

    service: str
    analysis: Analysis | None
    effects: Effects | None = None
    error: str | None = None
    """Why there is no analysis (no server's log could be read…)."""
    at: float = 0.0
    """time.time() when it was made."""

    @property
    def excess_share(self) -> float | None:
        """The share of the window's traffic that is excess (None: not known)."""
        a = self.analysis
        if a is None or a.status == "not-enough-data":
            return None
        total = a.window_requests + a.already_stopped
        return a.excess_requests / total if total and a.status == "ok" else 0.0

    @property
    def recommended(self) -> int:
        return len(self.analysis.recommended) if self.analysis is not None else 0


SuggestListener = Callable[[SuggestEvent], None]


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
        self._suggestions: dict[str, SuggestEvent] = {}
        self._watched: set[str] = set()
        self._suggest_wake = asyncio.Event()
        self._suggest_listeners: list[SuggestListener] = []
        self._due: dict[str, float] = {}
        """time.monotonic() when each service's next analysis is due."""
        self._slices: dict[str, float] = {}
        """Per service, the end of the saved slice of normal traffic (before its flood)."""
        self._analysed_rate: dict[str, tuple[float, float | None]] = {}
        """Per service, (time.monotonic(), live rate) when its last analysis began."""
        self.exporter: Exporter | None = None
        """The Prometheus endpoint, while served."""
        self.export_error: str | None = None
        """Why it could not be served (the port is taken…), else None."""
        self._stages = StageMemory(None)
        self._stage: dict[str, SiteStage] = {}
        """Per service, servers seen reverting this operator's change, not yet posted."""
        self._awaiting: dict[tuple[str, str], tuple[str, ControlState]] = {}
        """(service, server) -> the confirm deadline and the state first read with it: the
        change that awaits confirmation (a read during the server's revert already shows the
        old state beside the deadline, for as long as nginx takes to test and reload)."""

    # -- life cycle -------------------------------------------------------------------------

    async def start(
        self,
        *,
        watch_controls: bool = True,
        suggest: bool = True,
        expire: bool = True,
        export: tuple[str, int] | None = None,
    ) -> None:
        """Follow every log, probe health, watch controls; ``suggest``: analyse the traffic;
        ``expire``: remove ``--ttl`` blocks as they fall due (not read-only); ``export``, or
        else ``[console] export``: serve the numbers to Prometheus there (if that fails,
        :attr:`export_error` says why and the rest runs)."""
        if self._started:
            return
        self._started = True
        listen = export or self.config.console.export
        if listen is not None:
            from ..export import Exporter  # prometheus_client only when asked for

            exporter = Exporter(self, listen)
            try:
                exporter.start()
            except OperationError as e:
                self.export_error = str(e)
                log.info("%s", e)  # the console's server strip and the command say it
            else:
                self.exporter = exporter
        if suggest:
            self._tasks.append(asyncio.create_task(self._suggest_loop(), name="suggest"))
        for pipeline in self.pipelines.values():
            pipeline.start()
        self.monitor.start()
        if expire and not self.read_only:
            self._tasks.append(asyncio.create_task(self._expire_loop(), name="expire blocks"))
        if watch_controls:
            self._tasks.append(asyncio.create_task(self._watch_loop(), name="controls watch"))
        self._tasks.append(asyncio.create_task(self._stage_loop(), name="recovery stages"))

    async def stop(self) -> None:
        if self.exporter is not None:
            with contextlib.suppress(Exception):
                await self.exporter.stop()
            self.exporter = None
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        with contextlib.suppress(Exception):
            await self.monitor.stop(grace=1.0)
        await asyncio.gather(*(p.stop() for p in self.pipelines.values()), return_exceptions=True)
        await self.aclose()  # and the webhook posts still under way, for a bounded time

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
        if event.report is not None and event.error is None:
            self._track_awaiting(service, event.report)
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
            pending = self._awaiting.get((service, name), (before.confirm_deadline, before.state))
            timed_out = parse_utc(before.confirm_deadline) <= now
            if after.state.version != pending[1].version and timed_out and not settled_here:
                reverted.append(name)
                versions.add(f"{pending[1].version} → {after.state.version}")
        if not reverted:
            return ControlsEvent(service, report)
        message = (
            f"{', '.join(reverted)} reverted the unconfirmed change on {service} by "
            f"{'itself' if len(reverted) == 1 else 'themselves'} (version "
            f"{', '.join(sorted(versions))}): nobody confirmed it in time"
        )
        return ControlsEvent(service, report, reverted=tuple(reverted), message=message)

    def _track_awaiting(self, service: str, report: ControlsReport) -> None:
        for name, s in report.servers.items():
            key, known = (service, name), self._awaiting.get((service, name))
            if s.confirm_deadline is None or s.state is None:
                self._awaiting.pop(key, None)
            elif known is None or known[0] != s.confirm_deadline:
                self._awaiting[key] = (s.confirm_deadline, s.state)

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

    # -- suggestions ------------------------------------------------------------------------

    def notify_errors(self) -> list[str]:
        """The last failure of each webhook that failed (redacted), and why the Prometheus
        endpoint is not served if it is not, for the server strip."""
        lines = [f.line() for f in self.notifier.errors().values()]
        return lines + ([self.export_error] if self.export_error else [])

    def known_stage(self, service: str) -> SiteStage | None:
        """Where ``service`` stands in its recovery, as last seen (None: controls not read)."""
        return self._stage.get(service)

    def update_stages(self, now: float | None = None) -> None:
        """Each site's stage from its controls, probe and live traffic, dated from when this
        console first saw it so where the controls do not date it.  A change is posted to the
        webhooks once, by the first console (of every machine) that sees it: its key is the
        stage and the ten minutes it began in, claimed on the service's servers."""
        health = self.health()
        for name in self.config.services:
            snap = self.snapshot(name, top_n=1)
            found = live_stage(snap.status, health.services.get(name), self._report(name))
            if found is None:
                continue
            dated = self._stages.date(name, found, now)
            self._stage[name] = dated
            left = self._stages.previous.get(name)
            if left is None:
                continue
            key = f"stage {dated.stage.value} {(dated.since or '')[:15]}"
            self.notifier.stage_changed(
                name, left, dated.stage, dated.summary(), key=key, claim=self._claimer(name, key)
            )

    def _claimer(self, service: str, key: str) -> Callable[[], Awaitable[bool]]:
        async def first() -> bool:
            return await self.claim(service, key)

        return first

    def _report(self, service: str) -> ControlsReport | None:
        known = self._controls.get(service)
        return known.report if known is not None else None

    async def _stage_loop(self) -> None:
        while True:
            try:
                self.update_stages()
            except Exception:  # a stage never stops the console
                log.exception("recovery stages failed")
            await asyncio.sleep(STAGE_INTERVAL)

    def known_suggestions(self, service: str) -> SuggestEvent | None:
        """The last analysis of ``service`` (None before the first)."""
        return self._suggestions.get(service)

    def on_suggestions(self, listener: SuggestListener) -> None:
        self._suggest_listeners.append(listener)

    def watch_suggestions(self, service: str, on: bool = True) -> None:
        """Analyse ``service`` often while its screen is open (and now, if never yet)."""
        if on:
            self._watched.add(service)
            last = self._suggestions.get(service)
            if last is None or time.time() - last.at > SUGGEST_WATCHED:
                self._due[service] = 0.0
        else:
            self._watched.discard(service)
        self._suggest_wake.set()

    def refresh_suggestions(self, service: str) -> None:
        """Analyse ``service`` next, without waiting for its turn."""
        self._due[service] = 0.0
        self._suggest_wake.set()

    async def analyse_now(self, service: str) -> SuggestEvent:
        """One analysis of ``service``, kept and told to the listeners."""
        slice_end = self._slices.get(service)
        if slice_end is not None and time.time() - slice_end > SLICE_KEPT:
            del self._slices[service]  # too old to stand for normal traffic
            slice_end = None
        try:
            analysis, effects, feeds = await self.suggest(
                service, effects=True, baseline_end=slice_end, auto_baseline=slice_end is None
            )
            if analysis.onset is not None:
                # Normal traffic ends where the flood began: keep comparing with the half
                # hour before it (read alone, and cheap) rather than with the flood.
                self._slices[service] = analysis.onset - 60
        except Exception as e:  # shown in the panel; the loop goes on
            event = SuggestEvent(service, None, error=str(e) or type(e).__name__, at=time.time())
        else:
            errors = [f"{n}: {f.error}" for n, f in feeds.items() if f.error]
            unread = bool(errors) and len(errors) == len(feeds)
            event = SuggestEvent(
                service, None if unread else analysis, effects,
                error="; ".join(errors) or None, at=time.time(),
            )  # fmt: skip
        self._suggestions[service] = event
        for listener in list(self._suggest_listeners):
            try:
                listener(event)
            except Exception:
                log.exception("suggestions listener failed")
        return event

    def _live_rate(self, service: str, seconds: int = 30) -> float | None:
        """Requests per second over the last ``seconds`` of the live window (None until a
        server's log is followed: before, the window is still being filled)."""
        pipeline = self.pipelines[service]
        if not any(f.state is FeedState.FOLLOWING for f in pipeline.feeds.values()):
            return None
        per_second = pipeline.snapshot().per_second[-seconds:]
        return sum(per_second) / len(per_second) if per_second else 0.0

    def _surging(self, service: str, now: float) -> bool:
        """Whether the service's traffic jumped since its last analysis (see SURGE_FACTOR)."""
        last = self._analysed_rate.get(service)
        if last is None or now - last[0] < SURGE_AFTER:
            return False
        rate = self._live_rate(service)
        if rate is None:
            return False
        if last[1] is None:  # analysed before its window was filled: compare with now on
            self._analysed_rate[service] = (last[0], rate)
            return False
        return rate >= SURGE_FACTOR * last[1] and rate - last[1] >= SURGE_MIN_RPS

    async def _suggest_loop(self) -> None:
        """One analysis at a time (they are heavy): the watched services every
        ``SUGGEST_WATCHED`` seconds, the others in turn at least every ``SUGGEST_FLEET``, and a
        service whose traffic surges at once (:meth:`_surging`)."""
        while True:
            now = time.monotonic()
            for s in self.config.services:
                if self._due.get(s, 0.0) > now and self._surging(s, now):
                    self._due[s] = 0.0  # ahead of the services merely due
            due = [s for s in self.config.services if self._due.get(s, 0.0) <= now]
            due.sort(key=lambda s: (s not in self._watched, self._due.get(s, 0.0)))
            if not due:
                self._suggest_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._suggest_wake.wait(), 1.0)
                continue
            service = due[0]
            began = time.monotonic()
            self._analysed_rate[service] = (began, self._live_rate(service))
            await self.analyse_now(service)
            took = time.monotonic() - began
            every = SUGGEST_WATCHED if service in self._watched else max(SUGGEST_FLEET, 10 * took)
            self._due[service] = time.monotonic() + every
            if service in self._watched:
                self._due[service] = time.monotonic() + max(SUGGEST_WATCHED, 2 * took)

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
