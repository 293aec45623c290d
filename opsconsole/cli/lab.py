"""``opsconsole lab up|down|status``: the rehearsal fleet without the TUI (DESIGN §7, §8).

A thin front end over :class:`opsconsole.lab.Lab`.  ``up`` prints the path of the lab's config on
stdout (so ``opsconsole --config "$(opsconsole lab up)"`` works) and everything else on stderr;
``down`` stops exactly the processes ``up`` started; ``status`` lists them with their liveness.
The default directory is ``$XDG_STATE_HOME/opsconsole/lab``, outside any checkout.

:func:`deal_with_left_labs` is shared with ``opsconsole demo``: before either starts a lab it looks
in the lab registry for labs a killed demo left running and offers to stop them (by PID).  Every
command printed for the operator is quoted to run as printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from shlex import quote
from typing import Any

from ..lab import Lab, LabError, ScenarioRun
from ..lab.registry import Entry, default_lab_dir, survey
from ..lab.replay import DEFAULT_SCALE, MAX_SCALE, validate
from ..lab.scenarios import SCENARIOS
from ..lab.traffic import FLOOD_RPS

OLD_DEFAULT_DIR = Path("opsconsole-lab")
"""Where labs went before they moved to the state directory: still looked at by down/status."""


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
            default=None,
            help=(
                "the lab's directory (default: $XDG_STATE_HOME/opsconsole/lab, "
                f"here {default_lab_dir()})"
            ),
        )

    up = actions.add_parser(
        "up",
        help="start the lab and print its config path",
        description=(
            "Start the lab in the background and print the path of its config.toml.\n\n"
            "With --scenario, the traffic is a labelled scenario: its past 30 minutes are\n"
            "written into the sites' logs at once (so `opsconsole suggest` has a baseline),\n"
            "then its window is sent live (--flood-after seconds of ordinary traffic, then its\n"
            "attack), then ordinary traffic goes on.  The labels of every request are written\n"
            "to DIR/scenario/labels.tsv."
        ),
        epilog=scenario_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common(up)
    up.add_argument("--no-traffic", action="store_true", help="start no traffic generator")
    up.add_argument("--no-flood", action="store_true", help="browsing traffic only, no flood")
    up.add_argument(
        "--flood-after",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help=(
            "seconds of normal traffic before the flood (with --scenario: before the "
            "scenario's event) starts (default: 20)"
        ),
    )
    up.add_argument(
        "--flood-rps",
        type=float,
        default=None,
        metavar="N",
        help=f"requests per second of the flood, all sites together (default: {FLOOD_RPS:g})",
    )
    add_scenario_options(up, default=None)
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


def scenario_help() -> str:
    width = max(map(len, SCENARIOS))
    lines = [f"  {name:<{width}}  {s.summary}" for name, s in SCENARIOS.items()]
    return "scenarios (--scenario NAME):\n" + "\n".join(lines)


def add_scenario_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--scenario`` and ``--scale``, shared with ``opsconsole demo``."""
    parser.add_argument(
        "--scenario",
        default=default,
        metavar="NAME",
        help=(
            "replay a labelled scenario: "
            + ", ".join(SCENARIOS)
            + (f" (default: {default})" if default else "")
        ),
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        metavar="S",
        help=(
            f"volume of the scenario, 1 = its benchmark size (default: {DEFAULT_SCALE:g}; "
            f"at most {MAX_SCALE:g})"
        ),
    )


def check_scenario_args(args: argparse.Namespace) -> float:
    """Validate --scenario, --scale and --flood-after before anything starts; the scale."""
    scale = DEFAULT_SCALE if args.scale is None else args.scale
    if args.scenario is None:
        if args.scale is not None:
            raise LabError("--scale needs --scenario", exit_status=2)
        return scale
    validate(args.scenario, scale, args.flood_after)
    return scale


