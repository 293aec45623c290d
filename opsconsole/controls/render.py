"""The one place that knows the nginx snippet format: control state -> files (DESIGN §5).

:func:`render` is a deterministic, pure function from a :class:`~.state.ControlState` to the three
files the operator's nginx reads: ``<service>.http.conf`` (inside ``http {}``: ``geo``, ``map``,
``limit_req_zone``), ``<service>.server.conf`` (inside the site's ``server {}``: ``if``/``return``,
``limit_req``, ``error_page`` and the maintenance named location) and ``<service>.maintenance.html``
(the page, served from the control directory).  Called by :mod:`.apply` (and by tests that feed
the output to a real ``nginx -t``).  Standard library, ``.state`` and ``.validate`` only.

How operator text is kept out of nginx syntax:

- Every nginx name is ``opsc_<service>_…`` (service lower-cased, ``-`` as ``_``), so services that
  share one nginx and one control directory never clash.  Zone names carry the key kind
  (``…_rl_ip`` / ``…_rl_subnet``) because nginx refuses, at reload only, a zone whose key changed.
- Addresses reach the files only in their canonical ``ipaddress`` form.
- Regexes (already in the safe subset of :func:`.validate.regex`) are written as double-quoted
  tokens with every backslash doubled: nginx's parser turns ``\\\\`` back into ``\\`` and leaves
  everything else alone, so PCRE receives exactly the validated pattern.  Exact patterns become
  ``^…$`` with every byte outside ``[A-Za-z0-9_/-]`` written as ``\\xHH``.
- Filters (each 1-3 conditions that must all match) never join request values: one ``map`` per
  distinct condition yields ``1``/``0``, and one ``map`` over those digits, joined, yields the
  answer (444 filters first, then 403, each by id; see :func:`filter_order`).  A client cannot
  reach the joined string at all, whatever bytes it sends.  nginx never tries a map's regexes
  on an empty value, so a regex that matches the empty string (``^$``: no referer) also gets
  the key ``""``.
- The maintenance page is a named location, which keeps the request's method; nginx's static
  module would answer a POST there with 405, so anything but GET and HEAD gets nginx's own 503.
- The maintenance message is never in nginx syntax at all: it is HTML-escaped into its own file.
- :func:`render` re-checks each emitted value against the character set of its position and raises
  ``ValueError`` if anything unvalidated slipped into the state (a bug, never operator error).
"""

from __future__ import annotations

import html
import re
import socket
from dataclasses import dataclass

from ..config import NAME_RE
from ..errors import UsageError
from .state import Condition, ControlState, Filter

RETRY_AFTER = 300
"""Seconds announced in ``Retry-After`` on the maintenance page."""
ZONE_SIZE = "32m"
"""Shared memory per rate-limit zone: about 250,000 client states (nginx evicts the oldest)."""
DEFAULT_MESSAGE = "This site is down for maintenance. Please try again in a few minutes."

_DIR = re.compile(r"/[A-Za-z0-9._/+@=,:~-]*")
_SAFE_ADDR = re.compile(r"[0-9a-f:./]{2,49}")
_SAFE_ADDRS = re.compile(r"(?:[0-9a-f:./]{2,49}\n)*[0-9a-f:./]{2,49}")
"""Every line of the joined addresses (one address a line) is a safe address."""
_SAFE_TOKEN = re.compile(r'"~\*?[\x20\x21\x23-\x26\x28-\x5f\x61-\x7e]+"')
_SAFE_RATE = re.compile(r"[0-9]{1,6}r/[sm]")
_EXACT_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/-")
_SAFE_POSITIONS = re.compile(r'"~\^[.1]*1"')
_FIELD_VARIABLES = {
    "path": "$uri",
    "user_agent": "$http_user_agent",
    "method": "$request_method",
    "referer": "$http_referer",
}
_FIELD_ORDER = {name: i for i, name in enumerate(_FIELD_VARIABLES)}

