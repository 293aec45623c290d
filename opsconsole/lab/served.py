"""What the lab's nginx answers and logs for a labelled request, known without asking it.

Used by the scenario replay (:mod:`opsconsole.lab.replay`): a scenario's past (its baseline) is
written straight into the sites' access logs, line for line as the lab's nginx would have logged
it had the requests been sent, and a revalidation (304) needs the exact ``Last-Modified`` of the
file on the server it goes to.  The statuses are the labels' own (:mod:`.scenarios.sites` models
the lab's nginx); what differs in the lab is the size of what it serves — small stand-ins for the
scenarios' files, and the forge's views answered by :func:`.nginx.route_locations` — so bodies
are measured here from the lab's docroots.  Standard library only; nothing here sends a request.
"""

from __future__ import annotations

import email.utils
import functools
import os
import re
import time
from collections.abc import Mapping

from .model import Layout
from .scenarios import LabeledRequest, escape
from .scenarios import sites as scenario_sites
from .scenarios.sites import ERROR_BYTES, MSIE_PADDING, normalize

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
"""nginx's predefined ``combined`` format."""

UNFORWARDED = "127.0.0.1"
"""The client nginx logs for a request it refuses (400) before ``realip`` has read the headers."""

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _offset(tm: time.struct_time) -> tuple[str, int, int]:
    minutes = (tm.tm_gmtoff or 0) // 60
    return ("-" if minutes < 0 else "+"), abs(minutes) // 60, abs(minutes) % 60


@functools.lru_cache(maxsize=4096)
def _escaped(value: str) -> bytes:
    """:func:`~.scenarios.escape`, once per distinct value (user agents and referers repeat)."""
    return escape(value)


@functools.lru_cache(maxsize=4096)
def time_local(t: int) -> str:
    """``$time_local``: nginx formats it in the process's local time zone, as here."""
    tm = time.localtime(t)
    sign, hours, minutes = _offset(tm)
    return (
        f"{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
    )


@functools.lru_cache(maxsize=4096)
def time_iso8601(t: int) -> str:
    tm = time.localtime(t)
    sign, hours, minutes = _offset(tm)
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f"{sign}{hours:02d}:{minutes:02d}"


def padded(user_agent: str) -> bool:
    """Whether nginx pads its error pages for this client (``msie_padding``).

    nginx's own test (``ngx_http_process_user_agent``, ``ngx_http_send_error_page``): MSIE —
    "MSIE " followed by a version — unless the agent also says Opera, or Chrome ("Chrome/"
    without "Gecko/"): every Chromium browser, not only MSIE as the labels assume.
    """
    i = user_agent.find("MSIE ")
    opera = "Opera" in user_agent
    msie = i >= 0 and i + 7 < len(user_agent) and not opera
    chrome = not msie and not opera and "Gecko/" not in user_agent and "Chrome/" in user_agent
    return msie or chrome


def logged_client(req: LabeledRequest) -> str:
    """The address nginx logs for ``req`` in the lab (where it came from, except for a 400)."""
    return UNFORWARDED if req.status == 400 else req.client_ip


@functools.cache
def host_header(service: str) -> str:
    """The ``Host`` a replayed request carries: the site's public name (its referers' too)."""
    site = scenario_sites().get(service)
    return site.host if site else service


