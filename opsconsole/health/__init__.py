"""Health (DESIGN §6): HTTP probes of the sites, host metrics of the servers, verdicts.

Used by ``opsconsole check`` (one round: :func:`check_fleet`) and by the TUI (a
:class:`HealthMonitor` polling on ``[health] interval``).  The public API is re-exported here;
the modules behind it:

- :mod:`.http` — httpx probe of a URL (status, latency, TLS days left, readable errors);
- :mod:`.hostprobe` — the program sent to ``python3 -`` on a server (psutil or /proc);
- :mod:`.hostshell` — its POSIX-shell fallback for servers without Python;
- :mod:`.host` — runs them over a Transport, knows which nginx belongs to which server;
- :mod:`.local` — the console's own machine;
- :mod:`.verdict` — ok / warn / down against the thresholds of ``[health]``;
- :mod:`.report` — the result values and the ``check --json`` shape;
- :mod:`.check`, :mod:`.monitor` — one round, and the periodic loop.

Nothing here imports Textual.
"""

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from .check import TransportSource, check_fleet, check_server, check_service
    from .host import HostProbeError, probe_params, read_host
    from .http import probe_url
    from .local import console_metrics
    from .monitor import HealthMonitor, HealthUpdate
    from .report import (
        FleetHealth,
        HostMetrics,
        HttpResult,
        NginxInstance,
        ServerHealth,
        ServiceHealth,
        Status,
        fleet_to_json,
    )

__getattr__ = exports(
    __name__,
    {
        "TransportSource": ".check",
        "check_fleet": ".check",
        "check_server": ".check",
        "check_service": ".check",
        "HostProbeError": ".host",
        "probe_params": ".host",
        "read_host": ".host",
        "probe_url": ".http",
        "console_metrics": ".local",
        "HealthMonitor": ".monitor",
        "HealthUpdate": ".monitor",
        "FleetHealth": ".report",
        "HostMetrics": ".report",
        "HttpResult": ".report",
        "NginxInstance": ".report",
        "ServerHealth": ".report",
        "ServiceHealth": ".report",
        "Status": ".report",
        "fleet_to_json": ".report",
    },
)

__all__ = [
    "FleetHealth",
    "HealthMonitor",
    "HealthUpdate",
    "HostMetrics",
    "HostProbeError",
    "HttpResult",
    "NginxInstance",
    "ServerHealth",
    "ServiceHealth",
    "Status",
    "TransportSource",
    "check_fleet",
    "check_server",
    "check_service",
    "console_metrics",
    "fleet_to_json",
    "probe_params",
    "probe_url",
    "read_host",
]
