"""Reading a service's logs over the report's period, as ``stats`` does — sampled when long.

Called by :meth:`opsconsole.session.Session.report` for each service.  Each server's log is
measured first (its size and where the period starts, found with the same backwards samples as
``stats --since``).  When every server holds at most ``read_limit`` bytes of the period, the
logs are read whole through :meth:`opsconsole.fleet.Fleet.read_into`: every count is exact.
When the period begins before the current log's first line, the log rotated before it
(``access.log.1``, as logrotate leaves it with ``delaycompress``) is read too, before the
current one, chunk after chunk.  Otherwise each server's span is read as evenly spaced chunks
of about ``sample_bytes`` in all (a span shorter than that is read whole, chunk after chunk),
and :class:`~.traffic.LogTraffic` estimates what lies between them: the report says so.  The
parsing runs in the fleet's worker thread.  Core only: the fleet, the transport interface and
the log reads.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..config import ServiceConfig
from ..errors import OperationError
from ..fleet import Fleet, Progress, find_start
from ..logs.history import file_size
from ..logs.parse import LineParser
from ..text import unprefixed
from ..transport.base import Transport, TransportError
from .traffic import LogTraffic, ServerRead

READ_LIMIT = 64 << 20
"""Bytes of a server's log in the period up to which it is read whole (exact counts)."""
SAMPLE_BYTES = 32 << 20
"""Bytes read from each server's log when it holds more than ``READ_LIMIT``."""
SAMPLED_AT_ONCE = 4
"""Servers sampled at the same time: memory stays within a few samples, whatever the fleet."""
MIN_CHUNK = 8 << 10
BATCH_BYTES = 4 << 20
"""Bytes of chunks asked for in one command (progress is reported between them)."""

_CHUNKS = 'f=$1; n=$2; shift 2; for o do tail -c +"$o" -- "$f" | head -c "$n"; done'
"""$2 bytes of file $1 from each 1-based offset that follows; arguments, never spliced."""


