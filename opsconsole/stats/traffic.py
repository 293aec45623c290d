"""What history counting and the live window share: per-second buckets, top lists, totals.

Two front classes build on :class:`TrafficCounts`:

* :class:`~opsconsole.stats.history.HistoryCounts` counts a span read back from the logs
  (``stats --since``): every line counts, top lists are over all of it.  The hot path of the
  parse benchmark.
* :class:`~opsconsole.stats.window.LiveWindow` is the sliding window of the live console: top
  lists cover the last ``window`` seconds; each second keeps its own counters so they can be
  subtracted when they leave the window.

Both are fed with chunks of complete log lines (``add_chunk(chunk, server)``) by
:mod:`opsconsole.fleet`, and read with ``snapshot()``, which returns an immutable
:class:`~opsconsole.stats.snapshot.Snapshot` and changes nothing.  Per-second request and
status-class counts are kept for the last ``RING_SECONDS`` in both.  Standard library,
:mod:`opsconsole.logs` and this package only.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter

from ..logs.logformat import LogFormat
from ..logs.parse import LineParser, ParsedChunk
from .sketch import DistinctCounter, TopCounter
from .snapshot import TopEntry, subnet_of

RING_SECONDS = 900
"""15 minutes of per-second buckets for rate and status charts."""

DIMENSIONS = ("client", "path", "agent", "method", "status")


@dataclass
class SecondBucket:
    requests: int = 0
    classes: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    """Requests by status class 1xx..5xx."""
    servers: dict[str, int] = field(default_factory=dict)
    """Requests of this second per server (so a window's per-server numbers add up)."""
    # Live window only: what this second added to the window counters, per dimension.
    counts: dict[str, Counter[bytes]] = field(default_factory=dict)
    trimmed: set[str] = field(default_factory=set)
    """Dimensions whose long tail was dropped to bound memory (their counts are estimates)."""
    distinct: DistinctCounter | None = None
    new_ips: int = 0
    """Live window: clients of this second not seen recently (:class:`SeenFilter`)."""


@dataclass
class ServerTotals:
    requests: int = 0
    unparsed: int = 0
    lines: int = 0
    classes: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    """Requests counted from this server by status class 1xx..5xx (what Prometheus scrapes)."""
    newest: int | None = None
    """The latest log second counted from this server (how far behind its log the counts
    are: the server's clock minus this, while its log holds lines not read yet)."""


class TrafficCounts:
    """The counters of one service across its servers; see the module docstring."""

    def __init__(self, fmt: LogFormat | str = "combined", *, cap: int = 200_000) -> None:
        self.parser = LineParser(fmt)
        self.format = self.parser.format
        g = self.format.groups
        self._get = {d: itemgetter(g[d]) for d in DIMENSIONS if d in g}
        self._get_net = itemgetter(g["net"])
        self._get_time = itemgetter(g["time"])
        self._time_status = itemgetter(g["time"], g["status"])
        self.top = {d: TopCounter(cap) for d in self._get}
        self.nets = TopCounter(cap)
        self.ring: dict[int, SecondBucket] = {}
        self._order: deque[int] = deque()
        self.servers: dict[str, ServerTotals] = {}
        self.requests = 0
        self.unparsed = 0
        self.unparsed_samples: deque[str] = deque(maxlen=20)
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.earliest: int | None = None
        """The oldest log second seen, counted or not (what the logs cover, for rates)."""

    # ----------------------------------------------------------------- feeding
    def add_chunk(self, chunk: bytes, server: str = "") -> None:
        """Parse and count a chunk of complete lines read from ``server``."""
        self.add(self.parser.parse(chunk), server)

    def add(self, parsed: ParsedChunk, server: str = "") -> None:
        totals = self._account(server, parsed.lines, parsed.unparsed, parsed.unparsed_samples)
        rows = parsed.rows
        if not rows:
            return
        # Per second: requests and status mix.  A chunk holds few distinct (second, status).
        per_second = Counter(map(self._time_status, rows))
        epoch = self.parser.epoch
        seconds: dict[bytes, int | None] = {}
        for t in {t for t, _ in per_second}:
            seconds[t] = epoch(t)
        valid = [s for s in seconds.values() if s is not None]
        if valid:
            lo = min(valid)
            self.earliest = lo if self.earliest is None else min(self.earliest, lo)
        cutoff = self._cutoff()
        if cutoff is not None or len(valid) != len(seconds):
            rows, per_second, bad = self._keep_recent(rows, per_second, seconds, cutoff)
            totals.unparsed += bad
            self.unparsed += bad
            if not rows:
                return
        self._count_seconds(server, totals, len(rows), per_second, seconds)
        self._count_rows(rows, seconds)

    def _cutoff(self) -> float | None:
        """Rows with earlier timestamps are not counted at all (history's ``since``)."""
        return None

    def _count_rows(self, rows: list[tuple[bytes, ...]], seconds: dict[bytes, int | None]) -> None:
        raise NotImplementedError

    def _account(self, server: str, lines: int, unparsed: int, samples: list[str]) -> ServerTotals:
        totals = self.servers.setdefault(server, ServerTotals())
        totals.unparsed += unparsed
        totals.lines += lines
        self.unparsed += unparsed
        self.unparsed_samples.extend(samples)
        return totals

    def _count_seconds(
        self,
        server: str,
        totals: ServerTotals,
        n: int,
        per_second: Counter[tuple[bytes, bytes]],
        seconds: dict[bytes, int | None],
    ) -> None:
        """Requests, status classes per second and status totals of ``n`` counted rows."""
        totals.requests += n
        self.requests += n
        for (t, status), count in per_second.items():
            sec = seconds[t]
            assert sec is not None
            bucket = self._bucket(sec)
            bucket.requests += count
            bucket.servers[server] = bucket.servers.get(server, 0) + count
            cls = status[0] - 49  # b"2" -> 1
            if 0 <= cls < 5:
                bucket.classes[cls] += count
                totals.classes[cls] += count
            self._count_status(bucket, status, count)
        valid = [sec for sec in (seconds[t] for t, _ in per_second) if sec is not None]
        lo, hi = min(valid), max(valid)
        if totals.newest is None or hi > totals.newest:
            totals.newest = hi
        self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
        self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)

    def _count_status(self, bucket: SecondBucket, status: bytes, count: int) -> None:
        raise NotImplementedError

    def _keep_recent(
        self,
        rows: list[tuple[bytes, ...]],
        per_second: Counter[tuple[bytes, bytes]],
        seconds: dict[bytes, int | None],
        cutoff: float | None,
    ) -> tuple[list[tuple[bytes, ...]], Counter[tuple[bytes, bytes]], int]:
        """Drop rows older than ``cutoff`` and rows whose time does not parse (those count as
        unparsed: the regex only checks the shape, e.g. a month "Foo" matches it)."""
        since = cutoff if cutoff is not None else float("-inf")
        keep = {t for t, s in seconds.items() if s is not None and s >= since}
        bad = sum(n for (t, _), n in per_second.items() if seconds[t] is None)
        for t in [t for t, s in seconds.items() if s is None]:
            del seconds[t]
        if len(keep) != len(seconds) or bad:
            get_time = self._get_time
            rows = [r for r in rows if get_time(r) in keep]
            per_second = Counter({k: n for k, n in per_second.items() if k[0] in keep})
        return rows, per_second, bad

    def _net_counts(self, rows: list[tuple[bytes, ...]]) -> Counter[bytes]:
        """Requests per /24 (IPv4, captured by the regex) or /48 (IPv6, computed per client)."""
        nets = Counter(map(self._get_net, rows))
        if nets.pop(b"", 0):
            get_net, get_client = self._get_net, self._get["client"]
            for client, n in Counter(get_client(r) for r in rows if not get_net(r)).items():
                nets[subnet_of(client)] += n
        return nets

    @staticmethod
    def _merge(target: TopCounter, counts: Counter[bytes]) -> None:
        tc = target.counts
        for key, n in counts.items():
            tc[key] = tc.get(key, 0) + n
        if len(tc) > target.cap:
            target.prune()

    # ------------------------------------------------------------- the ring
    def _bucket(self, sec: int) -> SecondBucket:
        bucket = self.ring.get(sec)
        if bucket is None:
            bucket = self.ring[sec] = SecondBucket()
            self._order.append(sec)
            if len(self._order) > 1 and sec < self._order[-2]:
                self._order = deque(sorted(self._order))
            while self._order and self._order[0] <= sec - RING_SECONDS:
                self._drop(self._order.popleft())
        return bucket

    def _drop(self, sec: int) -> None:
        self.ring.pop(sec)

    def ring_series(self, end: int) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """Requests and status classes of each of the ``RING_SECONDS`` seconds up to ``end``."""
        seconds = range(end - RING_SECONDS + 1, end + 1)
        ring = self.ring
        per_second = tuple(ring[s].requests if s in ring else 0 for s in seconds)
        classes = tuple(tuple(ring[s].classes) if s in ring else (0, 0, 0, 0, 0) for s in seconds)
        return per_second, classes

    def tops(
        self, top_n: int, ranked: dict[str, list[tuple[bytes, int]]] | None = None
    ) -> dict[str, tuple[TopEntry, ...]]:
        """The top lists of a snapshot, by its field names (``top_ips`` …); ``ranked``: lists
        already ranked elsewhere, by dimension (``client`` …), instead of the counters'."""

        def top(
            dim: str, counter: TopCounter | None, render: Callable[[bytes], str] = _text
        ) -> tuple[TopEntry, ...]:
            if counter is None:
                return ()
            items = ranked[dim] if ranked and dim in ranked else counter.top(top_n)
            return tuple(TopEntry(render(k), n) for k, n in items)

        return {
            "top_ips": top("client", self.top["client"]),
            "top_subnets": top("net", self.nets, _net_text),
            "top_paths": top("path", self.top.get("path")),
            "top_user_agents": top("agent", self.top.get("agent")),
        }

    def estimated_tops(self, trimmed: set[str]) -> dict[str, bool]:
        """Which top lists are estimates (their counters dropped keys)."""
        return {
            name: True
            for name, dim, c in (
                ("top_ips", "client", self.top.get("client")),
                ("top_paths", "path", self.top.get("path")),
                ("top_user_agents", "agent", self.top.get("agent")),
                ("top_subnets", "net", self.nets),
            )
            if c is not None and (c.estimated or dim in trimmed)
        }


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _net_text(net: bytes) -> str:
    text = net.decode("ascii", "replace")
    return text if "/" in text else f"{text}.0/24"
