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
  the typo.  Canonical form: the bare address for a single host, ``net/len`` otherwise.  An
  IPv4-mapped IPv6 address or network (``::ffff:203.0.113.7``) is written as the IPv4 one, because
  nginx's ``geo`` looks a mapped client up among the IPv4 entries (a mapped entry would match
  nobody).  ``255.255.255.255`` is refused: no client can have it (nginx's own address parser
  reads it as its error value), and nginx refuses it as ``255.255.255.255/32``.
- Regex (filters): rendered as a double-quoted nginx token, so ``;``, ``{``, ``}`` and spaces are
  harmless; what could break out of the token or change its meaning is refused: quotes, backticks,
  control characters, any non-ASCII, ``$`` anywhere but as an end anchor (``$`` at the end, or
  before ``|`` or ``)``), and every ``(?`` construct except a leading ``(?i)`` (named groups would
  create nginx variables).  It must compile with Python's ``re``, be at most 200 characters, and
  have no backreferences and no repeated group that itself contains a repetition or an alternation
  (``(a+)+``, ``(.*)*``, ``(a|aa)+``), the shapes that backtrack catastrophically, and no counted
  repetition over 1000.  The few escapes and classes that Python and nginx's PCRE read differently
  are refused rather than guessed (``\\N``, ``\\u``, ``\\U``, ``{,n}``, ``\\v`` (PCRE: any vertical
  space), ``\\Z`` (PCRE: also before a final newline), ``[`` inside a set (PCRE: POSIX classes such
  as ``[[:alpha:]]``) and the doubled ``--``, ``&&``, ``~~``, ``||`` Python warns about), so what
  Python's ``re`` matches on bytes is what nginx matches (see :mod:`.matching`).
- Filter conditions (:func:`conditions`): one to three, at most one per field, each field
  (``path``, ``user_agent``, ``method``, ``referer``), match kind and pattern validated as above; a
  method is matched exactly (letters only).
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
from socket import AF_INET
from socket import inet_ntop as _ntop
from socket import inet_pton as _pton
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
FIELDS = ("path", "user_agent", "method", "referer")
"""Filter fields, in the canonical order of a filter's conditions."""
MAX_CONDITIONS = 3
MAX_COUNT = 1000
"""The largest counted repetition (``x{1000}``); PCRE refuses more than 65535 at ``nginx -t``."""
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
_OTHERWISE = re.compile(r"(?<!\\)(?:\\\\)*\\([vZ])")
"""Escapes both understand, differently: PCRE's ``\\v`` is any vertical space, its ``\\Z`` also
matches before a final newline (a decoded ``%0A`` ends ``$uri`` with one)."""
_BROADCAST = "255.255.255.255"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def target(value: object) -> str:
    """An IPv4/IPv6 address or CIDR network, canonical (``2001:DB8::/32`` -> ``2001:db8::/32``)."""
    if isinstance(value, str) and "." in value and ":" not in value and "/" not in value:
        try:  # a dotted quad already in canonical form, checked fast (large block lists)
            canonical = _ntop(AF_INET, _pton(AF_INET, value)) == value
        except (OSError, ValueError):
            canonical = False
        if canonical:
            if value == _BROADCAST:
                raise UsageError(_broadcast_refused(value))
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
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
        # nginx's geo looks an IPv4-mapped client up among the IPv4 entries: say it that way.
        mapped = net.network_address.ipv4_mapped
        assert mapped is not None
        net = ipaddress.IPv4Network((mapped, net.prefixlen - 96))
    if net.prefixlen == net.max_prefixlen:
        text = str(net.network_address)
        if text == _BROADCAST:
            raise UsageError(_broadcast_refused(value))
        return text
    return str(net)


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _broadcast_refused(value: str) -> str:
    return (
        f"{value} is the broadcast address 255.255.255.255: no client can have it, and nginx "
        "refuses it as a network (it reads that address as its own error value)"
    )


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
    """A filter field: path (``$uri``), user_agent, method or referer (``""`` when absent)."""
    if value not in FIELDS:
        raise UsageError(
            f"filter field {_show(value)}: expected path, user_agent, method or referer"
        )
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
    """A filter pattern for ``field_name`` (path, user_agent, method, referer) as ``match_kind``.

    A method is matched exactly (nginx only accepts upper-case letters, ``_`` and ``-`` there).
    """
    field(field_name)
    match(match_kind)
    if not isinstance(value, str) or not value:
        raise UsageError(f"filter pattern {_show(value)}: expected a non-empty string")
    if field_name == "method":
        if match_kind != "exact":
            raise UsageError(
                f"a method is matched exactly, not as a regex ({_show(value)}): "
                "give one method per filter, e.g. POST"
            )
        if not _METHOD.fullmatch(value):
            raise UsageError(f"{_show(value)} is not an HTTP method (letters only, e.g. POST)")
    if match_kind == "exact":
        return _printable(value, "the exact pattern", MAX_EXACT)
    return regex(value)


def default_match(field_name: str) -> str:
    """The match kind when none is given: ``exact`` for a method, ``regex`` otherwise."""
    return "exact" if field_name == "method" else "regex"


def condition(
    field_name: object, pattern_value: object, match_kind: object = None
) -> tuple[str, str, str]:
    """One filter condition as ``(field, pattern, match)``; ``match`` defaults per field."""
    fld = field(field_name)
    kind = match(default_match(fld) if match_kind is None else match_kind)
    return fld, pattern(fld, kind, pattern_value), kind


def conditions(values: Any) -> tuple[tuple[str, str, str], ...]:
    """The conditions of one filter (all must match): 1 to 3, at most one per field.

    Each item is a ``(field, pattern[, match])`` sequence, a mapping with those keys, or an
    object with those attributes (a :class:`~.state.Condition`).  Returned as
    ``(field, pattern, match)`` triples in the canonical field order of :data:`FIELDS`.
    """
    if isinstance(values, str | bytes | dict) or not isinstance(values, list | tuple):
        raise UsageError(f"filter conditions: expected a list, got {_show(values)}")
    if not 1 <= len(values) <= MAX_CONDITIONS:
        raise UsageError(
            f"a filter has one to three conditions (all must match), got {len(values)}"
        )
    out: dict[str, tuple[str, str, str]] = {}
    for item in values:
        triple = condition(*_condition_parts(item))
        if triple[0] in out:
            raise UsageError(
                f"a filter has at most one condition per field: {triple[0]} is given twice "
                "(write one regex with | for either of two values)"
            )
        out[triple[0]] = triple
    return tuple(out[f] for f in FIELDS if f in out)


def _condition_parts(item: object) -> tuple[object, object, object]:
    if isinstance(item, dict):
        unknown = set(item) - {"field", "pattern", "match"}
        if unknown:
            raise UsageError(f"a filter condition has unknown keys {sorted(unknown)}")
        return item.get("field"), item.get("pattern"), item.get("match")
    if isinstance(item, list | tuple) and len(item) in (2, 3):
        return item[0], item[1], item[2] if len(item) == 3 else None
    if all(hasattr(item, a) for a in ("field", "pattern", "match")):
        return item.field, item.pattern, item.match  # type: ignore[attr-defined]
    raise UsageError(f"a filter condition must be (field, pattern, match), got {_show(item)}")


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
    other = _OTHERWISE.search(value)
    if other:
        hint = "[\\x0b] for a vertical tab" if other.group(1) == "v" else "$ for the end"
        raise UsageError(
            f"regex {_show(value)} uses \\{other.group(1)}, which nginx's PCRE reads differently "
            f"from Python: write {hint}"
        )
    if _set_trouble(value):
        raise UsageError(
            f"regex {_show(value)} has '[' or a doubled -, &, ~ or | inside a [...] set, which "
            "nginx's PCRE (POSIX classes like [[:alpha:]]) and Python read differently: write "
            "the characters, e.g. [A-Za-z], and escape a literal one as \\["
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
                lo, hi, sub = arg
                if lo > MAX_COUNT or (hi != _parser.MAXREPEAT and hi > MAX_COUNT):
                    raise UsageError(
                        f"regex {_show(value)} repeats something more than {MAX_COUNT} times: "
                        "use a shorter count or +"
                    )
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


def _set_trouble(value: str) -> bool:
    """Whether a ``[...]`` set holds an unescaped ``[`` or a doubled ``-``, ``&``, ``~`` or ``|``.

    PCRE reads ``[:alpha:]``, ``[.x.]`` and ``[=x=]`` inside a set as POSIX classes, Python as
    plain characters (and warns that nested sets and set operations may come): refused.
    """
    i, n, inside = 0, len(value), False
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if not inside:
            if ch == "[":
                inside = True
                i += 1
                if value[i : i + 1] == "^":
                    i += 1
                if value[i : i + 1] == "]":
                    i += 1  # a leading ] is a literal in both
                continue
        elif ch == "[" or (ch in "-&~|" and value[i + 1 : i + 2] == ch):
            return True
        elif ch == "]":
            inside = False
        i += 1
    return False