# $remote_addr -> a key shared by its /24 (IPv4) or /48 (IPv6).  nginx prints IPv6 in lower case,
# compressing the longest run of zero groups, so the first three groups are read case by case; an
# IPv4-mapped client (``::ffff:192.0.2.7``, a dual-stack socket) shares its IPv4 /24's key, as
# geo looks it up among the IPv4 entries.
SUBNET_RULES = (
    ("~^([0-9]+[.][0-9]+[.][0-9]+)[.]", "$1"),
    ("~^::ffff:([0-9]+[.][0-9]+[.][0-9]+)[.]", "$1"),
    ("~^([0-9a-f]+:[0-9a-f]+:[0-9a-f]+):", "$1"),
    ("~^([0-9a-f]+:[0-9a-f]+)::", "$1:0"),
    ("~^([0-9a-f]+)::", "$1:0:0"),
    ("~^::", "0:0:0"),
)


@dataclass(frozen=True)
class Rendered:
    """The three rendered files of one service."""

    http_conf: str
    server_conf: str
    maintenance_html: str

    def files(self) -> dict[str, str]:
        """Suffix after ``<service>.`` -> content."""
        return {
            "http.conf": self.http_conf,
            "server.conf": self.server_conf,
            "maintenance.html": self.maintenance_html,
        }


def nginx_prefix(service: str) -> str:
    """``shop-eu`` -> ``opsc_shop_eu``: the prefix of every nginx name of the service."""
    if not NAME_RE.fullmatch(service):
        raise UsageError(f"{service!r} is not a service name usable in nginx names")
    return "opsc_" + service.lower().replace("-", "_")


def check_control_dir(control_dir: str) -> str:
    """The control directory goes into a ``root`` directive: a plain absolute path only."""
    if not _DIR.fullmatch(control_dir) or "/../" in control_dir + "/":
        raise UsageError(
            f"control_dir {control_dir!r}: expected an absolute path of letters, digits and "
            "._/+@=,:~- (it is written into nginx's config)"
        )
    return control_dir.rstrip("/") or "/"


def render(state: ControlState, service: str, control_dir: str) -> Rendered:
    """Render ``state`` of ``service`` whose files live in ``control_dir`` (deterministic)."""
    return Rendered(
        render_http(state, service),
        render_server(state, service, control_dir),
        maintenance_page(state.maintenance.message),
    )


def _head(state: ControlState, service: str) -> str:
    return (
        f"# opsconsole controls of service {service}, state version {state.version}.\n"
        "# Generated by opsconsole from the state file beside it: do not edit.\n"
    )


def render_http(state: ControlState, service: str) -> str:
    """The ``http {}`` snippet: it does not depend on where the files live, so servers with
    different control directories share it (a 500,000-entry ``geo`` is rendered once)."""
    p = nginx_prefix(service)
    http: list[str] = [_head(state, service)]
    if state.blocks:
        http.append(_geo(f"${p}_blocked", "0", [(b.target, "1") for b in state.blocks]))
    if state.filters:
        http.extend(_filter_maps(state.filters, p))
    m = state.maintenance
    if m.on:
        http.append(_geo(f"${p}_maint", "1", [(a, "0") for a in m.allow]))
    rl = state.rate_limit
    if rl.rate is not None:
        zone = _zone(state, p)
        if rl.key == "subnet":
            http.append(_map("$remote_addr", f"${zone}", "$remote_addr", _quoted(SUBNET_RULES)))
            source = f"${zone}"
        else:
            source = "$binary_remote_addr"
        http.append(f"limit_req_zone {source} zone={zone}:{ZONE_SIZE} rate={rl.rate};\n")
    return "\n".join(http)


def _zone(state: ControlState, p: str) -> str:
    rl = state.rate_limit
    if rl.rate is None or not _SAFE_RATE.fullmatch(rl.rate) or not 0 <= rl.burst <= 100_000:
        raise ValueError(f"unvalidated rate limit in state: {rl!r}")
    return f"{p}_rl_{rl.key}"


