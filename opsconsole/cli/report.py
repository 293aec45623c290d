"""``opsconsole report [--since 24h] [--service S] [--html FILE] [--json]``: the incident, for the
post-mortem (DESIGN §7).

A thin front end over :meth:`opsconsole.session.Session.report`: Markdown on stdout (or the
``report --json`` object), and with ``--html`` the same as one self-contained page with charts.
Progress on stderr when it is a terminal; servers that could not be read on stderr too (and in the
report).  Exit status: 0 something was reported, 1 no server's log could be read, 2 bad usage
(``--since`` out of 1m to 7d, unknown service, an ``--html`` file that cannot be written).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config, load_config
from ..errors import UsageError
from ..session import Session
from ..text import shown
from .running import run_async
from .stats import _Progress
from .suggest import _duration

if TYPE_CHECKING:  # NumPy is imported only when a report is made, not by every command
    from ..report import Report

MAX_SINCE = 7 * 86400


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="the incident for the post-mortem: traffic, degraded periods, actions, controls",
        description=(
            "Write what happened over the last --since, per service, as Markdown on stdout: "
            "the traffic per minute (requests, status classes, refusals, unique and new IPs) "
            "read from every server's access log over SSH (sampled when a log is too long to "
            "read whole: the report says which numbers are estimates), when the site degraded "
            "and recovered (5xx share, 503s, share refused with 403/444/429), every action of "
            "every operator from all servers' audit trails with the traffic in the 5 minutes "
            "before and after it, the controls in force now and what suggest would still "
            "recommend. A server that cannot be read is named and the rest reported."
        ),
        epilog=(
            "Exit status: 0 reported (also when some server could not be read), 1 no server's "
            "log could be read, 2 bad usage (--since outside 1m to 7d, an unknown service, an "
            "--html file that cannot be written)."
        ),
    )
    p.add_argument(
        "--since",
        default="24h",
        metavar="DURATION",
        help="the period: the last DURATION (1m to 7d; default 24h)",
    )
    p.add_argument("--service", metavar="S", help="only this service (default: every service)")
    p.add_argument(
        "--html",
        metavar="FILE",
        help="also write the report to FILE as one self-contained HTML page with SVG charts "
        "(no script, stylesheet or font from the network)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the report --json object instead of Markdown (keys in the README)",
    )
    p.set_defaults(func=run)


def html_target(text: str) -> Path:
    """The ``--html`` file, refused at once (before any server is read) if it cannot be
    written."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"--html {text}: is a directory, not a file")
    if not path.parent.is_dir():
        raise UsageError(f"--html {text}: no such directory: {path.parent}")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as e:
        raise UsageError(f"--html {text}: cannot write: {e.strerror or e}") from None
    if not existed:
        with contextlib.suppress(OSError):
            path.unlink()
    return path


def run(args: argparse.Namespace) -> int:
    from ..report import render_html, render_markdown

    config = load_config(args.config)
    services = [args.service] if args.service else sorted(config.services)
    for name in services:
        config.service(name)  # unknown: exit 2 before connecting anywhere
    since = _duration("--since", args.since, 60, MAX_SINCE)
    html = html_target(args.html) if args.html else None
    report = run_async(_gather(config, services, since))
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(render_markdown(report), end="")
    if html is not None:
        try:
            html.write_text(render_html(report), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--html {args.html}: cannot write: {e.strerror or e}") from None
    for name, why in report.unread.items():
        print(f"opsconsole: {name}: {shown(why)}", file=sys.stderr)
    return 0 if report.read_any else 1


async def _gather(config: Config, services: list[str], since: float) -> Report:
    session = Session(config, connect_timeout=10.0)
    status = _Status() if sys.stderr.isatty() else None
    try:
        return await session.report(
            services, since=since, progress=status, on_stage=status.stage if status else None
        )
    finally:
        if status is not None:
            status.done()
        await session.close()


class _Status(_Progress):
    """The progress line of ``stats``, plus the stage the report's gathering is at."""

    def stage(self, what: str) -> None:
        self.done_bytes.clear()
        print(f"\r\033[K{what}…", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
