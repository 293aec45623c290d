"""What every acting command (``block`` … ``maintenance``, ``confirm``, ``rollback``) does the same
way: the guard rails, the preview and the y/N question, and the printed result (DESIGN §7).

The intents themselves are the session layer's (:class:`opsconsole.session.Session`): this
module parses, asks and prints.  Order of a run, so that bad input never reaches a server:

1. load the config and find the service (exit 2 on any problem);
2. refuse if ``console.read_only`` is set (a ``--dry-run`` is still allowed: it changes nothing);
3. build the intent — every operator value is validated here (exit 2, nothing contacted);
4. without ``--yes``: on a terminal, show the session's preview (servers, versions, the diff)
   and ask on stderr, then apply exactly what was shown (a change made meanwhile by someone else
   is refused, not overwritten); with no terminal on stdin, refuse (exit 2) rather than hang a
   script.  ``confirm`` never asks: it keeps what is already live, so the command the tool
   prints for it works as printed, in a terminal or a script;
5. print per server ok / failed / rolled back with versions (stdout) — or ``ApplyReport.to_dict``
   with ``--json`` — failures in nginx's own words on stderr, a no-op as such ("not blocked on
   www: … — nothing changed", exit 0), and for a commit-confirmed change its deadline and the
   exact ``confirm`` command.  Exit 0 done, 1 failed on a server;
6. wait at most ``notify.EXIT_WAIT`` seconds for the ``[notify]`` webhook posts, and name on
   stderr each webhook that did not take its post (one line each; the exit status is the
   change's).

Used by :mod:`.act`.  Imports the core only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from ..config import load_config
from ..controls import ApplyReport, validate
from ..controls.apply import DEFAULT_CONFIRM, MAX_CONFIRM
from ..controls.report import Outcome, probe_text
from ..controls.state import parse_utc
from ..durations import format_duration, parse_duration
from ..errors import UsageError
from ..session import Intent, OnProgress, Progress, Session, Settle
from ..text import shown, unprefixed
from .running import run_async

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


def asks(intent: Intent) -> bool:
    """Whether the command asks before acting: every change does; ``confirm`` keeps what is
    already live and never asks."""
    return intent is not Settle.CONFIRM


def run_acting(args: argparse.Namespace, make_intent: Callable[[], Intent]) -> int:
    """Steps 1-4 (everything that can refuse without a server), then the async rest."""
    config = load_config(args.config)
    config.service(args.service)
    session = Session(config)
    if not args.dry_run:
        session.refuse_if_read_only()
    intent = make_intent()
    validate.operator(config.console.operator)
    window = confirm_window(getattr(args, "confirm_within", None))
    if not args.dry_run and not args.yes and asks(intent) and not sys.stdin.isatty():
        raise UsageError(
            f"not changing {args.service}: stdin is not a terminal, so there is nobody to "
            "confirm; pass --yes to apply without a prompt (or --dry-run to preview)"
        )
    return run_async(_execute(session, args, intent, window))


def progress_printer() -> OnProgress | None:
    """Progress lines on stderr when it is a terminal (None otherwise: scripts see no noise)."""
    if not sys.stderr.isatty():
        return None

    def say(event: Progress) -> None:
        print(f"  {event.server}: {shown(event.text())}", file=sys.stderr, flush=True)

    return say


async def _execute(
    session: Session, args: argparse.Namespace, intent: Intent, window: float | None
) -> int:
    say = progress_printer()
    service = args.service
    try:
        if args.dry_run:
            preview = await session.preview(service, intent, confirm_within=window, on_progress=say)
            print_report(preview.report, args)
            return preview.report.exit_status
        if not args.yes and asks(intent):
            preview = await session.preview(service, intent, confirm_within=window, on_progress=say)
            print(render_preview(preview.report, window), file=sys.stderr)
            if not preview.changes:
                print_report(preview.report, args)
                return preview.report.exit_status
            if not ask(f"{preview.action} on {', '.join(preview.changes)}?"):
                print("opsconsole: aborted, nothing changed", file=sys.stderr)
                return 1
            report = await session.apply(preview, on_progress=say)
        else:
            version = getattr(args, "expect_version", None)
            expected = (
                None if version is None else dict.fromkeys(session.servers_of(service), version)
            )
            report = await session.execute(
                service, intent, confirm_within=window, expected_versions=expected,
                on_progress=say,
            )  # fmt: skip
    finally:
        await session.close()
    print_report(report, args)
    # The change is done and printed; its webhook posts get a few seconds more, and a webhook
    # that did not take one is named on stderr — the exit status stays the change's.
    for failure in await session.notifier.aclose():
        print(f"opsconsole: {shown(failure.line())}", file=sys.stderr)
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
    pending = r.confirm_deadline and not report.dry_run and report.action != "confirm"
    words = {
        Outcome.OK: f"applied, awaiting confirmation, {versions}" if pending else f"ok, {versions}",
        Outcome.UNCHANGED: f"unchanged (already so), {versions}",
        Outcome.DRY_RUN: (
            f"would change {versions}" if report.action != "confirm" else f"{versions}"
        ),
        Outcome.CONFIRMED: f"confirmed, {versions}",
        Outcome.ROLLED_BACK: f"rolled back, {versions}",
        Outcome.NOTHING: f"nothing to do ({r.reason})",
    }
    if r.status is Outcome.FAILED:
        text = "FAILED, rolled back" if r.rolled_back else "FAILED"
        text += f", {versions} kept" if versions else ""
    else:
        text = words.get(r.status, r.status)
    if r.recovered:
        text += " (an interrupted earlier apply was rolled back first)"
    return text


def confirm_command(service: str, config_arg: str | None, verb: str = "confirm") -> str:
    """The command to print for the operator to run, runnable as printed (``rollback`` asks
    on a terminal and is refused without one, so its printed form carries ``--yes``)."""
    where = f" --config {shlex.quote(config_arg)}" if config_arg else ""
    yes = " --yes" if verb == "rollback" else ""
    return f"opsconsole{where} {verb} {shlex.quote(service)}{yes}"


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
    lines = [f"{title}{shown(report.action)} on {report.service}"]
    lines += [f"  {n.ljust(width)}  {shown(describe(report, n))}" for n in report.results]
    if report.changed_nothing:
        lines.append(shown(report.summary()))
    else:
        lines += [shown(note) for note in report.notes]
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
            f"opsconsole: {r.server}: {shown(unprefixed(r.reason, r.server))}"
            f"{extra if r.rolled_back else ''}",
            file=sys.stderr,
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
        if r.status is Outcome.FAILED:
            lines.append(f"{r.server}: cannot apply: {shown(unprefixed(r.reason, r.server))}")
    if preview.action not in ("confirm", "rollback") and preview.would_change:
        risky = preview.risk
        if window:
            lines.append(
                f"commit-confirmed: reverts by itself unless confirmed within "
                f"{format_duration(window)}"
            )
        elif window is None and risky:
            lines.append(
                f"commit-confirmed ({risky}): reverts by itself unless confirmed within "
                f"{format_duration(DEFAULT_CONFIRM)}"
            )
    return "\n".join(lines)
