"""What nginx answers a logged request under a control state: nginx's matching, in Python.

``suggest`` replays candidate rules over parsed access-log lines, and ``controls`` attributes
refusals to the rules in force; every figure must be what nginx itself would have done with the
snippets :func:`.render.render` writes.  This module is that decision: :func:`decide` (one
request), :class:`Matcher` (a state compiled once, for many requests) and :func:`replay` (a
time-ordered stream, with the rate limit of :mod:`.ratelimit`).  Pure; standard library,
``.state``, ``.render`` and ``.ratelimit`` only.

From a ``combined`` log line to what nginx matched (:meth:`Request.from_log`):

- nginx's log escapes ``"``, ``\\`` and every byte outside 0x20-0x7e as ``\\xHH``; they are
  turned back into the bytes nginx matched.  ``-`` for the user agent or referer is ``""``
  (nginx logs an absent header as ``-``; a header that *is* ``-`` reads the same way).
- The request line goes through a port of nginx 1.22's parser (``ngx_http_parse.c``): the method
  (upper-case letters, ``_``, ``-``), the target, the version; then ``$uri``: the target without
  its query string, percent-decoded, ``//`` merged, ``.`` and ``..`` segments resolved, ``#``
  and what follows cut.  What nginx refuses before any of our rules runs is kept as
  :attr:`Request.invalid`: 400 for a bad request line, bad percent-encoding, ``%00`` or ``..``
  above the root, 505 for an HTTP version above 1, 405 for TRACE and CONNECT.
- Matching is on bytes, with the pattern compiled as a bytes regex: nginx's PCRE runs without
  UTF mode, so a byte is a character for both.  A non-ASCII byte (UTF-8 or not) is one
  character for ``.``, never a ``\\w``, ``\\d`` or ``\\s``, and has no case; ``\\xHH`` in a
  pattern matches that one byte.  The validated subset (:func:`.validate.regex`) is where
  Python's ``re`` and PCRE agree.

The order of our rendered config, which :func:`decide` follows: blocks (``geo``, 403; an
IPv4-mapped IPv6 client is looked up among the IPv4 blocks, as nginx's ``geo`` does), then
filters (444 filters, then 403, each by id: the first that matches is named), then maintenance
(503 to all but the allow list), then the rate limit (429).  ``limit_req`` runs in nginx's
preaccess phase, after the server-level ``if``/``return``, so blocked and filtered requests never
count towards it; maintenance 503s to GET and HEAD do (they reach the ``@maint`` location's
preaccess), and a client over the limit then gets 429 instead; other methods get their 503 in
``@maint``'s rewrite phase and are not counted.  Only the first pass is modelled: if the site's own
config redirects internally (``try_files … /index.html``), nginx runs the server-level rules again
on the new URI.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from .ratelimit import RateLimiter
from .render import filter_order
from .state import Condition, ControlState

# --- requests, as nginx sees them --------------------------------------------------------------


class Request(NamedTuple):
    """One request, in the values nginx's variables hold (bytes: logs are not UTF-8).

    A named tuple because a replay builds hundreds of thousands of them.
    """

    client: str
    """``$remote_addr`` as nginx prints it (``203.0.113.7``, ``2001:db8::1``)."""
    method: bytes = b"GET"
    uri: bytes = b"/"
    """``$uri``: decoded and normalised, no query string."""
    user_agent: bytes = b""
    referer: bytes = b""
    invalid: int | None = None
    """The status nginx answers before any control runs (400, 405, 505), or None."""
    time: float | None = None
    """When (epoch seconds), for the rate limit."""

    @classmethod
    def from_log(
        cls,
        client: str | bytes,
        request: bytes,
        user_agent: bytes = b"-",
        referer: bytes = b"-",
        *,
        time: float | None = None,
    ) -> Request:
        """From the fields of a ``combined`` line: ``$remote_addr``, ``$request``,
        ``$http_user_agent``, ``$http_referer``, still escaped as nginx wrote them."""
        method, uri, invalid = request_line(unescape(request) if b"\\" in request else request)
        if user_agent == b"-":
            user_agent = b""
        elif b"\\" in user_agent:
            user_agent = unescape(user_agent)
        if referer == b"-":
            referer = b""
        elif b"\\" in referer:
            referer = unescape(referer)
        if not isinstance(client, str):
            client = client.decode("ascii", "replace")
        return cls(client, method, uri, user_agent, referer, invalid, time)

    @classmethod
    def from_parts(
        cls,
        client: str,
        method: bytes,
        target: bytes,
        user_agent: bytes = b"",
        referer: bytes = b"",
        *,
        protocol: bytes = b"HTTP/1.1",
        time: float | None = None,
    ) -> Request:
        """From raw (unescaped) values, e.g. the method and target words of a parsed line."""
        m, uri, invalid = request_line(method + b" " + target + b" " + protocol)
        return cls(client, m, uri, user_agent, referer, invalid, time)


_ESCAPE = re.compile(rb"\\(?:x([0-9A-Fa-f]{2})|([\\\"]))")


def unescape(value: bytes) -> bytes:
    """Undo nginx's log escaping (``\\xHH``; also the ``\\"`` and ``\\\\`` of other writers)."""
    if b"\\" not in value:
        return value
    return _ESCAPE.sub(lambda m: bytes([int(m[1], 16)]) if m[1] else m[2], value)


