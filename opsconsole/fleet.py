"""The app core: one connection pool for the fleet, one traffic pipeline per service.

The session layer (:mod:`opsconsole.session`) and the CLI's ``stats`` call :class:`Fleet`; it
never imports a front end.  Data flows one way: transport -> log follower -> parser -> counts
(:class:`~opsconsole.stats.history.HistoryCounts`, :class:`~opsconsole.stats.window.LiveWindow`)
-> immutable snapshots.  Parsing and counting run in the fleet's worker thread, never on the
event loop a front end draws on.  Each server of a service is read independently, so a dead
server or a missing log shows up as that server's :class:`FeedState` while the others keep
streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from .config import Config, ServiceConfig
from .errors import OperationError
from .health.report import Status
from .logs.aggregate import AgentFollower, AgentUnavailable, read_rows
from .logs.follow import FollowPhase, FollowState, LogFollower
from .logs.history import file_size, read_range
from .logs.parse import LineParser
from .stats.history import HistoryCounts
from .stats.snapshot import Snapshot
from .stats.traffic import ServerTotals
from .stats.window import LiveWindow
from .text import unprefixed
from .transport.base import LinkState, ServerStatus, Transport, TransportError
from .transport.pool import ConnectionPool

T = TypeVar("T")

log = logging.getLogger(__name__)

BEHIND_SHOWN = 5.0
"""A server whose counts are this many seconds or more behind its log (lines written and not
counted yet) says so: "behind by N s".  Below it is the log's one-second resolution, nginx's
buffering and a chunk in flight."""

AUTO_BEHIND = BEHIND_SHOWN
"""``mode = "auto"``: the agent takes over a server whose raw stream is this far behind…"""
AUTO_AFTER = 3
"""… at this many looks in a row (one a second)."""
AUTO_BACK_AFTER = 60.0
"""Raw takes over again once the agent has seen, over this many seconds, at most half the line
rate the raw stream could count."""
RATE_SPAN = 10.0
"""Seconds over which the raw stream's counting rate is measured when it falls behind."""

HISTORY_BATCH = 4 << 20
"""Bytes of complete lines counted at once when reading history: bigger batches cost less per
line (measured: 4 MiB counts 10-20 % faster than 1 MiB), and stay small next to the data."""

Progress = Callable[[str, int, int], None]
"""progress(server, bytes_done, bytes_total) during history reads."""


class Sink(Protocol):
    """What a history read feeds: the statistics, or the requests ``suggest`` analyses."""

    parser: LineParser

    def add_chunk(self, chunk: bytes, server: str = "") -> None: ...


class FeedState(enum.StrEnum):
    """Where one server's log stream stands."""

    CONNECTING = "connecting"
    FOLLOWING = "following"
    WAITING = "waiting for file"
    """The log does not exist yet; it is read from its start once it appears."""
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    """The log cannot be read (missing, not a file, no permission) or the server refused us:
    retried, but someone has to act."""
    READ = "read"
    """History: the span asked for was read."""

    @property
    def status(self) -> Status:
        """The verdict front ends colour by."""
        if self in (FeedState.FOLLOWING, FeedState.READ):
            return Status.OK
        return Status.DOWN if self is FeedState.FAILED else Status.WARN


_PHASES = {
    FollowPhase.STARTING: FeedState.CONNECTING,
    FollowPhase.FOLLOWING: FeedState.FOLLOWING,
    FollowPhase.WAITING: FeedState.WAITING,
    FollowPhase.RECONNECTING: FeedState.RECONNECTING,
    FollowPhase.ERROR: FeedState.FAILED,
    FollowPhase.CLOSED: FeedState.RECONNECTING,
}


@dataclass
class ServerFeed:
    """What the front ends show about one server's log stream."""

    state: FeedState = FeedState.CONNECTING
    error: str | None = None
    detail: str = ""
    """How the state reads for people: "following the log", "reconnecting in 4s: …"."""
    behind: float = 0.0
    """Seconds the counts lag behind the log, by the server's clock, while lines written on
    the server wait to be read (0 when caught up): the console cannot keep up."""
    mode: str = "raw"
    """How the log is read now: "raw" (lines streamed here) or "aggregate" (the agent
    parses on the server and ships summaries, DESIGN §4)."""
    note: str = ""
    """Why the mode is what it is, when that is not what the config asked for or when ``auto``
    switched ("python3 not found on web2", "the raw stream fell 12s behind")."""

    @property
    def connected(self) -> bool:
        return self.error is None and self.state is FeedState.FOLLOWING

    @property
    def lagging(self) -> bool:
        """Behind its log by ``BEHIND_SHOWN`` seconds or more."""
        return self.connected and self.behind >= BEHIND_SHOWN


