"""What a webhook is told: one :class:`Message` per intent, a ``text`` line for people and the
audit event's fields for scripts.

:class:`~.notifier.Notifier` builds messages here from an
:class:`~opsconsole.controls.report.ApplyReport` (every server's result of one intent, so one post
per intent, never one per server), from the states a console saw a server revert on its own, or
from a recovery stage that changed.  The ``text`` line is what Slack, Mattermost and Matrix
hookshot incoming webhooks display::

    www: blocked 3 networks: 203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24 — by alice —
    applied on web1, web2 — site now HTTP 200 in 2.1 ms (http://www.example.org/)

The body carries ``text``, ``kind`` (:class:`Kind`) and the audit event's fields (DESIGN §5 step
7: ``time``, ``operator``, ``service``, ``server`` — the servers, comma-separated — ``action``,
``diff``, ``before_version``, ``after_version`` — null where the servers differ — ``result`` —
``partial`` where they differ — ``reason``), plus ``servers`` (each server's result),
``probe`` (the site's answer after the change, or null) and, for a confirm or a rollback,
``change_diff`` (the diff of the change it kept or undid, when this machine's trail has it).
No key a chat server reads specially (``type``, ``channel``, ``username``, ``props``…) is used.
Standard library and the controls' types only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..controls.report import ApplyReport, Outcome, probe_text
from ..controls.state import utc_text

CUT = 80
"""Operator values (patterns, reasons) longer than this are cut in the text line."""
LISTED = 3
"""Targets named in the text line; more are counted."""


class Kind(enum.StrEnum):
    """What a message is about (the body's ``kind``)."""

    CHANGE = "change"
    """An edit applied (block, filter, limit, maintenance…)."""
    CONFIRM = "confirm"
    ROLLBACK = "rollback"
    EXPIRY = "expiry"
    """A running console lifted ``--ttl`` blocks that fell due."""
    REVERT = "revert"
    """Servers reverted an unconfirmed commit-confirmed change by themselves."""
    STAGE = "stage"
    """A service's recovery stage changed."""


@dataclass(frozen=True)
class Message:
    """One post: the same body to every webhook."""

    kind: Kind
    service: str
    text: str
    body: dict[str, Any]
    what: str
    """Short, for a delivery failure: "block 203.0.113.0/24 on www"."""


def _cut(text: object) -> str:
    s = str(text)
    return s if len(s) <= CUT else s[: CUT - 1] + "…"


def _targets(verb: str, listing: Mapping[str, Any], key: str | None) -> str:
    items = [i[key] if key else i for i in listing.get("items", [])]
    count = int(listing.get("count", len(items)))
    if count == 1 and items:
        return f"{verb} {items[0]}"
    shown = ", ".join(str(i) for i in items[:LISTED]) + (", …" if count > LISTED else "")
    return f"{verb} {count} networks: {shown}"


def _condition(c: Mapping[str, Any]) -> str:
    op = "=" if c.get("match") == "exact" else "~"
    return f"{str(c.get('field', '?')).replace('_', ' ')} {op} {_cut(c.get('pattern', ''))}"


def summarize(diff: Mapping[str, Any] | None) -> str:
    """What a change did, in a few words, from an audit event's ``diff`` ("" when it is
    empty): ``blocked 3 networks: …``, ``filter f2 added: path ~ ^/wp-login``,
    ``maintenance on``, ``rate limit 10r/s per ip (burst 5)``."""
    if not diff:
        return ""
    parts: list[str] = []
    blocks = diff.get("blocks") or {}
    for verb, name in (("blocked", "added"), ("unblocked", "removed")):
        listing = blocks.get(name) or {}
        if listing.get("count"):
            parts.append(_targets(verb, listing, "target" if name == "added" else None))
    filters = diff.get("filters") or {}
    for f in filters.get("added", []):
        when = " and ".join(_condition(c) for c in f.get("when", []))
        parts.append(f"filter {f.get('id')} added: {when} → {f.get('action')}")
    parts += [f"filter {i} removed" for i in filters.get("removed", [])]
    maintenance = diff.get("maintenance")
    if maintenance:
        before, after = maintenance.get("before") or {}, maintenance.get("after") or {}
        if bool(after.get("on")) != bool(before.get("on")):
            parts.append("maintenance on" if after.get("on") else "maintenance off")
        else:
            parts.append("maintenance allow list or message changed")
    limit = diff.get("rate_limit")
    if limit:
        after = limit.get("after") or {}
        if after.get("rate") is None:
            parts.append("rate limit off")
        else:
            parts.append(
                f"rate limit {after.get('rate')} per {after.get('key')} "
                f"(burst {after.get('burst')})"
            )
    return "; ".join(parts)


_WORDS = {
    Outcome.OK: "applied",
    Outcome.CONFIRMED: "confirmed",
    Outcome.ROLLED_BACK: "rolled back",
    Outcome.FAILED: "FAILED",
    Outcome.UNCHANGED: "unchanged",
    Outcome.NOTHING: "nothing to do",
}


def worth_posting(report: ApplyReport) -> bool:
    """Whether an intent's report is news: something was applied, settled or failed (a no-op
    and a dry run are not)."""
    return not report.dry_run and any(
        r.status in (Outcome.OK, Outcome.CONFIRMED, Outcome.ROLLED_BACK, Outcome.FAILED)
        for r in report.results.values()
    )


def results_text(report: ApplyReport) -> str:
    """The site's answer per server, grouped: ``applied on web1, web2; FAILED on web3 (…)``."""
    groups: dict[str, list[str]] = {}
    for r in report.results.values():
        word = _WORDS.get(r.status, str(r.status))
        if r.status is Outcome.OK and r.confirm_deadline and report.action != "confirm":
            word = f"applied, awaiting confirmation by {r.confirm_deadline}"
        if r.status is Outcome.FAILED and r.reason:
            word += f" ({_cut(r.reason.splitlines()[0])})"
        groups.setdefault(word, []).append(r.server)
    return "; ".join(f"{word} on {', '.join(names)}" for word, names in groups.items())


def _common(values: list[Any], differ: Any = None) -> Any:
    return values[0] if values and all(v == values[0] for v in values) else differ


def _site(probe: Mapping[str, Any] | None) -> str:
    return f" — site now {probe_text(dict(probe))}" if probe else ""


def from_report(
    report: ApplyReport,
    kind: Kind,
    *,
    operator: str,
    diff: Mapping[str, Any] | None = None,
    settled: Mapping[str, Any] | None = None,
    when: datetime | None = None,
) -> Message:
    """The message of one intent on every server of a service: ``diff`` is the audit event's
    (what changed), ``report`` says what each server answered; ``settled``: for a confirm or
    a rollback, the diff of the change it kept or undid, where known."""
    summary = summarize(diff)
    action = report.action
    kept = summarize(settled)
    if kind is Kind.CONFIRM:
        head = f"confirmed: {kept}" if kept else "confirmed the change awaiting confirmation"
    elif kind is Kind.ROLLBACK:
        head = f"rolled back: {kept}" if kept else "rolled back the last change"
    elif kind is Kind.EXPIRY:
        head = f"blocks fell due and were lifted: {summary or action}"
    else:
        head = summary or action
    versions = [(r.before_version, r.after_version) for r in report.results.values()]
    moved = {
        f"version {b} → {a}" for b, a in versions if b is not None and a is not None and b != a
    }
    tail = f" ({', '.join(sorted(moved))})" if kind is Kind.ROLLBACK and moved else ""
    text = (
        f"{report.service}: {head}{tail} — by "
        f"{operator} — {results_text(report)}{_site(report.probe)}"
    )
    results = [str(r.status) for r in report.results.values()]
    reasons = [f"{r.server}: {r.reason}" for r in report.results.values() if r.reason]
    body = {
        "text": text,
        "kind": str(kind),
        "time": utc_text(when or datetime.now(UTC)),
        "operator": operator,
        "service": report.service,
        "server": ",".join(report.results),
        "action": action,
        "diff": dict(diff) if diff else None,
        "before_version": _common([b for b, _ in versions]),
        "after_version": _common([a for _, a in versions]),
        "result": _common(results, "partial"),
        "reason": "; ".join(reasons) or None,
        "servers": {name: r.to_dict() for name, r in report.results.items()},
        "probe": report.probe,
    }
    if kind in (Kind.CONFIRM, Kind.ROLLBACK):
        body["change_diff"] = dict(settled) if settled else None
    return Message(kind, report.service, text, body, f"{action} on {report.service}")


def reverted(
    service: str,
    servers: Mapping[str, tuple[int, int]],
    *,
    changed_by: str,
    diff: Mapping[str, Any] | None,
    probe: Mapping[str, Any] | None = None,
    when: datetime | None = None,
) -> Message:
    """Servers that reverted an unconfirmed change by themselves: ``servers`` maps each to its
    (version before, version after) the revert, ``diff`` is what the reverted change had done."""
    summary = summarize(diff) or "a change"
    names = ", ".join(servers)
    moved = sorted({f"version {b} → {a}" for b, a in servers.values()})
    text = (
        f"{service}: {names} reverted the unconfirmed change of {changed_by} ({summary}) by "
        f"{'itself' if len(servers) == 1 else 'themselves'}: nobody confirmed it in time "
        f"({', '.join(moved)}){_site(probe)}"
    )
    body = {
        "text": text,
        "kind": str(Kind.REVERT),
        "time": utc_text(when or datetime.now(UTC)),
        "operator": "opsconsole-timer",
        "changed_by": changed_by,
        "service": service,
        "server": ",".join(servers),
        "action": "rollback: not confirmed in time",
        "diff": dict(diff) if diff else None,
        "before_version": _common([b for b, _ in servers.values()]),
        "after_version": _common([a for _, a in servers.values()]),
        "result": "reverted",
        "reason": "not confirmed in time",
        "servers": {
            n: {"status": "reverted", "before_version": b, "after_version": a}
            for n, (b, a) in servers.items()
        },
        "probe": dict(probe) if probe else None,
    }
    return Message(Kind.REVERT, service, text, body, f"automatic revert on {service}")


def stage(
    service: str,
    old: object,
    new: object,
    detail: str,
    *,
    operator: str,
    when: datetime | None = None,
) -> Message:
    """A service's recovery stage changed from ``old`` (None: none yet) to ``new`` (enums are
    shown by their value)."""
    before = None if old is None else _name(old)
    after = _name(new)
    moved = f"{before} → {after}" if before is not None else after
    text = f"{service}: recovery stage {moved}{f' — {_cut(detail)}' if detail else ''}"
    text += f" — {operator}'s console"
    body = {
        "text": text,
        "kind": str(Kind.STAGE),
        "time": utc_text(when or datetime.now(UTC)),
        "operator": operator,
        "service": service,
        "server": None,
        "action": f"stage {after}",
        "diff": {"stage": {"before": before, "after": after}},
        "before_version": None,
        "after_version": None,
        "result": "ok",
        "reason": detail or None,
        "stage": after,
        "previous_stage": before,
        "detail": detail or None,
    }
    return Message(Kind.STAGE, service, text, body, f"stage {after} of {service}")


def _name(value: object) -> str:
    return str(value.value) if isinstance(value, enum.Enum) else str(value)
