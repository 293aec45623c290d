"""The requests ``suggest`` analyses: a window and its baseline, column by column.

:class:`RequestLog` is what a history read feeds (``add_chunk(bytes, server)``, like the
statistics) and what the live console keeps for its last half hour: every parsed line becomes
one row of integer columns, each text value (client, request target, user agent, referer) is
stored once and referred to by its index, so a million requests cost tens of megabytes and the
analysis works on the few distinct values instead of every line.  :meth:`RequestLog.table`
freezes it into a :class:`Table` of NumPy arrays for one window and baseline.

Bounded: past ``max_rows`` rows the oldest are dropped (the live buffer); a history read asks for
just the span it needs.  Lines that do not parse are counted.  Standard library, NumPy and
:mod:`opsconsole.logs` only.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from ..logs.logformat import LogFormat, compile_format
from ..logs.parse import LineParser, ParsedChunk

EXTRA = frozenset({"referer"})
"""The fields the analysis needs beyond the statistics' (``combined`` has them all)."""

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def detect_format(fmt: str) -> LogFormat:
    """``fmt`` compiled with the referer captured (cached, like every format)."""
    return compile_format(fmt, EXTRA)


class _Values:
    """Distinct values of one column, each stored once."""

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}
        self.values: list[bytes] = []

    def ids(self, column: list[bytes]) -> list[int]:
        index, values = self.index, self.values
        out = []
        for v in column:
            i = index.get(v)
            if i is None:
                i = index[v] = len(values)
                values.append(v)
            out.append(i)
        return out


class RequestLog:
    """Parsed requests, appended chunk by chunk (one producer thread)."""

    def __init__(self, fmt: LogFormat | str = "combined", *, max_rows: int = 3_000_000) -> None:
        self.format = fmt if isinstance(fmt, LogFormat) else detect_format(fmt)
        self.parser = LineParser(self.format)
        self.max_rows = max_rows
        g = self.format.groups
        self._get: dict[str, Callable[[tuple[bytes, ...]], bytes]] = {
            name: itemgetter(g[field])
            for name, field in (
                ("client", "client"), ("method", "method"), ("target", "path"),
                ("status", "status"), ("agent", "agent"), ("referer", "referer"),
            )
            if field in g
        }  # fmt: skip
        self._time = itemgetter(g["time"])
        self.clients, self.methods, self.targets = _Values(), _Values(), _Values()
        self.agents, self.referers, self.servers = _Values(), _Values(), _Values()
        self.cols: dict[str, array.array[int]] = {
            name: array.array("q")
            for name in ("t", "client", "method", "target", "status", "agent", "referer", "server")
        }
        self.lines = 0
        self.unparsed = 0
        self.dropped = 0
        """Rows dropped from the front to stay within ``max_rows``."""
        self.limits: tuple[float, float] = (float("-inf"), float("inf"))
        """Rows outside ``[lo, hi)`` are left out: set to a read's span so that the lines a read
        takes in beyond it (its start is found approximately) are not counted twice when
        several spans are read into one log."""
        self.newest: int | None = None
        """The newest time read (chunks may come in any order: several servers, older spans)."""

    @property
    def rows(self) -> int:
        return len(self.cols["t"])

    def add_chunk(self, chunk: bytes, server: str = "") -> None:
        self.add_parsed(self.parser.parse(chunk), server)

    def add_parsed(self, parsed: ParsedChunk, server: str = "") -> None:
        """Add rows parsed already (by the aggregating agent on the server, DESIGN §4)."""
        self.lines += parsed.lines
        self.unparsed += parsed.unparsed
        rows = parsed.rows
        if not rows:
            return
        epoch = self.parser.epoch
        stamps = [epoch(t) for t in map(self._time, rows)]
        if None in stamps:  # a time of the right shape but no date (month "Foo")
            keep = [i for i, t in enumerate(stamps) if t is not None]
            self.unparsed += len(rows) - len(keep)
            rows = [rows[i] for i in keep]
            stamps = [stamps[i] for i in keep]
        times = [t for t in stamps if t is not None]
        lo, hi = self.limits
        if times and (min(times) < lo or max(times) >= hi):
            keep = [i for i, t in enumerate(times) if lo <= t < hi]  # a read's span, once
            rows = [rows[i] for i in keep]
            times = [times[i] for i in keep]
        if not rows:
            return
        cols = self.cols
        newest = max(times)
        if self.newest is None or newest > self.newest:
            self.newest = newest
        cols["t"].extend(times)
        for name, values in (
            ("client", self.clients), ("method", self.methods), ("target", self.targets),
            ("agent", self.agents), ("referer", self.referers),
        ):  # fmt: skip
            get = self._get.get(name)
            column = list(map(get, rows)) if get is not None else [b"-"] * len(rows)
            cols[name].extend(values.ids(column))
        status = self._get["status"]
        cols["status"].extend(int(s) for s in map(status, rows))
        cols["server"].extend([self.servers.ids([server.encode()])[0]] * len(rows))
        if self.rows > self.max_rows:
            self._trim(self.rows - self.max_rows * 3 // 4)  # not again at every chunk

    def _trim(self, n: int) -> None:
        n = min(n, self.rows)
        for name, col in self.cols.items():
            self.cols[name] = col[n:]
        self.dropped += n

    def forget_before(self, t: float) -> None:
        """Drop the rows logged before ``t`` (the live buffer keeps window + baseline)."""
        times = self.cols["t"]
        if times and times[0] < t:
            cut = int(np.searchsorted(np.frombuffer(times, dtype=np.int64), t))
            if cut:
                self._trim(cut)

    def latest(self) -> int | None:
        return self.newest if self.cols["t"] else None

    def table(self, start: float, split: float, end: float) -> Table:
        """The rows with ``start < t <= end``; ``t > split`` is the window, the rest baseline."""
        t = np.frombuffer(self.cols["t"], dtype=np.int64).copy()
        keep = (t > start) & (t <= end)
        cols = {
            name: np.frombuffer(col, dtype=np.int64)[keep].copy() for name, col in self.cols.items()
        }
        return Table(
            t=cols["t"],
            client=cols["client"],
            method=cols["method"],
            target=cols["target"],
            status=cols["status"],
            agent=cols["agent"],
            referer=cols["referer"],
            server=cols["server"],
            window=cols["t"] > split,
            clients=list(self.clients.values),
            methods=list(self.methods.values),
            targets=list(self.targets.values),
            agents=list(self.agents.values),
            referers=list(self.referers.values),
            start=start,
            split=split,
            end=end,
            unparsed=self.unparsed,
            lines=self.lines,
        )


@dataclass
class Table:
    """A window and its baseline: one entry per request in each array, the distinct values in
    the lists (an array holds indexes into its list)."""

    t: IntArray
    client: IntArray
    method: IntArray
    target: IntArray
    status: IntArray
    agent: IntArray
    referer: IntArray
    server: IntArray
    window: BoolArray
    clients: list[bytes]
    methods: list[bytes]
    targets: list[bytes]
    agents: list[bytes]
    referers: list[bytes]
    start: float
    split: float
    end: float
    unparsed: int = 0
    lines: int = 0

    @property
    def baseline(self) -> BoolArray:
        return ~self.window

    @property
    def window_seconds(self) -> float:
        return self.end - self.split

    @property
    def baseline_seconds(self) -> float:
        return self.split - self.start

    def __len__(self) -> int:
        return len(self.t)
