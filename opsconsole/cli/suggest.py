"""``opsconsole suggest SERVICE [--since 10m] [--baseline 30m] [--budget 0.5%] [--json]``.

A thin front end over :meth:`opsconsole.session.Session.suggest` (DESIGN §7, §10): the servers'
logs are read back over the window and its baseline, the analysis tells what separates the attack
from real visitors, and the result is printed — as the analysis a senior engineer would post on
the incident channel (80 columns), or as the ``suggest --json`` object.  Every suggested rule
comes with the exact command that applies it (runnable as printed; add ``--yes`` in a script).
Exit status: 0 the analysis was made (whatever it found), 1 no server's log could be read, 2 bad
usage or config.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap
import time
from typing import Any

from ..config import load_config
from ..durations import format_duration, parse_duration
from ..errors import UsageError
from ..session import Session
from ..text import shown
from .running import run_async

WIDTH = 80
BLOCKS_INLINE = 6
"""Block suggestions with more networks print their command as a here-document."""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "suggest",
        help="what separates the attack from real visitors: rules, measured on the log",
        description=(
            "Compare the last --since of a service's access logs (all its servers) with the "
            "--baseline before it, and suggest nginx rules that stop the excess — network "
            "blocks, filters on path, user agent, method and referer (and on two or three of "
            "them together), rate limits — each replayed over the log with nginx's matching: "
            "the share of the excess it stops, the share of baseline (normal) requests it would "
            "have stopped, and the clients the site wants it would hit, by name. The recommended "
            "set stays within --budget of normal traffic. A quiet window or a crowd of real "
            "visitors gets no rule. Nothing is changed: each suggestion prints the command that "
            "applies it (previewed, validated and applied like any change)."
        ),
    )
    p.add_argument("service", metavar="SERVICE", help="a service of the config ([services.NAME])")
    p.add_argument(
        "--since",
        default="10m",
        metavar="DURATION",
        help="the window to explain (1m to 24h; default 10m)",
    )
    p.add_argument(
        "--baseline",
        default=None,
        metavar="DURATION",
        help="normal traffic: the span just before the window (5m to 7d; default 30m, and "
        "when those 30 minutes look flooded too, the 2h before the window, cut where the "
        "flood began)",
    )
    p.add_argument(
        "--budget",
        default="0.5%",
        metavar="SHARE",
        help="the most of normal traffic the recommended rules may stop (0 to 10%%; default 0.5%%)",
    )
    p.add_argument("--json", action="store_true", help="the suggest --json object on stdout")
    p.set_defaults(func=run)


def _duration(option: str, text: str, lo: float, hi: float) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"{option}: {e}") from None
    if not lo <= seconds <= hi:
        raise UsageError(
            f"{option} {text}: expected {format_duration(lo)} to {format_duration(hi)}"
        )
    return seconds


def budget_share(text: str) -> float:
    """``0.5%`` or ``0.005`` -> 0.005 (0 to 10 %)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"--budget {text!r}: expected a share such as 0.5% or 0.005") from None
    if not 0 <= value <= 0.1:
        raise UsageError(f"--budget {text}: expected 0% to 10% of normal traffic")
    return value


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.service(args.service)
    window = _duration("--since", args.since, 60, 86400)
    baseline = _duration("--baseline", args.baseline or "30m", 300, 7 * 86400)
    budget = budget_share(args.budget)
    return run_async(_suggest(args, config, window, baseline, budget))


async def _suggest(
    args: argparse.Namespace, config: Any, window: float, baseline: float, budget: float
) -> int:
    session = Session(config)
    session.config_arg = args.config
    progress = _progress() if sys.stderr.isatty() else None
    try:
        result, _effects, feeds = await session.suggest(
            args.service, window=window, baseline=baseline, budget=budget, progress=progress,
            auto_baseline=args.baseline is None,
        )  # fmt: skip
    finally:
        if progress is not None:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
        await session.close()
    errors = {name: feed.error for name, feed in feeds.items() if feed.error}
    for name, error in errors.items():
        print(f"opsconsole: {name}: {shown(error)}", file=sys.stderr)
    if args.json:
        out = result.to_dict()
        out["servers"] = {name: {"error": feeds[name].error} for name in feeds}
        print(json.dumps(out))
    else:
        print(render(result, config_arg=args.config))
    return 1 if errors and len(errors) == len(feeds) else 0


