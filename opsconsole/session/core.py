"""The one service layer both front ends call (DESIGN §2): every intent, the same way.

:class:`Session` owns what the CLI and the TUI ask of the fleet's controls: connect (one policy for
an unreachable server), read the controls, preview an intent, apply exactly what was previewed (or
refuse when someone changed the service since), confirm or roll back, expire due blocks, read the
audit timeline.  Progress comes back as typed :class:`~opsconsole.controls.progress.Progress`
events and results as :class:`~opsconsole.controls.report.ApplyReport` values whose states are
the core's enums; a front end formats them and decides nothing.

The connection policy: every server of the service is connected in parallel within
``connect_timeout``; one that cannot be reached stands as an
:class:`~opsconsole.transport.base.Unreachable` transport, so the intent reports that server's
failure in its own words while the others proceed — the same in both front ends.

Imports the core only (never a front end, never Textual).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config import Config
from ..controls import audit as audit_trail
from ..controls.apply import apply_change
from ..controls.edits import Edit
from ..controls.expiry import expire_due
from ..controls.preview import preview_settle
from ..controls.progress import OnProgress, Stage, emit
from ..controls.remote import claim, read_controls, take_unposted
from ..controls.report import ApplyReport, ControlsReport, Unposted
from ..controls.settle import Settle, settle_change
from ..controls.setup import SetupReport, setup_service
from ..controls.state import ControlState, parse_utc
from ..controls.timeline import Timeline, collect_timeline, local_events
from ..durations import format_duration
from ..errors import OperationError, UsageError
from ..fleet import Fleet, ServerFeed
from ..fleet import Progress as HistoryProgress
from ..health import FleetHealth, check_fleet
from ..health.check import Progress as HealthProgress
from ..notify import EXIT_WAIT, DeliveryFailure, Kind, Notifier
from ..text import unprefixed
from ..transport.base import Transport, TransportError, Unreachable

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # numpy is imported only by the commands that analyse
    from ..detect.analysis import Analysis
    from ..detect.effects import Effects
    from ..report import OnStage, Report

LONG_BASELINE = 7200.0
"""The baseline compared with when the default one looks flooded (the flood is older)."""
CONNECT_ATTEMPTS = 2
"""Connection attempts per server for a one-shot command (the CLI); a live session retries on."""

Intent = Edit | Settle
"""What an operator asks for: an edit of the controls, or to confirm / roll back."""


class ReadOnlyError(UsageError):
    """``console.read_only = true``: the session refuses every change (previews still work)."""


@dataclass(frozen=True)
class Preview:
    """What an intent would do on every server, as shown to the operator before asking."""

    service: str
    intent: Intent
    report: ApplyReport
    """The dry run: per server ``dry-run`` (with its diff), ``unchanged``, ``nothing`` or
    ``failed`` (unreachable, unreadable)."""
    confirm_within: float | None = None

    @property
    def versions(self) -> dict[str, int | None]:
        """The state version each server showed: the apply is bound to them."""
        return {name: r.before_version for name, r in self.report.results.items()}

    @property
    def changes(self) -> list[str]:
        """The servers the intent would change."""
        return self.report.would_change

    @property
    def action(self) -> str:
        return self.report.action


class Session:
    """The controls of a configured fleet, for one operator, over one connection pool."""

    def __init__(
        self,
        config: Config,
        *,
        fleet: Fleet | None = None,
        live: bool = False,
        audit_trail_path: Path | None = None,
        connect_timeout: float = 15.0,
    ) -> None:
        """``live``: the pool keeps retrying unreachable servers (the console); otherwise each
        server gets ``CONNECT_ATTEMPTS`` (a one-shot command).  ``connect_timeout``: how long
        an intent waits for a server before it counts as unreachable."""
        self.config = config
        self.connect_timeout = connect_timeout
        self.fleet = fleet or Fleet(
            config,
            max_attempts=None if live else CONNECT_ATTEMPTS,
            connect_timeout=min(connect_timeout, 10.0),
        )
        self.audit_path = audit_trail_path or audit_trail.default_trail()
        self.config_arg: str | None = None
        """The ``--config`` the operator gave, repeated in the commands the tool prints."""
        self.settled: dict[str, float] = {}
        """Service -> time.monotonic() of this session's last confirm or rollback (so a watch
        does not take our own rollback for a server reverting by itself)."""
        self.notifier = Notifier.for_config(config, audit_trail=self.audit_path)
        """Posts every intent's result to the ``[notify]`` webhooks (in the background)."""

    @property
    def operator(self) -> str:
        return self.config.console.operator

    @property
    def read_only(self) -> bool:
        return self.config.console.read_only

    async def close(self) -> None:
        await self.fleet.close()

    async def aclose(self, notify_wait: float = EXIT_WAIT) -> list[DeliveryFailure]:
        """Close the connections, then wait at most ``notify_wait`` seconds for the webhook
        deliveries still pending; returns each failing webhook's last error (for stderr)."""
        await self.close()
        return await self.notifier.aclose(notify_wait)

    # -- connections ------------------------------------------------------------------------

    def servers_of(self, service: str) -> list[str]:
        return list(self.config.service(service).servers)

    async def connect(
        self, servers: Iterable[str], on_progress: OnProgress | None = None
    ) -> dict[str, Transport]:
        """A transport for each server: connected, or :class:`Unreachable` with the reason."""
        names = list(dict.fromkeys(servers))
        for name in names:
            emit(on_progress, name, Stage.CONNECTING)
        reached = await self.fleet.reach(names, timeout=self.connect_timeout)
        out: dict[str, Transport] = {}
        for name, r in reached.items():
            if isinstance(r, TransportError):
                emit(on_progress, name, Stage.UNREACHABLE, unprefixed(str(r), name))
                out[name] = Unreachable(name, r)
            else:
                emit(on_progress, name, Stage.CONNECTED)
                out[name] = r
        return out

    async def _service(self, service: str, on_progress: OnProgress | None) -> dict[str, Transport]:
        return await self.connect(self.servers_of(service), on_progress)

    # -- reads ------------------------------------------------------------------------------

    async def controls(self, service: str) -> ControlsReport:
        """The control state every server of ``service`` holds (an unreachable one says why).

        Reverts that the servers' commit-confirmed timers made and nobody announced yet are
        announced now, when webhooks are configured: whoever reads the controls first (a
        console, ``check``, ``controls``…, on any machine) takes them from the servers and
        posts them, once."""
        transports = await self._service(service, None)
        report = await read_controls(self.config, service, transports)
        if self.notifier.enabled and any(s.unposted for s in report.servers.values()):
            await self._announce_reverts(report, transports)
        return report

    async def _announce_reverts(
        self, report: ControlsReport, transports: Mapping[str, Transport]
    ) -> None:
        service = report.service
        now = time.time()
        for s in report.servers.values():
            if s.confirm_deadline and parse_utc(s.confirm_deadline).timestamp() + 30 > now:
                return  # another server's timer is still to fire: announced together, after it
        svc = self.config.service(service)
        by_change: dict[tuple[int, str | None], dict[str, Unposted]] = {}
        for s in report.servers.values():
            for u in s.unposted:
                by_change.setdefault((u.before_version, u.reverted.updated_at), {})[u.server] = u
        for (before, updated_at), group in by_change.items():
            # Every console that reads now sees these: the one that claims them posts them.
            if await self.claim(service, f"revert {before} {updated_at}"):
                states = {
                    n: (u.reverted, report.servers[n].state or ControlState())
                    for n, u in sorted(group.items())
                }
                self.notifier.reverted(service, states, when=min(u.time for u in group.values()))
            for u in group.values():
                transport = transports.get(u.server)
                if transport is None or isinstance(transport, Unreachable):
                    continue
                try:
                    await take_unposted(transport, svc, self.config.servers[u.server], [u.name])
                except (OperationError, TransportError) as e:
                    log.info("cannot clear the reverts of %s on %s: %s", service, u.server, e)

    async def claim(self, service: str, key: str) -> bool:
        """Whether this console is the first, on any machine, to claim ``key`` for ``service``
        (on the first of its servers that answers): the one that announces an event that
        several consoles see.  True when no server answers (better twice than never)."""
        svc = self.config.service(service)
        digest = hashlib.sha256(f"{service} {key}".encode()).hexdigest()[:32]
        for name in svc.servers:
            [transport] = (await self.connect([name])).values()
            if isinstance(transport, Unreachable):
                continue
            try:
                return await claim(transport, svc, self.config.servers[name], digest)
            except (OperationError, TransportError) as e:
                log.info("cannot claim %r on %s: %s", key, name, e)
        return True

    async def timeline(
        self,
        services: Iterable[str] | None = None,
        *,
        since: datetime | None = None,
        local_only: bool = False,
        max_bytes: int | None = None,
    ) -> Timeline:
        """Every server's audit trail merged with the local one (all consoles' changes, the
        servers' own reverts); a server that cannot be read is named in ``errors``."""
        names = list(services) if services is not None else list(self.config.services)
        if local_only:
            return await collect_timeline(
                self.config, {}, services=names, since=since, trail=self.audit_path, remote=False
            )
        servers = [n for s in names for n in self.servers_of(s)]
        reached = await self.fleet.reach(dict.fromkeys(servers), timeout=self.connect_timeout)
        kwargs: dict[str, Any] = {} if max_bytes is None else {"max_bytes": max_bytes}
        return await collect_timeline(
            self.config, reached, services=names, since=since, trail=self.audit_path, **kwargs
        )

    async def setup(self, service: str) -> SetupReport:
        """``setup SERVICE``: create empty snippets (not in read-only mode: check only) and let
        nginx prove it includes them."""
        transports = await self._service(service, None)
        return await setup_service(self.config, service, transports, create=not self.read_only)

    async def check(self, on_progress: HealthProgress | None = None) -> FleetHealth:
        """``check``: every server and service probed once, in parallel."""
        return await check_fleet(self.config, self.fleet.pool, on_progress=on_progress)

    async def suggest(
        self,
        service: str,
        *,
        window: float = 600.0,
        baseline: float = 1800.0,
        budget: float = 0.005,
        progress: HistoryProgress | None = None,
        effects: bool = False,
        baseline_end: float | None = None,
        auto_baseline: bool = False,
    ) -> tuple[Analysis, Effects | None, dict[str, ServerFeed]]:
        """What separates the attack from real visitors on ``service`` now (``suggest``, DESIGN
        §10): its servers' logs read back over ``window + baseline``, the controls in force read
        so that what they already refuse is set aside, then the analysis in the fleet's worker
        thread.  Returns the analysis, with ``effects`` what each rule in force stopped in the
        last minute (from the same read: the console's panel and fleet row), and per server how
        its log read went.

        ``baseline_end``: the baseline is the ``baseline`` before it (a saved slice from before
        the flood; only it and the window are read).  ``auto_baseline``: when the baseline looks
        flooded itself, compare with the ``LONG_BASELINE`` before the window instead (cut where
        the flood began), and say so."""
        from ..detect import RequestLog, analyze, detect_format
        from ..detect.effects import rule_effects

        svc = self.config.service(service)
        span = window + baseline
        log = RequestLog(detect_format(svc.log_format))
        now = time.time()
        if baseline_end is not None and baseline_end < now - window:
            log.limits = (baseline_end - baseline, baseline_end)
            feeds = await self.fleet.read_into(
                service, baseline_end - baseline, log, progress=progress, until=baseline_end
            )
            log.limits = (now - window, float("inf"))
            recent = await self.fleet.read_into(service, now - window, log, progress=progress)
            for name, feed in recent.items():
                if feed.error and not feeds[name].error:
                    feeds[name] = feed
        else:
            baseline_end = None
            log.limits = (now - span, float("inf"))
            feeds = await self.fleet.read_into(service, now - span, log, progress=progress)
        latest = log.latest()
        if baseline_end is None and latest is not None and latest < now - window and log.rows:
            # The log went quiet: read the span before its newest line instead.
            log = RequestLog(detect_format(svc.log_format))
            log.limits = (latest - span, float("inf"))
            feeds = await self.fleet.read_into(service, latest - span, log, progress=progress)
        state = None
        try:
            report = await self.controls(service)
            states = [s.state for s in report.servers.values() if s.state is not None]
            state = states[0] if states else None
        except Exception:  # the analysis does not need the controls; it says less without them
            state = None
        hosts = [urlsplit(svc.url).hostname or ""] if svc.url else []

        def work() -> tuple[Analysis, Effects | None]:
            result = analyze(
                log, service, window=window, baseline=baseline, budget=budget, now=now,
                own_hosts=[h for h in hosts if h], state=state, config_arg=self.config_arg,
                baseline_end=baseline_end,
            )  # fmt: skip
            stops = rule_effects(log, state, now=now) if effects and state is not None else None
            return result, stops

        result, stops = await self.fleet.work(work)
        if auto_baseline and result.baseline_flooded and baseline < LONG_BASELINE:
            # Read only what the longer baseline adds, older than what was read.
            first = now - span
            log.limits = (now - window - LONG_BASELINE, first)
            older = await self.fleet.read_into(
                service, now - window - LONG_BASELINE, log, progress=progress, until=first
            )
            for name, feed in older.items():
                if feed.error and not feeds[name].error:
                    feeds[name] = feed
            short, baseline = baseline, LONG_BASELINE
            longer, stops = await self.fleet.work(work)
            note = (
                f"the {format_duration(short)} before the window looked flooded too: "
                f"compared with the {format_duration(LONG_BASELINE)} before it instead"
            )
            result = replace(longer, notes=(note, *longer.notes))
        return result, stops, feeds

    async def effects(
        self, service: str, state: ControlState | None = None, *, span: float = 60.0
    ) -> tuple[Effects, dict[str, ServerFeed]]:
        """What each rule in force on ``service`` refused in the last ``span`` seconds of its
        servers' logs (``state``: the controls, read when not given)."""
        from ..detect import RequestLog, detect_format
        from ..detect.effects import rule_effects

        svc = self.config.service(service)
        if state is None:
            report = await self.controls(service)
            states = [s.state for s in report.servers.values() if s.state is not None]
            state = states[0] if states else ControlState()
        log = RequestLog(detect_format(svc.log_format))
        now = time.time()
        feeds = await self.fleet.read_into(service, now - span - 2, log)
        chosen = state
        effects = await self.fleet.work(lambda: rule_effects(log, chosen, span=span, now=now))
        return effects, feeds

    async def report(
        self,
        services: Sequence[str] | None = None,
        *,
        since: float = 86400.0,
        now: float | None = None,
        progress: HistoryProgress | None = None,
        on_stage: OnStage | None = None,
        read_limit: int | None = None,
    ) -> Report:
        """``report``: the incident of the last ``since`` seconds (DESIGN §7), per service —
        its servers' logs read as ``stats`` reads them (sampled past ``read_limit`` bytes of a
        server's log), every server's audit trail merged with the local one, the controls in
        force and what ``suggest`` still recommends.  A server that cannot be read is named in
        the report; the rest is reported."""
        from datetime import UTC

        from ..errors import OpsConsoleError
        from ..report import READ_LIMIT, ServiceFacts, build_report, read_traffic
        from ..report.incident import AROUND
        from .board import site_stage_of

        names = list(services) if services is not None else list(self.config.services)
        end = int(time.time() if now is None else now)
        start = end - int(since)
        stage = on_stage or (lambda _what: None)
        stage("reading the audit trails")
        trail = await self.timeline(names, since=datetime.fromtimestamp(start, UTC))
        facts = []
        for name in names:
            stage(f"{name}: reading the logs")
            traffic = await read_traffic(
                self.fleet, self.config.service(name), start - AROUND, end,
                read_limit=read_limit or READ_LIMIT, progress=progress,
            )  # fmt: skip
            stage(f"{name}: reading the controls")
            controls = await self.controls(name)
            analysis: Analysis | str | None = None
            if any(s.error is None for s in traffic.servers.values()):
                stage(f"{name}: what suggest recommends now")
                try:
                    found = await self.suggest(name, auto_baseline=True, progress=progress)
                    analysis = found[0]
                except (OpsConsoleError, TransportError) as e:
                    analysis = str(e)
            # Where it stands now, from its controls and its log (no probe: the report counts
            # what the site was sent, and a probe of its own would be one more request).
            now_stage = await site_stage_of(self, name, controls=controls)
            facts.append(ServiceFacts(name, traffic, controls, analysis, now_stage))
        return await self.fleet.work(
            lambda: build_report(
                facts, trail.events, since=since, start=start, end=end, errors=trail.errors
            )
        )

    def local_events(self, services: Iterable[str] | None = None) -> list[dict[str, Any]]:
        names = list(services) if services is not None else list(self.config.services)
        return local_events(self.config, names, self.audit_path)

    # -- intents ----------------------------------------------------------------------------

    def refuse_if_read_only(self) -> None:
        """Raise :class:`ReadOnlyError` in safe mode (front ends call it early, to say so)."""
        if self.read_only:
            raise ReadOnlyError(
                f"{self.config.path}: console.read_only = true: actions are refused (safe "
                "mode); previews still work, and `read_only = false` allows changes"
            )

    async def preview(
        self,
        service: str,
        intent: Intent,
        *,
        confirm_within: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> Preview:
        """What ``intent`` would do on every server of ``service``; changes nothing."""
        transports = await self._service(service, on_progress)
        if isinstance(intent, Settle):
            report = await preview_settle(
                self.config, service, transports, intent, on_progress=on_progress
            )
        else:
            report = await apply_change(
                self.config, service, transports, intent, operator=self.operator,
                dry_run=True, confirm_within=confirm_within, on_progress=on_progress,
            )  # fmt: skip
        return Preview(service, intent, report, confirm_within)

    async def apply(
        self,
        preview: Preview,
        *,
        confirm_within: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> ApplyReport:
        """Apply what ``preview`` showed, on the servers where it showed a change, or refuse on
        a server whose controls changed since ("changed by … re-read").  The other servers
        (already so, or not previewed: unreachable) are reported as the preview found them."""
        window = preview.confirm_within if confirm_within is None else confirm_within
        targets = preview.changes
        if not targets:
            return preview.report
        report = await self.execute(
            preview.service,
            preview.intent,
            confirm_within=window,
            expected_versions={n: preview.versions[n] for n in targets},
            servers=targets,
            on_progress=on_progress,
        )
        results = {
            name: report.results.get(name, previewed)
            for name, previewed in preview.report.results.items()
        }
        return replace(report, results=results)

    async def execute(
        self,
        service: str,
        intent: Intent,
        *,
        confirm_within: float | None = None,
        expected_versions: Mapping[str, int | None] | None = None,
        servers: Sequence[str] | None = None,
        on_progress: OnProgress | None = None,
    ) -> ApplyReport:
        """Carry out ``intent`` without a preview (``--yes``); ``expected_versions`` still
        binds it to what the operator saw (``--expect-version``).  ``servers``: only these
        servers of the service."""
        self.refuse_if_read_only()
        names = list(servers) if servers is not None else self.servers_of(service)
        transports = await self.connect(names, on_progress)
        mark = self.notifier.mark()
        if isinstance(intent, Settle):
            self.settled[service] = time.monotonic()
            try:
                report = await settle_change(
                    intent, self.config, service, transports, operator=self.operator,
                    audit_trail=self.audit_path, expected_versions=expected_versions,
                    on_progress=on_progress, servers=names,
                )  # fmt: skip
            finally:
                self.settled[service] = time.monotonic()
        else:
            report = await apply_change(
                self.config, service, transports, intent, operator=self.operator,
                confirm_within=confirm_within, expected_versions=expected_versions,
                audit_trail=self.audit_path, on_progress=on_progress, servers=names,
            )  # fmt: skip
        kind = Kind(intent.value) if isinstance(intent, Settle) else Kind.CHANGE
        self.notifier.changed(report, kind, mark=mark)  # posted once, in the background
        return report

    async def expire_due(self, service: str) -> ApplyReport | None:
        """Remove the blocks of ``service`` that fell due (None: none was)."""
        if self.read_only:
            return None
        transports = await self._service(service, None)
        reachable = {n: t for n, t in transports.items() if not isinstance(t, Unreachable)}
        if len(reachable) != len(transports):
            return None  # tried again next round, when every server answers
        mark = self.notifier.mark()
        report = await expire_due(
            self.config, service, transports, self.operator, audit_trail=self.audit_path
        )
        if report is not None:
            self.notifier.changed(report, Kind.EXPIRY, mark=mark)
        return report


__all__ = ["CONNECT_ATTEMPTS", "Intent", "Preview", "ReadOnlyError", "Session"]
