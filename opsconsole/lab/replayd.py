"""The scenario replay process: ``python -m opsconsole.lab.replayd --lab DIR --scenario NAME …``.

Started (and stopped, by PID) by :meth:`opsconsole.lab.Lab.start_scenario` in place of the
traffic generator (it is the lab's ``traffic`` process); nothing imports it.  It reads the sites
from the lab's state file, writes the scenario's past into their logs, then sends the rest live
(:class:`opsconsole.lab.replay.Replay`).  It ends by itself when the lab's state file disappears
or names another traffic process, after ``--max-duration``, or on SIGTERM/SIGINT; what it sent is
reported on stderr, which the lab sends to ``traffic.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .model import LabError, Layout
from .replay import DEFAULT_SCALE, Replay, Status, sites_from_state
from .traffic import MAX_DURATION
from .trafficd import Lifeline


def report(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} scenario: {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m opsconsole.lab.replayd",
        description="Scenario replay of an opsconsole rehearsal lab (started by the lab).",
    )
    p.add_argument("--lab", required=True, help="the lab directory (holding lab.json)")
    p.add_argument("--scenario", required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=DEFAULT_SCALE)
    p.add_argument("--flood-after", type=float, default=20.0, help="seconds")
    p.add_argument("--max-duration", type=float, default=MAX_DURATION, help="seconds")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    layout = Layout(Path(args.lab).resolve())
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        sites = sites_from_state(json.loads(layout.state_file.read_text()))
        replay = Replay(
            layout,
            sites,
            args.scenario,
            seed=args.seed,
            scale=args.scale,
            flood_after=args.flood_after,
            report=report,
            stop=stop,
        )
    except (OSError, ValueError, KeyError, TypeError, LabError) as e:
        report(f"cannot run: {e}")
        layout.scenario_dir.mkdir(parents=True, exist_ok=True)
        Status(layout.scenario_status).update(phase="failed", error=str(e))
        return 1
    report(
        f"started (pid {os.getpid()}): {args.scenario}, seed {args.seed}, scale {args.scale:g}; "
        "writing its past into the logs"
    )
    try:
        replay.prepare()
    except InterruptedError:
        report("stopped while writing the past")
        replay.status.update(phase="stopped")
        return 0
    except (OSError, ValueError) as e:
        report(f"cannot write the scenario's past: {e}")
        replay.status.update(phase="failed", error=str(e))
        return 1
    data = replay.status.data
    event = (
        "this scenario has no event"
        if data["attack_at"] is None
        else f"its event begins at {time.strftime('%H:%M:%S', time.localtime(data['attack_at']))}"
    )
    report(f"{data['baseline']['lines']} past lines written; live now, {event}")
    lifeline = Lifeline(layout.state_file)
    began = time.monotonic()
    reason = replay.run(lambda: lifeline(time.monotonic() - began), args.max_duration)
    report(reason)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