def _progress() -> Any:
    state = {"last": 0.0}
    done: dict[str, tuple[int, int]] = {}

    def show(server: str, got: int, total: int) -> None:
        done[server] = (got, total)
        now = time.monotonic()
        if now - state["last"] < 0.2:
            return
        state["last"] = now
        parts = [f"{s} {d / 1e6:.1f}/{t / 1e6:.1f} MB" for s, (d, t) in done.items()]
        print("\rreading logs: " + "  ".join(parts), end="", file=sys.stderr, flush=True)

    return show


# --- the text -----------------------------------------------------------------------------------


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent=first if first is not None else indent,
        subsequent_indent=indent, break_long_words=False, break_on_hyphens=False,
    )  # fmt: skip


def command_lines(command: str, targets: tuple[str, ...] = ()) -> list[str]:
    """A command for the operator, runnable as printed, within 80 columns where its words allow
    (backslash continuations; a long block list as a here-document for ``--from-file -``)."""
    words = shlex.split(command)
    if targets and len(targets) > BLOCKS_INLINE:
        head = [w for w in words if w not in set(targets)]
        i = head.index("block") + 2  # after the service
        head[i:i] = ["--from-file", "-"]
        lines = _continued(head)
        lines[-1] += " <<'EOF'"
        return lines + list(targets) + ["EOF"]
    return _continued(words)


def _continued(words: list[str]) -> list[str]:
    lines: list[str] = []
    line = ""
    for w in (shlex.quote(x) for x in words):
        if line and len(line) + 1 + len(w) > WIDTH - 2:
            lines.append(line + " \\")
            line = "  " + w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line)
    return lines


def render(result: Any, config_arg: str | None = None) -> str:
    """The analysis for people, as it would be posted on the incident channel."""
    head = (
        f"{result.service}: the last {format_duration(result.window)} against the "
        f"{format_duration(result.baseline)} before it"
    )
    lines = [head]
    for note in result.notes:
        lines += _wrap(shown(note), "  ", "  note: ")
    for finding in result.findings:
        lines += _wrap(shown(finding), "    ", "  - ")
    if result.status != "ok":
        lines.append("")
        lines += _wrap(shown(f"{result.status}: {result.reason}"), "  ")
        lines.append("No rule is recommended.")
        return "\n".join(lines)
    rec = result.recommended
    lines.append("")
    around = "The attack goes around the rules in force.  " if result.active_rules else ""
    lines += _wrap(
        f"{around}Recommended: {len(rec)} rule{'s' if len(rec) != 1 else ''} stopping "
        f"{result.recall * 100:.0f} % of the excess and {result.collateral * 100:.2f} % of "
        "normal (baseline) traffic.  Apply them one by one, each previewed; the commands:"
    )
    for i, s in enumerate(result.suggestions):
        if i == len(rec) and not s.recommended:
            lines.append("")
            lines.append("Also considered, not recommended (weaker, or overlapping):")
        lines.append("")
        lines += _wrap(shown(f"{s.id}  {s.rule.describe()}"), "    ")
        figures = (
            f"stops {s.attack_share * 100:.0f} % of the excess ({s.stopped} window requests, "
            f"{s.window_share * 100:.0f} % of the window); "
        )
        if s.collateral:
            figures += (
                f"would have stopped {s.collateral * 100:.2f} % of baseline requests "
                f"({s.collateral_clients} client{'s' if s.collateral_clients != 1 else ''})"
            )
        else:
            figures += "no baseline request matches it"
        lines += _wrap(figures, "    ")
        if s.wanted_hits:
            lines += _wrap("would also stop " + shown(", ".join(s.wanted_hits)), "    ")
        for sample in s.samples[:2]:
            lines.append("    e.g. " + shown(sample, WIDTH - 9))
        targets = s.rule.targets if s.kind == "block" else ()
        lines += command_lines(s.command, targets)  # not indented: it pastes into a shell
    return "\n".join(lines)
