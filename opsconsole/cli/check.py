"""``opsconsole check [--json]``: health of every server and service, once (DESIGN §6, §7).

A thin front end over :func:`opsconsole.health.check_fleet`: connections come from the
:class:`~opsconsole.transport.pool.ConnectionPool`, every server and service is checked in
parallel, a progress line goes to stderr when stderr is a terminal, and the result goes to stdout
as a table that fits 80 columns or, with ``--json``, as the object of DESIGN §7 (shape defined in
:mod:`opsconsole.health.report`).  Exit status: 0 all healthy, 1 anything degraded or down, 2 a
config error (raised by the loader, printed by the CLI frame).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any, TextIO

from ..config import Config, load_config, shown_url
from ..controls.stage import SiteStage, Stage
from ..health import FleetHealth, HostMetrics, Status, fleet_to_json
from ..health.check import Progress
from ..notify import recent_failures
from ..session import Session
from ..session.board import site_stages
from .running import run_async

WIDTH = 80


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="health of every server and service, once",
        description=(
            "Check every configured server (over SSH: load, CPU, memory, disk, nginx, TCP "
            "connection states, top client addresses) and every service URL (HTTP status, "
            "latency, TLS certificate), all in parallel, and say where each site stands in its "
            "recovery (STAGE: down, closed, staff only, protected, open) and which [notify] "
            "webhook failed lately. Exit status: 0 all healthy, 1 something is degraded or "
            "down, 2 bad config."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    progress = _progress_line(sys.stderr) if sys.stderr.isatty() else None
    fleet, stages = run_async(check(config, progress))
    failures = recent_failures() if config.notify.webhooks else []
    if progress is not None:
        sys.stderr.write("\r" + " " * (WIDTH - 1) + "\r")
        sys.stderr.flush()
    if args.json:
        out = fleet_to_json(fleet)
        for name, stage in stages.items():
            out["services"][name].update(stage.to_dict())
        out["notify"] = {
            "webhooks": [shown_url(u) for u in config.notify.webhooks],
            "failures": [f.to_dict() for f in failures],
        }
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(fleet, stages))
        for failure in failures:
            print(f"opsconsole: {failure.line()}", file=sys.stderr)
        bad = _problems(fleet)
        if bad:
            print(f"opsconsole: not healthy: {', '.join(bad)}", file=sys.stderr)
    return 0 if fleet.healthy else 1


async def check(
    config: Config, progress: Progress | None = None
) -> tuple[FleetHealth, dict[str, SiteStage]]:
    """The fleet's health, and each site's recovery stage from its controls and answer."""
    # One-shot: a couple of attempts per server, so the report gives the real reason quickly.
    session = Session(config, connect_timeout=config.health.timeout)
    try:
        fleet = await session.check(progress)
        return fleet, await site_stages(session, fleet.services)
    finally:
        await session.close()


def _progress_line(stream: TextIO) -> Progress:
    def show(done: int, total: int, name: str) -> None:
        text = f"checking {done}/{total}: {name} done"[: WIDTH - 1]
        stream.write("\r" + text.ljust(WIDTH - 1))
        stream.flush()

    return show


def _problems(fleet: FleetHealth) -> list[str]:
    out = [f"{n} {s.status}" for n, s in fleet.servers.items() if s.status is not Status.OK]
    out += [
        f"{n} {s.status}"
        for n, s in fleet.services.items()
        if s.status not in (Status.OK, Status.UNKNOWN)
    ]
    return out


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _num(value: float | None, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def _host_cells(m: HostMetrics | None) -> list[str]:
    if m is None:
        return ["-"] * 8
    tcp = m.tcp or {}
    top = m.top_connections[0] if m.top_connections else None
    return [
        m.nginx_state if m.nginx is not None else "-",
        _num(m.load[0] if m.load else None, "{:.2f}"),
        _num(m.cpu_percent),
        _num(m.memory_percent),
        _num(m.disk_percent),
        str(tcp["ESTABLISHED"]) if "ESTABLISHED" in tcp else "-",
        str(tcp["SYN_RECV"]) if "SYN_RECV" in tcp else "-",
        f"{top[0]} ({top[1]})" if top else "-",
    ]


# (title, width, right-aligned); the last column takes what is left of the 80.
SERVER_COLUMNS = [
    ("SERVER", 10, False),
    ("STATUS", 7, False),
    ("NGINX", 8, False),
    ("LOAD", 5, True),
    ("CPU%", 4, True),
    ("MEM%", 4, True),
    ("DISK%", 5, True),
    ("ESTAB", 6, True),
    ("SYNRCV", 6, True),
    ("TOP CLIENT", 0, False),
]
SERVICE_COLUMNS = [
    ("SERVICE", 10, False),
    ("STATUS", 7, False),
    ("STAGE", 10, False),
    ("HTTP", 4, True),
    ("LATENCY", 8, True),
    ("TLS", 4, True),
    ("URL", 0, False),
]


def _row(columns: list[tuple[str, int, bool]], cells: list[str]) -> str:
    used = sum(w + 1 for _, w, _ in columns[:-1])
    out = []
    for (_, width, right), cell in zip(columns, cells, strict=True):
        width = width or WIDTH - 1 - used
        cell = _fit(cell, width)
        out.append(cell.rjust(width) if right else cell.ljust(width))
    return " ".join(out).rstrip()


def _detail(reasons: tuple[str, ...]) -> list[str]:
    """Reasons under their row, wrapped (an ssh error is worth reading in full)."""
    indent = " " * 11
    return [
        line
        for r in reasons
        for line in textwrap.wrap(
            r,
            WIDTH - 1,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            max_lines=4,
            placeholder=" …",
        )
    ]


def render_table(fleet: FleetHealth, stages: dict[str, SiteStage] | None = None) -> str:
    """The human report: one line per server and service, reasons indented under problems,
    and under each site not simply open, where it stands in its recovery."""
    stages = stages or {}
    lines = [_row(SERVER_COLUMNS, [t for t, _, _ in SERVER_COLUMNS])]
    for name, s in fleet.servers.items():
        lines.append(_row(SERVER_COLUMNS, [name, s.status.value, *_host_cells(s.metrics)]))
        lines += _detail(s.reasons)
    lines.append("")
    lines.append(_row(SERVICE_COLUMNS, [t for t, _, _ in SERVICE_COLUMNS]))
    for name, v in fleet.services.items():
        p = v.probe
        stage = stages.get(name)
        cells = [
            name,
            v.status.value,
            stage.stage.value if stage else "-",
            str(p.http_status) if p and p.http_status is not None else "-",
            f"{p.latency_ms:.0f} ms" if p and p.latency_ms is not None else "-",
            f"{p.tls_days_left}d" if p and p.tls_days_left is not None else "-",
            v.url or "(no url)",
        ]
        lines.append(_row(SERVICE_COLUMNS, cells))
        reasons = v.reasons if v.status is not Status.UNKNOWN else ()
        if stage is not None and (stage.stage is not Stage.OPEN or stage.awaiting_confirmation):
            reasons = (*reasons, stage.summary())
        lines += _detail(reasons)
    return "\n".join(lines) + "\n"