class Served:
    """The lab's docroots and log formats, for rendering labelled requests as logged lines.

    ``log_formats`` maps each service to ``combined`` or its nginx ``log_format`` string (as in
    the lab's state file).  File sizes and modification times are read once per file.
    """

    def __init__(self, layout: Layout, log_formats: Mapping[str, str]) -> None:
        self.layout = layout
        self.formats = {
            service: _compile(COMBINED if fmt == "combined" else fmt)
            for service, fmt in log_formats.items()
        }
        self._files: dict[tuple[str, str, str], os.stat_result | None] = {}

    def _stat(self, service: str, server: str, path: str) -> os.stat_result | None:
        """The file ``try_files $uri $uri.html $uri/`` serves for ``path`` (no query) on
        ``server``, if there is one; looked up once per path."""
        key = (service, server, path)
        if key not in self._files:
            self._files[key] = self._find(service, server, path)
        return self._files[key]

    def _find(self, service: str, server: str, path: str) -> os.stat_result | None:
        site = scenario_sites().get(service)
        uri = normalize(path)
        if site is None or uri is None or site.resolve(uri) != (200, "file"):
            return None
        docroot = self.layout.docroot(service, server)
        rel = uri.lstrip("/")
        for candidate in [rel + "index.html"] if uri.endswith("/") else [rel, rel + ".html"]:
            try:
                st = (docroot / candidate).stat()
            except OSError:
                continue
            if os.path.isfile(docroot / candidate):
                return st
        return None

    def last_modified(self, req: LabeledRequest, server: str) -> str | None:
        """The ``Last-Modified`` nginx sends for the file behind ``req`` (what a 304 needs)."""
        st = self._stat(req.service, server, req.target.split("?", 1)[0])
        return None if st is None else email.utils.formatdate(int(st.st_mtime), usegmt=True)

    def body_bytes(self, req: LabeledRequest, server: str) -> int:
        """``$body_bytes_sent`` of the lab's nginx for ``req`` answered as labelled."""
        if req.method == "HEAD" or req.status == 304:
            return 0
        if req.status in ERROR_BYTES:  # nginx's own pages, padded for MSIE and Chrome
            pad = MSIE_PADDING if req.status >= 400 and padded(req.user_agent) else 0
            return ERROR_BYTES[req.status] + pad
        if req.status != 200:
            return req.bytes
        st = self._stat(req.service, server, req.target.split("?", 1)[0])
        if st is not None:
            return st.st_size
        site = scenario_sites().get(req.service)
        uri = normalize(req.target.split("?", 1)[0])
        if site is not None and uri is not None:
            status, kind = site.resolve(uri)
            if status == 200 and kind != "file":
                return len(kind) + 1  # route_locations answers "<kind>\n"
        return req.bytes

    def line(self, req: LabeledRequest, server: str, when: float) -> bytes:
        """The access-log line of ``req`` on ``server`` at ``when``, newline included."""
        out = [
            part if isinstance(part, bytes) else _escaped(self._value(part, req, server, when))
            for part in self.formats[req.service]
        ]
        return b"".join(out) + b"\n"

    def _value(self, name: str, req: LabeledRequest, server: str, when: float) -> str:
        """The value of nginx variable ``$name`` for ``req`` (one of :data:`_KNOWN`)."""
        if name == "remote_addr":
            return logged_client(req)
        if name == "time_local":
            return time_local(int(when))
        if name == "request":
            return f"{req.method} {req.target} HTTP/1.1"
        if name == "status":
            return str(req.status)
        if name == "body_bytes_sent":
            return str(self.body_bytes(req, server))
        if name == "http_referer":
            return req.referer
        if name == "http_user_agent":
            return req.user_agent
        if name == "host":  # a 400 is refused before the Host header is read: the server_name
            return req.service if req.status == 400 else host_header(req.service).lower()
        others = {
            "remote_user": "",
            "time_iso8601": time_iso8601(int(when)),
            "msec": f"{when:.3f}",
            "request_method": req.method,
            "request_uri": req.target,
            "request_time": "0.000",
        }
        return others[name]


def _compile(fmt: str) -> list[bytes | str]:
    """A log_format as literal bytes and variable names; ValueError for a variable not known."""
    out: list[bytes | str] = []
    pos = 0
    for m in _VARIABLE.finditer(fmt):
        name = m.group(1) or m.group(2)
        if name not in _KNOWN:
            raise ValueError(f"the lab cannot write ${name} of log_format {fmt!r}")
        out += [fmt[pos : m.start()].encode(), name]
        pos = m.end()
    out.append(fmt[pos:].encode())
    return [p for p in out if p != b""]


_KNOWN = frozenset(
    (
        "remote_addr",
        "remote_user",
        "time_local",
        "time_iso8601",
        "msec",
        "request",
        "request_method",
        "request_uri",
        "status",
        "body_bytes_sent",
        "http_referer",
        "http_user_agent",
        "request_time",
        "host",
    )
)
