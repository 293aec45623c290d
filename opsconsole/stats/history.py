"""Counting a span read back from the logs: ``opsconsole stats --since 15m|all``.

Fed by :meth:`opsconsole.fleet.Fleet.read_history` with batches of complete lines per server;
read once at the end with :meth:`HistoryCounts.snapshot`.  Every line at or after ``since``
counts, and the top lists are over all of it.  This is the hot path of the parse benchmark, so it
updates counters straight from the row tuples with C-level ``Counter.update(map(itemgetter(i),
rows))``, and a log read from the start (``since=None``) is counted by the optional C
extension (:mod:`.fast`) in one pass per chunk, in every format its scanner takes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from ..logs.logformat import LogFormat
from ..logs.parse import ParsedChunk
from . import fast
from .sketch import DistinctCounter, TopCounter
from .snapshot import Snapshot, subnet_of
from .traffic import SecondBucket, TrafficCounts

_TALLIED = (("clients", "client"), ("nets", "net"), ("paths", "path"), ("agents", "agent"),
            ("methods", "method"))  # fmt: skip
"""The tally's tables kept across chunks, and the top counter each goes to."""


class HistoryCounts(TrafficCounts):
    """The counts of one service's logs from ``since`` (epoch seconds; None: all of them)."""

    def __init__(
        self,
        fmt: LogFormat | str = "combined",
        *,
        since: float | None = None,
        cap: int = 200_000,
        clock: Callable[[], float] = time.time,
        accelerate: bool = True,
    ) -> None:
        super().__init__(fmt, cap=cap)
        self.since = since
        self.clock = clock
        self.status_total: Counter[bytes] = Counter()
        self.distinct: DistinctCounter | None = None  # once "client" is pruned
        # The optional C extension counts whole chunks, in any format whose regex its scanner
        # reproduces (fast.why_not says why another is not).
        self._program = fast.program(self.format) if fast.available() and accelerate else None
        self._fast = self._program is not None
        self.slow_path: str | None = None
        """Why the log is counted by the (slower) Python path, if it is."""
        if accelerate and self._program is None:
            self.slow_path = fast.why_not(self.format)
        self.hll: bytearray | None = fast.new_hll() if self._fast else None
        """With the extension: a HyperLogLog of every client, for unique_ips."""
        self._fields = [f for f, d in _TALLIED if self._has(d)] + ["others", "seconds"]
        self._tally = fast.Tally(self._fields, hll=True, v6nets=True) if self._fast else None
        """The C tables the fast path counts into (see :meth:`settle`)."""
        self._side = (
            fast.Tally(self._fields, hll=True, v6nets=True)
            if self._fast and since is not None
            else None
        )
        """With ``since``: where a chunk is counted first, merged into the tally only if none
        of its lines is older than ``since`` (else the Python path counts the chunk)."""

    # ----------------------------------------------------------------- feeding
    def add_chunk(self, chunk: bytes, server: str = "") -> None:
        if self._fast:
            self._add_fast([chunk], server)
        else:
            self.add(self.parser.parse(chunk), server)

    def add_pieces(self, pieces: list[bytes | memoryview], server: str = "") -> None:
        """:meth:`add_chunk` of the pieces' concatenation, which the fast path never makes
        (every piece but the last ends with a newline: a history read's batch)."""
        if self._fast:
            self._add_fast(pieces, server)
        else:
            self.add(self.parser.parse(b"".join(pieces)), server)

    def _add_fast(self, pieces: list[bytes | memoryview], server: str) -> None:
        """The C extension's equivalent of ``add(parser.parse(chunk))``.  The top lists' keys
        stay in the C tally until a table outgrows its counter's cap (:meth:`settle`); a
        snapshot ranks them where they are (:meth:`_ranked`).  The seconds are taken every
        chunk."""
        per_second: Counter[tuple[bytes, bytes]] = Counter()
        assert self._program is not None and self._tally is not None
        tally = self._side or self._tally
        lines, parsed, unsure = tally.count_many(pieces, self._program)
        whole: bytes | None = None

        def chunk() -> bytes:  # only for the rare lines Python must look at
            nonlocal whole
            if whole is None:
                one = pieces[0] if len(pieces) == 1 else None
                whole = one if isinstance(one, bytes) else b"".join(pieces)
            return whole

        tally.export(seconds=per_second)
        if self._side is not None:
            since = self.since
            assert since is not None
            epoch = self.parser.epoch
            if any((e := epoch(t)) is None or e < since for t, _ in per_second):
                # The few lines before ``since`` that a read from a line start includes: this
                # chunk goes the Python way, which drops them.
                self._side = fast.Tally(self._fields, hll=True, v6nets=True)
                self.add(self.parser.parse(chunk()), server)
                return
            self._tally.merge(self._side)
        sizes = self._tally.sizes()
        sizes["nets"] += sizes["others"]  # the others go to the nets with them
        self.settle(
            only={f for f, d in _TALLIED if self._has(d) and sizes[f] > self._counter(d).cap}
        )
        unparsed, samples = 0, list[str]()
        matched = parsed + len(unsure)  # what the regex matches
        if matched < lines:
            lines, unparsed, samples = self.parser.account(chunk(), lines, matched)
        totals = self._account(server, lines, unparsed, samples)
        if parsed:
            seconds = {t: self.parser.epoch(t) for t, _ in per_second}
            lo = min(s for s in seconds.values() if s is not None)
            self.earliest = lo if self.earliest is None else min(self.earliest, lo)
            self._count_seconds(server, totals, parsed, per_second, seconds)
        if unsure:  # times only Python can judge (year 0000…): its path counts or drops them
            text = chunk()
            rest = b"\n".join(text[a:b] for a, b in unsure)
            self.add(ParsedChunk(self.format.regex.findall(rest), 0, 0), server)

    def _ranked(self, top_n: int) -> tuple[dict[str, list[tuple[bytes, int]]], dict[str, int]]:
        """The top lists (and distinct keys) of the dimensions whose keys can be ranked where
        they are, the C tally's with the counter's, without handing them over (a flood's
        clients and paths would each become objects only to be ranked): those that would
        not outgrow their counter's cap.  The subnets always settle (Python maps some)."""
        ranked: dict[str, list[tuple[bytes, int]]] = {}
        sizes: dict[str, int] = {}
        if self._tally is None:
            return ranked, sizes
        for field, dim in _TALLIED:
            if field == "nets" or not self._has(dim):
                continue
            counter = self._counter(dim)
            got = self._tally.top(field, counter.counts, top_n, counter.cap)
            if got is not None:
                ranked[dim], sizes[dim] = got
        return ranked, sizes

    def _counter(self, dim: str) -> TopCounter:
        return self.nets if dim == "net" else self.top[dim]

    def settle(self, only: set[str] | None = None) -> None:
        """Hand what the C tally holds (``only`` those tables) to the top counters, which
        prune past their cap as ever.  :meth:`snapshot` settles the tables it cannot rank in
        place; the totals are the same before and after, only where they are held changes."""
        if self._tally is None:
            return
        dims = [(f, d) for f, d in _TALLIED if (only is None or f in only) and self._has(d)]
        if not dims and only is not None:
            return
        for field, dim in dims:
            if field != "nets":  # pruned in C: the keys it drops never become objects
                counter = self._counter(dim)
                pruned = self._tally.settle(field, counter.counts, counter.cap)
                if pruned is not None:
                    counter.take_pruned(*pruned)
        nets = "nets" in dict(dims)
        others: Counter[bytes] | None = Counter() if nets else None
        self._tally.export(
            nets=self.nets.counts if nets else None,
            others=others,
            hll=self.hll if only is None else None,
        )
        for client, n in (others or {}).items():  # the clients C did not map (hostnames…)
            self.nets.counts[subnet_of(client)] += n
        for _, dim in dims:
            counter = self._counter(dim)
            if len(counter) > counter.cap:
                counter.prune()

    def _has(self, dim: str) -> bool:
        return dim == "net" or dim in self.top

    def _cutoff(self) -> float | None:
        return self.since

    def _count_status(self, bucket: SecondBucket, status: bytes, count: int) -> None:
        self.status_total[status] += count

    def _count_rows(self, rows: list[tuple[bytes, ...]], seconds: dict[bytes, int | None]) -> None:
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

    # ---------------------------------------------------------------- reading
    def covered(self) -> tuple[float, float]:
        """(from, to) epoch seconds the counted logs cover.

        From ``since`` when the logs reach back beyond it (a line older than ``since`` was
        read), else from the first line: a log only 20 s old covers 20 s, not the 60 asked
        for, and its rate is divided by 20."""
        now = self.clock()
        if self.first_ts is None or self.last_ts is None:
            start = self.since if self.since is not None else now
            return float(start), float(max(start, now) if self.since is not None else start)
        start = self.first_ts
        if self.since is not None and self.earliest is not None and self.earliest < self.since:
            start = int(self.since)
        return float(start), float(max(self.last_ts, start))

    def snapshot(self, service: str, *, top_n: int = 10) -> Snapshot:
        """An immutable view of everything counted; changes no total."""
        ranked, sizes = self._ranked(top_n)
        self.settle(only={f for f, d in _TALLIED if d not in ranked})
        if self._tally is not None:
            self._tally.export(hll=self.hll)
        t_from, t_to = self.covered()
        requests = self.requests
        span = max(t_to - t_from + 1, 1.0) if requests else 0.0
        exact_ips = not self.top["client"].estimated
        if exact_ips:
            unique = sizes.get("client", len(self.top["client"]))
        elif self.hll is not None:
            unique = fast.hll_estimate(self.hll)
        else:
            unique = self.distinct.estimate() if self.distinct is not None else 0
        per_second, classes = self.ring_series(self.last_ts or int(self.clock()))
        estimated = self.estimated_tops(set())
        if not exact_ips:
            estimated["unique_ips"] = True
        tops = self.tops(top_n, ranked)
        return Snapshot(
            service=service,
            time_from=t_from,
            time_to=t_to,
            requests=requests,
            unparsed=self.unparsed,
            rps=requests / span if span else 0.0,
            unique_ips=unique,
            status={k.decode(): v for k, v in sorted(self.status_total.items())},
            servers={name: t.requests for name, t in self.servers.items()},
            per_second=per_second,
            classes=classes,
            estimated=estimated,
            unparsed_samples=tuple(self.unparsed_samples),
            span=span,
            top_ips=tops["top_ips"],
            top_subnets=tops["top_subnets"],
            top_paths=tops["top_paths"],
            top_user_agents=tops["top_user_agents"],
        )