def render_server(state: ControlState, service: str, control_dir: str) -> str:
    """The ``server {}`` snippet of ``service`` whose files live in ``control_dir``."""
    p = nginx_prefix(service)
    root = check_control_dir(control_dir)
    server: list[str] = [_head(state, service)]
    if state.blocks:
        server.append(_if(f"${p}_blocked", 403))
    if state.filters:
        server.append(_if(f"${p}_filter = 444", 444))
        server.append(_if(f"${p}_filter = 403", 403))
    if state.maintenance.on:
        server.append(_if(f"${p}_maint", 503))
        server.append(
            f"error_page 503 @{p}_maint;\n"
            f"location @{p}_maint {{\n"
            # The named location keeps the request's method, and nginx's static module answers
            # anything but GET and HEAD with 405: those get nginx's own 503 page instead.
            "    if ($request_method !~ ^(GET|HEAD)$) {\n"
            "        return 503;\n"
            "    }\n"
            f"    root {root};\n"
            f"    try_files /{service}.maintenance.html =503;\n"
            "    default_type text/html;\n"
            "    charset utf-8;\n"
            f"    add_header Retry-After {RETRY_AFTER} always;\n"
            '    add_header Cache-Control "no-store" always;\n'
            "}\n"
        )
    rl = state.rate_limit
    if rl.rate is not None:
        zone = _zone(state, p)
        burst = f" burst={rl.burst}" if rl.burst else ""  # nginx refuses an explicit burst=0
        server.append(f"limit_req zone={zone}{burst} nodelay;\nlimit_req_status 429;\n")
    return "\n".join(server)


def maintenance_page(message: str) -> str:
    """The page visitors see during maintenance; ``message`` is HTML-escaped."""
    text = html.escape(message or DEFAULT_MESSAGE, quote=True)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="robots" content="noindex">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Down for maintenance</title>\n"
        "<style>body{font-family:system-ui,sans-serif;max-width:38em;margin:15vh auto;"
        "padding:0 1em;line-height:1.5;color:#222}h1{font-weight:600}</style>\n"
        "</head>\n<body>\n<h1>Down for maintenance</h1>\n"
        f"<p>{text}</p>\n"
        "</body>\n</html>\n"
    )


def filter_order(filters: tuple[Filter, ...]) -> list[Filter]:
    """Filters in map order: 444 before 403, then by id (the first match wins; also the order
    in which :mod:`.matching` attributes a refusal)."""
    return sorted(filters, key=lambda f: (f.action != 444, int(f.id[1:])))


def _filter_maps(filters: tuple[Filter, ...], p: str) -> list[str]:
    """All filters as one decision over values no client controls.

    One ``map`` per distinct condition turns the request's value into ``1`` or ``0``
    (``$opsc_<svc>_c<n>``); one more ``map`` over the concatenation of those digits (position
    ``n`` is condition ``n``) yields 444, 403 or 0, with one regex key per filter that requires a
    ``1`` at each of its conditions' positions.  The joined string holds only those digits, so
    no byte a client sends (in a header or the path) can shift a position or fake a match.
    """
    conds = sorted(
        {c for f in filters for c in f.when},
        key=lambda c: (_FIELD_ORDER.get(c.field, 99), c.match, c.pattern),
    )
    position = {c: i for i, c in enumerate(conds)}
    out = []
    for i, c in enumerate(conds):
        if c.field not in _FIELD_VARIABLES:
            raise ValueError(f"unvalidated filter condition in state: {c!r}")
        rows = [(_condition_token(c), "1")]
        if c.match == "regex" and re.search(c.pattern, ""):
            # nginx never runs a map's regexes on an empty value (no header at all, or an empty
            # one): the empty key says what the regex would, so ^$ can mean "no referer".
            rows.append(('""', "1"))
        out.append(_map(_FIELD_VARIABLES[c.field], f"${p}_c{i}", "0", rows))
    rows = []
    for f in filter_order(filters):
        want = {position[c] for c in f.when}
        if f.action not in (403, 444) or len(want) != len(f.when) or not want:
            raise ValueError(f"unvalidated filter in state: {f!r}")
        key = '"~^' + "".join("1" if i in want else "." for i in range(max(want) + 1)) + '"'
        if not _SAFE_POSITIONS.fullmatch(key):
            raise ValueError(f"unvalidated filter in state: {f!r}")
        rows.append((key, str(f.action)))
    joined = '"' + "".join(f"${p}_c{i}" for i in range(len(conds))) + '"'
    out.append(_map(joined, f"${p}_filter", "0", rows))
    return out


