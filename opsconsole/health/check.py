"""One health round over the whole fleet: every server and every service once, in parallel.

Role: the core of ``opsconsole check`` (:mod:`opsconsole.cli.check`) and the probe functions that
:class:`~.monitor.HealthMonitor` re-runs on its interval.  Each server and service is judged on
its own: an unreachable server, a missing ``python3`` or a URL answering garbage becomes that
item's error and verdict, and the rest of the round completes.  Transports come from any object
with ``async get(name) -> Transport`` (the connection pool; a dict-backed stub in tests).

Imports: the standard library, :mod:`opsconsole.config`,
:mod:`opsconsole.transport.base` and this package.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from ..config import Config, ServerConfig, ServiceConfig
from ..transport.base import Transport, TransportError
from .host import HostProbeError, probe_params, read_host
from .http import Client, make_client, probe_url
from .local import console_metrics
from .report import FleetHealth, HostMetrics, ServerHealth, ServiceHealth
from .verdict import judge_server, judge_service

Progress = Callable[[int, int, str], None]
"""Called after each item with (items done, items in all, name of the item just done)."""


class TransportSource(Protocol):
    """Where transports come from: :class:`opsconsole.transport.pool.ConnectionPool` in the app."""

    async def get(self, name: str) -> Transport: ...


def connect_budget(config: Config) -> float:
    """How long a check waits for a connection before calling the server unreachable.

    Longer than one probe: the pool may be retrying a handshake with backoff.
    """
    return max(10.0, 3 * config.health.timeout + 1)


def _no_connection(source: TransportSource, name: str, budget: float) -> str:
    message = f"no connection within {budget:g}s"
    status = getattr(source, "status", None)  # the pool knows the last attempt's error
    if callable(status):
        try:
            return f"{message} ({status(name).describe()})"
        except Exception:
            pass
    return message


async def check_server(
    config: Config, server: ServerConfig, source: TransportSource
) -> ServerHealth:
    """Connect (or reuse the connection), read the host metrics, judge them.  Never raises."""
    limits = config.health
    try:
        budget = connect_budget(config)
        try:
            async with asyncio.timeout(budget):
                transport = await source.get(server.name)
        except TimeoutError:
            return judge_server(
                server.name, limits, ssh_error=_no_connection(source, server.name, budget)
            )
        except TransportError as e:
            return judge_server(server.name, limits, ssh_error=str(e) or type(e).__name__)
        params = probe_params(server, config.services.values())
        try:
            metrics = await read_host(transport, server, params, timeout=limits.timeout)
        except TransportError as e:
            return judge_server(server.name, limits, ssh_error=str(e) or type(e).__name__)
        except HostProbeError as e:
            return judge_server(server.name, limits, error=str(e))
        return judge_server(server.name, limits, metrics=metrics)
    except Exception as e:  # a bug must cost one line of the report, not the whole check
        return judge_server(server.name, limits, error=f"internal error: {type(e).__name__}: {e}")


async def check_service(config: Config, service: ServiceConfig, client: Client) -> ServiceHealth:
    """Probe the service's URL once and judge the answer.  Never raises."""
    if service.url is None:
        return judge_service(service.name, None, config.health, None)
    result = await probe_url(
        service.url,
        timeout=config.health.timeout,
        follow_redirects=config.health.follow_redirects,
        client=client,
    )
    return judge_service(service.name, service.url, config.health, result)


async def _console() -> HostMetrics | None:
    try:
        return await console_metrics()
    except Exception:  # the console's own reading is a bonus, never a reason to fail
        return None


async def check_fleet(
    config: Config,
    source: TransportSource,
    *,
    on_progress: Progress | None = None,
    client: Client | None = None,
    max_parallel: int = 32,
) -> FleetHealth:
    """Check every server and service once, in parallel, and return the snapshot."""
    if client is None:
        async with make_client() as own:
            return await check_fleet(
                config, source, on_progress=on_progress, client=own, max_parallel=max_parallel
            )
    gate = asyncio.Semaphore(max_parallel)
    total = len(config.servers) + len(config.services)
    done = 0

    def tick(name: str) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total, name)

    async def server_item(server: ServerConfig) -> ServerHealth:
        async with gate:
            result = await check_server(config, server, source)
        tick(server.name)
        return result

    async def service_item(service: ServiceConfig, http: Client) -> ServiceHealth:
        async with gate:
            result = await check_service(config, service, http)
        tick(service.name)
        return result

    console = asyncio.ensure_future(_console())
    server_results, service_results = await asyncio.gather(
        asyncio.gather(*(server_item(s) for s in config.servers.values())),
        asyncio.gather(*(service_item(s, client) for s in config.services.values())),
    )
    return FleetHealth(
        servers={s.name: s for s in server_results},
        services={s.name: s for s in service_results},
        console=await console,
    )
