"""``opsconsole audit [--service S] [--since 1h] [--json] [--local]``: the control timeline.

A thin front end over :func:`opsconsole.controls.collect_timeline`: every server's
``<service>.audit.jsonl`` (all consoles' changes, the servers' own reverts and recoveries) merged
with this console's local trail, in time order.  Text: one line per event; ``--json``: one object
(shape in the README).  Exit status: 0, 1 when a server's trail could not be read (the events that
could be read are still printed), 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import Config, load_config
from ..controls import Timeline
from ..durations import parse_duration
from ..errors import UsageError
from ..session import Session
from .running import run_async


def register(sub: Any) -> None:
    p = sub.add_parser(
        "audit",
        help="the timeline of control changes, from every server and this console",
        description=(
            "Every apply, confirm, rollback, automatic revert and failure, with operator, "
            "service, server, action, state versions before and after, and result: read from "
            "each server's audit trail and this console's local trail, merged in time order."
        ),
    )
    p.add_argument("--service", metavar="S", help="only this service (default: all services)")
    p.add_argument(
        "--since",
        metavar="DURATION",
        help="only events of the last DURATION (e.g. 30m, 1h, 2d; default: everything)",
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="read only this console's local trail (no connection to the servers)",
    )
    p.add_argument("--json", action="store_true", help="print the timeline as JSON on stdout")
    p.set_defaults(func=run)


async def gather(
    config: Config, services: list[str], since: datetime | None, local: bool
) -> Timeline:
    session = Session(config, connect_timeout=10.0)
    try:
        return await session.timeline(services, since=since, local_only=local)
    finally:
        await session.close()


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    services = [args.service] if args.service else sorted(config.services)
    for s in services:
        config.service(s)
    since = None
    if args.since and args.since != "all":
        try:
            since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
        except ValueError as e:
            raise UsageError(f"--since: {e}") from None
    timeline = run_async(gather(config, services, since, args.local))
    if args.json:
        out = {
            "services": services,
            "since": since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else None,
            "events": timeline.events,
            "errors": timeline.errors,
        }
        print(json.dumps(out))
    else:
        print(render(timeline))
    for where, error in timeline.errors.items():
        print(f"opsconsole: {where}: {error}", file=sys.stderr)
    return 1 if timeline.errors else 0


def _v(ev: dict[str, Any]) -> str:
    b, a = ev.get("before_version"), ev.get("after_version")
    if b is None and a is None:
        return "-"
    return f"{b}" if b == a else f"{b}->{a}"


def render(timeline: Timeline) -> str:
    if not timeline.events:
        return "no control changes recorded"
    rows = [("TIME", "OPERATOR", "WHERE", "ACTION", "VERSION", "RESULT")]
    for ev in timeline.events:
        result = str(ev.get("result"))
        if ev.get("reason"):
            result += f": {str(ev['reason']).splitlines()[0][:120]}"
        rows.append(
            (
                str(ev.get("time")),
                str(ev.get("operator")),
                f"{ev.get('service')}/{ev.get('server')}",
                str(ev.get("action")),
                _v(ev),
                result,
            )
        )
    widths = [min(40, max(len(r[i]) for r in rows)) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
        for r in rows
    )
