"""Health results as immutable values, and the one place their JSON shape (DESIGN §7) is written.

Role: the probes (:mod:`.http`, :mod:`.host`) produce :class:`HttpResult` and :class:`HostMetrics`;
:mod:`.verdict` judges them into :class:`ServerHealth` / :class:`ServiceHealth`; :mod:`.check` and
:mod:`.monitor` gather those into a :class:`FleetHealth` snapshot that the CLI prints
(:func:`fleet_to_json`) and the TUI renders.  Values are frozen so a snapshot handed to a front end
never changes under it.

Imports: the standard library only.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Status(enum.StrEnum):
    """Verdict of one server, service, log feed or answer, best first (the order of
    :attr:`rank`, defined once here: front ends sort and colour by it, never re-derive it)."""

    OK = "ok"
    UNKNOWN = "unknown"
    """Nothing to judge (a service without a URL); never makes the fleet unhealthy."""
    MAINTENANCE = "maintenance"
    """Not serving on purpose: the site is in maintenance mode and answers 503 with its page."""
    WARN = "warn"
    DOWN = "down"

    @property
    def rank(self) -> int:
        """0 for OK up to 4 for DOWN: sort by it to see the worst first."""
        return _RANKS[self]

    @classmethod
    def worst(cls, statuses: Iterable[Status], default: Status | None = None) -> Status:
        """The worst of ``statuses`` (``default``, or OK, when there are none)."""
        return max(statuses, key=_RANKS.__getitem__, default=default or cls.OK)


_RANKS = {s: i for i, s in enumerate(Status)}


@dataclass(frozen=True)
class HttpResult:
    """One HTTP probe of a service URL."""

    url: str
    http_status: int | None = None
    latency_ms: float | None = None
    """Connect, TLS handshake and time to the response headers (a fresh connection every time)."""
    tls_days_left: int | None = None
    """Whole days until the server certificate expires (https only)."""
    error: str | None = None
    """Why there is no answer (refused, timeout, not HTTP, invalid certificate…), else None."""
    redirect: str | None = None
    """Location of a redirect that was not followed (``follow_redirects = false``)."""
    final_url: str | None = None
    """The URL that answered, when redirects were followed."""
    checked_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class NginxInstance:
    """Whether the nginx one server's services run under (its ``-p`` prefix) is alive."""

    prefix: str | None
    conf: str | None
    running: bool
    pid: int | None
    how: str
    """The evidence: "pid file …", "master process", or why nothing matched."""


@dataclass(frozen=True)
class HostMetrics:
    """One reading of a host.  A metric that could not be read is None, its reason in errors."""

    source: str
    """Which reader: psutil, proc (the Python probe reading /proc), shell (no python there)."""
    load: tuple[float, float, float] | None = None
    cpu_count: int | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disks: Mapping[str, float] = field(default_factory=dict)
    """Used percent per file system, keyed by a path on it ("/", the access logs' directories)."""
    tcp: Mapping[str, int] | None = None
    """Socket counts by state; ESTABLISHED, SYN_RECV and TIME_WAIT are always present."""
    top_connections: tuple[tuple[str, int], ...] | None = None
    """(remote ip, inbound connections), most first."""
    nginx: tuple[NginxInstance, ...] | None = None
    nginx_processes: int | None = None
    errors: Mapping[str, str] = field(default_factory=dict)
    """Metric name -> why it could not be read."""
    notes: tuple[str, ...] = ()
    """Things the operator may want to know that are not problems (e.g. the shell fallback)."""
    python: str | None = None

    @property
    def disk_percent(self) -> float | None:
        """The fullest of the checked file systems."""
        return max(self.disks.values()) if self.disks else None

    @property
    def nginx_state(self) -> str:
        """Whether this server's nginx is up: running (every instance), stopped, unknown."""
        if self.nginx is None:
            return "unknown"
        return "running" if all(n.running for n in self.nginx) else "stopped"

    @property
    def load_per_cpu(self) -> float | None:
        if self.load is None or not self.cpu_count:
            return None
        return self.load[0] / self.cpu_count


