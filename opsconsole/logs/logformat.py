"""Compile an nginx ``log_format`` string into one fast bytes regex (the only log-format parser).

Called by the config loader (to validate ``log_format``) and by :mod:`opsconsole.logs.parse`.
The compiled regex works on whole chunks of the log at once (``re.MULTILINE`` + ``findall``), which
keeps the per-line cost inside the C regex engine; a line that does not match is simply not
returned, and the caller counts it as unparsed.  Only the fields the statistics use are captured:

=========  =====================================================================
field      nginx variables
=========  =====================================================================
client     ``$remote_addr`` (``$realip_remote_addr``, ``$http_x_real_ip`` …)
net        (derived) the first three octets of an IPv4 client, for /24 counts
time       ``$time_local``, ``$time_iso8601`` or ``$msec``
method     ``$request_method``, or the first word of ``$request``
path       ``$request_uri`` / ``$uri``, or the second word of ``$request``
status     ``$status``
agent      ``$http_user_agent``
host       ``$host`` / ``$http_host`` / ``$server_name``
=========  =====================================================================

Quoted fields accept backslash escapes (Apache writes ``\\"``; nginx writes ``\\x22``).  Nothing is
decoded here: fields stay ``bytes`` because logs are not guaranteed to be UTF-8.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
"""nginx's predefined ``combined`` format."""

PREDEFINED = {"combined": COMBINED}

FIELDS = ("client", "net", "time", "method", "path", "status", "agent", "host", "referer")
OPTIONAL_FIELDS = frozenset({"referer"})
"""Captured only when asked for (``compile_format(fmt, extra=...)``): the statistics do not need
them, and the C accelerator reads exactly the default ``combined`` captures."""

_CLIENT_VARS = {"remote_addr", "realip_remote_addr", "http_x_real_ip", "http_cf_connecting_ip"}
_TIME_VARS = {"time_local": "local", "time_iso8601": "iso8601", "msec": "msec"}
_PATH_VARS = {"request_uri", "uri", "document_uri"}
_HOST_VARS = {"host", "http_host", "server_name"}
_TEXT_FIELDS = {
    **dict.fromkeys(_PATH_VARS, "path"),
    "http_user_agent": "agent",
    **dict.fromkeys(_HOST_VARS, "host"),
    "http_referer": "referer",
}
"""Variables captured as plain text, and the field each one fills (the first one wins)."""
_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")

# Fixed-shape values get a precise pattern; free text gets "anything up to the next delimiter".
_TIME_PATTERNS = {
    "local": rb"(\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}"
    rb":\d\d:\d\d:\d\d [+-]\d{4})",
    "iso8601": rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z))",
    "msec": rb"(\d+\.\d+)",
}
_STATUS = rb"(\d{3})"
# The client: capture the whole address, and for IPv4 also its /24 part ("net") as a second group.
_CLIENT = rb"((\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}|[^\s\"]+)"
TAIL = rb"(?:[ \t\r][^\n]*)?$"


def _quoted_body(capture: bool) -> bytes:
    body = rb'[^"\\\n]*(?:\\.[^"\\\n]*)*'
    return b"(" + body + b")" if capture else body


@dataclass(frozen=True)
class Piece:
    """One piece of the regex: a literal run or one variable of the format, in order."""

    kind: str
    """``lit``, ``client``, ``time``, ``status``, ``request``, ``alpha``, ``body``, ``until``
    or ``end`` (the tolerance for trailing text)."""
    regex: bytes
    """Exactly what the piece adds to the regex (its capture groups included)."""
    fields: tuple[str, ...] = ()
    """The fields its groups capture, in order."""
    arg: bytes = b""
    """``lit``: the literal bytes; ``time``: the time kind."""
    var: str = ""
    """The variable (``$remote_addr`` …), for messages."""


@dataclass(frozen=True)
class LogFormat:
    """A compiled format: the regex and where each field sits in a ``findall`` tuple."""

    source: str
    regex: re.Pattern[bytes]
    groups: dict[str, int]
    """Field name -> index in the tuples returned by ``regex.findall`` (absent if not logged)."""
    time_kind: str
    pieces: tuple[Piece, ...] = ()
    """The regex after its ``^``, piece by piece (what :mod:`opsconsole.stats.fast` compiles
    for its C scanner)."""

    @property
    def ngroups(self) -> int:
        return self.regex.groups


def _until(delim: bytes) -> bytes:
    """Free text up to the next delimiter byte (never across a line)."""
    if not delim:
        return rb"[^\n]*?"
    d = re.escape(delim[:1])
    if delim[:1] in (b" ", b"\t"):
        return rb"[^\s]*"
    return b"[^" + d + rb"\n]*"


