"""The live sliding window of one service: what the console and ``stats --follow`` show.

Fed by :class:`opsconsole.fleet.ServicePipeline` with chunks as the followers deliver them (in
the pipeline's worker thread, never on a front end's event loop).  Top lists cover the last
``window`` seconds by the log's timestamps; each second keeps its own counters so they can be
subtracted when they leave the window, and :meth:`LiveWindow.advance` (called by the pipeline
once a second) takes them out.  :meth:`LiveWindow.snapshot` only reads: it changes nothing.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable
from operator import itemgetter

from ..logs.logformat import LogFormat
from ..logs.summary import AgentSecond, AgentSummary
from .sketch import DistinctCounter, SeenFilter
from .snapshot import Snapshot
from .traffic import SecondBucket, TrafficCounts

NEW_IP_SECONDS = 10
"""The new-IP rate is the mean over this many full seconds."""


class LiveWindow(TrafficCounts):
    """The last ``window`` seconds of one service's traffic across its servers."""

    def __init__(
        self,
        fmt: LogFormat | str = "combined",
        *,
        window: float = 60.0,
        cap: int = 200_000,
        bucket_cap: int = 2_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(fmt, cap=cap)
        self.window = window
        self.bucket_cap = bucket_cap
        """Distinct keys one second keeps per list before its tail is dropped."""
        self.clock = clock
        self.seen = SeenFilter()
        """Which clients are new, for the new-IP rate."""

    # ----------------------------------------------------------------- feeding
    def _count_status(self, bucket: SecondBucket, status: bytes, count: int) -> None:
        return None  # status codes are a dimension of the window counters

    def _count_rows(self, rows: list[tuple[bytes, ...]], seconds: dict[bytes, int | None]) -> None:
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
            adds = {dim: Counter(map(get, group)) for dim, get in self._get.items()}
            adds["net"] = self._net_counts(group)
            self._add_second(sec, adds)

    def add_summary(self, summary: AgentSummary, server: str = "") -> None:
        """Count what the aggregating agent read on ``server`` (DESIGN §4): the same counters
        as :meth:`add_chunk` on the same lines, to within the agent's cut-off tails."""
        totals = self._account(server, summary.lines, summary.unparsed, summary.samples)
        epoch = self.parser.epoch
        per_second: Counter[tuple[bytes, bytes]] = Counter()
        seconds: dict[bytes, int | None] = {}
        good: list[tuple[int, AgentSecond]] = []
        for second in summary.seconds:
            sec = epoch(second.time)
            if sec is None:  # a time of the right shape but no date: unparsed, as raw
                bad = sum(second.status.values())
                totals.unparsed += bad
                self.unparsed += bad
                continue
            seconds[second.time] = sec
            for status, n in second.status.items():
                per_second[second.time, status] += n
            good.append((sec, second))
        if not good:
            return
        lo = min(sec for sec, _ in good)
        self.earliest = lo if self.earliest is None else min(self.earliest, lo)
        self._count_seconds(server, totals, sum(per_second.values()), per_second, seconds)
        horizon = self._horizon()
        for sec, second in good:
            if sec <= horizon:
                continue
            adds = {d: c for d, c in second.dims.items() if d in self._get or d == "net"}
            adds["status"] = second.status
            self._add_second(sec, adds, second)

    def _add_second(
        self, sec: int, adds: dict[str, Counter[bytes]], agent: AgentSecond | None = None
    ) -> None:
        """Add one second's counts (of one chunk or one agent message) to the window."""
        bucket = self._bucket(sec)
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
        clients = adds.get("client", Counter())
        bucket.distinct.add_many(set(clients))
        bucket.new_ips += self.seen.add_new(clients, float(sec))
        if agent is not None:
            bucket.trimmed.update(agent.trimmed)
            if agent.hashes:
                bucket.distinct.add_hashes(agent.hashes)
            bucket.new_ips += agent.new_cut

    # ------------------------------------------------------------- the window
    def _horizon(self) -> int:
        """Seconds at or before this are outside the window."""
        return int(self.clock() - self.window)

    def _drop(self, sec: int) -> None:
        self._expire_bucket(self.ring.pop(sec))

    def _expire_bucket(self, bucket: SecondBucket) -> None:
        for dim, c in bucket.counts.items():
            (self.nets if dim == "net" else self.top[dim]).subtract(c)
        bucket.counts = {}
        bucket.distinct = None

    def advance(self) -> None:
        """Take the seconds that left the window out of the top lists (once a second)."""
        horizon = self._horizon()
        for sec in self._order:
            if sec > horizon:
                break
            bucket = self.ring[sec]
            if bucket.counts:
                self._expire_bucket(bucket)

    # ---------------------------------------------------------------- reading
    def covered(self, end: int) -> float:
        """Seconds of the window the logs cover: less than the window while the logs are
        younger than it (a lab started 20 s ago covers 20 s, and rates divide by 20)."""
        if self.earliest is None:
            return float(self.window)
        return float(min(self.window, max(1, end - self.earliest + 1)))

    def snapshot(self, service: str, *, top_n: int = 10) -> Snapshot:
        """The window as of now.  Reads only: call :meth:`advance` first to expire it."""
        end = int(self.clock())
        start = end - int(self.window)
        ring = self.ring
        in_window = [ring[s] for s in self._order if start < s <= end]
        requests = sum(b.requests for b in in_window)
        servers: Counter[str] = Counter()
        status: Counter[bytes] = Counter()
        for b in in_window:
            servers.update(b.servers)
            status.update(b.counts.get("status", Counter()))
        distinct = DistinctCounter(1024)
        distinct.merge(b.distinct for b in in_window if b.distinct is not None)
        trimmed = set().union(*(b.trimmed for b in in_window))
        exact_ips = not self.top["client"].estimated and "client" not in trimmed
        unique = len(self.top["client"]) if exact_ips else distinct.estimate()
        recent = [ring[s].new_ips for s in range(end - NEW_IP_SECONDS, end) if s in ring]
        span = self.covered(end)
        per_second, classes = self.ring_series(end)
        estimated = self.estimated_tops(trimmed)
        if not exact_ips:
            estimated["unique_ips"] = True
        for name in self.servers:
            servers.setdefault(name, 0)
        tops = self.tops(top_n)
        return Snapshot(
            service=service,
            time_from=float(end - span),
            time_to=float(end),
            requests=requests,
            unparsed=self.unparsed,
            rps=float(ring[end - 1].requests) if (end - 1) in ring else 0.0,
            unique_ips=unique,
            status={k.decode(): v for k, v in sorted(status.items())},
            servers=dict(servers),
            per_second=per_second,
            classes=classes,
            estimated=estimated,
            unparsed_samples=tuple(self.unparsed_samples),
            new_ips_per_s=sum(recent) / NEW_IP_SECONDS,
            span=span,
            top_ips=tops["top_ips"],
            top_subnets=tops["top_subnets"],
            top_paths=tops["top_paths"],
            top_user_agents=tops["top_user_agents"],
        )
