"""Validators for every operator input that can end up in a control state (DESIGN §5).

Called by :mod:`opsconsole.controls.edits` when an edit is built (before any server is contacted)
and by :mod:`opsconsole.controls.state` when a ``state.json`` is read back from a server, so a
hand-edited or hostile state file is held to the same rules as typed input.  Each validator
returns the value in its one canonical shape or raises :class:`~opsconsole.errors.UsageError`
saying what was wrong.  Pure functions; imports only the standard library and ``opsconsole.errors``.

The rules, and where each value goes:

- IP / CIDR (blocks, maintenance allow list): parsed by :mod:`ipaddress`; only the characters
  ``0-9 a-f A-F : . /`` are accepted at all (no zone ids, no spaces); a CIDR with host bits set is
  *refused* (``203.0.113.9/24``: "did you mean 203.0.113.0/24?") because either reading of it may be
  the typo.  Canonical form: the bare address for a single host, ``net/len`` otherwise.
- Regex (filters): rendered as a double-quoted nginx token, so ``;``, ``{``, ``}`` and spaces are
  harmless; what could break out of the token or change its meaning is refused: quotes, backticks,
  control characters, any non-ASCII, ``$`` anywhere but as an end anchor (``$`` at the end, or
  before ``|`` or ``)``), and every ``(?`` construct except a leading ``(?i)`` (named groups would
  create nginx variables).  It must compile with Python's ``re``, be at most 200 characters, and
  have no backreferences and no repeated group that itself contains a repetition or an alternation
  (``(a+)+``, ``(.*)*``, ``(a|aa)+``), the shapes that backtrack catastrophically.
- Exact patterns may hold any printable character; the renderer escapes every byte.
- Messages and reasons: printable text (no control, format or separator characters), bounded length;
  they never reach nginx syntax or a shell (the message is HTML-escaped into its own file).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from ..errors import UsageError

MAX_MESSAGE = 500
MAX_REASON = 200
MAX_OPERATOR = 100
MAX_REGEX = 200
MAX_EXACT = 256
MAX_RATE = 100_000
MAX_BURST = 100_000
MAX_TTL = 366 * 86400.0
FIELDS = ("path", "user_agent", "method")
MATCHES = ("regex", "exact")
ACTIONS = (403, 444)
KEYS = ("ip", "subnet")

_IP_CHARS = re.compile(r"[0-9A-Fa-f:./]{2,49}")
_RATE = re.compile(r"([0-9]{1,6}) ?r/([sm])")
_FILTER_ID = re.compile(r"f[0-9]{1,6}")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_METHOD = re.compile(r"[A-Za-z]{1,20}")
_REGEX_CHARS = re.compile(r"[\x20-\x7e]+")
_BAD_DOLLAR = re.compile(r"\$(?![|)]|\Z)")
_CASE_FLAG = "(?i)"
_FOREIGN = re.compile(r"(?<!\\)(?:\\\\)*\\[NuU]|\{,")
"""Escapes Python understands and PCRE does not (or reads otherwise): refused, not guessed."""


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_V4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""A dotted quad already in canonical form: the common case of large block lists, checked fast."""


def target(value: object) -> str:
    """An IPv4/IPv6 address or CIDR network, canonical (``2001:DB8::/32`` -> ``2001:db8::/32``)."""
    if isinstance(value, str) and _PLAIN_V4.fullmatch(value):
        return value
    if not isinstance(value, str) or not _IP_CHARS.fullmatch(value):
        raise UsageError(
            f"{_show(value)} is not an IP address or CIDR network "
            "(expected e.g. 203.0.113.7, 203.0.113.0/24 or 2001:db8::/48)"
        )
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError as e:
        raise UsageError(f"{_show(value)} is not an IP address or CIDR network: {e}") from None
    if "/" in value and net.network_address != ipaddress.ip_interface(value).ip:
        raise UsageError(
            f"{value} has host bits set after the prefix: did you mean {net} "
            f"(the network) or {value.split('/')[0]} (the single address)?"
        )
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def targets(values: Any) -> tuple[str, ...]:
    """Several targets, canonical, duplicates removed, in the order given."""
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise UsageError(f"expected a list of IP addresses or CIDR networks, got {_show(values)}")
    out: dict[str, None] = {}
    for v in values:
        out[target(v)] = None
    return tuple(out)