# nginx's "usual" table (ngx_http_parse.c): bytes that need no attention in a URI.
_USUAL = frozenset(b for b in range(256) if b >= 0x80 or (0x20 < b < 0x7F and b not in b"#%+./?"))
_FAST_LINE = re.compile(
    rb"([A-Z_-]+) (/[^\x00-\x20\x7f?]*)(?:[?][^\x00-\x20\x7f]*)? HTTP/1\.[0-9]{1,3}"
)
"""The common request line; group 2 is the target's path (before the query string)."""
_NEEDS_WORK = re.compile(rb"[%#]|/\.|//")
_NOT_ALLOWED = (b"TRACE", b"CONNECT")


def request_line(line: bytes) -> tuple[bytes, bytes, int | None]:
    """``(method, $uri, invalid)`` of a raw request line, as nginx 1.22 parses it."""
    m = _FAST_LINE.fullmatch(line)
    if m:
        method, path = m.groups()
        uri = _uris.get(path, _MISSING)
        if uri is _MISSING:
            uri = normalise(path)
        if uri is None:
            return method, b"", 400
        return method, uri, 405 if method in _NOT_ALLOWED else None  # type: ignore[return-value]
    parsed = _parse_line(line)
    if isinstance(parsed, int):
        return b"", b"", parsed
    method, target, empty_path, version = parsed
    uri = normalise(target, empty_path=empty_path)
    if uri is None:
        return method, b"", 400
    if version >= 1000 and method in _NOT_ALLOWED:
        return method, uri, 405
    return method, uri, None


_uris: dict[bytes, bytes | None] = {}
_MISSING = object()


def normalise(
    target: bytes, *, empty_path: bool = False, merge_slashes: bool = True
) -> bytes | None:
    """``$uri`` of a request target (``ngx_http_parse_complex_uri``), None where nginx says 400.

    Only what comes before the first ``?`` matters (the rest is the query string), so results
    are cached by that part: a flood's random query strings share their path's entry.
    """
    path = target.partition(b"?")[0]
    if not empty_path and merge_slashes:
        uri = _uris.get(path, _MISSING)
        if uri is not _MISSING:
            return uri  # type: ignore[return-value]
        uri = _complex_uri(path, False, True) if _NEEDS_WORK.search(path) else path
        if len(_uris) > 100_000:
            _uris.clear()
        _uris[path] = uri
        return uri
    return _complex_uri(target, empty_path, merge_slashes)


_USUAL_S, _SLASH, _DOT, _DOT_DOT, _QUOTED, _QUOTED_2 = range(6)
_HEX = {**{c: c - 48 for c in b"0123456789"}, **{c: c - 87 for c in b"abcdef"}}
_HEX.update({c: c - 55 for c in b"ABCDEF"})


def _back_to_slash(u: bytearray) -> bool:
    """The ``..`` step: drop the last segment; False when that goes above the root (400)."""
    k = len(u) - 4
    while True:
        if k < 0:
            return False
        if u[k] == 0x2F:
            del u[k + 1 :]
            return True
        k -= 1


