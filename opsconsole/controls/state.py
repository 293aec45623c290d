"""The control state of one service on one server (DESIGN §5): data, JSON form, pure operations.

``<control_dir>/<service>.state.json`` is the truth every console reads; this module turns it into
:class:`ControlState` and back, and holds the pure operations the edits are made of (block,
unblock, filter, unfilter, limit, maintenance, expire).  Used by :mod:`.edits`, :mod:`.render`,
:mod:`.apply` and by front ends that display the state.  Standard library and ``.validate`` only.

Loading re-validates every value (:func:`state_from_json`), so a state file edited by hand cannot
carry anything into nginx syntax that typed input could not.  The JSON layout is fixed and
line-oriented (``"version"`` on the second line, one block per line): deterministic, diff-friendly,
and readable by the server-side scripts without a JSON parser.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import json.encoder
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import UsageError
from . import validate

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii


def utc_text(when: datetime) -> str:
    """``2026-11-24T15:00:00Z`` — the one time format of the state and the audit trail."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def parse_utc(text: str) -> datetime:
    # Cached (datetimes are immutable): the blocks of one apply share their times, and
    # strptime costs ~15 µs, a second and a half per 100,000 blocks read.
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Maintenance:
    on: bool = False
    allow: tuple[str, ...] = ()
    """Networks that still reach the site while it is in maintenance."""
    message: str = ""
    """Shown on the maintenance page (HTML-escaped); empty means the default text."""


@dataclass(frozen=True)
class Block:
    target: str
    reason: str = ""
    added_by: str = ""
    added_at: str = ""
    expires_at: str | None = None


@dataclass(frozen=True)
class Condition:
    """One condition of a filter: ``field`` matches ``pattern``."""

    field: str
    """path (nginx ``$uri``: decoded, normalised, no query string), user_agent, method or
    referer (the ``Referer`` header, ``""`` when absent)."""
    pattern: str
    match: str = "regex"
    """regex (the safe subset of :func:`.validate.regex`) or exact (whole value, case-sensitive)."""

    def describe(self) -> str:
        """``path ~ ^/x\\.php$`` (regex) or ``user_agent = curl/8.0`` (exact)."""
        return f"{self.field} {'~' if self.match == 'regex' else '='} {self.pattern}"


def _field_rank(c: Condition) -> int:
    order = validate.FIELDS
    return order.index(c.field) if c.field in order else len(order)


@dataclass(frozen=True, init=False)
class Filter:
    """Refuse requests for which every condition of :attr:`when` matches (1 to 3, AND).

    Built either the old way, with one condition (``Filter("f1", "path", "^/x")``, still used by
    callers), or with ``when=(Condition(...), ...)``; the conditions are kept in the canonical
    field order of :data:`.validate.FIELDS` (path, user_agent, method, referer).
    """

    id: str
    when: tuple[Condition, ...]
    action: int
    reason: str
    added_by: str
    added_at: str

    def __init__(
        self,
        id: str,
        field: str | None = None,
        pattern: str | None = None,
        match: str = "regex",
        action: int = 403,
        reason: str = "",
        added_by: str = "",
        added_at: str = "",
        *,
        when: Sequence[Condition] | None = None,
    ) -> None:
        if when is None:
            if field is None or pattern is None:
                raise TypeError("Filter needs field and pattern, or when=(Condition, ...)")
            conds: tuple[Condition, ...] = (Condition(field, pattern, match),)
        elif field is not None or pattern is not None:
            raise TypeError("Filter takes field/pattern or when=, not both")
        else:
            conds = tuple(sorted(when, key=_field_rank))
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "when", conds)
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "added_by", added_by)
        object.__setattr__(self, "added_at", added_at)

    # The first condition, for callers written when a filter had exactly one.
    @property
    def field(self) -> str:
        return self.when[0].field

    @property
    def pattern(self) -> str:
        return self.when[0].pattern

    @property
    def match(self) -> str:
        return self.when[0].match

    def describe(self) -> str:
        """One line: ``path ~ ^/x\\.php$ and user_agent = curl/8.0``."""
        return " and ".join(c.describe() for c in self.when)


@dataclass(frozen=True)
class RateLimit:
    rate: str | None = None
    """``10r/s`` or ``600r/m``; None means no limit."""
    burst: int = 0
    key: str = "ip"