@dataclass(frozen=True)
class ServerHealth:
    name: str
    status: Status
    reasons: tuple[str, ...] = ()
    """Why the status is not ok, one short phrase each ("nginx stopped", "memory 91% > 85%")."""
    ssh_error: str | None = None
    """Why the server could not be reached; None when the connection worked."""
    error: str | None = None
    """Why no host metrics at all could be read (e.g. no python3 and no usable shell)."""
    metrics: HostMetrics | None = None
    checked_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    url: str | None
    status: Status
    reasons: tuple[str, ...] = ()
    probe: HttpResult | None = None

    @property
    def healthy(self) -> bool | None:
        """False when the site does not answer properly (error, timeout, 5xx); None without URL."""
        if self.status is Status.UNKNOWN:
            return None
        return self.status is not Status.DOWN


@dataclass(frozen=True)
class FleetHealth:
    servers: Mapping[str, ServerHealth]
    services: Mapping[str, ServiceHealth]
    console: HostMetrics | None = None
    """The console's own machine (not part of the verdict)."""

    @property
    def healthy(self) -> bool:
        """True only when every server and every probed service is ok."""
        return all(s.status is Status.OK for s in self.servers.values()) and all(
            s.status in (Status.OK, Status.UNKNOWN) for s in self.services.values()
        )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics_to_json(m: HostMetrics | None) -> dict[str, Any]:
    if m is None:
        m = HostMetrics(source="none")
    return {
        "load": list(m.load) if m.load is not None else None,
        "cpu_count": m.cpu_count,
        "cpu_percent": m.cpu_percent,
        "memory_percent": m.memory_percent,
        "disk_percent": m.disk_percent,
        "disks": dict(m.disks),
        "nginx": m.nginx_state if m.source != "none" else None,
        "nginx_instances": [
            {"prefix": n.prefix, "running": n.running, "pid": n.pid, "how": n.how}
            for n in m.nginx or ()
        ],
        "tcp": dict(m.tcp) if m.tcp is not None else None,
        "top_connections": (
            [{"ip": ip, "connections": n} for ip, n in m.top_connections]
            if m.top_connections is not None
            else None
        ),
        "source": m.source if m.source != "none" else None,
        "errors": dict(m.errors),
        "notes": list(m.notes),
    }


def server_to_json(s: ServerHealth) -> dict[str, Any]:
    error = s.ssh_error or s.error
    if error is None and s.metrics is not None and s.metrics.errors:
        error = "; ".join(f"{k}: {v}" for k, v in s.metrics.errors.items())
    return {
        "ssh": "error" if s.ssh_error else "ok",
        "error": error,
        **metrics_to_json(s.metrics),
        "status": s.status.value,
        "reasons": list(s.reasons),
        "checked_at": _iso(s.checked_at),
    }


def service_to_json(s: ServiceHealth) -> dict[str, Any]:
    p = s.probe
    return {
        "url": s.url,
        "http_status": p.http_status if p else None,
        "latency_ms": p.latency_ms if p else None,
        "healthy": s.healthy,
        "error": p.error if p else ("no url configured" if s.url is None else None),
        "tls_days_left": p.tls_days_left if p else None,
        "redirect": p.redirect if p else None,
        "status": s.status.value,
        "reasons": list(s.reasons),
        "checked_at": _iso(p.checked_at) if p else None,
    }


def fleet_to_json(f: FleetHealth) -> dict[str, Any]:
    """The ``check --json`` object (DESIGN §7): keys may be added here, never renamed."""
    return {
        "healthy": f.healthy,
        "servers": {name: server_to_json(s) for name, s in f.servers.items()},
        "services": {name: service_to_json(s) for name, s in f.services.items()},
        "console": metrics_to_json(f.console) if f.console is not None else None,
    }