async def read_traffic(
    fleet: Fleet,
    svc: ServiceConfig,
    start: int,
    end: int,
    *,
    read_limit: int = READ_LIMIT,
    sample_bytes: int | None = None,
    progress: Progress | None = None,
) -> LogTraffic:
    """The lines of ``svc``'s logs from ``start`` to ``end`` on each of its servers; a server
    that cannot be read is listed with its error.  ``sample_bytes``: what a sampled read takes
    of each server's log (default ``SAMPLE_BYTES``, at most half of ``read_limit``)."""
    budget = sample_bytes if sample_bytes is not None else min(SAMPLE_BYTES, read_limit // 2)
    traffic = LogTraffic(svc.log_format, start, end)
    spans: dict[str, tuple[Transport, list[Segment]]] = {}
    minutes = max(1, (end - start) // 60)

    async def measure(server: str) -> None:
        info = traffic.servers[server] = ServerRead(server)
        try:
            t = await fleet.pool.get(server)
            path = svc.access_log_on(server)
            parser = LineParser(traffic.log.format)
            _, size = await file_size(t, path)
            first = await find_start(t, path, size, start, parser)
            segments = [Segment(path, first, size)]
            if first == 0:  # the period may begin before the last rotation
                older = await _rotated(t, path + ROTATED, start, parser)
                if older is not None:
                    segments.insert(0, older)
            spans[server] = (t, segments)
            info.size = sum(seg.span for seg in segments)
            info.files = tuple(seg.path for seg in segments)
        except (TransportError, OperationError) as e:
            info.error = unprefixed(str(e), server) or type(e).__name__

    await asyncio.gather(*(measure(s) for s in svc.servers))
    if not spans:
        return traffic
    rotated = any(len(segments) > 1 for _, segments in spans.values())
    if not rotated and all(traffic.servers[s].size <= read_limit for s in spans):
        feeds = await fleet.read_into(svc.name, start, traffic.log, progress=progress)
        for server, feed in feeds.items():
            info = traffic.servers[server]
            info.error = info.error or feed.error
            info.read = info.size if feed.error is None else 0
        return traffic

    at_once = asyncio.Semaphore(SAMPLED_AT_ONCE)

    async def sample(server: str) -> None:
        info = traffic.servers[server]
        t, segments = spans[server]
        whole = info.size <= read_limit  # a short log beside a long one is still read whole
        chunks: list[tuple[int, bytes]] = []
        base = 0  # the files, oldest first, as one: offsets run on across them
        async with at_once:  # each holds its sample until it is parsed
            try:
                for seg in segments:
                    share = max(MIN_CHUNK, budget * seg.span // max(info.size, 1))
                    take = seg.span if whole else share
                    part = await _read_chunks(
                        t, seg.path, seg.first, seg.size, take, minutes, server, progress
                    )
                    chunks += [(base + o, c) for o, c in part]
                    base += seg.size
            except (TransportError, OperationError) as e:
                info.error = unprefixed(str(e), server) or type(e).__name__
                return
            info.read = sum(len(c) for _, c in chunks)
            info.sampled = info.read < info.size
            await fleet.work(traffic.add_sample, server, chunks)

    await asyncio.gather(*(sample(s) for s in spans))
    return traffic


ROTATED = ".1"
"""What logrotate (``delaycompress``) and nginx's Debian package call the log before this one."""


@dataclass(frozen=True)
class Segment:
    """The part of one log file in the period: bytes ``[first, size)``."""

    path: str
    first: int
    size: int

    @property
    def span(self) -> int:
        return self.size - self.first


async def _rotated(t: Transport, path: str, start: int, parser: LineParser) -> Segment | None:
    """The part of the rotated log ``path`` in the period, if it exists and holds any of it."""
    try:
        _, size = await file_size(t, path)
    except OperationError:  # no rotated log (or not readable): the period begins in the current
        return None
    first = await find_start(t, path, size, start, parser)
    return Segment(path, first, size) if first < size else None


def chunk_offsets(first: int, size: int, budget: int, minutes: int) -> tuple[list[int], int]:
    """Where to read in ``[first, size)`` and how many bytes each time: the whole span in
    contiguous chunks when it fits in ``budget``, else about ``budget`` bytes in evenly spaced
    chunks — at least two per minute of the period where the budget allows, the last one
    ending at ``size``."""
    span = size - first
    if span <= 0:
        return [], 0
    if span <= budget:
        length = min(span, BATCH_BYTES)
        return list(range(first, size, length)), length
    count = max(2, min(budget // MIN_CHUNK, max(2 * minutes, 512)))
    length = max(MIN_CHUNK, budget // count)
    stride = (span - length) / (count - 1)
    return [first + round(i * stride) for i in range(count)], length


async def _read_chunks(
    t: Transport,
    path: str,
    first: int,
    size: int,
    budget: int,
    minutes: int,
    server: str,
    progress: Progress | None,
) -> list[tuple[int, bytes]]:
    offsets, length = chunk_offsets(first, size, budget, minutes)
    out: list[tuple[int, bytes]] = []
    per_run = max(1, BATCH_BYTES // max(length, 1))
    total = len(offsets) * length
    for i in range(0, len(offsets), per_run):
        batch = offsets[i : i + per_run]
        want = [min(length, size - o) for o in batch]
        argv = ["sh", "-c", _CHUNKS, "sh", path, str(length), *(str(o + 1) for o in batch)]
        result = await t.run(argv, timeout=120)
        if not result.ok:
            raise OperationError(f"cannot read {path}: {result.error_text()}")
        data, pos = result.stdout, 0
        if len(data) != sum(want):
            raise OperationError(f"{path} changed while it was read (rotated or truncated?)")
        for offset, n in zip(batch, want, strict=True):
            out.append((offset, data[pos : pos + n]))
            pos += n
        if progress is not None:
            progress(server, min(total, (i + len(batch)) * length), total)
    return out
