"""The recovery board: every site's stage, read through the session (both front ends).

:func:`site_stages` reads, for each service and in parallel, its controls on every server, what
its rules in force refused in the last minute of its log (:meth:`Session.effects`) and — when it
is in maintenance — when maintenance was switched on (the merged audit trail), and puts them
together with what the site answers (a health probe, else its log) into a
:class:`~opsconsole.controls.stage.SiteStage`.  A service whose servers cannot be read still
gets a stage from its answer alone, and says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..controls.report import ControlsReport
from ..controls.stage import (
    SiteStage,
    StageMemory,
    default_memory,
    maintenance_since,
    refused_codes,
    serving_from_log,
    site_stage,
)
from ..controls.state import ControlState
from ..errors import OpsConsoleError
from ..health import ServiceHealth, Status
from ..health.check import check_service
from ..health.http import make_client
from ..transport.base import TransportError
from .core import Session


def controls_state(report: ControlsReport) -> ControlState | None:
    """The service's controls: the first server's that could be read (they agree, or the
    board says the stage of the first while ``controls`` tells of the disagreement)."""
    return next((s.state for s in report.servers.values() if s.state is not None), None)


def _answer(health: ServiceHealth | None) -> tuple[bool | None, str]:
    """Whether the probe says the site serves, and its answer in a few words."""
    if health is None or health.probe is None or health.healthy is None:
        return None, ""
    p = health.probe
    text = p.error or (f"HTTP {p.http_status}" if p.http_status is not None else "no answer")
    return health.status is not Status.DOWN, text


def live_stage(
    status: Mapping[str, int], health: ServiceHealth | None, report: ControlsReport | None
) -> SiteStage | None:
    """A site's stage from what a live console sees: its controls (``report``; None before
    the first read: no stage yet), its probe (else its live status mix, ``status`` by code)
    and the share of its live traffic answered with its rules' refusals."""
    if report is None:
        return None
    state = controls_state(report)
    counts = {int(k): v for k, v in status.items() if str(k).isdigit()}
    total = sum(counts.values())
    serving, answer = _answer(health)
    if serving is None and total:
        serving = serving_from_log(counts)
        answer = "most of its live traffic is 5xx" if serving is False else ""
    refused = None
    if state is not None and total:
        codes = refused_codes(state)
        refused = sum(n for c, n in counts.items() if c in codes) / total
    deadlines = sorted(s.confirm_deadline for s in report.servers.values() if s.confirm_deadline)
    return site_stage(
        state, serving, answer=answer, refused_share=refused,
        awaiting_confirmation=deadlines[0] if deadlines else None,
    )  # fmt: skip


async def site_stage_of(
    session: Session,
    service: str,
    health: ServiceHealth | None = None,
    *,
    controls: ControlsReport | None = None,
    probe: bool = False,
) -> SiteStage:
    """One service's stage (``health``: its probe of this round, if there was one; without
    one, ``probe`` asks the site's URL now)."""
    report = controls or await session.controls(service)
    if health is None and probe:
        client = make_client()
        try:
            health = await check_service(session.config, session.config.service(service), client)
        finally:
            await client.aclose()
    state = controls_state(report)
    serving, answer = _answer(health)
    refused: float | None = None
    try:
        effects, _feeds = await session.effects(service, state or ControlState())
    except (OpsConsoleError, TransportError, OSError):  # the board shows less without a log
        effects = None
    if effects is not None and effects.requests:
        refused = effects.refused / effects.requests
        if serving is None:
            serving = serving_from_log(dict(effects.statuses))
            if serving is False:
                answer = "most of its recent log is 5xx"
    since = None
    if state is not None and state.maintenance.on:
        try:
            events = (await session.timeline([service])).events
        except (OpsConsoleError, TransportError, OSError):  # the local trail still dates it
            events = session.local_events([service])
        since = maintenance_since(events)
    deadlines = sorted(s.confirm_deadline for s in report.servers.values() if s.confirm_deadline)
    if state is None and serving is None:
        errors = "; ".join(s.error for s in report.servers.values() if s.error)
        answer = answer or (f"controls unreadable: {errors}" if errors else "")
    return site_stage(
        state,
        serving,
        answer=answer,
        refused_share=refused,
        awaiting_confirmation=deadlines[0] if deadlines else None,
        maintenance_since=since,
    )


async def site_stages(
    session: Session,
    health: Mapping[str, ServiceHealth] | None = None,
    services: Iterable[str] | None = None,
    *,
    controls: Mapping[str, ControlsReport] | None = None,
    probe: bool = False,
    memory: Path | None = None,
) -> dict[str, SiteStage]:
    """Every service's stage (``health``: this round's probes by service; ``controls``: the
    controls already read; ``probe``: ask the URLs of those without a probe), dated from the
    controls or, for a stage they do not date, from when this machine first saw it so."""
    names = list(services) if services is not None else list(session.config.services)
    probes, read = health or {}, controls or {}
    found = await asyncio.gather(*(
        site_stage_of(session, n, probes.get(n), controls=read.get(n), probe=probe)
        for n in names
    ))  # fmt: skip
    board = StageMemory(memory or default_memory())
    out = {n: board.date(n, s) for n, s in zip(names, found, strict=True)}
    board.save()
    return out


__all__ = ["controls_state", "live_stage", "site_stage_of", "site_stages"]