@functools.lru_cache(maxsize=64)
def compile_format(fmt: str, extra: frozenset[str] = frozenset()) -> LogFormat:
    """Compile ``"combined"`` or an nginx log_format string.  Raises ValueError if unusable.

    ``extra``: optional fields to capture too (``{"referer"}`` for the analysis of ``suggest``).
    Cached: each service's format is compiled once per process, however many pipelines, history
    reads and replays use it (the config loader's validation compiles it first)."""
    source = PREDEFINED.get(fmt.strip(), fmt)
    if "\n" in source or "\r" in source or not source.strip():
        raise ValueError('expected one line: "combined" or an nginx log_format string')
    tokens: list[tuple[str, str]] = []  # ("lit", text) | ("var", name)
    pos = 0
    for m in _VAR.finditer(source):
        if m.start() > pos:
            tokens.append(("lit", source[pos : m.start()]))
        tokens.append(("var", m.group(1) or m.group(2)))
        pos = m.end()
    if pos < len(source):
        tokens.append(("lit", source[pos:]))
    names = [t[1] for t in tokens if t[0] == "var"]
    if not any(n in _CLIENT_VARS for n in names):
        raise ValueError("log_format must contain $remote_addr (the client address)")
    if not any(n in _TIME_VARS for n in names):
        raise ValueError("log_format must contain $time_local, $time_iso8601 or $msec")
    if "status" not in names:
        raise ValueError("log_format must contain $status")

    pieces: list[Piece] = []
    groups: dict[str, int] = {}
    ngroups = 0
    time_kind = ""

    def add(kind: str, regex: bytes, fields: tuple[str, ...] = (), arg: bytes = b"") -> None:
        nonlocal ngroups
        var = f"${name}" if kind not in ("lit", "end") else ""
        pieces.append(Piece(kind, regex, fields, arg, var))
        for f in fields:
            groups[f] = ngroups
            ngroups += 1

    name = ""
    for i, (kind, text) in enumerate(tokens):
        if kind == "lit":
            # A run of spaces in the format matches the same spaces; everything literal is escaped.
            add("lit", re.escape(text.encode()), arg=text.encode())
            continue
        prev = tokens[i - 1][1] if i > 0 and tokens[i - 1][0] == "lit" else ""
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) and tokens[i + 1][0] == "lit" else ""
        quoted = prev.endswith('"') and nxt.startswith('"')
        name = text
        if name in _CLIENT_VARS and "client" not in groups:
            add("client", _CLIENT, ("client", "net"))
        elif name in _TIME_VARS and "time" not in groups:
            time_kind = _TIME_VARS[name]
            add("time", _TIME_PATTERNS[time_kind], ("time",), time_kind.encode())
        elif name == "status" and "status" not in groups:
            add("status", _STATUS, ("status",))
        elif name == "request" and quoted and "path" not in groups:
            # METHOD SP PATH [SP PROTOCOL]; anything else keeps its first word as "path".
            word = rb'[^ "\\\n]*(?:\\.[^ "\\\n]*)*'
            add(
                "request",
                rb"([A-Za-z]*) ?(" + word + rb")" + _quoted_body(False),
                ("method", "path"),
            )
        elif name == "request_method" and "method" not in groups:
            if quoted:
                add("body", _quoted_body(True), ("method",))
            else:
                add("alpha", rb"([A-Za-z]*)", ("method",))
        elif (
            (field := _TEXT_FIELDS.get(name))
            and field not in groups
            and (field not in OPTIONAL_FIELDS or field in extra)
        ):
            if quoted:
                add("body", _quoted_body(True), (field,))
            else:
                add("until", b"(" + _until(nxt.encode()) + b")", (field,))
        elif quoted:
            add("body", _quoted_body(False))
        else:
            add("until", _until(nxt.encode()))
    # Tolerate trailing blanks and CR (CRLF files, Apache's trailing space), and extra fields
    # after the last one (a "main"-style format read as combined still yields every field).
    add("end", TAIL)
    parts = [b"^", *(p.regex for p in pieces)]
    try:
        regex = re.compile(b"".join(parts), re.MULTILINE)
    except re.error as e:  # pragma: no cover - every piece above is escaped or fixed
        raise ValueError(f"cannot compile log_format: {e}") from None
    return LogFormat(
        source=source, regex=regex, groups=groups, time_kind=time_kind, pieces=tuple(pieces)
    )