@dataclass(frozen=True)
class ControlState:
    version: int = 0
    updated_by: str = ""
    updated_at: str = ""
    maintenance: Maintenance = field(default_factory=Maintenance)
    blocks: tuple[Block, ...] = ()
    filters: tuple[Filter, ...] = ()
    rate_limit: RateLimit = field(default_factory=RateLimit)

    def content_equals(self, other: ControlState) -> bool:
        """Same controls, whatever the version and who wrote it last."""
        return (self.maintenance, self.blocks, self.filters, self.rate_limit) == (
            other.maintenance,
            other.blocks,
            other.filters,
            other.rate_limit,
        )


# --- JSON ------------------------------------------------------------------------------------


def state_to_dict(state: ControlState) -> dict[str, Any]:
    """The JSON-shaped dict of DESIGN §5 (used by ``controls --json``)."""
    return {
        "version": state.version,
        "updated_by": state.updated_by,
        "updated_at": state.updated_at,
        "maintenance": {
            "on": state.maintenance.on,
            "allow": list(state.maintenance.allow),
            "message": state.maintenance.message,
        },
        "rate_limit": {
            "rate": state.rate_limit.rate,
            "burst": state.rate_limit.burst,
            "key": state.rate_limit.key,
        },
        "filters": [filter_dict(f) for f in state.filters],
        "blocks": [block_dict(b) for b in state.blocks],
    }


def block_dict(b: Block) -> dict[str, Any]:
    return {
        "target": b.target,
        "reason": b.reason,
        "added_by": b.added_by,
        "added_at": b.added_at,
        "expires_at": b.expires_at,
    }


def filter_dict(f: Filter) -> dict[str, Any]:
    """``when`` always; a one-condition filter also keeps the flat ``field``/``pattern``/``match``
    keys it had before filters took several conditions (scripts read them)."""
    d: dict[str, Any] = {"id": f.id}
    if len(f.when) == 1:
        d.update(field=f.field, pattern=f.pattern, match=f.match)
    d["when"] = [condition_dict(c) for c in f.when]
    d.update(action=f.action, reason=f.reason, added_by=f.added_by, added_at=f.added_at)
    return d


def condition_dict(c: Condition) -> dict[str, Any]:
    return {"field": c.field, "pattern": c.pattern, "match": c.match}


def state_to_json(state: ControlState) -> str:
    """The file text: ASCII, fixed key order, ``"version"`` alone on line 2, one entry per line."""
    d = state_to_dict(replace(state, blocks=()))  # the blocks are written by _block_line

    def one(value: Any) -> str:
        return json.dumps(value)  # the default: ASCII, and the cached (fast) encoder

    lines = ["{"]
    for name in ("version", "updated_by", "updated_at", "maintenance", "rate_limit"):
        lines.append(f"  {one(name)}: {one(d[name])},")
    for name, last in (("filters", False), ("blocks", True)):
        text = [one(f) for f in d[name]] if name == "filters" else _block_lines(state.blocks)
        tail = "" if last else ","
        if not text:
            lines.append(f"  {one(name)}: []{tail}")
            continue
        lines.append(f"  {one(name)}: [")
        lines.extend(f"    {item}," for item in text[:-1])
        lines.append(f"    {text[-1]}")
        lines.append(f"  ]{tail}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _block_lines(blocks: Sequence[Block]) -> list[str]:
    """``json.dumps(block_dict(b))`` of each block, ten times faster: the blocks of one apply
    share their reason, author and times, so that part is written once (500,000 blocks)."""
    q = _quote
    rest: dict[tuple[str, str, str, str | None], str] = {}
    out = []
    for b in blocks:
        key = (b.reason, b.added_by, b.added_at, b.expires_at)
        tail = rest.get(key)
        if tail is None:
            expires = "null" if b.expires_at is None else q(b.expires_at)
            tail = rest[key] = (
                f', "reason": {q(b.reason)}, "added_by": {q(b.added_by)}, '
                f'"added_at": {q(b.added_at)}, "expires_at": {expires}}}'
            )
        out.append('{"target": ' + q(b.target) + tail)
    return out


def state_from_json(text: str | bytes) -> ControlState:
    """Parse and re-validate a state file; UsageError saying what is wrong otherwise.

    The servers of a service normally hold byte-identical files: the last one parsed is kept
    (states are immutable), so ten servers' 500,000-block files are validated once, not ten
    times."""
    return _parse_state(
        text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    )


@functools.lru_cache(maxsize=1)
def _parse_state(raw: bytes) -> ControlState:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"the state file is not valid JSON: {e}") from None
    return state_from_dict(data)


