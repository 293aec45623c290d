"""Operator intents as validated, pure edits of a control state (DESIGN §5, §7).

The CLI and the TUI build an :class:`Edit` with one of the functions below (``block``, ``unblock``,
``add_filter``, ``remove_filter``, ``limit``, ``maintenance``, ``expire``) and hand it to
:func:`opsconsole.controls.apply.apply_change`.  Building an edit validates every input, so bad
input raises :class:`~opsconsole.errors.UsageError` (exit 2) before any server is contacted;
applying it to each server's current state is then a pure function.  Imports ``.state``,
``.validate``, ``opsconsole.errors`` and ``opsconsole.durations`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..durations import format_duration
from ..errors import UsageError
from . import state as st
from . import validate

Change = Callable[[st.ControlState, str, datetime], st.ControlState]
"""(current state, operator, now) -> new state (version and authorship are set by the caller)."""


@dataclass(frozen=True)
class Edit:
    action: str
    """What the operator asked for, as written to the audit trail: ``block 203.0.113.0/24``."""
    change: Change

    def apply(self, state: st.ControlState, operator: str, now: datetime) -> st.ControlState:
        return self.change(state, operator, now)


def _summary(verb: str, items: Sequence[str], limit: int = 5) -> str:
    shown = " ".join(items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{verb} {shown}{more}"


def block(targets: Sequence[str], *, reason: str = "", ttl: float | None = None) -> Edit:
    """Block IPs/CIDRs (403); ``ttl`` seconds makes the block expire."""
    canon = validate.targets(list(targets))
    if not canon:
        raise UsageError("block: give at least one IP address or CIDR network")
    why = validate.reason(reason)
    life = None if ttl is None else validate.ttl(ttl)

    def change(state: st.ControlState, operator: str, now: datetime) -> st.ControlState:
        expires = None if life is None else st.utc_text(now + timedelta(seconds=life))
        return st.add_blocks(
            state, canon, reason=why, by=operator, at=st.utc_text(now), expires_at=expires
        )

    action = _summary("block", list(canon))
    return Edit(action + (f" for {format_duration(life)}" if life else ""), change)


def unblock(targets: Sequence[str]) -> Edit:
    canon = validate.targets(list(targets))
    if not canon:
        raise UsageError("unblock: give at least one IP address or CIDR network")
    return Edit(
        _summary("unblock", list(canon)), lambda state, _op, _now: st.remove_blocks(state, canon)
    )


def add_filter(
    field: str,
    pattern: str,
    *,
    match: str | None = None,
    action: int | str = 403,
    reason: str = "",
) -> Edit:
    """Filter requests whose ``field`` (path, user_agent, method) matches ``pattern``.

    ``match`` defaults to ``exact`` for methods and ``regex`` otherwise.
    """
    fld = validate.field(field)
    kind = validate.match(match or ("exact" if fld == "method" else "regex"))
    pat = validate.pattern(fld, kind, pattern)
    code = validate.action(action)
    why = validate.reason(reason)

    def change(state: st.ControlState, operator: str, now: datetime) -> st.ControlState:
        return st.add_filter(
            state,
            field_name=fld,
            pattern=pat,
            match=kind,
            action=code,
            reason=why,
            by=operator,
            at=st.utc_text(now),
        )

    return Edit(f"filter {fld} {kind} {pat!r} -> {code}", change)


def remove_filter(filter_id: str) -> Edit:
    fid = validate.filter_id(filter_id)
    return Edit(f"unfilter {fid}", lambda state, _op, _now: st.remove_filter(state, fid))


def limit(rate: str | None, *, burst: int | str = 0, key: str = "ip") -> Edit:
    """Rate-limit each client (``key="ip"``) or each /24 and /48 (``"subnet"``); ``off``/None."""
    if rate is None or rate == "off":
        return Edit("limit off", lambda state, _op, _now: st.set_rate_limit(state, None, 0, "ip"))
    r = validate.rate(rate)
    b = validate.burst(burst)
    k = validate.key(key)
    return Edit(
        f"limit {r} burst {b} per {k}",
        lambda state, _op, _now: st.set_rate_limit(state, r, b, k),
    )


def maintenance(
    on: bool, *, allow: Sequence[str] | None = None, message: str | None = None
) -> Edit:
    """Maintenance on (503 page, ``Retry-After``, except ``allow``) or off; None keeps a setting."""
    if not isinstance(on, bool):
        raise UsageError(f"maintenance: expected on or off, got {on!r}")
    nets = None if allow is None else validate.targets(list(allow))
    text = None if message is None else validate.message(message)
    action = "maintenance on" if on else "maintenance off"
    if on and nets:
        action += " allow " + " ".join(nets)
    return Edit(action, lambda state, _op, _now: st.set_maintenance(state, on, nets, text))


def expire() -> Edit:
    """Only remove blocks that have expired (every apply does this as well)."""
    return Edit("expire blocks", lambda state, _op, now: st.drop_expired(state, now))
