"""``opsconsole stats SERVICE [--since 60s|all] [--follow] [--top N] [--json]`` (DESIGN §7).

One object for a span read back from the servers' logs, or with ``--follow`` one object per second
over the sliding window.  JSON on stdout, progress and per-server errors on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from ..config import Config, load_config
from ..durations import format_duration, parse_duration
from ..errors import UsageError
from ..fleet import BEHIND_SHOWN, Fleet
from ..stats.snapshot import Snapshot
from ..text import shown
from .running import run_async


def register(sub: Any) -> None:
    p = sub.add_parser(
        "stats",
        help="traffic of a service: rate, status mix, top IPs/subnets/paths/agents",
        description=(
            "Read a service's access log on each of its servers over SSH and print its traffic: "
            "requests, rate, status codes, unique IPs and the top IPs, /24 (IPv6 /48) subnets, "
            "paths and user agents. Numbers from several servers are added up, with a "
            "per-server breakdown."
        ),
    )
    p.add_argument("service", metavar="SERVICE")
    p.add_argument(
        "--since",
        default=None,
        metavar="DURATION|all",
        help="how far back to read: a duration such as 60s, 15m, 2h, or 'all' for the whole log "
        "(default: the console window, 60s)",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="keep streaming: one report per second over the sliding window",
    )
    p.add_argument(
        "--top",
        type=_positive_int,
        default=10,
        metavar="N",
        help="length of each top list (default 10)",
    )
    p.add_argument("--json", action="store_true", help="JSON on stdout (keys as in the README)")
    p.set_defaults(func=run)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 10_000:
        raise argparse.ArgumentTypeError("expected a number from 1 to 10000")
    return n


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.service(args.service)  # unknown service: exit 2 before connecting anywhere
    window = config.console.window
    since: float | None
    if args.since is None:
        since = window
    elif args.since == "all":
        since = None
    else:
        try:
            since = parse_duration(args.since)
        except ValueError as e:
            raise UsageError(f"--since: {e} (or 'all')") from None
    if args.follow:
        # Live: keep retrying servers that are down.  Ctrl-C is how one stops following (0).
        return run_async(_follow(config, args, since or window), interrupted_status=0)
    return run_async(_once(config, args, since))


async def _once(config: Config, args: argparse.Namespace, since: float | None) -> int:
    fleet = Fleet(config, max_attempts=3)
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        cutoff = None if since is None else time.time() - since
        stats, feeds = await fleet.read_history(args.service, cutoff, progress=progress)
    finally:
        if progress:
            progress.done()
        await fleet.close()
    for server, feed in feeds.items():
        if feed.error:
            print(f"opsconsole: {server}: {feed.error}", file=sys.stderr)
    if stats.slow_path:
        print(
            f"opsconsole: note: the log_format of {args.service} is read by the slower regex "
            f"path ({stats.slow_path})",
            file=sys.stderr,
        )
    snap = stats.snapshot(args.service, top_n=args.top)
    connected = {name: feed.error is None for name, feed in feeds.items()}
    if args.json:
        out = snap.to_json(connected, {name: feed.error for name, feed in feeds.items()})
        out["since"] = "all" if since is None else format_duration(since)
        print(json.dumps(out))
    else:
        print(render_text(snap, connected, "all" if since is None else format_duration(since)))
    return 1 if all(feed.error for feed in feeds.values()) else 0


async def _follow(config: Config, args: argparse.Namespace, window: float) -> int:
    fleet = Fleet(config)
    pipeline = fleet.pipeline(args.service, window=window, top_n=args.top)
    pipeline.start(publish=False)
    errors: dict[str, str | None] = {}
    notes: dict[str, str] = {}
    try:
        next_tick = time.monotonic() + 1.0
        while True:
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick += 1.0
            for name, feed in pipeline.feeds.items():
                if feed.error != errors.get(name):
                    errors[name] = feed.error
                    if feed.error:
                        print(f"opsconsole: {name}: {feed.error}", file=sys.stderr)
                if feed.note != notes.get(name, ""):
                    notes[name] = feed.note
                    if feed.note:
                        print(f"opsconsole: {name}: {feed.note}", file=sys.stderr)
            snap = await pipeline.refresh()
            if args.json:
                out = snap.to_json(
                    pipeline.connected(), dict(errors), pipeline.behind(), pipeline.modes()
                )
                print(json.dumps(out), flush=True)
            else:
                print(render_line(snap, pipeline.behind()), flush=True)
    finally:
        await pipeline.stop()
        await fleet.close()


def render_line(snap: Snapshot, behind: dict[str, float] | None = None) -> str:
    top = snap.top_subnets[0] if snap.top_subnets else None
    top_text = f"  top subnet {shown(top.key)} {top.requests}" if top else ""
    late = [f"{s} {b:.0f}s" for s, b in sorted((behind or {}).items()) if b >= BEHIND_SHOWN]
    late_text = f"  BEHIND its log: {', '.join(late)}" if late else ""
    return (
        f"{time.strftime('%H:%M:%S')} {snap.service}: {snap.rps:7.1f} req/s  "
        f"2xx {snap.share(2):4.0%}  4xx {snap.share(4):4.0%}  5xx {snap.share(5):4.0%}  "
        f"{snap.unique_ips} IPs{top_text}{late_text}"
    )


def render_text(snap: Snapshot, connected: dict[str, bool], span: str) -> str:
    est = " (estimated)" if snap.estimated else ""
    lines = [
        f"{snap.service}: {snap.requests} requests over {span}, {snap.rps:.1f} req/s, "
        f"{snap.unique_ips} unique IPs{est}, {snap.unparsed} unparsed lines",
        "status: " + "  ".join(f"{k} {v}" for k, v in snap.status.items()),
        "servers: "
        + "  ".join(
            f"{name} {n}{'' if connected.get(name, True) else ' (FAILED)'}"
            for name, n in sorted(snap.servers.items())
        ),
    ]
    for title, entries in (
        ("top IPs", snap.top_ips),
        ("top subnets", snap.top_subnets),
        ("top paths", snap.top_paths),
        ("top user agents", snap.top_user_agents),
    ):
        lines.append(f"{title}:")
        lines.extend(f"  {e.requests:>9}  {shown(e.key, 100)}" for e in entries)
    return "\n".join(lines)


class _Progress:
    """A one-line progress indication on a terminal's stderr while logs are read."""

    def __init__(self) -> None:
        self.done_bytes: dict[str, tuple[int, int]] = {}
        self.last = 0.0

    def __call__(self, server: str, done: int, total: int) -> None:
        self.done_bytes[server] = (done, total)
        now = time.monotonic()
        if now - self.last < 0.2:
            return
        self.last = now
        parts = [f"{s} {d / 1e6:.1f}/{t / 1e6:.1f} MB" for s, (d, t) in self.done_bytes.items()]
        print("\rreading logs: " + "  ".join(parts), end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.done_bytes:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
