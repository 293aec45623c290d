"""Write one labeled traffic scenario as an nginx access log and its labels.

The ground truth that ``opsconsole suggest`` is developed and measured against
(:mod:`opsconsole.lab.scenarios`): a baseline of ordinary traffic on the lab's sites, then a
window holding the scenario's event.  Writes ``DIR/access.log`` (nginx ``combined``) and
``DIR/labels.tsv`` (no header; one row per log line: line number from 1, 1 = attack / 0, actor,
service); with ``--split``, also ``DIR/<service>.access.log`` and ``DIR/<service>.labels.tsv``.
Prints one summary line.

    python bench/gen_scenario.py low-and-slow --out /tmp/lns --seed 3 --scale 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NoReturn

from opsconsole.durations import parse_duration
from opsconsole.lab.scenarios import SCENARIOS, sites, write_log


def _duration(text: str) -> float:
    try:
        value = float(parse_duration(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit status 2 (argparse would print the whole usage first)."""
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:13} {s.summary}" for name, s in SCENARIOS.items())
    p = _Parser(
        prog="gen_scenario.py",
        description=__doc__,
        epilog=f"scenarios:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", help="one of the scenarios listed below")
    p.add_argument("--out", required=True, type=Path, help="directory to write into (created)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="volume multiplier; 1 = about 150,000 attack requests in a 10-minute window",
    )
    p.add_argument("--baseline", type=_duration, default=1800.0, help="baseline length (30m)")
    p.add_argument("--window", type=_duration, default=600.0, help="window length (10m)")
    p.add_argument("--services", help=f"comma-separated sites (default all: {','.join(sites())})")
    p.add_argument("--split", action="store_true", help="also write one log per service")
    return p


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    if args.scenario not in SCENARIOS:
        p.error(f"unknown scenario {args.scenario!r}; known: {', '.join(SCENARIOS)}")
    if not args.scale > 0:
        p.error(f"--scale must be positive, not {args.scale:g}")
    services = [s for s in args.services.split(",") if s] if args.services else None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        summary = write_log(
            args.scenario,
            args.out / "access.log",
            args.out / "labels.tsv",
            split_dir=args.out if args.split else None,
            seed=args.seed,
            baseline=args.baseline,
            window=args.window,
            scale=args.scale,
            services=services,
        )
    except ValueError as e:
        p.error(str(e))
    except OSError as e:
        p.error(f"cannot write to {args.out}: {e.strerror or e}")
    print(f"{summary.line()} ({time.perf_counter() - began:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