def _complex_uri(target: bytes, empty_path: bool, merge_slashes: bool) -> bytes | None:
    data = target + b"\n"  # nginx reads one byte past the target (the line feed)
    end = len(target)
    u = bytearray(b"/" if empty_path else b"")
    state = quoted_state = _USUAL_S
    decoded = 0
    ch, p = data[0], 1
    while p <= end:
        if state == _QUOTED:
            digit = _HEX.get(ch)
            if digit is None:
                return None
            decoded, state = digit, _QUOTED_2
            ch, p = data[p], p + 1
            continue
        if state == _QUOTED_2:
            digit = _HEX.get(ch)
            if digit is None:
                return None
            ch = (decoded << 4) + digit
            if ch in (0x25, 0x23, 0x3F):  # a decoded %, # or ? is a plain character
                state = _USUAL_S
                u.append(ch)
                ch, p = data[p], p + 1
            elif ch == 0:
                return None
            else:
                state = quoted_state  # the decoded byte is read again, in the state before
            continue
        if ch in _USUAL:
            state = _USUAL_S
            u.append(ch)
            ch, p = data[p], p + 1
            continue
        if ch == 0x25:  # %
            quoted_state, state = state, _QUOTED
        elif ch == 0x3F or ch == 0x23:  # ? or #: the rest is the query string or the fragment
            if state == _DOT:
                u.pop()
            elif state == _DOT_DOT and not _back_to_slash(u):
                return None
            return bytes(u)
        elif ch == 0x2F:  # /
            if state == _USUAL_S:
                u.append(ch)
                state = _SLASH
            elif state == _SLASH:
                if not merge_slashes:
                    u.append(ch)
            elif state == _DOT:
                u.pop()
                state = _SLASH
            elif not _back_to_slash(u):
                return None
            else:
                state = _SLASH
        elif ch == 0x2E and state in (_SLASH, _DOT):  # .
            u.append(ch)
            state = _DOT if state == _SLASH else _DOT_DOT
        else:
            u.append(ch)
            state = _USUAL_S
        ch, p = data[p], p + 1
    if state in (_QUOTED, _QUOTED_2):
        return None
    if state == _DOT:
        u.pop()
    elif state == _DOT_DOT and not _back_to_slash(u):
        return None
    return bytes(u)


def _parse_line(line: bytes) -> tuple[bytes, bytes, bool, int] | int:
    """The slow path of ``ngx_http_parse_request_line``: ``(method, target, empty path,
    version)`` or the status nginx answers (400, 505)."""
    n = len(line)
    i = 0
    while i < n and line[i] in b"\r\n":
        i += 1
    start = i
    while i < n and line[i] in _METHOD_BYTES:
        i += 1
    if i == start or i >= n or line[i] != 0x20:
        return 400
    method = line[start:i]
    while i < n and line[i] == 0x20:
        i += 1
    empty_path = False
    if i < n and line[i] != 0x2F:  # an absolute URI: scheme://host[:port][/path]
        m = _ABSOLUTE.match(line, i)
        if m is None or m.end() >= n or not _valid_host(m.group(1)):
            return 400
        i = m.end()
        if line[i] == 0x20:
            return _finish(line, i, method, b"/", False)
        if line[i] == 0x3F:
            empty_path = True
        elif line[i] != 0x2F:
            return 400
    elif i >= n:
        return 400
    target_start = i
    while i < n and line[i] != 0x20:
        if line[i] < 0x20 or line[i] == 0x7F:
            return 400
        i += 1
    return _finish(line, i, method, line[target_start:i], empty_path)


_METHOD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
_ABSOLUTE = re.compile(
    rb"[A-Za-z][A-Za-z0-9+.-]*://(\[[0-9A-Za-z:._~!$&'()*+,;=-]*\]|[A-Za-z0-9.-]*)(?::[0-9]*)?"
)


def _valid_host(host: bytes) -> bool:
    """``ngx_http_validate_host`` for the host of an absolute request target."""
    if b".." in host:
        return False
    return bool(host[:-1] if host.endswith(b".") else host)


def _finish(
    line: bytes, i: int, method: bytes, target: bytes, empty_path: bool
) -> tuple[bytes, bytes, bool, int] | int:
    """After the target: spaces, then ``HTTP/major.minor`` and spaces, or nothing (HTTP/0.9)."""
    n = len(line)
    while i < n and line[i] == 0x20:
        i += 1
    if i == n:
        return (method, target, empty_path, 9) if method == b"GET" else 400
    if line[i : i + 5] != b"HTTP/":
        return 400
    i += 5
    if i >= n or not 0x31 <= line[i] <= 0x39:
        return 400
    major = line[i] - 0x30
    i += 1
    while True:
        if major > 1:
            return 505
        if i >= n or not (line[i] == 0x2E or 0x30 <= line[i] <= 0x39):
            return 400
        if line[i] == 0x2E:
            break
        major = major * 10 + line[i] - 0x30
        i += 1
    i += 1
    if i >= n or not 0x30 <= line[i] <= 0x39:
        return 400
    minor = line[i] - 0x30
    i += 1
    while i < n and line[i] != 0x20:
        if not 0x30 <= line[i] <= 0x39 or minor > 99:
            return 400
        minor = minor * 10 + line[i] - 0x30
        i += 1
    if line[i:].strip(b" "):
        return 400
    return method, target, empty_path, major * 1000 + minor


