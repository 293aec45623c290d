"""Per-service traffic statistics: per-second buckets, sliding-window top lists, totals.

Fed by the pipeline (:mod:`opsconsole.fleet`) and by ``opsconsole stats`` with
:class:`~opsconsole.logs.parse.ParsedChunk` batches, one ``add`` per chunk and server; read with
:meth:`TrafficStats.snapshot`, which returns an immutable
:class:`~opsconsole.stats.snapshot.Snapshot`.

Two modes share this code:

* ``window=None`` (history: ``stats --since``): every line counts; top lists are over all of it.
  This is the hot path of the parse benchmark, so it updates counters straight from the row
  tuples with C-level ``Counter.update(map(itemgetter(i), rows))``.
* ``window=60.0`` (live): top lists cover the last ``window`` seconds by the log's timestamps; each
  second keeps its own counters so they can be subtracted when they leave the window.

Per-second request and status-class counts are kept for the last ``RING_SECONDS`` in both modes.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter

from ..logs.logformat import LogFormat
from ..logs.parse import LineParser, ParsedChunk
from . import fast
from .sketch import DistinctCounter, SeenFilter, TopCounter
from .snapshot import Snapshot, TopEntry, subnet_of

RING_SECONDS = 900
"""15 minutes of per-second buckets for rate and status charts."""
NEW_IP_SECONDS = 10
"""The new-IP rate is the mean over this many full seconds."""

DIMENSIONS = ("client", "path", "agent", "method", "status")


@dataclass
class SecondBucket:
    requests: int = 0
    classes: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])
    """Requests by status class 1xx..5xx."""
    # Live mode only: what this second added to the window counters, per dimension.
    counts: dict[str, Counter[bytes]] = field(default_factory=dict)
    trimmed: set[str] = field(default_factory=set)
    """Dimensions whose long tail was dropped to bound memory (their counts are estimates)."""
    distinct: DistinctCounter | None = None
    new_ips: int = 0
    """Live mode: clients of this second not seen recently (:class:`SeenFilter`)."""


@dataclass
class ServerTotals:
    requests: int = 0
    unparsed: int = 0
    lines: int = 0


class TrafficStats:
    """Statistics of one service across its servers."""

    def __init__(
        self,
        fmt: LogFormat | str = "combined",
        *,
        window: float | None = 60.0,
        cap: int = 200_000,
        bucket_cap: int = 2_000,
        clock: Callable[[], float] = time.time,
        since: float | None = None,
    ) -> None:
        self.parser = LineParser(fmt)
        self.format = self.parser.format
        self.window = window
        self.bucket_cap = bucket_cap
        """Live mode: distinct keys one second keeps per list before its tail is dropped."""
        self.clock = clock
        self.since = since
        """History mode: ignore lines with timestamps before this epoch second."""
        g = self.format.groups
        self._get = {d: itemgetter(g[d]) for d in DIMENSIONS if d in g}
        self._get_net = itemgetter(g["net"])
        self._get_time = itemgetter(g["time"])
        self._time_status = itemgetter(g["time"], g["status"])
        self.top = {d: TopCounter(cap) for d in self._get}
        self.nets = TopCounter(cap)
        self.distinct: DistinctCounter | None = None  # history mode, once "client" is pruned
        self.seen = SeenFilter() if window is not None else None
        """Live mode: which clients are new, for the new-IP rate."""
        # History mode of a plain `combined` log: the optional C extension counts whole chunks.
        self._fast = window is None and since is None and fast.available()
        self._fast = self._fast and fast.supports(self.format)
        self.hll: bytearray | None = fast.new_hll() if self._fast else None
        """History mode with the extension: a HyperLogLog of every client, for unique_ips."""
        self.ring: dict[int, SecondBucket] = {}
        self._order: deque[int] = deque()
        self.servers: dict[str, ServerTotals] = {}
        self.requests = 0
        self.unparsed = 0
        self.unparsed_samples: deque[str] = deque(maxlen=20)
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.status_total: Counter[bytes] = Counter()

    # ----------------------------------------------------------------- feeding
    def add_chunk(self, chunk: bytes, server: str = "") -> None:
        """Parse and count a chunk of complete lines read from ``server``."""
        if self._fast and b"/0000:" not in chunk:  # year 0000 has no epoch: Python path
            self._add_fast(chunk, server)
        else:
            self.add(self.parser.parse(chunk), server)

    def _add_fast(self, chunk: bytes, server: str) -> None:
        """The C extension's equivalent of ``add(parser.parse(chunk))`` in history mode."""
        per_second: Counter[tuple[bytes, bytes]] = Counter()
        others: Counter[bytes] = Counter()
        top = self.top
        lines, parsed = fast.count_combined(
            chunk, top["client"].counts, self.nets.counts, others, top["path"].counts,
            top["agent"].counts, top["method"].counts, per_second, self.hll,
        )  # fmt: skip
        for client, n in others.items():  # IPv6 (and non-IP) clients: /48 in Python
            self.nets.counts[subnet_of(client)] += n
        for counter in (*top.values(), self.nets):
            if len(counter) > counter.cap:
                counter.prune()
        unparsed, samples = 0, list[str]()
        if parsed < lines:
            lines, unparsed, samples = self.parser.account(chunk, lines, parsed)
        self._account(server, lines, unparsed, samples)
        if parsed:
            seconds = {t: self.parser.epoch(t) for t, _ in per_second}
            self._count_seconds(self.servers[server], parsed, per_second, seconds)

    def _account(self, server: str, lines: int, unparsed: int, samples: list[str]) -> ServerTotals:
        totals = self.servers.setdefault(server, ServerTotals())
        totals.unparsed += unparsed
        totals.lines += lines
        self.unparsed += unparsed
        self.unparsed_samples.extend(samples)
        return totals

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
        if self.since is not None or None in seconds.values():
            rows, per_second, bad = self._keep_recent(rows, per_second, seconds)
            totals.unparsed += bad
            self.unparsed += bad
            if not rows:
                return
        self._count_seconds(totals, len(rows), per_second, seconds)
        if self.window is None:
            self._count_history(rows)
        else:
            self._count_live(rows, seconds)

    def _count_seconds(
        self,
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
            cls = status[0] - 49  # b"2" -> 1
            if 0 <= cls < 5:
                bucket.classes[cls] += count
            self.status_total[status] += count
        valid = [sec for sec in (seconds[t] for t, _ in per_second) if sec is not None]
        lo, hi = min(valid), max(valid)
        self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
        self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)

    def _keep_recent(
        self,
        rows: list[tuple[bytes, ...]],
        per_second: Counter[tuple[bytes, bytes]],
        seconds: dict[bytes, int | None],
    ) -> tuple[list[tuple[bytes, ...]], Counter[tuple[bytes, bytes]], int]:
        """Drop rows older than ``since`` and rows whose time does not parse (those count as
        unparsed: the regex only checks the shape, e.g. a month "Foo" matches it)."""
        since = self.since if self.since is not None else float("-inf")
        keep = {t for t, s in seconds.items() if s is not None and s >= since}
        bad = sum(n for (t, _), n in per_second.items() if seconds[t] is None)
        for t in [t for t, s in seconds.items() if s is None]:
            del seconds[t]
        if len(keep) != len(seconds) or bad:
            get_time = self._get_time
            rows = [r for r in rows if get_time(r) in keep]
            per_second = Counter({k: n for k, n in per_second.items() if k[0] in keep})
        return rows, per_second, bad

    def _count_history(self, rows: list[tuple[bytes, ...]]) -> None:
        for dim, get in self._get.items():
            if dim == "status":
                continue  # exact in status_total
            counter = self.top[dim]
            if dim == "client" and self.hll is not None:
                fast.hll_add(self.hll, set(map(get, rows)))
            elif (
                dim == "client" and self.distinct is None and len(counter) + len(rows) > counter.cap
            ):
                self.distinct = DistinctCounter()
                self.distinct.add_many(counter.counts)
            counter.update(map(get, rows))
            if dim == "client" and self.distinct is not None:
                self.distinct.add_many(set(map(get, rows)))
        self._merge(self.nets, self._net_counts(rows))

    def _net_counts(self, rows: list[tuple[bytes, ...]]) -> Counter[bytes]:
        """Requests per /24 (IPv4, captured by the regex) or /48 (IPv6, computed per client)."""
        nets = Counter(map(self._get_net, rows))
        if nets.pop(b"", 0):
            get_net, get_client = self._get_net, self._get["client"]
            for client, n in Counter(get_client(r) for r in rows if not get_net(r)).items():
                nets[subnet_of(client)] += n
        return nets

    def _count_live(self, rows: list[tuple[bytes, ...]], seconds: dict[bytes, int | None]) -> None:
        if len(seconds) == 1:
            groups: Iterable[tuple[int, list[tuple[bytes, ...]]]] = [
                (next(iter(seconds.values())) or 0, rows)
            ]
        else:
            by_sec: dict[int, list[tuple[bytes, ...]]] = {}
            get_time = self._get_time
            for r in rows:
                sec = seconds[get_time(r)]
                if sec is not None:
                    by_sec.setdefault(sec, []).append(r)
            groups = by_sec.items()
        horizon = self._horizon()
        for sec, group in groups:
            if sec <= horizon:
                continue  # already outside the window: it counts in rates only
            bucket = self._bucket(sec)
            adds = {dim: Counter(map(get, group)) for dim, get in self._get.items()}
            adds["net"] = self._net_counts(group)
            for dim, counts in adds.items():
                window = self.nets if dim == "net" else self.top[dim]
                self._merge(window, counts)
                held = bucket.counts.setdefault(dim, Counter())
                held.update(counts)
                if len(held) > self.bucket_cap:
                    # Bound memory under a flood of distinct keys: keep this second's largest
                    # counts, and take the dropped tail out of the window too, so the window
                    # stays exactly the sum of its seconds.
                    kept = heapq.nlargest(self.bucket_cap // 2, held.items(), key=itemgetter(1))
                    dropped = held
                    for key, _ in kept:
                        del dropped[key]
                    window.subtract(dropped)
                    bucket.counts[dim] = Counter(dict(kept))
                    bucket.trimmed.add(dim)
            if bucket.distinct is None:
                bucket.distinct = DistinctCounter(1024)
            bucket.distinct.add_many(set(adds["client"]))
            if self.seen is not None:
                bucket.new_ips += self.seen.add_new(adds["client"], float(sec))

    @staticmethod
    def _merge(target: TopCounter, counts: Counter[bytes]) -> None:
        tc = target.counts
        for key, n in counts.items():
            tc[key] = tc.get(key, 0) + n
        if len(tc) > target.cap:
            target.prune()

    # ------------------------------------------------------------- the window
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

    def _horizon(self) -> float:
        """Seconds at or before this are outside the live window."""
        assert self.window is not None
        return int(self.clock()) - self.window

    def _drop(self, sec: int) -> None:
        bucket = self.ring.pop(sec)
        self._expire_bucket(bucket)

    def _expire_bucket(self, bucket: SecondBucket) -> None:
        for dim, c in bucket.counts.items():
            (self.nets if dim == "net" else self.top[dim]).subtract(c)
        bucket.counts = {}
        bucket.distinct = None

    def expire(self) -> None:
        """Live mode: forget top-list counts of seconds that left the window."""
        if self.window is None:
            return
        horizon = self._horizon()
        for sec in self._order:
            if sec > horizon:
                break
            bucket = self.ring[sec]
            if bucket.counts:
                self._expire_bucket(bucket)

    # ---------------------------------------------------------------- reading
    def snapshot(self, service: str, *, top_n: int = 10, follow: bool = False) -> Snapshot:
        """An immutable view: totals and top lists (window or history), rates per second."""
        now = self.clock()
        if self.window is not None:
            self.expire()
            end = int(now)
            start = end - int(self.window)
            in_window = [self.ring[s] for s in self._order if start < s <= end]
            requests = sum(b.requests for b in in_window)
            span = self.window
            rps = (
                float(self.ring[end - 1].requests)
                if follow and (end - 1) in self.ring
                else (requests / span if span else 0.0)
            )
            status: Counter[bytes] = Counter()
            for b in in_window:
                status.update(b.counts.get("status", Counter()))
            distinct = DistinctCounter(1024)
            distinct.merge(b.distinct for b in in_window if b.distinct is not None)
            trimmed = set().union(*(b.trimmed for b in in_window))
            exact_ips = not self.top["client"].estimated and "client" not in trimmed
            unique = len(self.top["client"]) if exact_ips else distinct.estimate()
            t_from, t_to = float(start), float(end)
            recent = [
                self.ring[s].new_ips for s in range(end - NEW_IP_SECONDS, end) if s in self.ring
            ]
            new_ips_per_s: float | None = sum(recent) / NEW_IP_SECONDS
        else:
            new_ips_per_s = None
            trimmed = set()
            requests = self.requests
            status = self.status_total
            if self.first_ts is not None and self.last_ts is not None:
                t_from = float(self.since if self.since is not None else self.first_ts)
                t_to = float(max(self.last_ts, t_from))
            else:
                t_from = t_to = float(self.since if self.since is not None else now)
            span = max(t_to - t_from + 1, 1.0) if requests else 0.0
            rps = requests / span if span else 0.0
            exact_ips = not self.top["client"].estimated
            if exact_ips:
                unique = len(self.top["client"])
            elif self.hll is not None:
                unique = fast.hll_estimate(self.hll)
            else:
                unique = self.distinct.estimate() if self.distinct is not None else 0
        ring_end = int(now) if self.window is not None else (self.last_ts or int(now))
        per_second = tuple(
            self.ring[s].requests if s in self.ring else 0
            for s in range(ring_end - RING_SECONDS + 1, ring_end + 1)
        )
        classes = tuple(
            tuple(self.ring[s].classes) if s in self.ring else (0, 0, 0, 0, 0)
            for s in range(ring_end - RING_SECONDS + 1, ring_end + 1)
        )

        def top(
            counter: TopCounter, render: Callable[[bytes], str] = _text
        ) -> tuple[TopEntry, ...]:
            return tuple(TopEntry(render(k), n) for k, n in counter.top(top_n))

        estimated = {
            name: True
            for name, dim, c in (
                ("top_ips", "client", self.top.get("client")),
                ("top_paths", "path", self.top.get("path")),
                ("top_user_agents", "agent", self.top.get("agent")),
                ("top_subnets", "net", self.nets),
            )
            if c is not None and (c.estimated or dim in trimmed)
        }
        if not exact_ips:
            estimated["unique_ips"] = True
        return Snapshot(
            service=service,
            time_from=t_from,
            time_to=t_to,
            requests=requests,
            unparsed=self.unparsed,
            rps=rps,
            unique_ips=unique,
            status={k.decode(): v for k, v in sorted(status.items())},
            top_ips=top(self.top["client"]),
            top_subnets=top(self.nets, _net_text),
            top_paths=top(self.top["path"]) if "path" in self.top else (),
            top_user_agents=top(self.top["agent"]) if "agent" in self.top else (),
            servers={name: t.requests for name, t in self.servers.items()},
            per_second=per_second,
            classes=classes,
            estimated=estimated,
            unparsed_samples=tuple(self.unparsed_samples),
            new_ips_per_s=new_ips_per_s,
        )


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


def _net_text(net: bytes) -> str:
    text = net.decode("ascii", "replace")
    return text if "/" in text else f"{text}.0/24"