def _table(data: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UsageError(f"state: {where} must be an object")
    unknown = set(data) - keys
    if unknown:
        raise UsageError(f"state: {where} has unknown keys {sorted(unknown)}")
    return data


def state_from_dict(data: Any) -> ControlState:
    top = _table(
        data,
        "the state",
        {"version", "updated_by", "updated_at", "maintenance", "rate_limit", "filters", "blocks"},
    )
    version = top.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise UsageError(f"state: version must be a whole number, got {version!r}")
    m = _table(top.get("maintenance", {}), "maintenance", {"on", "allow", "message"})
    if not isinstance(m.get("on", False), bool):
        raise UsageError("state: maintenance.on must be true or false")
    r = _table(top.get("rate_limit", {}), "rate_limit", {"rate", "burst", "key"})
    raw_rate = r.get("rate")
    blocks_raw = top.get("blocks", [])
    filters_raw = top.get("filters", [])
    if not isinstance(blocks_raw, list) or not isinstance(filters_raw, list):
        raise UsageError("state: blocks and filters must be lists")
    updated_at = top.get("updated_at", "")
    return ControlState(
        version=version,
        updated_by=validate.reason(top.get("updated_by", "")),
        updated_at=validate.timestamp(updated_at) if updated_at else "",
        maintenance=Maintenance(
            on=m.get("on", False),
            allow=validate.targets(m.get("allow", [])),
            message=validate.message(m.get("message", "")),
        ),
        blocks=_blocks_from_list(blocks_raw),
        filters=tuple(_filter_from_dict(f) for f in filters_raw),
        rate_limit=RateLimit(
            rate=None if raw_rate is None else validate.rate(raw_rate),
            burst=validate.burst(r.get("burst", 0)),
            key=validate.key(r.get("key", "ip")),
        ),
    )


_BLOCK_KEYS = frozenset({"target", "reason", "added_by", "added_at", "expires_at"})


def _blocks_from_list(raw: list[Any]) -> tuple[Block, ...]:
    """The blocks of a state file, validated, the last of two with one target kept.

    The blocks of one apply share their reason, author and times: those are validated once per
    distinct combination, not once per block (500,000 blocks are read in a second)."""
    meta: dict[tuple[Any, ...], tuple[str, str, str, str | None]] = {}
    seen: dict[str, Block] = {}
    target = validate.target
    for data in raw:
        if isinstance(data, dict) and _BLOCK_KEYS.issuperset(data):
            b: dict[str, Any] = data  # the common case, without the cost of a call per block
        else:
            b = _table(data, "a block", set(_BLOCK_KEYS))
        key = (
            b.get("reason", ""),
            b.get("added_by", ""),
            b.get("added_at", ""),
            b.get("expires_at"),
        )
        try:
            ok = meta[key]
        except KeyError:
            ok = meta[key] = _block_meta(*key)
        except TypeError:  # a list or an object where text belongs: refused by the checks
            ok = _block_meta(*key)
        t = target(b.get("target"))
        seen[t] = Block(t, *ok)
    return tuple(seen.values())


def _block_meta(
    reason: Any, added_by: Any, added_at: Any, expires: Any
) -> tuple[str, str, str, str | None]:
    return (
        validate.reason(reason),
        validate.reason(added_by),
        validate.timestamp(added_at) if added_at else "",
        None if expires is None else validate.timestamp(expires),
    )


_FILTER_KEYS = {
    "id",
    "when",
    "field",
    "pattern",
    "match",
    "action",
    "reason",
    "added_by",
    "added_at",
}
_FLAT_KEYS = ("field", "pattern", "match")


def _filter_from_dict(data: Any) -> Filter:
    """A filter as written now (``when``, plus the flat keys when it has one condition) or by
    the versions before conditions (flat ``field``/``pattern``/``match`` only)."""
    f = _table(data, "a filter", _FILTER_KEYS)
    flat = [k for k in _FLAT_KEYS if k in f]
    if "when" in f:
        when = conditions(f["when"])
        if flat:
            fid = f.get("id")
            if len(when) != 1 or any(f[k] != getattr(when[0], k) for k in flat):
                raise UsageError(
                    f"state: filter {_show_id(fid)}: field/pattern/match disagree with its "
                    "conditions (when)"
                )
    else:
        when = conditions([(f.get("field"), f.get("pattern"), f.get("match"))])
    added_at = f.get("added_at", "")
    return Filter(
        validate.filter_id(f.get("id")),
        when=when,
        action=validate.action(f.get("action", 403)),
        reason=validate.reason(f.get("reason", "")),
        added_by=validate.reason(f.get("added_by", "")),
        added_at=validate.timestamp(added_at) if added_at else "",
    )


def _show_id(value: object) -> str:
    return value if isinstance(value, str) and len(value) <= 10 else "?"


def conditions(values: Any) -> tuple[Condition, ...]:
    """Validated conditions (see :func:`.validate.conditions`), in canonical order."""
    return tuple(Condition(*t) for t in validate.conditions(values))


# --- pure operations (inputs already validated by .edits) -------------------------------------


def add_blocks(
    state: ControlState,
    targets: tuple[str, ...],
    *,
    reason: str,
    by: str,
    at: str,
    expires_at: str | None,
) -> ControlState:
    """Block ``targets``; an already blocked target gets the new reason and expiry."""
    new = {t: Block(t, reason, by, at, expires_at) for t in targets}
    kept = tuple(b for b in state.blocks if b.target not in new)
    return replace(state, blocks=kept + tuple(new.values()))


def remove_blocks(state: ControlState, targets: tuple[str, ...]) -> ControlState:
    gone = set(targets)
    return replace(state, blocks=tuple(b for b in state.blocks if b.target not in gone))


def add_filter(
    state: ControlState,
    *,
    field_name: str | None = None,
    pattern: str | None = None,
    match: str = "regex",
    when: Sequence[Condition] | None = None,
    action: int,
    reason: str,
    by: str,
    at: str,
) -> ControlState:
    """Add a filter with the next free id; the same set of conditions replaces the old one.

    Give the conditions as ``when`` (already validated: :func:`conditions`), or one condition
    as ``field_name``/``pattern``/``match``.
    """
    if when is None:
        if field_name is None or pattern is None:
            raise TypeError("add_filter needs when=, or field_name and pattern")
        when = (Condition(field_name, pattern, match),)
    conds = Filter("f0", when=tuple(when)).when
    key = frozenset(conds)
    same = [f for f in state.filters if frozenset(f.when) == key]
    next_id = f"f{max((int(f.id[1:]) for f in state.filters), default=0) + 1}"
    fid = same[0].id if same else next_id
    new = Filter(fid, when=conds, action=action, reason=reason, added_by=by, added_at=at)
    if same:
        return replace(state, filters=tuple(new if f.id == fid else f for f in state.filters))
    return replace(state, filters=(*state.filters, new))


def remove_filter(state: ControlState, filter_id: str) -> ControlState:
    if not any(f.id == filter_id for f in state.filters):
        known = ", ".join(f.id for f in state.filters) or "none"
        raise UsageError(f"no filter {filter_id} (filters: {known})")
    return replace(state, filters=tuple(f for f in state.filters if f.id != filter_id))


def set_rate_limit(state: ControlState, rate: str | None, burst: int, key: str) -> ControlState:
    return replace(state, rate_limit=RateLimit(rate, burst if rate else 0, key))


def set_maintenance(
    state: ControlState, on: bool, allow: tuple[str, ...] | None, message: str | None
) -> ControlState:
    """Switch maintenance; ``None`` keeps the current allow list or message."""
    m = state.maintenance
    return replace(
        state,
        maintenance=Maintenance(
            on=on,
            allow=m.allow if allow is None else allow,
            message=m.message if message is None else message,
        ),
    )


def drop_expired(state: ControlState, now: datetime) -> ControlState:
    """Remove blocks whose expiry has passed (done on every apply)."""
    stamp = utc_text(now)
    kept = tuple(b for b in state.blocks if b.expires_at is None or b.expires_at > stamp)
    return state if len(kept) == len(state.blocks) else replace(state, blocks=kept)


def expired_blocks(state: ControlState, now: datetime) -> tuple[Block, ...]:
    stamp = utc_text(now)
    return tuple(b for b in state.blocks if b.expires_at is not None and b.expires_at <= stamp)


def risk(before: ControlState, after: ControlState) -> str | None:
    """Why this change deserves commit-confirmed by default, or None.

    Maintenance switched off, and new blocks broader than /16 (IPv4) or /32 (IPv6): the changes
    most likely to cut off the operator or let the flood back in.
    """
    if before.maintenance.on and not after.maintenance.on:
        return "maintenance off"
    old = {b.target for b in before.blocks}
    for b in after.blocks:
        if "/" not in b.target or b.target in old:
            continue  # a single address (canonical targets carry a prefix only if wider)
        net = ipaddress.ip_network(b.target)
        if net.prefixlen < (16 if net.version == 4 else 32):
            return f"broad block {b.target}"
    return None
