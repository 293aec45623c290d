"""Immutable traffic snapshots and their JSON form (the ``stats --json`` contract, DESIGN §7).

Produced by :class:`~opsconsole.stats.history.HistoryCounts` and
:class:`~opsconsole.stats.window.LiveWindow`, consumed by the CLI and the TUI.  This module is the
one place that knows the JSON keys of ``stats --json``, and where HTTP status classes are named
(:class:`StatusClass`), so no front end re-derives them.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class StatusClass(enum.IntEnum):
    """The class of an HTTP status code (its first digit), and what it says about a site."""

    INFORMATIONAL = 1
    SUCCESS = 2
    REDIRECT = 3
    CLIENT_ERROR = 4
    SERVER_ERROR = 5

    @classmethod
    def of(cls, code: str | int) -> StatusClass | None:
        """``"404"`` -> CLIENT_ERROR; None for what is not a status code."""
        text = str(code)
        if len(text) != 3 or not text.isdigit() or text[0] not in "12345":
            return None
        return cls(int(text[0]))

    @property
    def label(self) -> str:
        return f"{self.value}xx"

    @property
    def severity(self) -> str:
        """``ok`` (1xx-3xx), ``warn`` (4xx: refused or missing) or ``down`` (5xx: failing)."""
        return "ok" if self <= StatusClass.REDIRECT else "warn" if self == 4 else "down"


@dataclass(frozen=True)
class TopEntry:
    key: str
    requests: int


@dataclass(frozen=True)
class Snapshot:
    service: str
    time_from: float
    time_to: float
    requests: int
    unparsed: int
    rps: float
    unique_ips: int
    status: dict[str, int]
    top_ips: tuple[TopEntry, ...]
    top_subnets: tuple[TopEntry, ...]
    top_paths: tuple[TopEntry, ...]
    top_user_agents: tuple[TopEntry, ...]
    servers: dict[str, int]
    """Requests per server (over the same span as ``requests``)."""
    per_second: tuple[int, ...] = ()
    """Requests in each of the last 900 seconds, oldest first."""
    classes: tuple[tuple[int, ...], ...] = ()
    """Per second, requests by status class (1xx..5xx)."""
    estimated: dict[str, bool] = field(default_factory=dict)
    """Which numbers are estimates (bounded-memory sketches took over)."""
    unparsed_samples: tuple[str, ...] = ()
    new_ips_per_s: float | None = None
    """Live mode: client IPs not seen recently, per second over the last 10 s (a flood from a
    large pool of addresses keeps this high; regular visitors do not)."""
    span: float = 0.0
    """Seconds the counts cover: the window or ``--since``, or less while the logs are younger."""

    @property
    def mean_rps(self) -> float:
        """Requests per second over the span covered."""
        return self.requests / self.span if self.span else 0.0

    def share(self, status_class: int) -> float:
        total = sum(self.status.values())
        if not total:
            return 0.0
        return sum(n for k, n in self.status.items() if k[:1] == str(status_class)) / total

    def to_json(
        self,
        connected: dict[str, bool] | None = None,
        errors: dict[str, str | None] | None = None,
        behind: dict[str, float] | None = None,
        modes: dict[str, tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """The ``stats --json`` object.  ``connected`` gives each server's link state,
        ``errors`` why a server could not be read (None when it was), ``behind`` (live
        only) how many seconds its counts lag behind its log (0: caught up) and ``modes``
        (live only) how it is read: "raw" or "aggregate", and why when that is a choice made
        for it (``mode_note``)."""
        connected = connected or {}
        servers: dict[str, dict[str, Any]] = {
            name: {"requests": n, "connected": connected.get(name, True)}
            for name, n in sorted(self.servers.items())
            if name
        }
        for name, up in connected.items():
            servers.setdefault(name, {"requests": 0, "connected": up})
        if errors is not None:
            for name, entry in servers.items():
                entry["error"] = errors.get(name)
        if behind is not None:
            for name, entry in servers.items():
                entry["behind_s"] = round(behind.get(name, 0.0))
        for name, (mode, note) in (modes or {}).items():
            if name in servers:
                servers[name]["mode"] = mode
                if note:
                    servers[name]["mode_note"] = note
        out: dict[str, Any] = {
            "service": self.service,
            "from": _iso(self.time_from),
            "to": _iso(self.time_to),
            "requests": self.requests,
            "unparsed": self.unparsed,
            "rps": round(self.rps, 3),
            "unique_ips": self.unique_ips,
            "status": dict(self.status),
            "top_ips": [{"ip": e.key, "requests": e.requests} for e in self.top_ips],
            "top_subnets": [{"subnet": e.key, "requests": e.requests} for e in self.top_subnets],
            "top_paths": [{"path": e.key, "requests": e.requests} for e in self.top_paths],
            "top_user_agents": [
                {"user_agent": e.key, "requests": e.requests} for e in self.top_user_agents
            ],
            "servers": servers,
        }
        if behind is not None:
            out["behind_s"] = round(max(behind.values(), default=0.0))
        if self.estimated:
            out["estimated"] = True
            out["estimated_fields"] = sorted(self.estimated)
        if self.unparsed_samples:
            out["unparsed_samples"] = list(self.unparsed_samples[:5])
        if self.new_ips_per_s is not None:
            out["new_ips_per_s"] = round(self.new_ips_per_s, 1)
        return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_V6_HEAD = re.compile(rb"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4}):[0-9a-fA-F:]+")


def subnet_of(client: bytes) -> bytes:
    """The /24 (IPv4) or /48 (IPv6) of a client address as text bytes; the address itself when
    it is not an IP (a hostname logged by a misconfigured server)."""
    # Fast path for the common IPv6 spelling whose first three hextets are written out (the
    # ipaddress module costs ~20 us per address, too slow for a flood of distinct clients).
    m = _V6_HEAD.fullmatch(client)
    if m:
        a, b, c = int(m[1], 16), int(m[2], 16), int(m[3], 16)
        # The zero hextets at the end of the /48 merge into the trailing "::".
        if c:
            return b"%x:%x:%x::/48" % (a, b, c)
        if b:
            return b"%x:%x::/48" % (a, b)
        return b"%x::/48" % a if a else b"::/48"
    try:
        addr = ipaddress.ip_address(client.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return client
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{addr}/48", strict=False)).encode()
    v4 = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else addr
    return str(ipaddress.ip_network(f"{v4}/24", strict=False)).encode()
