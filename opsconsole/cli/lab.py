"""``opsconsole lab up|down|status``: the rehearsal fleet without the TUI (DESIGN §7, §8).

A thin front end over :class:`opsconsole.lab.Lab`.  ``up`` prints the path of the lab's config on
stdout (so ``opsconsole --config "$(opsconsole lab up)"`` works) and everything else on stderr;
``down`` stops exactly the processes ``up`` started; ``status`` lists them with their liveness.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..lab import Lab, LabError
from ..lab.traffic import FLOOD_RPS

DEFAULT_DIR = "opsconsole-lab"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="the local rehearsal fleet: real sshd + nginx on loopback, with traffic",
        description=(
            "Run a rehearsal fleet on this machine: for each simulated server a real OpenSSH sshd "
            "and a real nginx on 127.0.0.1 ports, sites www, shop, forums, git and repo, and a "
            "traffic generator (browsing, then a flood of random 404s from a large pool of client "
            "addresses). Needs nginx and openssh-server installed; starts nothing as a service."
        ),
    )
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dir",
            type=Path,
            default=Path(DEFAULT_DIR),
            help=f"the lab's directory (default: ./{DEFAULT_DIR})",
        )

    up = actions.add_parser(
        "up",
        help="start the lab and print its config path",
        description="Start the lab in the background and print the path of its config.toml.",
    )
    common(up)
    up.add_argument("--no-traffic", action="store_true", help="start no traffic generator")
    up.add_argument("--no-flood", action="store_true", help="browsing traffic only, no flood")
    up.add_argument(
        "--flood-after",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="seconds of normal traffic before the flood starts (default: 20)",
    )
    up.add_argument(
        "--flood-rps",
        type=float,
        default=FLOOD_RPS,
        metavar="N",
        help=f"requests per second of the flood, all sites together (default: {FLOOD_RPS:g})",
    )
    up.add_argument("--seed", type=int, default=1, help="seed of the traffic (default: 1)")
    up.add_argument("--json", action="store_true", help="print the lab's status as JSON")
    up.set_defaults(func=_up)

    down = actions.add_parser(
        "down",
        help="stop every process of the lab",
        description="Stop every process the lab started (by PID); logs and config stay.",
    )
    common(down)
    down.set_defaults(func=_down)

    status = actions.add_parser(
        "status",
        help="show the lab's processes and whether they are alive",
        description=(
            "Show each process of the lab and whether it is alive. "
            "Exit status 0 when all are alive, 1 otherwise (or when no lab runs there)."
        ),
    )
    common(status)
    status.add_argument("--json", action="store_true", help="JSON on stdout")
    status.set_defaults(func=_status)


def _up(args: argparse.Namespace) -> int:
    flood_after = None if args.no_flood else args.flood_after
    if flood_after is not None and flood_after < 0:
        raise LabError("--flood-after must be 0 or more seconds", exit_status=2)
    if not 0 < args.flood_rps <= 1000:
        raise LabError("--flood-rps must be more than 0 and at most 1000", exit_status=2)
    print(f"opsconsole: starting the lab in {args.dir.resolve()} …", file=sys.stderr)
    lab = Lab.start(args.dir, traffic=False, seed=args.seed)
    if not args.no_traffic:
        try:
            lab.start_traffic(flood_after, flood_rps=args.flood_rps)
        except BaseException:
            lab.stop()
            raise
    for s in lab.servers.values():
        print(
            f"  {s.name}: ssh 127.0.0.1:{s.ssh_port} (sshd pid {s.sshd_pid}), "
            f"nginx pid {s.nginx_pid}",
            file=sys.stderr,
        )
    for svc in lab.services.values():
        print(f"  {svc.name}: {lab.url(svc.name)} on {', '.join(svc.servers)}", file=sys.stderr)
    if args.no_traffic:
        traffic = "no traffic"
    elif flood_after is None:
        traffic = "browsing traffic, no flood"
    else:
        traffic = f"browsing traffic; a flood of {args.flood_rps:g} req/s in {flood_after:g}s"
    print(
        f"opsconsole: lab up ({traffic}).\n"
        f"  console:  opsconsole --config {lab.config_path}\n"
        f"  ssh:      ssh -F {lab.layout.ssh_config} {next(iter(lab.servers))}\n"
        f"  stop:     opsconsole lab down --dir {lab.dir}",
        file=sys.stderr,
    )
    if args.json:
        print(json.dumps(lab.status(), indent=2))
    else:
        print(lab.config_path)
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        lab = Lab.load(args.dir)
    except LabError as e:
        print(f"opsconsole: {e}; nothing to stop", file=sys.stderr)
        return 0
    lab.stop()
    left = [k for k, r in lab.processes().items() if r.alive()]
    if left:
        raise LabError(f"could not stop {', '.join(left)} of the lab in {lab.dir}")
    print(
        f"opsconsole: lab in {lab.dir} stopped ({len(lab.processes())} processes)", file=sys.stderr
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        status = Lab.load(args.dir).status()
    except LabError as e:
        if not args.json:
            print(f"opsconsole: {e}", file=sys.stderr)
            return 1
        status = {"dir": str(args.dir.resolve()), "running": False, "processes": {}}
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"lab {status['dir']}: {'running' if status['running'] else 'NOT running'}")
        print(f"config {status['config']}")
        for name, proc in status["processes"].items():
            print(f"  {name:<12} pid {proc['pid']:<8} {'alive' if proc['alive'] else 'dead'}")
        for name, svc in status["services"].items():
            print(f"  {name:<12} {svc['url']:<26} on {', '.join(svc['servers'])}")
    return 0 if status["running"] else 1