# --- decisions -------------------------------------------------------------------------------


class Rule(enum.Enum):
    """What decided a request's answer."""

    PASS = "pass"
    """No control refused it: the site answers."""
    INVALID = "invalid"
    """nginx refused it before any control (:attr:`Request.invalid`)."""
    BLOCK = "block"
    FILTER = "filter"
    MAINTENANCE = "maintenance"
    RATE_LIMIT = "rate_limit"


@dataclass(frozen=True, slots=True)
class Decision:
    rule: Rule
    status: int | None = None
    """What nginx answers (403, 444: connection closed, 503, 429, 400…); None for PASS."""
    detail: str | None = None
    """The block target or the filter id that refused the request."""

    @property
    def refused(self) -> bool:
        """Refused by one of our controls (not PASS, not INVALID)."""
        return self.rule not in (Rule.PASS, Rule.INVALID)


PASS = Decision(Rule.PASS)
MAINTENANCE = Decision(Rule.MAINTENANCE, 503)
RATE_LIMITED = Decision(Rule.RATE_LIMIT, 429)
_INADDR_NONE = (4, 0xFFFFFFFF)
_MAINTENANCE_PAGE_METHODS = (b"GET", b"HEAD")
"""Served the page by ``@maint`` (and counted by ``limit_req``); other methods get 503 at once."""


class _Networks:
    """A geo table: a dict per prefix length and family, longest prefix first (no scan)."""

    def __init__(self, targets: Iterable[str]) -> None:
        tables: dict[tuple[int, int], dict[int, str]] = {}
        for t in targets:
            net = ipaddress.ip_network(t)
            bits = net.max_prefixlen
            table = tables.setdefault((net.version, net.prefixlen), {})
            table.setdefault(int(net.network_address) >> (bits - net.prefixlen), t)
        self.v4 = [
            (32 - plen, tables[(4, plen)]) for v, plen in sorted(tables, reverse=True) if v == 4
        ]
        self.v6 = [
            (128 - plen, tables[(6, plen)]) for v, plen in sorted(tables, reverse=True) if v == 6
        ]

    def find(self, address: tuple[int, int]) -> str | None:
        version, value = address
        for shift, table in self.v4 if version == 4 else self.v6:
            hit = table.get(value >> shift)
            if hit is not None:
                return hit
        return None


@functools.lru_cache(maxsize=262144)
def client_address(client: str) -> tuple[int, int]:
    """``(4 or 6, integer)`` of ``$remote_addr`` as nginx's ``geo`` looks it up: an IPv4-mapped
    address as IPv4; text nginx cannot parse (``unix:``) as 255.255.255.255, as nginx does."""
    try:
        if ":" not in client:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, client))
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, client))
    except OSError:
        return _INADDR_NONE
    if value >> 32 == 0xFFFF:
        return 4, value & 0xFFFFFFFF
    return 6, value


def _compile(c: Condition) -> re.Pattern[bytes]:
    if c.match == "exact":
        # The rendered exact token is ^...$ too: PCRE's and Python's $ both allow a final \n.
        return re.compile(b"^" + re.escape(c.pattern.encode("utf-8")) + b"$")
    return re.compile(c.pattern.encode("ascii"))


_FIELD_INDEX = {"path": 0, "user_agent": 1, "method": 2, "referer": 3}


