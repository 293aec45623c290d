"""``opsconsole setup SERVICE [--json]``: make a service's servers ready for controls (DESIGN §5).

A thin front end over :func:`opsconsole.controls.setup_service`: it creates the control directory
and empty snippets where none exist, asks nginx (``nginx -T``, from the configured ``nginx_test``)
which files it includes and where, and says so — or prints the exact ``include`` lines to add and
where.  It never edits the operator's nginx config.  With ``console.read_only`` it only checks.
Exit status: 0 ready everywhere, 1 an include is missing or a server failed, 2 bad usage/config.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..config import Config, load_config
from ..controls import SetupReport
from ..controls.setup import ServerSetup
from ..session import Session
from .running import run_async


def register(sub: Any) -> None:
    p = sub.add_parser(
        "setup",
        help="create a service's control snippets and check that nginx includes them",
        description=(
            "On every server of the service: create the control directory and empty "
            "<service>.http.conf / <service>.server.conf where none exist, then ask nginx "
            "(the configured nginx -t, run as nginx -T, which checks the config and lists every "
            "file it reads) whether it includes the first inside http {} and the "
            "second inside the site's server {}. Where it does not, print the exact include "
            "lines to add; your own nginx files are never edited. Exit status: 0 ready, 1 an "
            "include is missing or a server failed, 2 bad usage or config."
        ),
    )
    p.add_argument("service", metavar="SERVICE", help="a service of the config ([services.NAME])")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=run)


async def _setup(config: Config, service: str) -> SetupReport:
    session = Session(config)
    try:
        return await session.setup(service)
    finally:
        await session.close()


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.service(args.service)
    create = not config.console.read_only
    if not create:
        print("opsconsole: read-only console: checking only, creating nothing", file=sys.stderr)
    report = run_async(_setup(config, args.service))
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(render(report))
    for name, s in report.servers.items():
        if s.error:
            print(f"opsconsole: {name}: {s.error}", file=sys.stderr)
    return report.exit_status


def _server_text(service: str, s: ServerSetup) -> list[str]:
    lines = [f"{s.server}:"]
    lines += [f"  created {path} (empty)" for path in s.created]
    if s.error:
        lines.append(f"  not checked: {s.error}")
    if s.checked:
        if s.http_included:
            lines.append(f"  {s.http_file} is included in http {{}}")
        if s.server_included:
            names = sorted({n for i in s.server_at for n in i.server_names})
            label = f"server {{ server_name {' '.join(names)}; }}" if names else "server {}"
            lines.append(f"  {s.server_file} is included in {label}")
        lines += [f"  WRONG PLACE: {m}" for m in s.misplaced()]
    missing = s.missing()
    if not s.checked and not s.askable:
        missing = {"http": f"include {s.http_file};", "server": f"include {s.server_file};"}
        lines.append("  nginx's config must contain (check by hand, or fix the error and rerun):")
    if missing.get("http"):
        lines.append(f"  add inside the http {{}} block of {s.server}'s nginx config:")
        lines.append(f"      {missing['http']}")
    if missing.get("server"):
        lines.append(f"  add inside the server {{}} block of {service} on {s.server}:")
        lines.append(f"      {missing['server']}")
    if s.ok:
        lines.append("  ready: opsconsole controls apply here")
    elif s.checked and not s.error:
        lines.append("  then run nginx -t and reload nginx, and run this command again")
    elif s.error and s.askable:
        lines.append("  fix the problem above and run this command again")
    return lines


def render(report: SetupReport) -> str:
    head = "ready on every server" if report.ok else "NOT READY"
    lines = [f"{report.service}: {head}"]
    for s in report.servers.values():
        lines += _server_text(report.service, s)
    return "\n".join(lines)
