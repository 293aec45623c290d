"""``opsconsole demo``: the rehearsal lab (DESIGN §8) with the console open on it.

Starts a :class:`~opsconsole.lab.Lab` — a real sshd and nginx per simulated server on loopback,
sites www, shop, forums, git and repo — and replays a labelled scenario into it
(:meth:`~opsconsole.lab.Lab.start_scenario`, ``low-and-slow`` unless ``--scenario`` says
otherwise): its past 30 minutes written into the logs, so that ``suggest`` has a baseline at once,
then ordinary traffic live and the attack after ``--flood-after`` seconds.  It shows progress
while the lab starts, opens the TUI on the lab's config and, however the console ends
(the quit key, an exception, SIGINT, SIGTERM, SIGHUP from a closed terminal), stops every process
the lab started.  Inside the console Ctrl-C only reminds the operator of the quit key (Textual's
convention).  A missing nginx or sshd is reported with the package to install (exit status 2)
before anything starts.  The demo's audit trail is kept in the lab directory, apart from the
operator's real one.

The demo owns its lab (the lab registry records the demo's PID and start time): if the demo is
killed with SIGKILL, nothing here runs, so the next ``opsconsole demo`` or ``lab up`` finds the
processes it left and offers to stop them (:func:`~opsconsole.cli.lab.deal_with_left_labs`).  The
lab's directory and the command that stops it are printed before the lab starts, for that case.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from ..lab import Lab
from ..lab.lab import require_software
from ..lab.scenarios import SCENARIOS
from .lab import (
    add_scenario_options,
    check_scenario_args,
    deal_with_left_labs,
    describe_scenario,
    down_command,
    scenario_help,
)
from .tui import build_app, run_app

DEFAULT_SCENARIO = "low-and-slow"
"""The mission's attack: tens of thousands of addresses, each below every per-IP threshold."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the console on a local rehearsal fleet (real sshd + nginx on loopback, a flood)",
        description=(
            "Start a rehearsal fleet on this machine — a real OpenSSH sshd and nginx per\n"
            "simulated server on 127.0.0.1, sites www, shop, forums, git and repo — with a\n"
            "labelled scenario: its past 30 minutes in the sites' logs (so `suggest` has a\n"
            "baseline at once), then ordinary traffic live and, after --flood-after seconds,\n"
            f"its attack ({DEFAULT_SCENARIO} unless --scenario says otherwise) — and open the\n"
            "console on it. Quitting the console stops everything the demo started. Needs\n"
            "nginx and openssh-server installed."
        ),
        epilog=scenario_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="the lab's directory (default: a new temporary directory, kept for a post-mortem)",
    )
    parser.add_argument(
        "--flood-after",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="seconds of normal traffic before the flood starts (default: 20)",
    )
    add_scenario_options(parser, default=DEFAULT_SCENARIO)
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic (default: 1)")
    parser.set_defaults(func=_demo)


@contextmanager
def _progress(text: str) -> Iterator[None]:
    """A spinner on stderr while the lab starts (a plain line when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        print(f"opsconsole demo: {text}", file=sys.stderr)
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def spin() -> None:
        frames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
        i = 0
        while not done.wait(0.1):
            elapsed = time.monotonic() - started
            sys.stderr.write(f"\r{frames[i % len(frames)]} {text} {elapsed:4.1f}s")
            sys.stderr.flush()
            i += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        sys.stderr.write(f"\r✓ {text} {time.monotonic() - started:4.1f}s\n")
        sys.stderr.flush()


def demo_note(lab_dir: Path, flood_at: float | None, now: float, *, event: str = "flood") -> str:
    """The demo's header note: where the lab is, and when the flood (``event``) comes or came;
    ``flood_at`` None: the scenario has none."""
    if flood_at is None:
        return f"demo lab in {lab_dir} · no attack in this scenario"
    if now < flood_at:
        return f"demo lab in {lab_dir} · {event} in {flood_at - now:.0f}s"
    return (
        f"demo lab in {lab_dir} · {event} since "
        f"{time.strftime('%H:%M:%S', time.localtime(flood_at))}"
    )


def _demo(args: argparse.Namespace) -> int:
    if args.flood_after < 0:
        print("opsconsole: --flood-after must be 0 or more seconds", file=sys.stderr)
        return 2
    scale = check_scenario_args(args)  # LabError, exit status 2, before anything starts
    require_software()  # LabError, exit status 2, naming the packages to install
    deal_with_left_labs("opsconsole demo", starting_in=args.dir.resolve() if args.dir else None)
    lab_dir = (args.dir or Path(tempfile.mkdtemp(prefix="opsconsole-lab-"))).resolve()
    print(
        f"opsconsole demo: the lab's files are in {lab_dir} "
        f"(if the demo is killed, stop what it left with: {down_command(lab_dir)})",
        file=sys.stderr,
    )
    with _progress("starting the rehearsal lab (sshd and nginx on loopback)…"):
        lab = Lab.start(lab_dir, traffic=False, seed=args.seed)
    app = None

    def stop_app(signum: int, frame: FrameType | None) -> None:
        if app is not None and app.is_running:
            app.exit(128 + signum)
        else:
            raise KeyboardInterrupt(f"signal {signum}")

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, stop_app) for s in signals}
    try:
        with _progress(f"writing 30 minutes of past traffic ({args.scenario}) into the logs…"):
            run = lab.start_scenario(args.scenario, scale=scale, flood_after=args.flood_after)
        print(describe_scenario(run), file=sys.stderr)
        event = "flood" if SCENARIOS[run.name].attack else "flash crowd"
        app = build_app(
            str(lab.config_path),
            subtitle=lambda: demo_note(lab.dir, run.attack_at, time.time(), event=event),
            audit_path=lab.dir / "audit.jsonl",
        )
        return run_app(app)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        lab.stop()
        left = [k for k, r in lab.processes().items() if r.alive()]
        if left:
            print(
                f"opsconsole demo: could not stop {', '.join(left)}; its files stay in {lab.dir}; "
                f"try: {down_command(lab.dir)}",
                file=sys.stderr,
            )
        else:
            print(
                f"opsconsole demo: lab stopped ({len(lab.processes())} processes); "
                f"its files stay in {lab.dir}",
                file=sys.stderr,
            )