def describe_scenario(run: ScenarioRun, prefix: str = "  ") -> str:
    """What the scenario replay is doing, in a few lines for the operator."""

    def at(t: float) -> str:
        return time.strftime("%H:%M:%S", time.localtime(t))

    summary = SCENARIOS[run.name].summary if run.name in SCENARIOS else ""
    if run.attack_at is None:
        event = "it has no attack: ordinary traffic only"
    else:
        what = "the attack" if SCENARIOS[run.name].attack else "its event"
        event = f"{what} begins at {at(run.attack_at)}"
    past = f"{run.baseline_lines} lines of past traffic written into the sites' logs" + (
        f" ({at(run.baseline_from)}–{at(run.live_start)})" if run.baseline_from else ""
    )
    return (
        f"{prefix}scenario {run.name} (seed {run.seed}, scale {run.scale:g}): {summary}\n"
        f"{prefix}  {past};\n"
        f"{prefix}  live since {at(run.live_start)}: {event}; its window ends at "
        f"{at(run.window_end)}, then ordinary traffic goes on\n"
        f"{prefix}  labels (ground truth of every request): {run.labels}"
    )


def _lab_dir(args: argparse.Namespace) -> Path:
    return (args.dir if args.dir is not None else default_lab_dir()).resolve()


def down_command(lab_dir: Path) -> str:
    return f"opsconsole lab down --dir {quote(str(lab_dir))}"


def _on_terminal() -> bool:
    """True when an operator can answer a question: stdin and stderr are both terminals."""
    try:
        return sys.stdin is not None and sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def deal_with_left_labs(prog: str, starting_in: Path | None = None) -> None:
    """Before a lab starts: find labs left running by an owner that died, and offer to stop them.

    On a terminal, asks for each (default yes) and stops it by PID; otherwise prints the command
    that stops it and carries on, never waiting for input.  A ``lab up`` lab still running is only
    mentioned, unless it runs in ``starting_in`` (starting there is refused with the same advice).
    """
    stale, detached = survey()
    for entry in stale:
        _offer_to_stop(prog, entry)
    for entry in detached:
        if entry.dir != starting_in:
            print(
                f"{prog}: a lab started by `opsconsole lab up` is also running in {entry.dir} "
                f"({len(entry.alive())} processes); stop it with: {down_command(entry.dir)}",
                file=sys.stderr,
            )


