"""Candidate rules, as nginx would enforce them, and their replay over a window and baseline.

Used by :mod:`.analysis`.  A :class:`Rule` is one suggestion's rule in the shape of
``suggest --json`` (DESIGN §7): a block of targets, a filter of one to three conditions (AND), or
a rate limit.  Its :meth:`Rule.mask` says which of a table's requests nginx would refuse under
it, computed once per distinct value with nginx's own matching (``$uri`` for paths, the
unescaped headers, the validated regex dialect) and then gathered over every request.  Every
pattern a rule carries is checked by the controls' validators before it is offered, so nothing
in a log line reaches a rendered rule except through them.  Standard library, NumPy and the
controls only.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np

from ..controls import edits, validate
from ..controls import state as st
from ..controls.ratelimit import RateLimiter, spread
from ..errors import UsageError
from .table import BoolArray, Table
from .values import Agent, Referer, Target

FIELD_FLAGS = {"path": "--path", "user_agent": "--user-agent", "method": "--method",
               "referer": "--referer"}  # fmt: skip


@dataclass(frozen=True)
class Condition:
    field: str
    """path, user_agent, method or referer."""
    pattern: str
    """A regex in the validated subset (an exact value is written as an anchored regex)."""
    literal: bytes | None = dc_field(default=None, compare=False)
    """The one value the pattern matches, when it came from :func:`exact` (matched by lookup,
    not by running the regex over every distinct value)."""

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "pattern": self.pattern}

    def describe(self) -> str:
        names = {"path": "path", "user_agent": "user agent", "method": "method",
                 "referer": "referer"}  # fmt: skip
        if self.field == "method":
            return f"method {self.pattern}"
        if self.field == "referer" and self.pattern == "^$":
            return "no referer"
        return f"{names[self.field]} ~ {self.pattern}"


def exact(value: str) -> str:
    """An exact value as an anchored regex (what the validators accept), or raise UsageError."""
    return validate.regex("^" + re.escape(value) + "$")


def exact_condition(field_name: str, value: bytes) -> Condition:
    """A condition matching exactly ``value`` (raises UsageError if no valid regex can)."""
    return Condition(field_name, exact(value.decode("latin-1")), literal=value)


@dataclass(frozen=True)
class Rule:
    kind: str
    """block, filter or limit."""
    targets: tuple[str, ...] = ()
    conditions: tuple[Condition, ...] = ()
    rate: str | None = None
    burst: int = 0
    key: str = "ip"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "block":
            return {"targets": list(self.targets)}
        if self.kind == "limit":
            return {"rate": self.rate, "burst": self.burst, "key": self.key}
        if len(self.conditions) == 1:
            return self.conditions[0].to_dict()
        return {"all": [c.to_dict() for c in self.conditions]}

    def describe(self) -> str:
        if self.kind == "block":
            shown = ", ".join(self.targets[:3])
            more = f" and {len(self.targets) - 3} more" if len(self.targets) > 3 else ""
            return f"block {shown}{more}"
        if self.kind == "limit":
            per = "client address" if self.key == "ip" else "/24 (IPv6 /48)"
            return f"limit each {per} to {self.rate}, burst {self.burst}"
        return "refuse " + " and ".join(c.describe() for c in self.conditions)

    def edit(self, reason: str = "") -> edits.Edit:
        """The change that applies it: what :meth:`command` asks for (the console's Enter)."""
        if self.kind == "block":
            return edits.block(self.targets, reason=reason)
        if self.kind == "limit":
            return edits.limit(self.rate, burst=self.burst, key=self.key)
        return edits.add_filter(conditions=self.when(), reason=reason)

    def when(self) -> list[tuple[str, str, str]]:
        """Its conditions as the controls take them (field, pattern, match)."""
        return [(c.field, c.pattern, _match(c.field)) for c in self.conditions]

    def command(self, service: str, reason: str, config_arg: str | None = None) -> str:
        """The command that applies it, runnable as printed (add ``--yes`` in a script)."""
        where = f" --config {shlex.quote(config_arg)}" if config_arg else ""
        head = f"opsconsole{where}"
        why = f" --reason {shlex.quote(reason)}"
        if self.kind == "block":
            return f"{head} block {service} {' '.join(self.targets)}{why}"
        if self.kind == "limit":
            return f"{head} limit {service} {self.rate} --burst {self.burst} --key {self.key}"
        args = " ".join(f"{FIELD_FLAGS[c.field]} {shlex.quote(c.pattern)}" for c in self.conditions)
        return f"{head} filter {service} {args}{why}"


_CROSSES_LINES = re.compile(r"\\[sDWnS]|\\x0[aA]|\\012|\\\\|\(\?[a-z]*s")
"""What lets a regex match a newline (or hides a class from the rewrite below)."""
_NEGATED = re.compile(r"(?<!\\)\[\^")


ANY_DIRS = "^/(.*/)?"
_SLASHY = re.compile(r"/|(?<!\\)\.|\[\^|\\[WSDHV]|\\x2[fF]|\\\\")
"""What could let a regex match a slash (or hide one from this check)."""


def _last_segment(pattern: str) -> str | None:
    """For ``^/(.*/)?R`` where R cannot match a slash: R, to be matched on the last segment of
    a path (what the regex decides, without its backtracking over every directory)."""
    if not pattern.startswith(ANY_DIRS):
        return None
    rest = pattern[len(ANY_DIRS) :]
    if not rest.endswith("$") or rest.endswith("\\$") or _SLASHY.search(rest):
        return None  # without "$" at the end, R may match inside an earlier directory
    return None if "|" in _top_level(rest) else rest


def _top_level(pattern: str) -> str:
    """``pattern`` without its groups and sets (what is left at the top level)."""
    out, depth, in_set, escaped = [], 0, False, False
    for ch in pattern:
        if escaped:
            escaped = False
            continue
        if ch == "\\":
            escaped = True
        elif in_set:
            in_set = ch != "]"
        elif ch == "[":
            in_set = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _anchored(pattern: str) -> bool:
    """Whether the regex can only match at the start of a value (``^`` first, no top-level
    alternative that lacks it)."""
    body = pattern[4:] if pattern.startswith("(?i)") else pattern
    return body.startswith("^") and "|" not in _top_level(body)


def _line_pattern(pattern: str) -> str | None:
    """``pattern`` for a scan of values one per line (MULTILINE): its negated classes made
    to stop at a newline, which no single value holds; None when it could still cross one."""
    if _CROSSES_LINES.search(pattern):
        return None
    return _NEGATED.sub(lambda _m: "[^\\n", pattern)


def _match(field_name: str) -> str:
    return "exact" if field_name == "method" else "regex"


def as_state(rules: Sequence[Rule]) -> st.ControlState:
    """A control state with ``rules`` in force (to replay them with the controls' matching)."""
    blocks: list[st.Block] = []
    filters: list[st.Filter] = []
    limit = st.RateLimit()
    for i, r in enumerate(rules, 1):
        if r.kind == "block":
            blocks += [st.Block(t) for t in r.targets]
        elif r.kind == "limit":
            limit = st.RateLimit(r.rate, r.burst, r.key)
        else:
            when = tuple(st.Condition(f, p, m) for f, p, m in r.when())
            filters.append(st.Filter(f"f{i}", when=when))
    return st.ControlState(blocks=tuple(blocks), filters=tuple(filters), rate_limit=limit)


@dataclass
class Columns:
    """A table's requests with the per-value facts the rules are matched on."""

    table: Table
    uri: list[bytes | None]
    """``$uri`` of each distinct target (None: nginx refuses the request line itself)."""
    targets: list[Target]
    agents: list[Agent]
    referers: list[Referer]
    methods: list[bytes]
    _cache: dict[tuple[str, str], BoolArray] = dc_field(default_factory=dict)
    _texts: dict[str, list[bytes | None]] = dc_field(default_factory=dict)
    _index: dict[str, dict[bytes, list[int]]] = dc_field(default_factory=dict)
    _joined_cache: dict[str, tuple[bytes, np.ndarray[Any, Any], list[int]]] = dc_field(
        default_factory=dict
    )
    _present_cache: dict[str, tuple[np.ndarray[Any, Any], list[bytes]]] = dc_field(
        default_factory=dict
    )
    _newline_cache: dict[str, list[int]] = dc_field(default_factory=dict)
    valid: BoolArray | None = None

    def texts(self, field_name: str) -> list[bytes | None]:
        """The distinct values of a field as nginx matches them."""
        got = self._texts.get(field_name)
        if got is None:
            if field_name == "path":
                got = list(self.uri)
            elif field_name == "user_agent":
                got = [a.text for a in self.agents]
            elif field_name == "referer":
                got = [r.text for r in self.referers]
            else:
                got = list(self.methods)
            self._texts[field_name] = got
        return got

    def value_mask(self, cond: Condition) -> BoolArray:
        """Which distinct values of the condition's field match it (cached)."""
        key = (cond.field, cond.pattern)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        texts = self.texts(cond.field)
        hit = np.zeros(len(texts), dtype=bool)
        if cond.field == "method":
            want = cond.pattern.encode()
            hit[[i for i, m in enumerate(texts) if m == want]] = True
        elif cond.literal is not None:
            index = self._index.get(cond.field)
            if index is None:
                index = self._index[cond.field] = {}
                for i, v in enumerate(texts):
                    if v is not None:
                        index.setdefault(v, []).append(i)
            hit[index.get(cond.literal, [])] = True
        elif (last := _last_segment(cond.pattern)) is not None:
            # "Any directories, then R" where R cannot hold a slash: R on the last segment.
            idx, present = self._present_values(cond.field)
            match = re.compile(last.encode()).match
            segments = [v[v.rfind(b"/") + 1 :] for v in present]
            matched = [m is not None for m in map(match, segments)]
            if matched:
                hit[idx] = matched
            whole = re.compile(cond.pattern.encode()).match
            for i in self._with_newline(cond.field):  # "." stops there: the regex decides
                v = texts[i]
                hit[i] = v is not None and whole(v) is not None
        elif _anchored(cond.pattern):
            # Anchored at the start: one match per value (in C, through map) beats a scan of
            # every position of every value.
            idx, present = self._present_values(cond.field)
            match = re.compile(cond.pattern.encode()).match
            matched = [m is not None for m in map(match, present)]
            if matched:
                hit[idx] = matched
        elif (scan := _line_pattern(cond.pattern)) is not None:
            # One scan of every value at once, a line each: no Python call per value, with a
            # pattern that cannot run across a line; the few values that hold a newline are
            # matched on their own.
            joined, starts, odd = self._joined(cond.field)
            rx = re.compile(scan.encode(), re.MULTILINE)
            found = [m.start() for m in rx.finditer(joined)]
            if found:
                hit[np.searchsorted(starts, np.array(found), side="right") - 1] = True
            hit &= self._present(cond.field)
            search = re.compile(cond.pattern.encode()).search
            for i in odd:
                v = texts[i]
                hit[i] = v is not None and search(v) is not None
        else:
            search = re.compile(cond.pattern.encode()).search
            hit[[i for i, v in enumerate(texts) if v is not None and search(v)]] = True
        self._cache[key] = hit
        return hit

    def _joined(self, field_name: str) -> tuple[bytes, np.ndarray[Any, Any], list[int]]:
        """Every value of a field, one per line, where each line starts, and the values that
        hold a newline (their line is left empty)."""
        got = self._joined_cache.get(field_name)
        if got is None:
            texts = [v if v is not None else b"" for v in self.texts(field_name)]
            odd = [i for i, v in enumerate(texts) if b"\n" in v]
            for i in odd:
                texts[i] = b""
            lengths = np.fromiter((len(v) + 1 for v in texts), dtype=np.int64, count=len(texts))
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            got = self._joined_cache[field_name] = (b"\n".join(texts), starts, odd)
        return got

    def _with_newline(self, field_name: str) -> list[int]:
        """The values that hold a newline (cached)."""
        got = self._newline_cache.get(field_name)
        if got is None:
            texts = self.texts(field_name)
            got = self._newline_cache[field_name] = [
                i for i, v in enumerate(texts) if v is not None and b"\n" in v
            ]
        return got

    def _present_values(self, field_name: str) -> tuple[np.ndarray[Any, Any], list[bytes]]:
        """The indexes and values of the values that exist (cached)."""
        got = self._present_cache.get(field_name)
        if got is None:
            texts = self.texts(field_name)
            idx = [i for i, v in enumerate(texts) if v is not None]
            got = self._present_cache[field_name] = (
                np.array(idx, dtype=np.int64),
                [v for v in texts if v is not None],
            )
        return got

    def _present(self, field_name: str) -> BoolArray:
        """Values that exist (a path nginx refuses to parse has none)."""
        return np.array([v is not None for v in self.texts(field_name)], dtype=bool)

    def column(self, field_name: str) -> np.ndarray[Any, Any]:
        t = self.table
        return {"path": t.target, "user_agent": t.agent, "method": t.method,
                "referer": t.referer}[field_name]  # fmt: skip


def filter_mask(cols: Columns, conditions: Sequence[Condition]) -> BoolArray:
    mask: BoolArray | None = None
    for c in conditions:
        m = cols.value_mask(c)[cols.column(c.field)]
        mask = m if mask is None else mask & m
    assert mask is not None
    # nginx answers a request line it cannot parse (400) before any filter sees it.
    if cols.valid is None:
        cols.valid = np.array([u is not None for u in cols.uri], dtype=bool)[cols.table.target]
    out: BoolArray = mask & cols.valid
    return out


def state_masks(state: st.ControlState, cols: Columns) -> dict[str, BoolArray]:
    """The requests each rule in force matches, with nginx's matching: ``blocks`` (every block
    together) and each filter by its id.  Maintenance and the rate limit are not rules of this
    kind (the rate limit's decisions depend on timing)."""
    from ..controls.matching import Matcher

    t = cols.table
    out: dict[str, BoolArray] = {}
    if state.blocks:
        m = Matcher(st.ControlState(blocks=state.blocks))
        inside = np.array(
            [m.blocked_by(c.decode("ascii", "replace")) is not None for c in t.clients], dtype=bool
        )
        out["blocks"] = block_mask(inside, cols)
    for f in state.filters:
        conds = []
        for c in f.when:
            if c.match == "exact" and c.field != "method":
                value = c.pattern.encode("utf-8")
                conds.append(Condition(c.field, "^" + re.escape(c.pattern) + "$", literal=value))
            else:
                conds.append(Condition(c.field, c.pattern))
        out[f.id] = filter_mask(cols, conds)
    return out


def block_mask(inside: BoolArray, cols: Columns) -> BoolArray:
    """The requests of the clients ``inside`` the blocked networks (one flag per client)."""
    out: BoolArray = inside[cols.table.client]
    return out


def limit_mask(rule: Rule, cols: Columns, order: np.ndarray[Any, Any]) -> BoolArray:
    """Requests ``limit_req`` would refuse, replayed in time order per window and baseline
    (each starts with empty buckets).  Only keys that sent more than ``burst + 1`` requests in
    some second can be refused, so the replay visits just those."""
    t = cols.table
    out = np.zeros(len(t), dtype=bool)
    assert rule.rate is not None
    limiter_for = {False: RateLimiter(rule.rate, rule.burst, rule.key),
                   True: RateLimiter(rule.rate, rule.burst, rule.key)}  # fmt: skip
    counts = np.bincount(t.client, minlength=len(t.clients))
    busy = counts > rule.burst + 1
    names = [c.decode("ascii", "replace") for c in t.clients]
    visit = order[busy[t.client[order]]]
    times = t.t[visit].tolist()
    for i, ms in spread(zip(visit.tolist(), times, strict=True)):
        limiter = limiter_for[bool(t.window[i])]
        if not limiter.allow(names[t.client[i]], ms):
            out[i] = True
    return out


def valid_conditions(conditions: Sequence[Condition]) -> bool:
    """Whether the controls accept these conditions as a filter (never offer one they refuse):
    each condition alone (cached: pairs and trios reuse them), one per field, one to three."""
    fields = [c.field for c in conditions]
    if not 1 <= len(fields) <= 3 or len(set(fields)) != len(fields):
        return False
    return all(_valid_condition(c.field, c.pattern) for c in conditions)


@functools.lru_cache(maxsize=20_000)
def _valid_condition(field_name: str, pattern: str) -> bool:
    try:
        validate.condition(field_name, pattern, "exact" if field_name == "method" else "regex")
    except UsageError:
        return False
    return True
