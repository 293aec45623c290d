"""The app core: one connection pool for the fleet, one traffic pipeline per service.

Front ends (the CLI's ``stats`` and the TUI) call :class:`Fleet`; it never imports Textual.
Data flows one way: transport -> log follower -> parser -> TrafficStats -> immutable snapshots.
Each server of a service is read independently, so a dead server or a missing log shows up
as that server's state while the others keep streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import Config, ServiceConfig
from .logs.follow import LogFollower, file_size, read_range
from .logs.parse import LineParser
from .stats.snapshot import Snapshot
from .stats.traffic import ServerTotals, TrafficStats
from .transport.base import Transport, TransportError
from .transport.pool import ConnectionPool

Progress = Callable[[str, int, int], None]
"""progress(server, bytes_done, bytes_total) during history reads."""


@dataclass
class ServerFeed:
    """What the front ends show about one server's log stream."""

    state: str = "connecting"
    error: str | None = None

    @property
    def connected(self) -> bool:
        return self.error is None and self.state == "following"


class Fleet:
    """Connections and pipelines for a loaded config."""

    def __init__(self, config: Config, pool: ConnectionPool | None = None) -> None:
        self.config = config
        self.pool = pool or ConnectionPool(config.servers)

    async def close(self) -> None:
        await self.pool.close()

    async def transport(self, server: str) -> Transport:
        return await self.pool.get(server)

    # ---------------------------------------------------------------- history
    async def read_history(
        self, service: str, since: float | None, *, progress: Progress | None = None
    ) -> tuple[TrafficStats, dict[str, ServerFeed]]:
        """Read each server's log back to ``since`` (epoch seconds; None = the whole file) and
        count it.  Returns the stats and, per server, its outcome (error text if it failed)."""
        svc = self.config.service(service)
        stats = TrafficStats(svc.log_format, window=None, since=since)
        feeds = {name: ServerFeed() for name in svc.servers}

        async def one(server: str) -> None:
            feed = feeds[server]
            try:
                t = await self.pool.get(server)
                path = svc.access_log_on(server)
                _, size = await file_size(t, path)
                start = 0 if since is None else await find_start(t, path, size, since, stats.parser)
                done = 0
                async for chunk in read_range(t, path, start, size):
                    stats.add_chunk(chunk, server)
                    done += len(chunk)
                    if progress:
                        progress(server, done, size - start)
                feed.state = "read"
            except (TransportError, OSError) as e:
                feed.state, feed.error = "failed", str(e) or type(e).__name__
            stats.servers.setdefault(server, ServerTotals())  # listed even when it failed

        await asyncio.gather(*(one(s) for s in svc.servers))
        return stats, feeds

    def pipeline(self, service: str, *, window: float | None = None) -> ServicePipeline:
        svc = self.config.service(service)
        return ServicePipeline(self, svc, window or self.config.console.window)


async def find_start(
    t: Transport, path: str, size: int, since: float, parser: LineParser
) -> int:
    """A byte offset at or before the first line logged at ``since`` or later.

    Reads small samples backwards from the end in growing steps; the caller filters the few lines
    before ``since`` that the returned offset still includes.
    """
    step = 1 << 20
    while True:
        offset = max(0, size - step)
        if offset == 0:
            return 0
        sample = b""
        async for chunk in read_range(t, path, offset, min(size, offset + 256 * 1024)):
            sample += chunk
        first_newline = sample.find(b"\n")
        parsed = parser.parse(sample[first_newline + 1 :]) if first_newline >= 0 else None
        times: list[int] = []
        if parsed is not None:
            get = parser.format.groups["time"]
            times = [e for e in (parser.epoch(r[get]) for r in parsed.rows[:50]) if e is not None]
        if times and min(times) < since:
            return offset
        step *= 4


class ServicePipeline:
    """Live statistics of one service: backfill the window, then follow every server."""

    def __init__(self, fleet: Fleet, svc: ServiceConfig, window: float) -> None:
        self.fleet = fleet
        self.svc = svc
        self.stats = TrafficStats(svc.log_format, window=window)
        self.feeds = {name: ServerFeed() for name in svc.servers}
        self._tasks: list[asyncio.Task[None]] = []
        self._followers: list[LogFollower] = []

    def start(self) -> None:
        for server in self.svc.servers:
            self._tasks.append(asyncio.create_task(self._run(server), name=f"follow {server}"))

    async def stop(self) -> None:
        for f in self._followers:
            with contextlib.suppress(Exception):
                await f.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def snapshot(self, *, top_n: int = 10) -> Snapshot:
        return self.stats.snapshot(self.svc.name, top_n=top_n, follow=True)

    def connected(self) -> dict[str, bool]:
        return {name: feed.connected for name, feed in self.feeds.items()}

    async def _run(self, server: str) -> None:
        feed = self.feeds[server]
        path = self.svc.access_log_on(server)
        delay = 1.0
        while True:
            try:
                t = await self.fleet.pool.get(server)
                _, size = await file_size(t, path)
                since = time.time() - (self.stats.window or 0)
                start = await find_start(t, path, size, since, self.stats.parser)
                async for chunk in read_range(t, path, start, size):
                    self.stats.add_chunk(chunk, server)
                break
            except (TransportError, OSError) as e:
                feed.state, feed.error = "failed", str(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

        def on_state(state: object) -> None:
            text = str(getattr(state, "describe", lambda: state)())
            feed.state = "following" if text.startswith("following") else text
            feed.error = None if feed.state == "following" else text

        follower = LogFollower(
            lambda: self.fleet.pool.get(server), path, start_offset=size, on_state=on_state
        )
        self._followers.append(follower)
        feed.state, feed.error = "following", None
        async for chunk in follower.chunks():
            self.stats.add_chunk(chunk, server)
