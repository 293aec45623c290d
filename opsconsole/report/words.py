"""The report's facts in words, shared by the Markdown (:mod:`.markdown`) and HTML (:mod:`.html`)
renderings so both say the same thing the same way.  Plain text: each renderer escapes it for
its own syntax.  Standard library and the report's model only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ..controls.state import ControlState
from ..durations import format_duration
from ..text import shown
from .incident import (
    ERROR_SHARE,
    MIN_JUDGED,
    RECOVERY_MINUTES,
    REFUSED_SHARE,
    Action,
    Degraded,
    Report,
    ServiceReport,
)
from .traffic import Minute, Window

SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 72
MAX_LISTED = 50
"""Blocks listed in the controls in force (the JSON has them all)."""
TABLE_ROWS = 24
"""The Markdown table of the timeline has at most this many rows (the JSON has every minute)."""


def hhmm(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M")


def when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def pct(share: float) -> str:
    return f"{share * 100:.1f} %" if share < 0.1 else f"{share * 100:.0f} %"


def rate(rps: float) -> str:
    return f"{rps:.2f} req/s" if rps < 10 else f"{rps:.0f} req/s"


def size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def title(report: Report) -> str:
    return (
        f"Incident report: {when(report.start)} to {when(report.end)} UTC "
        f"(the last {format_duration(report.since)})"
    )


def buckets(minutes: tuple[Minute, ...], count: int) -> list[tuple[Minute, ...]]:
    """The minutes in at most ``count`` consecutive groups of equal length."""
    size = max(1, -(-len(minutes) // count))
    return [minutes[i : i + size] for i in range(0, len(minutes), size)]


def sparkline(values: list[float]) -> str:
    top = max(values, default=0.0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(7, int(v / top * 7.999))] for v in values)


def sparklines(s: ServiceReport) -> tuple[int, list[tuple[str, str]]]:
    """Minutes per character, and (what, sparkline) for requests, refused, 5xx and IPs."""
    groups = buckets(s.minutes, SPARK_WIDTH)
    per = len(groups[0]) if groups else 1

    def line(value: Callable[[Minute], int], combine: Callable[[list[int]], int] = sum) -> str:
        return sparkline([float(combine([value(m) for m in g])) for g in groups])

    peak = max((sum(m.requests for m in g) for g in groups), default=0)
    return per, [
        (f"requests (peak {peak:,} per {format_duration(60 * per)})", line(lambda m: m.requests)),
        ("refused (403/444/429)", line(lambda m: m.refused)),
        ("5xx", line(lambda m: m.classes[4])),
        ("unique IPs (most in a minute)", line(lambda m: m.unique_ips, max)),
        ("new IPs", line(lambda m: m.new_ips)),
    ]


TIMELINE_HEADER = (
    "from (UTC)", "requests", "req/s", "2xx", "3xx", "4xx", "5xx", "refused", "503",
    "unique IPs", "new IPs",
)  # fmt: skip


def timeline_rows(s: ServiceReport) -> list[tuple[str, ...]]:
    """The timeline in at most ``TABLE_ROWS`` rows (unique IPs: the most in one minute)."""
    rows = []
    for g in buckets(s.minutes, TABLE_ROWS):
        n = sum(m.requests for m in g)
        rows.append(
            (
                hhmm(g[0].start), f"{n:,}", f"{n / (60 * len(g)):.2f}",
                *(f"{sum(m.classes[c] for m in g):,}" for c in (1, 2, 3, 4)),
                f"{sum(m.refused for m in g):,}", f"{sum(m.unavailable for m in g):,}",
                f"{max(m.unique_ips for m in g):,}", f"{sum(m.new_ips for m in g):,}",
            )
        )  # fmt: skip
    return rows


def timeline_caption(s: ServiceReport) -> str:
    per = len(buckets(s.minutes, TABLE_ROWS)[0]) if s.minutes else 1
    if per == 1:
        return "One row per minute."
    return (
        f"One row per {format_duration(60 * per)}: unique IPs is the most in one of its minutes, "
        "the other columns add its minutes up (the JSON has every minute)."
    )


def servers_line(s: ServiceReport) -> str:
    parts = []
    for name, r in s.servers.items():
        if r.error is not None:
            parts.append(f"{name} NOT READ ({shown(r.error)})")
        elif r.sampled:
            parts.append(f"{name} sampled ({size(r.read)} of {size(r.size)} read: estimates)")
        else:
            parts.append(f"{name} read whole ({size(r.size)})")
        if r.error is None and len(r.files) > 1:
            parts[-1] += f" from {' and '.join(r.files)}"
    return "servers: " + "; ".join(parts)


def estimate_note(s: ServiceReport) -> str:
    if not s.estimated:
        return "Every number is an exact count of the log lines read."
    return (
        "Estimates: a server's log was too long to read whole over SSH, so evenly spaced parts "
        "of it were read; requests, status classes, refusals and 503s per minute are scaled "
        "up from them (the bytes between parts over their mean line size), and unique and new "
        "IPs count only the lines read (lower bounds)."
    )


def degraded_text(d: Degraded) -> str:
    end = f"recovered {hhmm(d.end)}" if d.end is not None else "not recovered by the end of the log"
    why = []
    if "5xx" in d.why:
        why.append(f"5xx up to {pct(d.peak_error_share)} ({d.errors:,} 5xx, {d.unavailable:,} 503)")
    if "refused" in d.why:
        why.append(f"refused up to {pct(d.peak_refused_share)} ({d.refused:,} refused)")
    minutes = f"{d.minutes} degraded minute{'s' if d.minutes != 1 else ''}"
    return f"{hhmm(d.start)} degraded, {end}: {minutes}, " + "; ".join(why)


def not_degraded_text() -> str:
    return (
        f"Not degraded: in no minute with {MIN_JUDGED}+ requests did 5xx answers reach "
        f"{pct(ERROR_SHARE)} or refusals {pct(REFUSED_SHARE)}."
    )


DEGRADED_RULE = (
    f"A minute with {MIN_JUDGED}+ requests is degraded when 5xx answers (503 included) reach "
    f"{pct(ERROR_SHARE)} of them, or refusals (403/444/429) {pct(REFUSED_SHARE)}; "
    f"{RECOVERY_MINUTES} healthy minutes in a row end the period."
)


def window_text(w: Window) -> str:
    if not w.seconds:
        return "—"
    return (
        f"{rate(w.rps)}, refused {pct(w.refused_share)} ({w.refused:,}), let through "
        f"{rate(w.passed_rps)}, 5xx {pct(w.error_share)} — {w.requests:,} requests in "
        f"{format_duration(w.seconds)}"
    )


def results_text(a: Action) -> str:
    return ", ".join(f"{server} {result}" for server, result in sorted(a.results.items()))


def action_cells(a: Action) -> tuple[str, ...]:
    return (
        when(a.time),
        shown(a.operator),
        shown(a.action, 200),
        results_text(a),
        window_text(a.before),
        window_text(a.after),
    )


ACTION_HEADER = ("time (UTC)", "operator", "action", "servers", "5 min before", "5 min after")


def controls_lines(state: ControlState) -> list[str]:
    """The rules in force, one line each."""
    lines = []
    m = state.maintenance
    if m.on:
        allow = ", ".join(m.allow) or "nobody"
        lines.append(f"maintenance ON (still allowed: {allow})")
    for b in state.blocks[:MAX_LISTED]:
        expiry = f", expires {b.expires_at}" if b.expires_at else ""
        lines.append(
            f"block {b.target} — {shown(b.reason) or 'no reason'} ({shown(b.added_by)}, "
            f"{b.added_at}{expiry})"
        )
    if len(state.blocks) > MAX_LISTED:
        more = len(state.blocks) - MAX_LISTED
        lines.append(f"… and {more} more blocks (the JSON lists them all)")
    for f in state.filters:
        lines.append(
            f"filter {f.id}: {shown(f.describe())} -> {f.action} — {shown(f.reason) or 'no reason'}"
        )
    rl = state.rate_limit
    if rl.rate:
        lines.append(f"rate limit {rl.rate} burst {rl.burst} per {rl.key}")
    return lines


def controls_summary(s: ServiceReport) -> tuple[list[str], list[str]]:
    """(rules in force, remarks: disagreeing servers, servers not read)."""
    remarks: list[str] = []
    if s.controls is None:
        return [], ["the controls could not be read"]
    for name, c in s.controls.servers.items():
        if c.error:
            remarks.append(f"{name}: not read ({shown(c.error)})")
    if not s.controls.consistent and len(remarks) < len(s.controls.servers):
        remarks.append("the servers disagree (a partial apply?): shown is the first one read")
    state = s.state
    if state is None:
        return [], remarks
    return controls_lines(state) or ["none (no block, filter, limit or maintenance)"], remarks


def suggest_lines(s: ServiceReport) -> tuple[str, list[tuple[str, str]]]:
    """(a sentence, and (rule and figures, command) per recommended rule)."""
    sg = s.suggest
    if sg.status == "failed":
        return f"suggest could not run: {shown(sg.reason or '')}", []
    if not sg.recommended:
        why = f" ({shown(sg.reason)})" if sg.reason else ""
        return f"Nothing more to recommend now: {sg.status}{why}.", []
    rows = [
        (
            f"{r.id} {shown(r.rule, 200)}: stops {pct(r.attack_share)} of the excess, "
            f"{pct(r.collateral)} of normal traffic",
            shown(r.command),
        )
        for r in sg.recommended
    ]
    spans = (
        f"the last {format_duration(sg.window)} against the {format_duration(sg.baseline)} before"
    )
    return f"suggest ({spans}) still recommends:", rows


def unread_lines(report: Report) -> list[str]:
    return [f"{name}: {shown(why)}" for name, why in report.unread.items()]