def link_status(link: ServerStatus | None) -> Status:
    """The verdict of one server's SSH link."""
    if link is None:
        return Status.WARN
    return {LinkState.CONNECTED: Status.OK, LinkState.FAILED: Status.DOWN}.get(
        link.state, Status.WARN
    )


def server_state(link: ServerStatus | None, feed: ServerFeed | None) -> tuple[Status, str]:
    """One server of one service for people: its SSH link first, then its log feed."""
    if link is not None and link.state is not LinkState.CONNECTED:
        return link_status(link), link.describe()
    if feed is None:
        return Status.WARN, "no log feed"
    if feed.lagging:
        where = "the server" if feed.mode == "aggregate" else "the console"
        return Status.WARN, f"behind by {feed.behind:.0f}s ({where} cannot keep up)"
    if feed.connected:
        text = "aggregating on the server" if feed.mode == "aggregate" else "following the log"
        return Status.OK, f"{text} ({feed.note})" if feed.note else text
    return feed.state.status, feed.error or feed.detail or feed.state.value


class Fleet:
    """Connections and pipelines for a loaded config."""

    def __init__(
        self,
        config: Config,
        pool: ConnectionPool | None = None,
        *,
        max_attempts: int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        """``max_attempts``: connection attempts per server before it is reported failed (None:
        keep retrying, for live views; one-shot commands give up after a few)."""
        self.config = config
        self.pool = pool or ConnectionPool(
            config.servers, max_attempts=max_attempts, connect_timeout=connect_timeout
        )
        self._no_agent: set[str] = set()
        """Servers whose aggregating agent cannot run: their history is read raw."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsconsole-count")
        """Where every parse and count runs: one thread, so the counts need no locks and the
        front end's event loop stays free while a flood is parsed."""

    async def close(self) -> None:
        await self.pool.close()
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def work(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in the fleet's worker thread (parsing, counting, replaying)."""
        return await self.submit(fn, *args)

    def submit(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """``fn(*args)`` queued for the fleet's worker thread (run in submission order)."""
        return asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def transport(self, server: str) -> Transport:
        return await self.pool.get(server)

    async def reach(
        self,
        servers: Iterable[str],
        *,
        timeout: float = 15.0,
        on_connected: Callable[[str], None] | None = None,
    ) -> dict[str, Transport | TransportError]:
        """A connection to each of ``servers``, in parallel, or the TransportError saying why
        there is none: not reached within ``timeout`` seconds (with the pool's last error), a
        refused host key or login."""
        names = list(servers)

        async def one(server: str) -> Transport | TransportError:
            try:
                t = await asyncio.wait_for(self.pool.get(server), timeout)
            except TimeoutError:
                status = self.pool.status(server).describe()
                return TransportError(f"no connection within {timeout:g}s ({status})")
            except TransportError as e:
                return e
            if on_connected is not None:
                on_connected(server)
            return t

        return dict(zip(names, await asyncio.gather(*(one(s) for s in names)), strict=True))

    async def transports(
        self,
        service: str,
        *,
        timeout: float = 15.0,
        on_connected: Callable[[str], None] | None = None,
    ) -> dict[str, Transport]:
        """A connection to every server of ``service`` (what the controls need), in parallel.

        Raises OperationError naming each server not reached within ``timeout`` seconds and why
        (the pool's last error), so a front end can say which server blocks an action.
        """
        svc = self.config.service(service)
        reached = await self.reach(svc.servers, timeout=timeout, on_connected=on_connected)
        failed = [f"{n}: {r}" for n, r in reached.items() if isinstance(r, TransportError)]
        if failed:
            raise OperationError(f"{service}: cannot reach " + "; ".join(failed))
        return {n: r for n, r in reached.items() if not isinstance(r, TransportError)}

    # ---------------------------------------------------------------- history
    async def read_history(
        self, service: str, since: float | None, *, progress: Progress | None = None
    ) -> tuple[HistoryCounts, dict[str, ServerFeed]]:
        """Read each server's log back to ``since`` (epoch seconds; None = the whole file) and
        count it.  Returns the counts and, per server, its outcome (error text if it failed)."""
        stats = HistoryCounts(self.config.service(service).log_format, since=since)
        feeds = await self.read_into(service, since, stats, progress=progress)
        for server in feeds:
            stats.servers.setdefault(server, ServerTotals())  # listed even when it failed
        return stats, feeds

    async def read_into(
        self,
        service: str,
        since: float | None,
        sink: Sink,
        *,
        progress: Progress | None = None,
        until: float | None = None,
    ) -> dict[str, ServerFeed]:
        """Feed each server's log back to ``since`` (and, with ``until``, up to the lines
        logged before it) into ``sink`` (in the worker thread, in batches of whole lines); per
        server, its outcome."""
        svc = self.config.service(service)
        feeds = {name: ServerFeed() for name in svc.servers}

        async def one(server: str) -> None:
            feed = feeds[server]
            try:
                t = await self.pool.get(server)
                path = svc.access_log_on(server)
                _, size = await file_size(t, path)
                parser = LineParser(sink.parser.format)
                start = 0 if since is None else await find_start(t, path, size, since, parser)
                if until is not None:
                    size = await find_offset(t, path, size, until, parser)
                done = 0
                if self._agent_reads(svc, server, sink):
                    try:
                        done = await self._read_parsed(t, server, path, start, size, sink, progress)
                        feed.state, feed.mode = FeedState.READ, "aggregate"
                        return
                    except AgentUnavailable as e:
                        feed.mode, feed.note = "raw", f"raw: {unprefixed(str(e), server)}"
                        self._no_agent.add(server)
                        log.warning("%s: reading raw: %s", server, e)
                        start += e.done  # what the agent did read counts once
                feed.mode = "raw"
                done = 0
                batch: list[bytes | memoryview] = []
                pending = 0
                # One batch is counted in the worker while the next is read: reading and
                # counting overlap (the worker runs them in order, one at a time).
                counting: asyncio.Future[None] | None = None
                pieces = getattr(sink, "add_pieces", None)  # takes the batch as it was read

                async def count(batch: list[bytes | memoryview]) -> None:
                    nonlocal counting
                    if counting is not None:
                        await counting
                    if callable(pieces):
                        counting = self.submit(pieces, batch, server)
                    else:
                        counting = self.submit(sink.add_chunk, b"".join(batch), server)

                try:
                    async for chunk in read_range(t, path, start, size):
                        batch.append(chunk)
                        pending += len(chunk)
                        if pending >= HISTORY_BATCH:
                            await count(batch)
                            done, batch, pending = done + pending, [], 0
                            if progress:
                                progress(server, done, size - start)
                    if batch:
                        await count(batch)
                finally:
                    if counting is not None:
                        await asyncio.wait([counting])  # never leave a count running behind us
                if counting is not None:
                    await counting  # its error, if counting failed
                feed.state = FeedState.READ
            except (TransportError, OperationError) as e:
                feed.state = FeedState.FAILED
                feed.error = unprefixed(str(e), server) or type(e).__name__

        await asyncio.gather(*(one(s) for s in svc.servers))
        return feeds

    def _agent_reads(self, svc: ServiceConfig, server: str, sink: Sink) -> bool:
        """Whether a history read of ``server`` goes through the aggregating agent: the
        service aggregates, the sink takes parsed rows and the agent was not refused here."""
        return (
            svc.mode == "aggregate"
            and server not in self._no_agent
            and callable(getattr(sink, "add_parsed", None))
        )

    async def _read_parsed(
        self,
        t: Transport,
        server: str,
        path: str,
        start: int,
        end: int,
        sink: Sink,
        progress: Progress | None,
    ) -> int:
        """Bytes ``[start, end)`` parsed by the agent on the server into ``sink``; returns the
        bytes read (also when AgentUnavailable interrupts it: the caller reads the rest)."""
        done = 0
        counting: asyncio.Future[None] | None = None
        add = sink.add_parsed  # type: ignore[attr-defined]
        python = self.config.servers[server].python
        try:
            async for parsed, step in read_rows(
                t, path, sink.parser.format, start, end, server=server, python=python
            ):
                if counting is not None:
                    await counting
                counting = self.submit(add, parsed, server)
                done += step
                if progress:
                    progress(server, done, end - start)
        except AgentUnavailable as e:
            e.done = done
            raise
        finally:
            if counting is not None:
                await asyncio.wait([counting])
        if counting is not None:
            await counting
        return done

    def pipeline(
        self, service: str, *, window: float | None = None, top_n: int = 20
    ) -> ServicePipeline:
        svc = self.config.service(service)
        return ServicePipeline(self, svc, window or self.config.console.window, top_n=top_n)


_SAMPLE = 'tail -c +"$1" -- "$2" | head -c "$3"'
"""Read $3 bytes of file $2 from byte $1 (1-based); arguments are passed, never spliced."""


async def find_start(t: Transport, path: str, size: int, since: float, parser: LineParser) -> int:
    """The offset of a line start at or before the first line logged at ``since`` or later.

    Reads small samples backwards from the end in growing steps (1 MiB, 4 MiB, …), so reading the
    last minute of a 10 GB log costs a few hundred kilobytes.  The caller filters the few lines
    before ``since`` that the returned offset still includes.
    """
    step = 1 << 20
    while True:
        offset = max(0, size - step)
        if offset == 0:
            return 0
        result = await t.run(["sh", "-c", _SAMPLE, "sh", str(offset + 1), path, str(256 * 1024)])
        if not result.ok:
            raise TransportError(f"{t.name}: cannot read {path}: {result.error_text()}")
        sample = result.stdout
        newline = sample.find(b"\n")
        if newline < 0:  # a 256 KiB line: look further back
            step *= 4
            continue
        boundary = offset + newline + 1
        parsed = parser.parse(sample[newline + 1 : sample.rfind(b"\n") + 1])
        get = parser.format.groups["time"]
        times = [e for e in (parser.epoch(r[get]) for r in parsed.rows[:50]) if e is not None]
        if times and min(times) < since:
            return boundary
        step *= 4


async def find_offset(t: Transport, path: str, size: int, when: float, parser: LineParser) -> int:
    """The offset of the first line start whose line was logged at ``when`` or later (to within
    the order nginx writes them: by completion), by bisecting the file with small samples —
    a dozen reads for a few hundred megabytes.  ``size`` when every line is older."""
    get = parser.format.groups["time"]

    async def first_time(offset: int) -> tuple[int, float | None]:
        """The first line start at or after ``offset`` and that line's time (None: no line)."""
        result = await t.run(["sh", "-c", _SAMPLE, "sh", str(offset + 1), path, str(64 * 1024)])
        if not result.ok:
            raise TransportError(f"{t.name}: cannot read {path}: {result.error_text()}")
        sample = result.stdout
        skip = 0 if offset == 0 else sample.find(b"\n") + 1
        if offset and skip == 0:
            return offset + len(sample), None
        end = sample.find(b"\n", skip)
        rows = parser.parse(sample[skip : end + 1]).rows if end >= 0 else []
        stamp = parser.epoch(rows[0][get]) if rows else None
        return offset + skip, stamp

    lo, hi = 0, size  # the answer lies in [lo, hi]
    while hi - lo > 64 * 1024:
        mid = (lo + hi) // 2
        start, stamp = await first_time(mid)
        if start >= hi or stamp is None:
            hi = mid
        elif stamp < when:
            lo = start + 1
        else:
            hi = start
    # Close enough: the first line at or after ``when`` within one last sample.
    if hi <= lo:
        return hi
    result = await t.run(["sh", "-c", _SAMPLE, "sh", str(lo + 1), path, str(hi - lo)])
    if not result.ok:
        raise TransportError(f"{t.name}: cannot read {path}: {result.error_text()}")
    sample = result.stdout
    pos = 0 if lo == 0 else sample.find(b"\n") + 1
    if lo and not pos:
        return hi  # no line starts in the sample
    while pos < len(sample):
        end = sample.find(b"\n", pos)
        if end < 0:
            break
        rows = parser.parse(sample[pos : end + 1]).rows
        stamp = parser.epoch(rows[0][get]) if rows else None
        if stamp is not None and stamp >= when:
            return lo + pos
        pos = end + 1
    return hi


class ServicePipeline:
    """Live statistics of one service: backfill the window, then follow every server.

    The counts live in the fleet's worker thread; :meth:`snapshot` hands out the newest
    immutable snapshot, published once a second (or by :meth:`refresh`), so reading one costs
    nothing and changes nothing."""

    def __init__(self, fleet: Fleet, svc: ServiceConfig, window: float, *, top_n: int = 20) -> None:
        self.fleet = fleet
        self.svc = svc
        self.top_n = top_n
        self.window = LiveWindow(svc.log_format, window=window)
        self.feeds = {name: ServerFeed() for name in svc.servers}
        self._latest = self.window.snapshot(svc.name, top_n=top_n)
        self._tasks: list[asyncio.Task[None]] = []
        self._followers: dict[str, LogFollower | AgentFollower] = {}
        self.agent_flush = 0.5
        """Seconds between the agent's summaries (the latency it adds)."""
        self.auto_back_after = AUTO_BACK_AFTER
        self._stopping = False
        self._switch: set[str] = set()
        """Servers whose reader should hand over to the other mode (``auto``)."""
        self._raw_only: set[str] = set()
        """Servers whose agent cannot run: raw for good."""
        self._agent_files: dict[str, list[tuple[str, int]]] = {}
        self._rates: dict[str, deque[tuple[float, int]]] = {}
        self._late: dict[str, int] = {}
        self._capacity: dict[str, float] = {}
        """Lines per second the raw stream counted when it fell behind (``auto``)."""

    def start(self, *, publish: bool = True) -> None:
        """Follow every server; ``publish``: refresh the snapshot every second by itself."""
        for server in self.svc.servers:
            self._tasks.append(asyncio.create_task(self._run(server), name=f"follow {server}"))
        if publish:
            self._tasks.append(asyncio.create_task(self._publish(), name="publish"))

    async def stop(self) -> None:
        self._stopping = True  # a reader that ends now hands over to nothing
        for f in self._followers.values():
            with contextlib.suppress(Exception):
                await f.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # asyncio.wait, not `await task`: that would swallow a cancellation of our caller.
            await asyncio.wait(self._tasks, timeout=5.0)

    def snapshot(self, *, top_n: int | None = None) -> Snapshot:
        """The newest published snapshot (top lists cut to ``top_n``)."""
        snap = self._latest
        if top_n is None or top_n >= self.top_n:
            return snap
        return replace(
            snap,
            top_ips=snap.top_ips[:top_n],
            top_subnets=snap.top_subnets[:top_n],
            top_paths=snap.top_paths[:top_n],
            top_user_agents=snap.top_user_agents[:top_n],
        )

    async def refresh(self) -> Snapshot:
        """Expire the window and publish a fresh snapshot now."""
        self._latest = await self.fleet.work(self._compute)
        self._measure_lag()
        self._auto()
        return self._latest

    def _measure_lag(self) -> None:
        """Each feed's ``behind``: the server's clock at its last look at the log minus the
        newest second counted from it, while the log holds bytes not read yet."""
        for server, feed in self.feeds.items():
            follower = self._followers.get(server)
            totals = self.window.servers.get(server)
            if follower is None or not follower.backlog or totals is None or not totals.newest:
                feed.behind = 0.0
            else:
                feed.behind = float(max(0, follower.server_time - totals.newest))

    def modes(self) -> dict[str, tuple[str, str]]:
        """Per server, how its log is read now ("raw" or "aggregate") and why, if chosen."""
        return {name: (feed.mode, feed.note) for name, feed in self.feeds.items()}

    def behind(self) -> dict[str, float]:
        """Per server, the seconds its counts lag behind its log (0: caught up)."""
        return {name: feed.behind for name, feed in self.feeds.items()}

    def _compute(self) -> Snapshot:
        self.window.advance()
        return self.window.snapshot(self.svc.name, top_n=self.top_n)

    async def _publish(self) -> None:
        next_tick = time.monotonic()
        while True:
            next_tick += 1.0
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            await self.refresh()

    def connected(self) -> dict[str, bool]:
        return {name: feed.connected for name, feed in self.feeds.items()}

    async def _run(self, server: str) -> None:
        feed = self.feeds[server]
        path = self.svc.access_log_on(server)
        delay = 1.0
        while True:  # find where the window starts; the follower does the rest
            try:
                t = await self.fleet.pool.get(server)
                file_id, size = await file_size(t, path)
                since = time.time() - self.window.window
                start = await find_start(t, path, size, since, LineParser(self.window.format))
                break
            except (TransportError, OperationError) as e:
                feed.state, feed.error = FeedState.FAILED, unprefixed(str(e), server)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        files = [(file_id, start)]
        aggregate = self.svc.mode == "aggregate"
        while True:
            if aggregate:
                try:
                    files = await self._follow_agent(server, files)
                except AgentUnavailable as e:
                    feed.mode, feed.note = "raw", f"raw: {unprefixed(str(e), server)}"
                    self._raw_only.add(server)
                    log.warning("%s: reading raw: %s", server, e)
                    files = self._agent_files.pop(server, files)
            if self._stopping:
                return
            aggregate = True
            files = await self._follow_raw(server, files)
            if self._stopping:
                return

    def _on_state(self, server: str) -> Callable[[FollowState], None]:
        feed = self.feeds[server]

        def on_state(state: FollowState) -> None:
            feed.state = _PHASES[state.phase]
            if state.phase is FollowPhase.FOLLOWING:
                feed.error, feed.detail = None, "following the log"
            else:
                feed.error = feed.detail = unprefixed(state.describe(), server)

        return on_state

    async def _follow_raw(self, server: str, files: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Stream the log raw until ``auto`` wants the agent; the positions reached."""
        feed = self.feeds[server]
        feed.mode = "raw"
        file_id, start = files[-1]
        follower = LogFollower(
            lambda: self.fleet.pool.get(server),
            self.svc.access_log_on(server),
            start_offset=start,
            start_file_id=file_id,
            on_state=self._on_state(server),
        )
        self._followers[server] = follower
        self._switch.discard(server)
        async with contextlib.aclosing(follower.chunks()) as chunks:
            async for chunk in chunks:
                await self.fleet.work(self.window.add_chunk, chunk, server)
                if server in self._switch:
                    break
        await follower.close()
        return [(f, o) for f, o, _ in follower.positions()] or files

    async def _follow_agent(
        self, server: str, files: list[tuple[str, int]]
    ) -> list[tuple[str, int]]:
        """Follow through the agent until ``auto`` wants raw again; the positions reached.
        Raises AgentUnavailable (the positions are then in ``_agent_files``)."""
        feed = self.feeds[server]
        follower = AgentFollower(
            lambda: self.fleet.pool.get(server),
            self.svc.access_log_on(server),
            self.window.format,
            server=server,
            python=self.fleet.config.servers[server].python,
            files=files,
            on_state=self._on_state(server),
            flush=self.agent_flush,
        )
        self._followers[server] = follower
        self._switch.discard(server)
        try:
            async with contextlib.aclosing(follower.summaries()) as summaries:
                async for summary in summaries:
                    if feed.mode != "aggregate":
                        feed.mode = "aggregate"
                    await self.fleet.work(self.window.add_summary, summary, server)
                    if server in self._switch:
                        break
        except AgentUnavailable:
            self._agent_files[server] = [(f, o) for f, o, _ in follower.files] or files
            raise
        finally:
            await follower.close()
        return [(f, o) for f, o, _ in follower.files]

    def _auto(self) -> None:
        """``mode = "auto"``: ask a server's reader to switch when the raw stream has fallen
        ``AUTO_BEHIND`` s behind for ``AUTO_AFTER`` looks (the agent takes over), or when the
        agent has for ``auto_back_after`` s seen at most half the rate the raw stream could
        count (raw takes over again)."""
        now = time.monotonic()
        for server, feed in self.feeds.items():
            totals = self.window.servers.get(server)
            lines = totals.lines if totals is not None else 0
            seen = self._rates.setdefault(server, deque())
            seen.append((now, lines))
            while seen and seen[0][0] < now - max(RATE_SPAN, self.auto_back_after):
                seen.popleft()
            if self.svc.mode != "auto" or server in self._switch or not feed.connected:
                continue
            if feed.mode == "raw" and server not in self._raw_only:
                self._late[server] = (
                    self._late.get(server, 0) + 1 if feed.behind >= AUTO_BEHIND else 0
                )
                if self._late[server] >= AUTO_AFTER:
                    recent = [(t, n) for t, n in seen if t >= now - RATE_SPAN]
                    span = recent[-1][0] - recent[0][0]
                    self._capacity[server] = (recent[-1][1] - recent[0][1]) / span if span else 0
                    feed.note = f"auto: the raw stream fell {feed.behind:.0f}s behind"
                    self._late[server] = 0
                    self._switch.add(server)
            elif feed.mode == "aggregate" and feed.behind == 0:
                follower = self._followers.get(server)
                one_file = isinstance(follower, AgentFollower) and len(follower.files) == 1
                span = seen[-1][0] - seen[0][0]
                if not one_file or span < self.auto_back_after * 0.95:
                    continue
                rate = (seen[-1][1] - seen[0][1]) / span
                if rate <= self._capacity.get(server, 0.0) / 2:
                    feed.note = ""
                    self._switch.add(server)
