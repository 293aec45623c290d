"""A service's traffic over the report's period: the log lines read, per second and per minute.

:class:`LogTraffic` is what the report's log reads feed (:mod:`.reading`): a
:class:`~opsconsole.detect.RequestLog` of the lines read (a whole read, or the chunks of a sampled
one) and, where a read was sampled, the :class:`Gap` s of log bytes it skipped, each an estimate
of the requests logged between the lines around it.  :meth:`LogTraffic.series` turns both into
per-second counts (requests, status classes, refusals, 503s); :meth:`LogTraffic.minutes` into the
report's per-minute timeline, with the unique and new client IPs of the lines read.  Pure logic:
standard library, NumPy and :mod:`opsconsole.detect`'s request table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from ..detect import RequestLog, detect_format

REFUSED = (403, 444, 429)
"""The answers of the controls: a block or filter (403, 444), the rate limit (429)."""
UNAVAILABLE = 503
"""Maintenance, or an overloaded upstream."""

# Rows of a series: requests, then the classes 1xx..5xx, refused, 503.
REQUESTS, REFUSALS, UNAVAILABLES = 0, 6, 7
ROWS = 8

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Gap:
    """Log bytes a sampled read skipped: the requests they hold (their size over the mean line
    size of the sample), spread evenly over the seconds between the lines around them."""

    server: str
    t0: int
    t1: int
    requests: float
    mix: tuple[float, ...]
    """The shares of classes 1xx..5xx, refused and 503 among the sampled lines around it."""


@dataclass
class ServerRead:
    """How one server's log read went."""

    server: str
    error: str | None = None
    size: int = 0
    """Bytes of log from the period's start to its end."""
    read: int = 0
    """Bytes actually read (less than ``size`` when sampled)."""
    sampled: bool = False
    files: tuple[str, ...] = ()
    """The log files the period spans, oldest first (the rotated one, then the current)."""

    def to_dict(self) -> dict[str, object]:
        return {"read": self.error is None, "error": self.error, "sampled": self.sampled,
                "log_bytes": self.size, "read_bytes": self.read,
                "files": list(self.files)}  # fmt: skip


