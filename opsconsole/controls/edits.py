"""Operator intents as validated, pure edits of a control state (DESIGN §5, §7).

The session layer builds an :class:`Edit` with one of the functions below (``block``,
``unblock``, ``add_filter``, ``remove_filter``, ``limit``, ``maintenance``, ``expire``) on behalf
of either front end, and hands it to :func:`opsconsole.controls.apply.apply_change`.  Building an
edit validates every input, so bad input raises :class:`~opsconsole.errors.UsageError` (exit 2)
before any server is contacted; applying it to each server's current state is then a pure
function.  An edit also says how it reads on a given state (``maintenance on`` keeps an allow
list: the preview says which) and why it changes nothing there (``not blocked on www: …``), so
no front end has to work that out.  Imports ``.state``, ``.validate``, ``opsconsole.errors`` and
``opsconsole.durations`` only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..durations import format_duration
from ..errors import UsageError
from . import state as st
from . import validate

Change = Callable[[st.ControlState, str, datetime], st.ControlState]
"""(current state, operator, now) -> new state (version and authorship are set by the caller)."""
Notes = Callable[[st.ControlState, str], tuple[str, ...]]
"""(current state, service) -> what the operator should know about applying it there."""

BROADEST = {4: 8, 6: 16}
"""Blocks broader than these prefix lengths (IPv4 /8, IPv6 /16) need ``--everyone``."""


@dataclass(frozen=True)
class Edit:
    action: str
    """What the operator asked for, as written to the audit trail: ``block 203.0.113.0/24``."""
    change: Change
    describe: Callable[[st.ControlState], str] | None = None
    """The action as it reads on a given state, when that differs from ``action``."""
    notes: Notes | None = None

    def apply(self, state: st.ControlState, operator: str, now: datetime) -> st.ControlState:
        return self.change(state, operator, now)

    def action_on(self, state: st.ControlState) -> str:
        return self.describe(state) if self.describe is not None else self.action

    def notes_on(self, state: st.ControlState, service: str) -> tuple[str, ...]:
        return self.notes(state, service) if self.notes is not None else ()


def _summary(verb: str, items: Sequence[str], limit: int = 5) -> str:
    shown = " ".join(items[:limit])
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{verb} {shown}{more}"


def _refuse_everyone(targets: Sequence[str]) -> None:
    for t in targets:
        if "/" not in t:
            continue  # one address (targets are canonical: a network always has a prefix)
        net = ipaddress.ip_network(t)
        if net.prefixlen >= BROADEST[net.version]:
            continue
        family = f"IPv{net.version}"
        whom = (
            f"every {family} client"
            if net.prefixlen == 0
            else f"{net.num_addresses:,} {family} addresses "
            f"(1/{2**net.prefixlen:,} of all {family} clients)"
        )
        raise UsageError(
            f"{t} would block {whom}, real visitors included: blocks broader than "
            f"/{BROADEST[net.version]} ({family}) need --everyone (to close a site to everyone, "
            "`maintenance on` keeps an allow list and says why)"
        )


def block(
    targets: Sequence[str],
    *,
    reason: str = "",
    ttl: float | None = None,
    permanent: bool = False,
    everyone: bool = False,
) -> Edit:
    """Block IPs/CIDRs (403).

    ``ttl`` seconds makes the blocks expire; ``permanent`` removes the expiry of blocks that had
    one.  Re-blocking a target that is already blocked keeps it as it is (its author, time,
    reason and expiry) unless a new ``reason``, ``ttl`` or ``permanent`` is given, so a repeated
    command changes nothing.  Targets broader than /8 (IPv6 /16) are refused unless
    ``everyone``."""
    canon = validate.targets(list(targets))
    if not canon:
        raise UsageError("block: give at least one IP address or CIDR network")
    if ttl is not None and permanent:
        raise UsageError("block: --ttl and --permanent contradict each other")
    if not everyone:
        _refuse_everyone(canon)
    why = validate.reason(reason)
    life = None if ttl is None else validate.ttl(ttl)

    def change(state: st.ControlState, operator: str, now: datetime) -> st.ControlState:
        expires = None if life is None else st.utc_text(now + timedelta(seconds=life))
        added = st.utc_text(now)
        old = {b.target: b for b in state.blocks}
        new: dict[str, st.Block] = {}
        for t in canon:
            b = old.get(t)
            if b is None:
                new[t] = st.Block(t, why, operator, added, expires)
                continue
            keep_expiry = b.expires_at if life is None and not permanent else expires
            new[t] = replace(b, reason=why or b.reason, expires_at=keep_expiry)
        blocks = tuple(new.get(b.target, b) for b in state.blocks)
        blocks += tuple(b for t, b in new.items() if t not in old)
        return replace(state, blocks=blocks)

    def notes(state: st.ControlState, service: str) -> tuple[str, ...]:
        old = {b.target: b for b in state.blocks}
        same: list[str] = []
        kept: list[st.Block] = []
        for t in canon:
            b = old.get(t)
            if b is None or (why and b.reason != why) or life is not None:
                continue  # new, a new reason, or a new expiry: it changes
            if permanent and b.expires_at is not None:
                continue  # made permanent: it changes
            same.append(t)
            if b.expires_at is not None:
                kept.append(b)
        out = [_summary(f"already blocked on {service}:", same)] if same else []
        for b in kept[:3]:
            out.append(f"{b.target} keeps its expiry {b.expires_at} (--permanent removes it)")
        return tuple(out)

    action = _summary("block", list(canon))
    if life:
        action += f" for {format_duration(life)}"
    elif permanent:
        action += " permanently"
    return Edit(action, change, notes=notes)


def unblock(targets: Sequence[str]) -> Edit:
    canon = validate.targets(list(targets))
    if not canon:
        raise UsageError("unblock: give at least one IP address or CIDR network")

    def notes(state: st.ControlState, service: str) -> tuple[str, ...]:
        blocked = {b.target for b in state.blocks}
        absent = [t for t in canon if t not in blocked]
        return (_summary(f"not blocked on {service}:", absent),) if absent else ()

    return Edit(
        _summary("unblock", list(canon)),
        lambda state, _op, _now: st.remove_blocks(state, canon),
        notes=notes,
    )


def add_filter(
    field: str | None = None,
    pattern: str | None = None,
    *,
    match: str | None = None,
    action: int | str = 403,
    reason: str = "",
    conditions: Sequence[tuple[str, str, str | None]] | None = None,
) -> Edit:
    """Refuse requests that match every one of 1-3 conditions (AND, DESIGN §5).

    Either one ``field`` (path, user_agent, method, referer) with its ``pattern``, or
    ``conditions`` as ``(field, pattern, match)`` triples.  ``match`` defaults to ``exact`` for
    methods and ``regex`` otherwise.
    """
    if conditions is None:
        if field is None or pattern is None:
            raise UsageError("filter: give a field and a pattern, or conditions")
        conditions = [(field, pattern, match)]
    when = st.conditions(list(conditions))
    code = validate.action(action)
    why = validate.reason(reason)

    def change(state: st.ControlState, operator: str, now: datetime) -> st.ControlState:
        return st.add_filter(
            state, when=when, action=code, reason=why, by=operator, at=st.utc_text(now)
        )

    described = " and ".join(c.describe() for c in when)
    return Edit(f"filter {described} -> {code}", change)


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


NONE_WORDS = ("none", "nobody", "-")
"""``--allow none`` clears the maintenance allow list."""


def maintenance(
    on: bool, *, allow: Sequence[str] | None = None, message: str | None = None
) -> Edit:
    """Maintenance on (503 page, ``Retry-After``, except ``allow``) or off.

    None keeps the current allow list or message, and the action then says what it keeps;
    ``allow=["none"]`` clears the list."""
    if not isinstance(on, bool):
        raise UsageError(f"maintenance: expected on or off, got {on!r}")
    nets: tuple[str, ...] | None
    if allow is not None and [a.lower() for a in allow] in ([w] for w in NONE_WORDS):
        nets = ()
    else:
        nets = None if allow is None else validate.targets(list(allow))
    text = None if message is None else validate.message(message)
    if not on:
        return Edit(
            "maintenance off",
            lambda state, _op, _now: st.set_maintenance(state, False, nets, text),
        )

    def describe(state: st.ControlState) -> str:
        m = state.maintenance
        allowed = m.allow if nets is None else nets
        words = ["maintenance on"]
        words.append(("allow " + " ".join(allowed)) if allowed else "allow nobody")
        if nets is None and m.allow:
            words[-1] += " (kept)"
        shown = m.message if text is None else text
        if shown:
            words.append(f"message {shown!r}" + (" (kept)" if text is None else ""))
        return ", ".join(words)

    base = "maintenance on"
    if nets:
        base += ", allow " + " ".join(nets)
    elif nets == ():
        base += ", allow nobody"
    return Edit(
        base,
        lambda state, _op, _now: st.set_maintenance(state, True, nets, text),
        describe=describe,
    )


def expire() -> Edit:
    """Only remove blocks that have expired (every apply does this as well)."""
    return Edit("expire blocks", lambda state, _op, now: st.drop_expired(state, now))
