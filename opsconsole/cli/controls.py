"""``opsconsole controls SERVICE [--json]``: the control state held by every server (DESIGN §7).

A thin front end over the session's ``controls`` and ``effects``.  With ``--json`` it prints
``ControlsReport.to_dict()`` — ``{"service", "consistent", "servers": {name: <state>}}`` — plus
``stops_now``: what each rule in force refused in the last minute of the logs (``{"span",
"requests", "rules": [{"rule", "requests", "rps", "share", "what"}], "unattributed"}``, null
without rules or a readable log); as text,
per server its version, who changed it last, a pending confirmation or an interrupted apply, then
the controls (once when every server agrees): maintenance, rate limit, filters and blocks with
their expiry.  Exit status: 0 read from every server, 1 a server could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ..config import Config, load_config
from ..controls import ControlsReport
from ..controls.stage import SiteStage
from ..controls.state import ControlState, parse_utc
from ..durations import format_duration
from ..session import Session
from ..session.board import site_stages
from ..text import shown
from .acting import confirm_command
from .running import run_async

MAX_LISTED = 30
"""Blocks listed in the text output (all of them are in ``--json``)."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "controls",
        help="the current controls of a service, per server",
        description=(
            "Read the control state of a service from each of its servers: version, "
            "maintenance, blocks (with reason, author and expiry), filters, rate limit, and any "
            "change awaiting confirmation. 'consistent' says whether all servers agree (a "
            "partial apply leaves them different). Exit status: 0 read everywhere, 1 a server "
            "could not be read, 2 bad usage or config."
        ),
    )
    p.add_argument("service", metavar="SERVICE", help="a service of the config ([services.NAME])")
    p.add_argument("--json", action="store_true", help="print the state as JSON on stdout")
    p.set_defaults(func=run)


async def fetch(config: Config, service: str) -> tuple[ControlsReport, Any, SiteStage]:
    """The controls, what each rule in force refused in the last minute of the logs (None
    when there is no rule, or no log could be read), and the site's recovery stage."""
    session = Session(config)
    try:
        report = await session.controls(service)
        states = [s.state for s in report.servers.values() if s.state is not None]
        state = states[0] if states else None
        stage = (await site_stages(session, services=[service], controls={service: report},
                                   probe=True))[service]  # fmt: skip
        if state is None or not (state.blocks or state.filters or state.rate_limit.rate
                                 or state.maintenance.on):  # fmt: skip
            return report, None, stage
        effects, feeds = await session.effects(service, state)
        if all(f.error for f in feeds.values()):
            return report, None, stage
        return report, effects, stage
    finally:
        await session.close()


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.service(args.service)
    report, effects, stage = run_async(fetch(config, args.service))
    if args.json:
        out = report.to_dict()
        out["stops_now"] = effects.to_dict() if effects is not None else None
        out.update(stage.to_dict())
        print(json.dumps(out))
    else:
        print(render(report, args.config))
        print(f"stage: {stage.summary()}")
        if effects is not None:
            print(render_effects(effects))
    failed = {n: s.error for n, s in report.servers.items() if s.error}
    for name, error in failed.items():
        print(f"opsconsole: {name}: {error}", file=sys.stderr)
    if not report.consistent and not failed:
        print(
            f"opsconsole: the servers of {args.service} disagree (a partial apply): the next "
            "change, or a rollback, brings them together",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _when(stamp: str, now: datetime) -> str:
    left = (parse_utc(stamp) - now).total_seconds()
    if left <= 0:
        return f"{stamp} (overdue: removed by the next apply or a running console)"
    return f"{stamp} (in {format_duration(left)})"


def render_state(state: ControlState, now: datetime, indent: str = "  ") -> list[str]:
    m, rl = state.maintenance, state.rate_limit
    lines = []
    if m.on:
        allow = ", ".join(m.allow) or "nobody"
        lines.append(f"{indent}maintenance  ON (allowed: {allow})")
        if m.message:
            lines.append(f"{indent}             message: {m.message}")
    else:
        lines.append(f"{indent}maintenance  off")
    if rl.rate:
        lines.append(f"{indent}rate limit   {rl.rate} burst {rl.burst} per {rl.key}")
    else:
        lines.append(f"{indent}rate limit   none")
    lines.append(f"{indent}filters      {len(state.filters) or 'none'}")
    for f in state.filters:
        why = f" — {f.reason}" if f.reason else ""
        lines.append(
            f"{indent}  {f.id:<5} {shown(f.describe())} -> {f.action}"
            f"  ({f.added_by}, {f.added_at}){shown(why)}"
        )
    lines.append(f"{indent}blocks       {len(state.blocks) or 'none'}")
    for b in state.blocks[:MAX_LISTED]:
        expiry = f", expires {_when(b.expires_at, now)}" if b.expires_at else ""
        why = f" — {b.reason}" if b.reason else ""
        lines.append(f"{indent}  {b.target:<20} ({b.added_by}, {b.added_at}{expiry}){why}")
    if len(state.blocks) > MAX_LISTED:
        lines.append(f"{indent}  … {len(state.blocks) - MAX_LISTED} more (--json lists them all)")
    return lines


def render(report: ControlsReport, config_arg: str | None = None) -> str:
    now = datetime.now(UTC)
    verdict = "consistent" if report.consistent else "NOT CONSISTENT (the servers disagree)"
    lines = [f"{report.service}: {verdict}"]
    for name, s in report.servers.items():
        if s.state is None:
            lines.append(f"  {name}: cannot read: {s.error}")
            continue
        who = f", by {s.state.updated_by} at {s.state.updated_at}" if s.state.updated_by else ""
        lines.append(f"  {name}: version {s.state.version}{who}")
        if s.confirm_deadline:
            lines.append(
                f"    awaits confirmation until {_when(s.confirm_deadline, now).split(' (')[0]}"
                f": `{confirm_command(report.service, config_arg)}` keeps it, "
                f"`{confirm_command(report.service, config_arg, 'rollback')}` reverts it"
            )
        if s.pending:
            lines.append("    an interrupted apply is rolled back by the next operation")
    states = [s for s in report.servers.values() if s.state is not None]
    if report.consistent and states and states[0].state is not None:
        lines.append("controls (the same on every server):")
        lines += render_state(states[0].state, now)
    else:
        for s in states:
            assert s.state is not None
            lines.append(f"controls on {s.server}:")
            lines += render_state(s.state, now)
    return "\n".join(lines)


def render_effects(effects: Any) -> str:
    """What each rule in force refused in the last minute of the log."""
    head = (f"stopping now (the last {format_duration(effects.span)} of the log: "
            f"{effects.requests} requests):")  # fmt: skip
    lines = [head]
    for e in effects.rules:
        lines.append(
            f"  {e.rule:<11} {e.rps:8.1f} req/s {e.share * 100:4.0f} %  {shown(e.what)}"[:100]
        )
    if effects.unattributed:
        lines.append(f"  {effects.unattributed} other refusals (403/444) match no rule in force")
    return "\n".join(lines)