@dataclass(frozen=True)
class Minute:
    """One minute of the timeline (every server of the service added up)."""

    start: int
    requests: int
    classes: tuple[int, int, int, int, int]
    """Requests answered 1xx, 2xx, 3xx, 4xx, 5xx."""
    refused: int
    """Answered 403, 444 or 429: what the controls refused."""
    unavailable: int
    """Answered 503."""
    unique_ips: int
    new_ips: int
    """Clients not seen earlier in the period (in its first minute, every client)."""

    @property
    def error_share(self) -> float:
        return self.classes[4] / self.requests if self.requests else 0.0

    @property
    def refused_share(self) -> float:
        return self.refused / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Window:
    """The traffic of a span (the minutes before or after an action)."""

    start: int
    seconds: int
    requests: int
    refused: int
    errors: int
    """Answered 5xx."""
    unavailable: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def passed(self) -> int:
        """What was let through (not refused by the controls)."""
        return self.requests - self.refused

    @property
    def passed_rps(self) -> float:
        return self.passed / self.seconds if self.seconds else 0.0

    @property
    def refused_share(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

    @property
    def error_share(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass
class LogTraffic:
    """The lines read from one service's logs between ``start`` and ``end`` (epoch seconds)."""

    log_format: str
    start: int
    end: int
    log: RequestLog = field(init=False)
    gaps: list[Gap] = field(default_factory=list)
    servers: dict[str, ServerRead] = field(default_factory=dict)
    _cache: tuple[tuple[int, int], tuple[int, int] | None, FloatArray] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        # Never trimmed: the reads are bounded by bytes per server (see :mod:`.reading`).
        self.log = RequestLog(detect_format(self.log_format), max_rows=1 << 62)
        self.log.limits = (self.start, self.end + 1)

    @property
    def sampled(self) -> bool:
        return any(s.sampled for s in self.servers.values())

    # --------------------------------------------------------------- feeding a sample
    def add_sample(self, server: str, chunks: Sequence[tuple[int, bytes]]) -> None:
        """Feed the chunks a sampled read took from ``server``'s log, in file order: (offset,
        bytes).  The first chunk starts at a line; a chunk that starts where the previous one
        ended continues it (so contiguous chunks are a whole read); otherwise its partial
        first and last lines are left out and the bytes between two chunks become a
        :class:`Gap`."""
        log = self.log
        anchors: list[tuple[int, int, int, int, FloatArray]] = []
        carry, carry_at, end_of_last, aligned = b"", 0, -1, True
        line_bytes = lines = 0
        for offset, raw in chunks:
            if offset == end_of_last:  # continues the previous chunk
                data, at = carry + raw, carry_at
            else:
                data, at, aligned = raw, offset, end_of_last < 0
            end_of_last = offset + len(raw)
            if not aligned:  # skip the partial first line
                cut = data.find(b"\n") + 1
                if not cut:
                    carry, carry_at = b"", at + len(data)
                    continue
                data, at, aligned = data[cut:], at + cut, True
            last = data.rfind(b"\n") + 1
            carry, carry_at = data[last:], at + last
            if not last:
                continue
            n0, before = log.rows, log.lines
            log.add_chunk(data[:last], server)
            line_bytes, lines = line_bytes + last, lines + log.lines - before
            if log.rows > n0:
                times = np.array(log.cols["t"][n0:], dtype=np.int64)  # a copy: the log grows
                status = np.array(log.cols["status"][n0:], dtype=np.int64)
                anchors.append((at, at + last, int(times.min()), int(times.max()), _mix(status)))
        if not lines:
            return
        mean = line_bytes / lines
        for (_, end, _, t_end, mix), (begin, _, t_begin, _, mix2) in pairwise(anchors):
            skipped = begin - end
            if skipped > 0:
                shares = (mix + mix2) / 2
                self.gaps.append(
                    Gap(server, t_end, max(t_end, t_begin), skipped / mean, tuple(shares))
                )

    # --------------------------------------------------------------- reading
    def covered(self) -> tuple[int, int] | None:
        """The first and last second logged in the period (None: no line)."""
        t = np.frombuffer(self.log.cols["t"], dtype=np.int64)
        if not len(t):
            return None
        return int(t.min()), int(t.max())

    def _whole(self) -> tuple[tuple[int, int] | None, FloatArray]:
        """``covered()`` and the series of the whole span, computed once per state of the
        reads (a report asks for the windows of many actions)."""
        key = (self.log.rows, len(self.gaps))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.covered(), self.series(self.start, self.end))
        return self._cache[1], self._cache[2]

    def series(self, start: int, end: int) -> FloatArray:
        """Per second from ``start`` to ``end`` inclusive: the rows requests, 1xx..5xx, refused,
        503 (floats: a sampled read's gaps are estimates)."""
        n = end - start + 1
        out = np.zeros((ROWS, n))
        t = np.frombuffer(self.log.cols["t"], dtype=np.int64)
        status = np.frombuffer(self.log.cols["status"], dtype=np.int64)
        keep = (t >= start) & (t <= end)
        at, status = t[keep] - start, status[keep]
        out[REQUESTS] = np.bincount(at, minlength=n)
        for row, hit in enumerate(_kinds(status), start=1):
            out[row] = np.bincount(at[hit], minlength=n)
        for gap in self.gaps:
            lo, hi = max(gap.t0, start), min(gap.t1, end)
            if lo > hi:
                continue
            per = gap.requests / (gap.t1 - gap.t0 + 1)
            out[REQUESTS, lo - start : hi - start + 1] += per
            out[1:, lo - start : hi - start + 1] += per * np.asarray(gap.mix)[:, None]
        return out

    def minutes(self, start: int, end: int) -> list[Minute]:
        """The timeline: each minute from the one holding ``start`` to the one holding ``end``."""
        first = start - start % 60
        count = (end - first) // 60 + 1
        per_second = self.series(first, first + count * 60 - 1)
        sums = np.rint(per_second.reshape(ROWS, count, 60).sum(axis=2)).astype(np.int64)
        unique, new = self._clients(first, count)
        return [
            Minute(
                start=first + 60 * i,
                requests=int(sums[REQUESTS, i]),
                classes=_classes(sums[1:6, i]),
                refused=int(sums[REFUSALS, i]),
                unavailable=int(sums[UNAVAILABLES, i]),
                unique_ips=int(unique[i]),
                new_ips=int(new[i]),
            )
            for i in range(count)
        ]

    def _clients(self, first: int, count: int) -> tuple[npt.NDArray[np.int64], ...]:
        """Distinct clients per minute, and clients first seen in each minute (lines read)."""
        t = np.frombuffer(self.log.cols["t"], dtype=np.int64)
        client = np.frombuffer(self.log.cols["client"], dtype=np.int64)
        minute = (t - first) // 60
        keep = (minute >= 0) & (minute < count)
        minute, client = minute[keep], client[keep]
        if not len(minute):
            zero = np.zeros(count, dtype=np.int64)
            return zero, zero
        pairs = np.unique(minute * (int(client.max()) + 1) + client)
        unique = np.bincount(pairs // (int(client.max()) + 1), minlength=count)
        seen = np.full(int(client.max()) + 1, count, dtype=np.int64)
        np.minimum.at(seen, client, minute)
        new = np.bincount(seen[seen < count], minlength=count)
        return unique, new

    def window(self, start: int, end: int) -> Window:
        """The traffic logged from ``start`` up to (not including) ``end``; a log that began
        later covers less (rates divide by the time covered, as in ``stats``)."""
        covered, whole = self._whole()
        first = covered[0] if covered else self.start
        lo, hi = max(start, self.start, first), min(end, self.end + 1)
        if hi <= lo:
            return Window(lo, 0, 0, 0, 0, 0)
        part = whole[:, lo - self.start : hi - self.start]
        sums = np.rint(part.sum(axis=1)).astype(np.int64)
        return Window(lo, hi - lo, int(sums[REQUESTS]), int(sums[REFUSALS]), int(sums[5]),
                      int(sums[UNAVAILABLES]))  # fmt: skip


def _classes(counts: npt.NDArray[np.int64]) -> tuple[int, int, int, int, int]:
    a, b, c, d, e = (int(n) for n in counts)
    return a, b, c, d, e


def _kinds(status: npt.NDArray[np.int64]) -> list[npt.NDArray[np.bool_]]:
    """Masks of the series' rows after requests: 1xx..5xx, refused, 503."""
    classes = status // 100
    return [
        *(classes == c for c in range(1, 6)),
        np.isin(status, REFUSED),
        status == UNAVAILABLE,
    ]


def _mix(status: npt.NDArray[np.int64]) -> FloatArray:
    return np.array([m.mean() for m in _kinds(status)], dtype=np.float64)