def _offer_to_stop(prog: str, entry: Entry) -> None:
    where = (
        f"in {entry.dir}" if entry.dir.exists() else f"in {entry.dir} (a directory since deleted)"
    )
    what = f"a rehearsal lab is still running {where} ({', '.join(entry.alive())})"
    left = f"left by {entry.left_by()}"
    if not _on_terminal():
        print(f"{prog}: {what}, {left}; stop it with: {down_command(entry.dir)}", file=sys.stderr)
        return
    sys.stderr.write(f"{prog}: {what}, {left}: stop it now? [Y/n] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer or answer.strip().lower() not in ("", "y", "yes"):
        if not answer:
            sys.stderr.write("\n")
        print(
            f"{prog}: left running; stop it later with: {down_command(entry.dir)}", file=sys.stderr
        )
        return
    try:
        lab = Lab.load(entry.dir)
    except LabError as e:  # it ended while we asked, or its lab.json just became unreadable
        print(f"{prog}: {e}", file=sys.stderr)
        return
    lab.stop()
    survivors = [k for k, r in lab.processes().items() if r.alive()]
    if survivors:
        print(
            f"{prog}: could not stop {', '.join(survivors)} of the lab in {entry.dir}; "
            f"try: {down_command(entry.dir)}",
            file=sys.stderr,
        )
    else:
        print(
            f"{prog}: stopped the lab in {entry.dir} ({len(lab.processes())} processes)",
            file=sys.stderr,
        )


def _up(args: argparse.Namespace) -> int:
    flood_after = None if args.no_flood else args.flood_after
    if flood_after is not None and flood_after < 0:
        raise LabError("--flood-after must be 0 or more seconds", exit_status=2)
    flood_rps = FLOOD_RPS if args.flood_rps is None else args.flood_rps
    if not 0 < flood_rps <= 1000:
        raise LabError("--flood-rps must be more than 0 and at most 1000", exit_status=2)
    if args.scenario is not None:
        clash = [
            option
            for option, given in (
                ("--no-traffic", args.no_traffic),
                ("--no-flood", args.no_flood),
                ("--flood-rps", args.flood_rps is not None),
            )
            if given
        ]
        if clash:
            raise LabError(
                f"--scenario replaces the browsing-and-flood generator: drop {', '.join(clash)} "
                "(the quiet scenario has no attack; --scale sets its volume)",
                exit_status=2,
            )
    scale = check_scenario_args(args)
    lab_dir = _lab_dir(args)
    deal_with_left_labs("opsconsole", starting_in=lab_dir)
    print(f"opsconsole: starting the lab in {lab_dir} …", file=sys.stderr)
    lab = Lab.start(lab_dir, traffic=False, seed=args.seed)  # owned by us until it is up
    try:
        if args.scenario is not None:
            print(
                f"opsconsole: writing the past 30 minutes of scenario {args.scenario} into the "
                "sites' logs …",
                file=sys.stderr,
            )
            lab.start_scenario(args.scenario, scale=scale, flood_after=args.flood_after)
        elif not args.no_traffic:
            lab.start_traffic(flood_after, flood_rps=flood_rps)
        lab.detach()  # from now on it outlives this command: `lab down` stops it
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
    if lab.scenario is not None:
        print(describe_scenario(lab.scenario), file=sys.stderr)
        traffic = f"scenario {lab.scenario.name}"
    elif args.no_traffic:
        traffic = "no traffic"
    elif flood_after is None:
        traffic = "browsing traffic, no flood"
    else:
        traffic = f"browsing traffic; a flood of {flood_rps:g} req/s in {flood_after:g}s"
    config = quote(str(lab.config_path))
    print(
        f"opsconsole: lab up in {lab.dir} ({traffic}).\n"
        f"  console:  opsconsole --config {config}\n"
        f"  ssh:      ssh -F {quote(str(lab.layout.ssh_config))} {next(iter(lab.servers))}\n"
        f"  stop:     {down_command(lab.dir)}\n"
        "opsconsole: to point every opsconsole command of this shell at the lab:\n"
        f"export OPSCONSOLE_CONFIG={config}",
        file=sys.stderr,
    )
    if args.json:
        print(json.dumps(lab.status(), indent=2))
    else:
        print(lab.config_path)
    return 0


def _old_default_hint(args: argparse.Namespace) -> str:
    """A hint at a lab an older opsconsole started in ./opsconsole-lab (its default then)."""
    if args.dir is None and (OLD_DEFAULT_DIR / "lab.json").is_file():
        old = OLD_DEFAULT_DIR.resolve()
        return f" (an older lab is in {old}: --dir {quote(str(old))})"
    return ""


def _down(args: argparse.Namespace) -> int:
    try:
        lab = Lab.load(_lab_dir(args))
    except LabError as e:
        print(f"opsconsole: {e}; nothing to stop{_old_default_hint(args)}", file=sys.stderr)
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
    lab_dir = _lab_dir(args)
    try:
        status = Lab.load(lab_dir).status()
    except LabError as e:
        if not args.json:
            print(f"opsconsole: {e}{_old_default_hint(args)}", file=sys.stderr)
            return 1
        status = {"dir": str(lab_dir), "running": False, "processes": {}}
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(f"lab {status['dir']}: {'running' if status['running'] else 'NOT running'}")
        if Path(status["config"]).exists():
            print(f"config {status['config']}")
        else:
            print("its files are gone: only its processes are known (from the lab registry)")
        for name, proc in status["processes"].items():
            print(f"  {name:<12} pid {proc['pid']:<8} {'alive' if proc['alive'] else 'dead'}")
        for name, svc in status["services"].items():
            print(f"  {name:<12} {svc['url']:<26} on {', '.join(svc['servers'])}")
        if status.get("scenario"):
            scenario = status["scenario"]
            print(describe_scenario(ScenarioRun.from_json(scenario)))
            progress = scenario["progress"]
            if progress.get("phase"):
                print(
                    f"    now: {progress['phase']}, {progress['sent'] or 0} requests sent live, "
                    f"{progress['dropped'] or 0} dropped, {progress['behind'] or 0:.1f}s behind"
                )
    return 0 if status["running"] else 1
