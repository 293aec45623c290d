"""``opsconsole export [--listen 127.0.0.1:9464]``: the live numbers for Prometheus (DESIGN §11).

Runs the console's core without a screen: every service's logs followed, health probed,
controls and recovery stages watched, traffic analysed for the rules' effects, and serves it
all on ``http://LISTEN/metrics`` until Ctrl-C.  It never changes a server: ``--ttl`` blocks are
left for a console (or the next command) to expire.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..config import Config, load_config, parse_listen
from ..errors import OperationError, UsageError
from .running import run_async

DEFAULT_LISTEN = "127.0.0.1:9464"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="serve the fleet's live numbers to Prometheus (/metrics)",
        description=(
            "Follow every service's access logs and probe health as the console does, and serve "
            "the numbers in the Prometheus exposition format at http://LISTEN/metrics: requests "
            "by status class, refused requests by rule, unique IPs, recovery stage, follow lag, "
            "server and site health. Runs until Ctrl-C; changes nothing on the servers. The "
            'console serves the same with `export = "HOST:PORT"` in [console].'
        ),
        epilog=(
            "Scrape it with, in prometheus.yml: scrape_configs: [{job_name: opsconsole, "
            f"static_configs: [{{targets: ['{DEFAULT_LISTEN}']}}]}}]. Series are labelled by "
            "service and server only, never by client IP or path."
        ),
    )
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=None,
        help=f"address to serve on (default: [console] export, else {DEFAULT_LISTEN}; "
        "[::1]:9464 for IPv6)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.listen is not None:
        try:
            listen = parse_listen(args.listen)
        except ValueError as e:
            raise UsageError(f"--listen: {e}") from None
    else:
        listen = config.console.export or parse_listen(DEFAULT_LISTEN)
    return run_async(_serve(config, listen), interrupted_status=0)


async def _serve(config: Config, listen: tuple[str, int]) -> int:
    from ..session import LiveSession

    session = LiveSession(config)
    try:
        await session.start(expire=False, export=listen)
        if session.exporter is None:
            raise OperationError(session.export_error or "cannot serve metrics")
        print(
            f"opsconsole: serving {len(config.services)} services on {len(config.servers)} "
            f"servers at {session.exporter.url} (Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        await asyncio.Event().wait()  # until Ctrl-C
        return 0
    finally:
        await session.stop()
