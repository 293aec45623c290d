"""The traffic generator process: ``python -m opsconsole.lab.trafficd --lab DIR …``.

Started (and stopped, by PID) by :meth:`opsconsole.lab.Lab.start_traffic`; nothing imports it.  It
reads the sites' loopback ports from the lab's state file and runs
:class:`opsconsole.lab.traffic.Generator`.  It ends by itself when the lab's state file disappears
or names another generator, after ``--max-duration``, or on SIGTERM/SIGINT, and writes a tally of
what it sent (to stderr, which the lab sends to ``traffic.log``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from .model import SITES
from .population import Browsing, Flood
from .traffic import CONNECTIONS, FLOOD_RPS, LEGIT_RPS, MAX_DURATION, Generator

_STARTUP_GRACE = 5.0
"""Seconds before the generator expects to find its own PID in the lab's state file."""


class Lifeline:
    """True while the lab that started this generator still runs and still wants it."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self.pid = os.getpid()

    def __call__(self, elapsed: float) -> bool:
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True  # being rewritten; look again next time
        if elapsed < _STARTUP_GRACE:
            return True  # the lab records our PID only after we started
        traffic = state.get("processes", {}).get("traffic")
        return isinstance(traffic, dict) and traffic.get("pid") == self.pid


def report(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} traffic: {message}", file=sys.stderr, flush=True)


def targets_from_state(state: Mapping[str, object]) -> dict[str, list[str]]:
    """Each service's base URLs (one per server) from a lab state file; always 127.0.0.1."""
    services = state.get("services")
    if not isinstance(services, dict) or not services:
        raise ValueError("the lab state file names no services")
    return {
        name: [f"http://127.0.0.1:{int(svc['http_ports'][s])}/" for s in svc["servers"]]
        for name, svc in services.items()
    }


async def run(args: argparse.Namespace) -> None:
    state_file = Path(args.lab) / "lab.json"
    targets = targets_from_state(json.loads(state_file.read_text()))
    pages = {site.name: site.pages for site in SITES}
    browsing = Browsing(args.seed, {s: pages.get(s, ("/",)) for s in targets})
    flood = Flood(args.seed, list(targets))
    flood_after = None if args.flood_after < 0 else args.flood_after
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(
        limits=limits, timeout=5.0, follow_redirects=False, trust_env=False
    ) as client:
        generator = Generator(
            client,
            targets,
            browsing,
            flood,
            legit_rps=args.legit_rps,
            flood_rps=args.flood_rps,
            flood_after=flood_after,
        )
        flood_text = (
            f"a flood of {args.flood_rps:g} req/s after {flood_after:g}s "
            f"(heavy subnets: {', '.join(flood.heavy_subnets())})"
            if flood_after is not None
            else "no flood"
        )
        report(f"started (pid {os.getpid()}): {args.legit_rps:g} req/s per site, {flood_text}")
        await generator.run(
            keep_going=Lifeline(state_file),
            stop=stop,
            max_duration=args.max_duration,
            report=report,
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m opsconsole.lab.trafficd",
        description="Traffic generator of an opsconsole rehearsal lab (started by the lab).",
    )
    p.add_argument("--lab", required=True, help="the lab directory (holding lab.json)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--legit-rps", type=float, default=LEGIT_RPS, help="per site")
    p.add_argument("--flood-rps", type=float, default=FLOOD_RPS, help="all sites together")
    p.add_argument(
        "--flood-after", type=float, default=20.0, help="seconds before the flood; negative: none"
    )
    p.add_argument("--max-duration", type=float, default=MAX_DURATION, help="seconds")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(run(args))
    except (OSError, ValueError, KeyError) as e:
        report(f"cannot run: {e}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