def regex_token(pattern: str) -> str:
    """A validated regex as a quoted nginx map key (``(?i)`` prefix -> ``~*``)."""
    flag, body = ("~*", pattern[4:]) if pattern.startswith("(?i)") else ("~", pattern)
    return '"' + flag + body.replace("\\", "\\\\") + '"'


def exact_token(text: str) -> str:
    """An exact, case-sensitive whole-value match as a quoted nginx map key."""
    body = "".join(chr(b) if b in _EXACT_KEEP else f"\\\\x{b:02x}" for b in text.encode("utf-8"))
    return f'"~^{body}$"'


def _condition_token(c: Condition) -> str:
    token = regex_token(c.pattern) if c.match == "regex" else exact_token(c.pattern)
    if c.match not in ("regex", "exact") or not _SAFE_TOKEN.fullmatch(token):
        raise ValueError(f"unvalidated filter condition in state: {c!r}")
    return token


def _quoted(rules: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [(f'"{k}"', f'"{v}"') for k, v in rules]


def _geo(variable: str, default: str, rows: list[tuple[str, str]]) -> str:
    def order(row: tuple[str, str]) -> tuple[int, bytes, int]:
        # inet_pton rather than ipaddress: this sorts 100,000 entries in a tenth of the time.
        host, _, plen = row[0].partition("/")
        family, bits = (socket.AF_INET6, 128) if ":" in host else (socket.AF_INET, 32)
        return (bits, socket.inet_pton(family, host), int(plen or bits))

    addrs = [a for a, _ in rows]
    text = "\n".join(addrs)
    if "/" in text:
        addrs = [_host_form(a) for a in addrs]
        text = "\n".join(addrs)
    forms = [(a, v) for a, (_, v) in zip(addrs, rows, strict=True)]
    if addrs and (not _SAFE_ADDRS.fullmatch(text) or text.count("\n") != len(addrs) - 1):
        bad = next(a for a in addrs if not _SAFE_ADDR.fullmatch(a))
        raise ValueError(f"unvalidated address in state: {bad!r}")
    if "/" not in text and ":" not in text and len({v for _, v in forms}) == 1:
        # Single IPv4 addresses with one value (a block list): the same order, sorted in C.
        value = forms[0][1]
        lines = [f"    {a} {value};\n" for a in sorted(addrs, key=socket.inet_aton)]
    else:
        lines = [f"    {a} {v};\n" for a, v in sorted(forms, key=order)]
    return "".join(
        [f"geo $remote_addr {variable} {{\n", f"    default {default};\n", *lines, "}\n"]
    )


def _host_form(addr: str) -> str:
    """``a.b.c.d/32`` -> ``a.b.c.d`` (and ``/128``): geo refuses ``255.255.255.255/32``."""
    if addr.endswith("/32") and "." in addr:
        return addr[:-3]
    if addr.endswith("/128"):
        return addr[:-4]
    return addr


def _map(source: str, variable: str, default: str, rows: list[tuple[str, str]]) -> str:
    body = [f"map {source} {variable} {{\n", f"    default {default};\n"]
    body.extend(f"    {key} {value};\n" for key, value in rows)
    body.append("}\n")
    return "".join(body)


def _if(condition: str, code: int) -> str:
    return f"if ({condition}) {{\n    return {code};\n}}\n"
