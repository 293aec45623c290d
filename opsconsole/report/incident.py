"""The incident report's facts: per service its timeline, degraded periods, actions, controls.

:func:`build_report` is called by :meth:`opsconsole.session.Session.report` (in the fleet's
worker thread) with what it gathered — per service the logs read (:class:`~.traffic.LogTraffic`),
the controls every server holds now and ``suggest``'s analysis — and the merged audit timeline of
every server; it returns a :class:`Report`, which the renderers (:mod:`.markdown`, :mod:`.html`)
and ``report --json`` (:meth:`Report.to_dict`) show.  A front end formats it; every verdict
(degraded or not, estimated or not) is made here.  Pure logic: standard library and the core.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..controls.report import ControlsReport
from ..controls.stage import SiteStage
from ..controls.state import ControlState, utc_text
from ..durations import format_duration
from .traffic import LogTraffic, Minute, ServerRead, Window

if TYPE_CHECKING:
    from ..detect.analysis import Analysis

AROUND = 300
"""Seconds of traffic compared before and after each action."""
MIN_JUDGED = 10
"""A minute with fewer requests says too little to be called degraded or recovered."""
ERROR_SHARE = 0.05
"""A minute is degraded when at least this share of its requests got a 5xx answer…"""
REFUSED_SHARE = 0.2
"""…or at least this share was refused (403, 444, 429)."""
RECOVERY_MINUTES = 2
"""Consecutive healthy minutes that end a degraded period."""


THRESHOLDS = {"min_requests": MIN_JUDGED, "5xx_share": ERROR_SHARE, "refused_share": REFUSED_SHARE,
              "recovery_minutes": RECOVERY_MINUTES, "around_seconds": AROUND}  # fmt: skip


def iso(epoch: float) -> str:
    return utc_text(datetime.fromtimestamp(epoch, UTC))


@dataclass(frozen=True)
class Degraded:
    """A degraded period: from its first degraded minute to the first of the healthy minutes
    that ended it (``end`` None: not recovered by the end of the period)."""

    start: int
    end: int | None
    minutes: int
    """Degraded minutes in it."""
    requests: int
    errors: int
    unavailable: int
    refused: int
    peak_error_share: float
    peak_refused_share: float

    @property
    def why(self) -> tuple[str, ...]:
        """Which thresholds its minutes crossed: ``5xx``, ``refused``."""
        return tuple(
            name
            for name, hit in (
                ("5xx", self.peak_error_share >= ERROR_SHARE),
                ("refused", self.peak_refused_share >= REFUSED_SHARE),
            )
            if hit
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end) if self.end is not None else None,
            "degraded_minutes": self.minutes,
            "why": list(self.why),
            "requests": self.requests,
            "5xx": self.errors,
            "503": self.unavailable,
            "refused": self.refused,
            "peak_5xx_share": round(self.peak_error_share, 4),
            "peak_refused_share": round(self.peak_refused_share, 4),
        }


def degraded_periods(minutes: Iterable[Minute]) -> list[Degraded]:
    """The degraded periods of a timeline (see the thresholds above)."""
    out: list[Degraded] = []
    current: list[Minute] = []
    healthy = recovered = 0
    for m in minutes:
        if m.requests < MIN_JUDGED:
            continue
        bad = m.error_share >= ERROR_SHARE or m.refused_share >= REFUSED_SHARE
        if bad:
            current.append(m)
            healthy = 0
        elif current:
            healthy += 1
            if healthy == 1:
                recovered = m.start
            if healthy >= RECOVERY_MINUTES:
                out.append(_period(current, recovered))
                current, healthy = [], 0
    if current:
        out.append(_period(current, recovered if healthy else None))
    return out


def _period(minutes: list[Minute], end: int | None) -> Degraded:
    return Degraded(
        start=minutes[0].start,
        end=end,
        minutes=len(minutes),
        requests=sum(m.requests for m in minutes),
        errors=sum(m.classes[4] for m in minutes),
        unavailable=sum(m.unavailable for m in minutes),
        refused=sum(m.refused for m in minutes),
        peak_error_share=max(m.error_share for m in minutes),
        peak_refused_share=max(m.refused_share for m in minutes),
    )


def window_dict(w: Window) -> dict[str, Any]:
    return {
        "from": iso(w.start),
        "seconds": w.seconds,
        "requests": w.requests,
        "rps": round(w.rps, 3),
        "refused": w.refused,
        "refused_share": round(w.refused_share, 4),
        "passed": w.passed,
        "passed_rps": round(w.passed_rps, 3),
        "5xx": w.errors,
        "5xx_share": round(w.error_share, 4),
        "503": w.unavailable,
    }


@dataclass(frozen=True)
class Action:
    """One change as the operator made it (its events on every server), with the traffic in
    the ``AROUND`` seconds before and after it."""

    time: int
    operator: str
    action: str
    results: dict[str, str]
    """Server -> result (``ok``, ``test-failed``, …)."""
    before: Window
    after: Window

    @property
    def ok(self) -> bool:
        return all(r in ("ok", "confirmed", "rolled-back") for r in self.results.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": iso(self.time),
            "operator": self.operator,
            "action": self.action,
            "servers": dict(self.results),
            "ok": self.ok,
            "before": window_dict(self.before),
            "after": window_dict(self.after),
        }


def group_actions(
    events: Iterable[Mapping[str, Any]], service: str, traffic: LogTraffic
) -> list[Action]:
    """The service's events, one :class:`Action` per change (same time, operator and action on
    several servers), oldest first."""
    grouped: dict[tuple[str, str, str], dict[str, str]] = {}
    for ev in events:
        if ev.get("service") != service:
            continue
        key = (str(ev.get("time")), str(ev.get("operator")), str(ev.get("action")))
        grouped.setdefault(key, {})[str(ev.get("server"))] = str(ev.get("result"))
    out = []
    for (when, operator, action), results in grouped.items():
        try:
            t = int(datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
        before = traffic.window(t - AROUND, t)
        after = traffic.window(t, t + AROUND)
        out.append(Action(t, operator, action, results, before, after))
    return sorted(out, key=lambda a: a.time)


@dataclass(frozen=True)
class Recommendation:
    id: str
    rule: str
    command: str
    attack_share: float
    collateral: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "command": self.command,
                "attack_share": round(self.attack_share, 4),
                "collateral": round(self.collateral, 5)}  # fmt: skip


@dataclass(frozen=True)
class SuggestNow:
    """What ``suggest`` would still recommend now (its default window and baseline)."""

    status: str
    """``ok``, ``no-anomaly``, ``not-enough-data``, or ``failed`` (``reason`` says why)."""
    reason: str | None
    recommended: tuple[Recommendation, ...] = ()
    window: float = 0.0
    baseline: float = 0.0
    """The spans it compared (seconds; 0 when it did not run)."""

    @classmethod
    def of(cls, analysis: Analysis | str | None) -> SuggestNow:
        if analysis is None:
            return cls("failed", "no log could be read")
        if isinstance(analysis, str):
            return cls("failed", analysis)
        rec = tuple(
            Recommendation(s.id, s.rule.describe(), s.command, s.attack_share, s.collateral)
            for s in analysis.recommended
        )
        return cls(analysis.status, analysis.reason, rec, analysis.window, analysis.baseline)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason,
                "recommended": [r.to_dict() for r in self.recommended],
                "window": format_duration(self.window) if self.window else None,
                "baseline": format_duration(self.baseline) if self.baseline else None}  # fmt: skip


@dataclass(frozen=True)
class ServiceFacts:
    """What the session gathered for one service."""

    service: str
    traffic: LogTraffic
    controls: ControlsReport | None
    suggest: Analysis | str | None
    stage: SiteStage | None = None
    """Where the site stands in its recovery now (the recovery board's stage)."""


ESTIMATED_FIELDS = ("requests", "status", "refused", "503", "unique_ips", "new_ips")


@dataclass(frozen=True)
class ServiceReport:
    service: str
    minutes: tuple[Minute, ...]
    servers: dict[str, ServerRead]
    degraded: tuple[Degraded, ...]
    actions: tuple[Action, ...]
    controls: ControlsReport | None
    suggest: SuggestNow
    covered: tuple[int, int] | None
    """The first and last second logged in the period (None: nothing was logged)."""
    estimated: bool = False
    """A server's log was sampled: the per-minute numbers are estimates."""
    stage: SiteStage | None = None
    """Where the site stands in its recovery now (None: not worked out)."""

    @property
    def requests(self) -> int:
        return sum(m.requests for m in self.minutes)

    @property
    def read_any(self) -> bool:
        return any(s.error is None for s in self.servers.values())

    @property
    def state(self) -> ControlState | None:
        """The controls in force (the first server's that could be read)."""
        if self.controls is None:
            return None
        return next((s.state for s in self.controls.servers.values() if s.state), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "requests": self.requests,
            "from": iso(self.covered[0]) if self.covered else None,
            "to": iso(self.covered[1]) if self.covered else None,
            "estimated": self.estimated,
            "estimated_fields": list(ESTIMATED_FIELDS) if self.estimated else [],
            "servers": {name: s.to_dict() for name, s in self.servers.items()},
            "timeline": [
                {
                    "minute": iso(m.start),
                    "requests": m.requests,
                    "status": {f"{c}xx": n for c, n in enumerate(m.classes, start=1)},
                    "refused": m.refused,
                    "503": m.unavailable,
                    "unique_ips": m.unique_ips,
                    "new_ips": m.new_ips,
                }
                for m in self.minutes
            ],
            "degraded": [d.to_dict() for d in self.degraded],
            "actions": [a.to_dict() for a in self.actions],
            "controls": self.controls.to_dict() if self.controls is not None else None,
            "suggest": self.suggest.to_dict(),
            **(self.stage.to_dict() if self.stage is not None else {"stage": None}),
        }


@dataclass(frozen=True)
class Report:
    since: float
    start: int
    end: int
    services: tuple[ServiceReport, ...]
    errors: dict[str, str] = field(default_factory=dict)
    """Server (or ``server/service``) -> why its audit trail could not be read."""

    @property
    def read_any(self) -> bool:
        """Some server's log could be read (else the command exits 1)."""
        return any(s.read_any for s in self.services)

    @property
    def unread(self) -> dict[str, str]:
        """Every server that could not be read, and why (logs first, then audit trails)."""
        out: dict[str, str] = {}
        for s in self.services:
            for name, read in s.servers.items():
                if read.error is not None:
                    out.setdefault(name, f"{s.service} log: {read.error}")
        for where, why in self.errors.items():
            out.setdefault(where, f"audit trail: {why}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": format_duration(self.since),
            "from": iso(self.start),
            "to": iso(self.end),
            "services": {s.service: s.to_dict() for s in self.services},
            "unread": self.unread,
            "errors": dict(self.errors),
            "thresholds": THRESHOLDS,
        }


def build_report(
    facts: Iterable[ServiceFacts],
    events: Iterable[Mapping[str, Any]],
    *,
    since: float,
    start: int,
    end: int,
    errors: Mapping[str, str] | None = None,
) -> Report:
    """The report of every service from ``start`` to ``end`` (epoch seconds)."""
    events = list(events)
    services = []
    for f in facts:
        covered = f.traffic.covered()
        if covered is not None:  # the log read starts AROUND seconds early, for the actions
            covered = (max(start, covered[0]), covered[1]) if covered[1] >= start else None
        # The period is [start, end): its last second is end - 1 (a report made on the minute
        # has no empty minute after it).
        minutes = tuple(f.traffic.minutes(covered[0], end - 1)) if covered else ()
        services.append(
            ServiceReport(
                service=f.service,
                minutes=minutes,
                servers=dict(f.traffic.servers),
                degraded=tuple(degraded_periods(minutes)),
                actions=tuple(group_actions(events, f.service, f.traffic)),
                controls=f.controls,
                suggest=SuggestNow.of(f.suggest),
                covered=covered,
                estimated=f.traffic.sampled,
                stage=f.stage,
            )
        )
    return Report(since, start, end, tuple(services), dict(errors or {}))
