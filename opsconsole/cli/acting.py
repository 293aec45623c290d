"""What every acting command (``block`` … ``maintenance``, ``confirm``, ``rollback``) does the same
way: the guard rails, the preview and the y/N question, and the printed result (DESIGN §7).

Order of a run, so that bad input never reaches a server:

1. load the config and find the service (exit 2 on any problem);
2. refuse if ``console.read_only`` is set (a ``--dry-run`` is still allowed: it changes nothing);
3. build the edit — every operator value is validated here (exit 2, nothing contacted);
4. without ``--yes``: on a terminal, connect, show the preview (servers, versions, the diff) and
   ask on stderr; with no terminal on stdin, refuse (exit 2) rather than hang a script;
5. apply (or confirm / roll back) on every server in parallel, progress on a terminal's stderr;
6. print per server ok / failed / rolled back with versions (stdout) — or ``ApplyReport.to_dict``
   with ``--json`` — failures in nginx's own words on stderr, and for a commit-confirmed change
   its deadline and the exact ``confirm`` command.  Exit 0 done, 1 failed on a server.

Used by :mod:`.act`.  Imports the core (``opsconsole.controls``) and :mod:`.connect` only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..config import Config, load_config
from ..controls import (
    ApplyReport,
    Edit,
    apply_change,
    confirm_change,
    preview_settle,
    rollback_change,
    validate,
)
from ..controls.apply import MAX_CONFIRM
from ..controls.report import probe_text
from ..controls.state import parse_utc
from ..durations import format_duration, parse_duration
from ..errors import UsageError
from ..transport.base import Transport
from .connect import connect, make_pool, progress_printer

PREVIEW_LINES = 40
"""Diff lines shown before the y/N question (``--dry-run`` prints all of them)."""


def add_options(parser: argparse.ArgumentParser, *, edit: bool = True) -> None:
    """The options every acting command takes (``--confirm-within`` only where it applies)."""
    g = parser.add_argument_group("applying")
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print the rendered diff per server and change nothing",
    )
    g.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="do it without asking (required when stdin is not a terminal)",
    )
    if edit:
        g.add_argument(
            "--confirm-within",
            metavar="DURATION",
            help="commit-confirmed: each server restores the previous controls by itself unless "
            "`opsconsole confirm SERVICE` arrives within DURATION (e.g. 60s, 5m; 0 or off: "
            "never). Default: 2m for risky changes (maintenance off, a block broader than /16 "
            "IPv4 or /32 IPv6), off for the others",
        )
        g.add_argument(
            "--expect-version",
            type=int,
            metavar="N",
            help="refuse unless the servers are still at state version N (as shown by "
            "`opsconsole controls`), so nobody's change is overwritten unseen",
        )
    g.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def confirm_window(text: str | None) -> float | None:
    """``--confirm-within``: None (the core's default rule), 0 (off) or seconds."""
    if text is None:
        return None
    if text.strip().lower() in ("0", "off", "no", "none"):
        return 0.0
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise UsageError(f"--confirm-within: {e} (or 0/off)") from None
    if seconds > MAX_CONFIRM:
        raise UsageError(f"--confirm-within {text}: at most {format_duration(MAX_CONFIRM)}")
    return seconds


@dataclass(frozen=True)
class Intent:
    mode: str
    """apply, confirm or rollback"""
    edit: Edit | None = None

    @property
    def action(self) -> str:
        return self.edit.action if self.edit is not None else self.mode


def run_acting(
    args: argparse.Namespace, mode: str, make_edit: Callable[[], Edit] | None = None
) -> int:
    """Steps 1-4 (everything that can refuse without a server), then the async rest."""
    config = load_config(args.config)
    config.service(args.service)
    if config.console.read_only and not args.dry_run:
        raise UsageError(
            f"{config.path}: console.read_only = true: actions are refused (safe mode); "
            "--dry-run still previews, and `read_only = false` allows changes"
        )
    edit = make_edit() if make_edit is not None else None
    operator = validate.operator(config.console.operator)
    window = confirm_window(getattr(args, "confirm_within", None))
    if not args.dry_run and not args.yes and not sys.stdin.isatty():
        raise UsageError(
            f"not changing {args.service}: stdin is not a terminal, so there is nobody to "
            "confirm; pass --yes to apply without a prompt (or --dry-run to preview)"
        )
    intent = Intent(mode, edit)
    return asyncio.run(_execute(config, args, intent, operator, window))


async def _run(
    config: Config,
    args: argparse.Namespace,
    intent: Intent,
    transports: dict[str, Transport],
    operator: str,
    window: float | None,
    *,
    dry_run: bool,
    expected: int | None = None,
) -> ApplyReport:
    if intent.mode == "apply":
        assert intent.edit is not None
        return await apply_change(
            config,
            args.service,
            transports,
            intent.edit,
            operator=operator,
            dry_run=dry_run,
            confirm_within=window,
            expected_version=expected,
        )
    if dry_run:
        return await preview_settle(config, args.service, transports, intent.mode)
    settle = confirm_change if intent.mode == "confirm" else rollback_change
    return await settle(config, args.service, transports, operator=operator)


async def _execute(
    config: Config,
    args: argparse.Namespace,
    intent: Intent,
    operator: str,
    window: float | None,
) -> int:
    say = progress_printer()
    pool = make_pool(config)
    try:
        servers = config.service(args.service).servers
        transports = await connect(pool, servers, say)
        expected = getattr(args, "expect_version", None)
        if args.dry_run:
            report = await _run(
                config, args, intent, transports, operator, window, dry_run=True, expected=expected
            )
            print_report(report, args)
            return report.exit_status
        if not args.yes:
            preview = await _run(config, args, intent, transports, operator, window, dry_run=True)
            print(render_preview(preview, window), file=sys.stderr)
            changing = [r.server for r in preview.results.values() if r.status == "dry-run"]
            if not changing:
                print("opsconsole: nothing to change", file=sys.stderr)
                return preview.exit_status
            if not ask(f"{intent.action} on {', '.join(changing)}?"):
                print("opsconsole: aborted, nothing changed", file=sys.stderr)
                return 1
            versions = {r.before_version for r in preview.results.values() if r.ok}
            if expected is None and len(versions) == 1 and intent.mode == "apply":
                expected = versions.pop()  # apply what was shown, or refuse: no unseen change
        report = await _run(
            config, args, intent, transports, operator, window, dry_run=False, expected=expected
        )
    finally:
        await pool.close()
    print_report(report, args)
    return report.exit_status


def ask(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


# --- output ------------------------------------------------------------------------------------


def _versions(before: int | None, after: int | None) -> str:
    if before is None and after is None:
        return ""
    if before == after or after is None:
        return f"version {before}"
    return f"version {before} -> {after}"


def describe(report: ApplyReport, server: str) -> str:
    """One server's outcome in words: ``ok, version 4 -> 5``."""
    r = report.results[server]
    versions = _versions(r.before_version, r.after_version)
    words = {
        "ok": f"ok, {versions}",
        "unchanged": f"unchanged (already so), {versions}",
        "dry-run": f"would change {versions}" if report.action != "confirm" else f"{versions}",
        "confirmed": f"confirmed, {versions}",
        "rolled-back": f"rolled back, {versions}",
        "nothing": f"nothing to do ({r.reason})",
    }
    if r.status == "failed":
        text = "FAILED, rolled back" if r.rolled_back else "FAILED"
        text += f", {versions} kept" if versions else ""
    else:
        text = words.get(r.status, r.status)
    if r.recovered:
        text += " (an interrupted earlier apply was rolled back first)"
    return text


def confirm_command(service: str, config_arg: str | None, verb: str = "confirm") -> str:
    where = f" --config {shlex.quote(config_arg)}" if config_arg else ""
    return f"opsconsole{where} {verb} {shlex.quote(service)}"


def _in(deadline: str) -> str:
    left = (parse_utc(deadline) - datetime.now(UTC)).total_seconds()
    return f"in {format_duration(left)}" if left >= 1 else "now"


def _diffs(report: ApplyReport) -> list[tuple[list[str], str]]:
    """Distinct diffs and the servers that share each (usually one diff for all)."""
    groups: dict[str, list[str]] = {}
    for name, r in report.results.items():
        if r.diff:
            groups.setdefault(r.diff, []).append(name)
    return [(names, diff) for diff, names in groups.items()]


def render_result(report: ApplyReport, config_arg: str | None) -> str:
    width = max((len(n) for n in report.results), default=4)
    title = "dry run: " if report.dry_run else ""
    lines = [f"{title}{report.action} on {report.service}"]
    lines += [f"  {n.ljust(width)}  {describe(report, n)}" for n in report.results]
    if report.probe is not None:
        lines.append(f"site now: {probe_text(report.probe)}")
    if report.dry_run:
        for names, diff in _diffs(report):
            lines.append(f"# diff on {', '.join(names)}:")
            lines.append(diff.rstrip("\n"))
    deadlines = sorted({r.confirm_deadline for r in report.results.values() if r.confirm_deadline})
    if deadlines and not report.dry_run and report.action not in ("confirm", "rollback"):
        lines += [
            f"commit-confirmed: unless confirmed by {deadlines[0]} ({_in(deadlines[0])}), the "
            "servers restore the previous controls by themselves. To keep this change, run:",
            f"    {confirm_command(report.service, config_arg)}",
            f"(to undo it now: {confirm_command(report.service, config_arg, 'rollback')})",
        ]
    return "\n".join(lines)


def print_report(report: ApplyReport, args: argparse.Namespace) -> None:
    """The result on stdout (text or JSON); each failure, in the server's words, on stderr."""
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(render_result(report, args.config))
    for r in report.failures():
        extra = " (rolled back: the previous files and nginx config are in place)"
        print(
            f"opsconsole: {r.server}: {r.reason}{extra if r.rolled_back else ''}", file=sys.stderr
        )
    bad = report.failures()
    if bad:
        print(
            f"opsconsole: {report.action} on {report.service} failed on "
            f"{len(bad)} of {len(report.results)} servers",
            file=sys.stderr,
        )


def render_preview(preview: ApplyReport, window: float | None) -> str:
    """What the y/N question is about: the servers, their versions, the start of the diff."""
    lines = [render_result(preview, None).split("\n# diff", 1)[0].replace("dry run: ", "", 1)]
    for names, diff in _diffs(preview):
        body = diff.rstrip("\n").split("\n")
        added = sum(1 for x in body if x.startswith("+") and not x.startswith("+++"))
        removed = sum(1 for x in body if x.startswith("-") and not x.startswith("---"))
        lines.append(f"diff on {', '.join(names)} (+{added} -{removed} lines):")
        lines.extend(body[:PREVIEW_LINES])
        if len(body) > PREVIEW_LINES:
            lines.append(f"... {len(body) - PREVIEW_LINES} more lines (--dry-run prints them all)")
    for r in preview.results.values():
        if r.status == "failed":
            lines.append(f"{r.server}: cannot apply: {r.reason}")
    if preview.action not in ("confirm", "rollback"):
        if window:
            lines.append(
                f"commit-confirmed: reverts by itself unless confirmed within "
                f"{format_duration(window)}"
            )
        elif window is None:
            lines.append("commit-confirmed: only if risky (maintenance off, a broad block)")
    return "\n".join(lines)