class Matcher:
    """A control state compiled for matching many requests (each rule compiled once)."""

    def __init__(self, state: ControlState) -> None:
        self.state = state
        self._blocks = _Networks(b.target for b in state.blocks) if state.blocks else None
        m = state.maintenance
        self._maintenance = m.on
        self._allow = _Networks(m.allow)
        conds = sorted(
            {c for f in state.filters for c in f.when}, key=lambda c: (c.field, c.pattern, c.match)
        )
        bit = {c: 1 << i for i, c in enumerate(conds)}
        self._conditions = [(bit[c], _FIELD_INDEX[c.field], _compile(c).search) for c in conds]
        self._filters = [(f.id, sum(bit[c] for c in f.when)) for f in filter_order(state.filters)]
        self._filter_decisions = {
            f.id: Decision(Rule.FILTER, f.action, f.id) for f in state.filters
        }
        self._block_decisions: dict[str, Decision] = {}

    def limiter(self) -> RateLimiter | None:
        """A fresh simulator of the state's rate limit, or None when there is none."""
        rl = self.state.rate_limit
        return None if rl.rate is None else RateLimiter(rl.rate, rl.burst, rl.key)

    def blocked_by(self, client: str) -> str | None:
        """The most specific block target that covers ``client``, or None."""
        return None if self._blocks is None else self._blocks.find(client_address(client))

    def filtered_by(self, request: Request) -> str | None:
        """The id of the filter nginx answers ``request`` with, or None."""
        if not self._filters:
            return None
        values = (request.uri, request.user_agent, request.method, request.referer)
        hits = 0
        for bit, where, search in self._conditions:
            if search(values[where]) is not None:
                hits |= bit
        if hits:
            for fid, needed in self._filters:
                if hits & needed == needed:
                    return fid
        return None

    def decide(
        self, request: Request, limiter: RateLimiter | None = None, now_ms: int = 0
    ) -> Decision:
        """What nginx answers ``request``; ``limiter`` (with the request's time in ms) adds the
        rate limit, and counts the request when it reaches nginx's ``limit_req``."""
        if request.invalid is not None:
            return Decision(Rule.INVALID, request.invalid)
        address = client_address(request.client)
        if self._blocks is not None:
            target = self._blocks.find(address)
            if target is not None:
                d = self._block_decisions.get(target)
                if d is None:
                    d = self._block_decisions[target] = Decision(Rule.BLOCK, 403, target)
                return d
        fid = self.filtered_by(request)
        if fid is not None:
            return self._filter_decisions[fid]
        if self._maintenance and self._allow.find(address) is None:
            if request.method not in _MAINTENANCE_PAGE_METHODS:
                return MAINTENANCE  # answered in @maint's rewrite phase, before limit_req
            if limiter is not None and not limiter.allow(request.client, now_ms):
                return RATE_LIMITED
            return MAINTENANCE
        if limiter is not None and not limiter.allow(request.client, now_ms):
            return RATE_LIMITED
        return PASS


_compiled: dict[int, tuple[ControlState, Matcher]] = {}


def matcher(state: ControlState) -> Matcher:
    """The compiled :class:`Matcher` of ``state`` (the last few are kept)."""
    hit = _compiled.get(id(state))
    if hit is not None and hit[0] is state:
        return hit[1]
    if len(_compiled) >= 8:
        _compiled.clear()
    m = Matcher(state)
    _compiled[id(state)] = (state, m)
    return m


def decide(
    state: ControlState, request: Request, limiter: RateLimiter | None = None, now_ms: int = 0
) -> Decision:
    """What nginx, with ``state`` rendered, answers ``request`` (see :meth:`Matcher.decide`)."""
    return matcher(state).decide(request, limiter, now_ms)


def replay(
    state: ControlState, requests: Iterable[Request], *, resolution: float = 1.0
) -> Iterator[Decision]:
    """The decisions for a time-ordered stream, the rate limit included.

    Requests that share a :attr:`Request.time` are spread evenly over ``resolution`` seconds
    (1 for ``$time_local``, 0.001 for ``$msec``); see :mod:`.ratelimit` for the error that
    allows.  Requests without a time count as simultaneous with the one before.
    """
    m = matcher(state)
    limiter = m.limiter()
    decide_one = m.decide
    if limiter is None:
        for r in requests:
            yield decide_one(r)
        return
    step = resolution * 1000
    group: list[Request] = []
    current: float | None = None
    for r in requests:
        if r.time is not None and r.time != current:
            yield from _timed(decide_one, limiter, group, current, step)
            group = []
            current = r.time
        group.append(r)
    yield from _timed(decide_one, limiter, group, current, step)


def _timed(
    decide_one: Callable[[Request, RateLimiter | None, int], Decision],
    limiter: RateLimiter,
    group: list[Request],
    when: float | None,
    step: float,
) -> Iterator[Decision]:
    """The requests logged at one time, placed as :func:`.ratelimit.spread` places them."""
    start = round((when or 0.0) * 1000)
    n = len(group)
    for k, r in enumerate(group):
        yield decide_one(r, limiter, start + int(k * step) // n)