def _printable(value: object, what: str, limit: int, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be text, got {_show(value)}")
    return _printable_text(value, what, limit, allow_empty)


@functools.lru_cache(maxsize=4096)
def _printable_text(value: str, what: str, limit: int, allow_empty: bool) -> str:
    # Cached: a state file repeats the same reason and operator on thousands of blocks.
    if len(value) > limit:
        raise UsageError(f"{what} is {len(value)} characters long; at most {limit} are allowed")
    if not allow_empty and not value.strip():
        raise UsageError(f"{what} must not be empty")
    if value.isascii() and value.isprintable():
        return value
    for ch in value:
        # Cc control, Cf format (bidi overrides), Cs/Co/Cn, Zl/Zp line and paragraph separators.
        if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp"):
            raise UsageError(
                f"{what} contains the control character U+{ord(ch):04X}: use one line of "
                "printable text"
            )
    return value


def message(value: object) -> str:
    """The maintenance message shown to visitors (one line of printable text, ≤ 500 chars)."""
    return _printable(value, "the maintenance message", MAX_MESSAGE)


def reason(value: object) -> str:
    """Why a block or filter was added (printable text, ≤ 200 chars); stored, never rendered."""
    return _printable(value, "the reason", MAX_REASON)


def operator(value: object) -> str:
    """The operator's name as written to the state and the audit trail."""
    return _printable(value, "the operator name", MAX_OPERATOR, allow_empty=False)


def rate(value: object) -> str:
    """A request rate ``N r/s`` or ``N r/m`` with 1 ≤ N ≤ 100000, canonical ``10r/s``."""
    m = _RATE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise UsageError(f"{_show(value)} is not a rate: expected e.g. 10r/s or 600r/m")
    n = int(m.group(1))
    if not 1 <= n <= MAX_RATE:
        raise UsageError(f"rate {value!r} is out of range: 1 to {MAX_RATE} requests per unit")
    return f"{n}r/{m.group(2)}"


def burst(value: object) -> int:
    """A ``limit_req`` burst: a whole number 0..100000 (an int or its decimal text)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BURST:
        raise UsageError(f"burst {_show(value)} is not a whole number from 0 to {MAX_BURST}")
    return value


def key(value: object) -> str:
    """The rate-limit key: ``ip`` (each client) or ``subnet`` (its /24, or /48 for IPv6)."""
    if value not in KEYS:
        raise UsageError(f"rate-limit key {_show(value)}: expected 'ip' or 'subnet'")
    return str(value)


def action(value: object) -> int:
    """A filter's answer: 403 (Forbidden) or 444 (close the connection without a response)."""
    if isinstance(value, str) and value in ("403", "444"):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in ACTIONS:
        raise UsageError(f"filter action {_show(value)}: expected 403 or 444")
    return value


def field(value: object) -> str:
    if value not in FIELDS:
        raise UsageError(f"filter field {_show(value)}: expected path, user_agent or method")
    return str(value)


def match(value: object) -> str:
    if value not in MATCHES:
        raise UsageError(f"filter match {_show(value)}: expected 'regex' or 'exact'")
    return str(value)


def filter_id(value: object) -> str:
    if not isinstance(value, str) or not _FILTER_ID.fullmatch(value):
        raise UsageError(f"{_show(value)} is not a filter id (expected e.g. f3)")
    return value


def timestamp(value: object) -> str:
    """A UTC time as stored in the state: ``2026-11-24T15:00:00Z``."""
    if not isinstance(value, str):
        raise UsageError(f"{_show(value)} is not a UTC time like 2026-11-24T15:00:00Z")
    return _timestamp_text(value)


@functools.lru_cache(maxsize=1024)
def _timestamp_text(value: str) -> str:
    # Cached: the blocks of one apply share a time, and strptime costs 20 µs per call.
    if not _TIMESTAMP.fullmatch(value):
        raise UsageError(f"{_show(value)} is not a UTC time like 2026-11-24T15:00:00Z")
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"{value!r} is not a valid date and time") from None
    return value


