"""The TUI's health loop: re-armed after each probe, never two probes in flight for one item."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from opsconsole.config import Config, parse_config
from opsconsole.health import HealthMonitor, HealthUpdate, ServerHealth, ServiceHealth, Status
from opsconsole.transport.base import RunResult, Transport
from opsconsole.transport.local import LocalTransport


class SlowTransport(LocalTransport):
    """A server whose every command takes ``delay`` seconds more; counts commands in flight."""

    def __init__(self, name: str, delay: float) -> None:
        super().__init__(name)
        self.delay = delay
        self.running = 0
        self.peak = 0
        self.started = 0

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        self.running += 1
        self.started += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.delay)
            return await super().run(argv, input=input, timeout=timeout)
        finally:
            self.running -= 1


class Source:
    def __init__(self, transports: dict[str, SlowTransport]) -> None:
        self.transports = transports

    async def get(self, name: str) -> Transport:
        return self.transports[name]


@pytest.fixture
async def slow_site() -> AsyncIterator[tuple[int, list[int]]]:
    """A site that answers after 0.3 s; yields (port, [peak requests in flight])."""
    state = {"now": 0}
    peak = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state["now"] += 1
        peak[0] = max(peak[0], state["now"])
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(0.3)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        finally:
            state["now"] -= 1
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], peak
    server.close()
    await server.wait_closed()


def config(port: int) -> Config:
    return parse_config(
        {
            "health": {"interval": "1s", "timeout": "5s"},
            "servers": {"web1": {"host": "local"}},
            "services": {
                "www": {
                    "servers": ["web1"],
                    "url": f"http://127.0.0.1:{port}/",
                    "access_log": "/tmp/www.log",
                }
            },
        },
        Path("monitor.toml"),
    )


async def test_a_slow_item_never_has_two_probes_in_flight(
    slow_site: tuple[int, list[int]],
) -> None:
    port, http_peak = slow_site
    web1 = SlowTransport("web1", delay=0.3)
    updates: list[HealthUpdate] = []
    # An interval far shorter than a probe: only the re-arm after each result paces the loop.
    monitor = HealthMonitor(
        config(port), Source({"web1": web1}), interval=0.01, on_update=updates.append
    )
    monitor.start()
    try:
        await asyncio.sleep(2.0)
        assert monitor.in_flight <= {("server", "web1"), ("service", "www"), ("console", "")}
    finally:
        await monitor.stop()

    assert web1.peak == 1  # the probe program never ran twice at once on web1
    assert http_peak[0] == 1  # nor two requests to the site
    servers = [u for u in updates if isinstance(u, ServerHealth)]
    services = [u for u in updates if isinstance(u, ServiceHealth)]
    assert len(servers) >= 2 and len(services) >= 3  # and it was re-armed each time
    assert services[-1].status is Status.OK


async def test_the_snapshot_starts_unknown_and_fills_in(slow_site: tuple[int, list[int]]) -> None:
    port, _ = slow_site
    monitor = HealthMonitor(config(port), Source({"web1": SlowTransport("web1", 0.0)}))
    first = monitor.snapshot()
    assert first.servers["web1"].status is Status.UNKNOWN
    assert first.healthy is False
    monitor.start()
    try:
        for _ in range(100):
            snap = monitor.snapshot()
            if Status.UNKNOWN not in (snap.servers["web1"].status, snap.services["www"].status):
                break
            await asyncio.sleep(0.05)
    finally:
        await monitor.stop()
    assert snap.services["www"].status is Status.OK
    assert snap.servers["web1"].metrics is not None


async def test_refresh_probes_again_without_waiting_for_the_interval(
    slow_site: tuple[int, list[int]],
) -> None:
    port, _ = slow_site
    web1 = SlowTransport("web1", 0.0)
    monitor = HealthMonitor(config(port), Source({"web1": web1}), interval=60)
    monitor.start()
    try:
        while monitor.snapshot().servers["web1"].status is Status.UNKNOWN:
            await asyncio.sleep(0.02)
        while ("server", "web1") in monitor.in_flight:
            await asyncio.sleep(0.02)
        before = web1.started
        monitor.refresh("server", "web1")
        for _ in range(100):
            if web1.started > before:
                break
            await asyncio.sleep(0.02)
    finally:
        await monitor.stop()
    assert web1.started > before


async def test_a_failing_update_handler_does_not_stop_the_loop(
    slow_site: tuple[int, list[int]],
) -> None:
    port, _ = slow_site
    calls = []

    def broken(update: HealthUpdate) -> None:
        calls.append(update)
        raise RuntimeError("a front-end bug")

    monitor = HealthMonitor(
        config(port), Source({"web1": SlowTransport("web1", 0.0)}), interval=0.05, on_update=broken
    )
    monitor.start()
    try:
        await asyncio.sleep(1.5)
    finally:
        await monitor.stop()
    assert len([c for c in calls if isinstance(c, ServiceHealth)]) >= 2