def ttl(value: object) -> float:
    """A block lifetime in seconds: more than 0, at most 366 days."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TTL:
        raise UsageError(f"ttl {_show(value)}: expected 1s to 366d")
    return float(value)


def pattern(field_name: str, match_kind: str, value: object) -> str:
    """A filter pattern for ``field_name`` (path, user_agent, method), matched as ``match_kind``."""
    field(field_name)
    match(match_kind)
    if not isinstance(value, str) or not value:
        raise UsageError(f"filter pattern {_show(value)}: expected a non-empty string")
    if match_kind == "exact":
        if field_name == "method" and not _METHOD.fullmatch(value):
            raise UsageError(f"{_show(value)} is not an HTTP method (letters only, e.g. POST)")
        return _printable(value, "the exact pattern", MAX_EXACT)
    return regex(value)


def regex(value: object) -> str:
    """A filter regex in the safe subset described in the module docstring."""
    if not isinstance(value, str) or not value:
        raise UsageError(f"regex {_show(value)}: expected a non-empty string")
    if len(value) > MAX_REGEX:
        raise UsageError(f"the regex is {len(value)} characters long; at most {MAX_REGEX}")
    if not _REGEX_CHARS.fullmatch(value):
        raise UsageError(
            f"regex {_show(value)} contains a control or non-ASCII character: write it as \\xHH"
        )
    for bad, why in (('"', "a double quote"), ("'", "a single quote"), ("`", "a backtick")):
        if bad in value:
            raise UsageError(f"regex {_show(value)} contains {why}: write it as \\x{ord(bad):02x}")
    if value != value.strip():
        raise UsageError(f"regex {_show(value)} starts or ends with a space: write it as \\x20")
    if _BAD_DOLLAR.search(value):
        raise UsageError(
            f"regex {_show(value)}: '$' is only allowed as the end anchor (at the end, or before "
            "'|' or ')'); write a literal dollar as \\x24"
        )
    body = value[len(_CASE_FLAG) :] if value.startswith(_CASE_FLAG) else value
    if "(?" in body:
        raise UsageError(
            f"regex {_show(value)}: '(?' constructs (named groups, lookarounds, inline flags) are "
            "not allowed; only a leading (?i) for case-insensitive matching"
        )
    if not body:
        raise UsageError("the regex is empty after (?i)")
    if _FOREIGN.search(value):
        raise UsageError(
            f"regex {_show(value)} uses \\N, \\u, \\U or {{,n}}, which nginx's PCRE reads "
            "differently from Python: write \\xHH or {0,n}"
        )
    try:
        compiled = re.compile(value)
    except re.error as e:
        raise UsageError(f"regex {_show(value)} does not compile: {e}") from None
    _refuse_catastrophic(value, compiled)
    return value


def _refuse_catastrophic(value: str, compiled: re.Pattern[str]) -> None:
    from re import _parser  # type: ignore[attr-defined]  # the only parser of Python's syntax

    repeats = {_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT}

    def walk(items: Any, inside_repeat: bool) -> None:
        for op, arg in items:
            if op is _parser.GROUPREF or op is _parser.GROUPREF_EXISTS:
                raise UsageError(f"regex {_show(value)}: backreferences are not allowed")
            if op in repeats:
                _lo, hi, sub = arg
                if inside_repeat and hi != 1:
                    raise UsageError(
                        f"regex {_show(value)} nests a repetition inside a repetition (like "
                        "(a+)+ or (.*)*), which can take exponential time: flatten it"
                    )
                walk(sub, inside_repeat or hi > 1)
            elif op is _parser.SUBPATTERN:
                walk(arg[-1], inside_repeat)
            elif op is _parser.BRANCH:
                if inside_repeat:
                    raise UsageError(
                        f"regex {_show(value)} repeats an alternation (like (a|aa)+), which can "
                        "take exponential time: use a character class or separate filters"
                    )
                for branch in arg[1]:
                    walk(branch, inside_repeat)
            elif op in (_parser.ASSERT, _parser.ASSERT_NOT, _parser.ATOMIC_GROUP):
                walk(arg[-1], inside_repeat)

    walk(_parser.parse(value, compiled.flags), False)
