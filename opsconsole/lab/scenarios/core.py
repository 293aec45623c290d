"""The labeled request, the time frame of one run, and the randomness every scenario part shares.

Used by every module of :mod:`opsconsole.lab.scenarios`.  Standard library only.  Two kinds of
randomness: :func:`rng_for` gives each part of a scenario (one site's browsers, the flood …) its
own ``random.Random`` named by the seed and the part, so changing one part or leaving a site out
never shifts what another part draws; :func:`mix` is a stateless integer hash for facts that
several parts must agree on without sharing state (the address of household *k* of a network).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LabeledRequest:
    """One request as the site's nginx logs it, with its ground truth.

    ``target`` is the request-line target (path and query string, as sent); ``referer`` is ""
    when the request had none; ``status`` and ``bytes`` are what the lab's nginx answers (see
    :mod:`opsconsole.lab.scenarios.sites`).  ``actor`` names the class of client (``browser``,
    ``search-crawler`` … or the attack scenario's name).
    """

    time: float
    service: str
    client_ip: str
    method: str
    target: str
    user_agent: str
    referer: str
    status: int
    bytes: int
    attack: bool
    actor: str


@dataclass(frozen=True)
class Timeline:
    """``[start, start + baseline)`` is the baseline, the last ``window`` seconds the window."""

    start: float
    baseline: float
    window: float
    scale: float

    @property
    def window_start(self) -> float:
        return self.start + self.baseline

    @property
    def end(self) -> float:
        return self.start + self.baseline + self.window

    @property
    def duration(self) -> float:
        return self.baseline + self.window

    def volume(self, per_second: float, floor: float = 0.0) -> float:
        """A rate at this run's scale; ``floor`` keeps rare classes present at tiny scales."""
        return per_second * max(self.scale, floor)

    def count(self, n: float, minimum: int = 1) -> int:
        return max(minimum, round(n * self.scale))


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent generator for one part of one run (str seeds hash with SHA-512: stable)."""
    return random.Random(":".join(("opsconsole-scenarios", str(seed), *map(str, parts))))


_M64 = (1 << 64) - 1


def mix(*parts: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): the same inputs give the same output."""
    z = 0x9E3779B97F4A7C15
    for p in parts:
        z = (z + (p & _M64) + 0x9E3779B97F4A7C15) & _M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        z ^= z >> 31
    return z


def unit(*parts: int) -> float:
    """:func:`mix` mapped to [0, 1)."""
    return mix(*parts) / 18446744073709551616.0


def name_hash(text: str) -> int:
    return zlib.crc32(text.encode())


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation: exact enough for arrival counts, and O(1)
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def wobble(rng: random.Random, seconds: int, sigma: float, knot: float = 60.0) -> list[float]:
    """Per-second multipliers around 1: a log-normal random walk with knots every ``knot`` s,
    linearly interpolated, so traffic drifts the way real traffic does instead of staying flat."""
    knots = int(seconds / knot) + 2
    level, values = 0.0, []
    for _ in range(knots):
        level = 0.7 * level + rng.gauss(0.0, sigma)
        values.append(math.exp(level))
    out = []
    for s in range(seconds):
        x = s / knot
        i = int(x)
        f = x - i
        out.append(values[i] * (1 - f) + values[i + 1] * f)
    return out


def arrivals(rng: random.Random, t0: float, rates: Sequence[float]) -> Iterator[float]:
    """Times of a Poisson process whose rate in second ``i`` after ``t0`` is ``rates[i]``.

    Exact for a piecewise-constant rate: exponential steps of the integrated rate, so the cost
    is one draw per event plus one comparison per second, whatever the rate.
    """
    budget = rng.expovariate(1.0)
    pos = 0.0
    for i, rate in enumerate(rates):
        pos = 0.0
        while rate > 0 and budget < rate * (1.0 - pos):
            pos += budget / rate
            yield t0 + i + pos
            budget = rng.expovariate(1.0)
        budget -= rate * (1.0 - pos) if rate > 0 else 0.0


class Density:
    """Draws times in ``[t0, t0 + len(weights))`` with per-second probability ∝ ``weights``."""

    def __init__(self, t0: float, weights: Sequence[float]) -> None:
        self.t0 = t0
        self.cum = list(itertools.accumulate(weights))
        self.total = self.cum[-1] if self.cum else 0.0

    def sample(self, rng: random.Random) -> float:
        i = bisect.bisect_right(self.cum, rng.random() * self.total)
        return self.t0 + min(i, len(self.cum) - 1) + rng.random()


def pick(rng: random.Random, population: Sequence[T], cum: Sequence[float]) -> T:
    """One item of ``population`` with cumulative weights ``cum`` (``rng.choices`` without its
    per-call overhead: this runs for every request of a flood)."""
    return population[bisect.bisect(cum, rng.random() * cum[-1], 0, len(cum) - 1)]


def cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def zipf(n: int, s: float = 1.0) -> list[float]:
    """Cumulative Zipf weights over ``n`` ranks (rank 0 most popular)."""
    return cumulative(1.0 / (r + 1) ** s for r in range(n))


def ordered(episodes: Iterable[Sequence[LabeledRequest]]) -> Iterator[LabeledRequest]:
    """Time-ordered requests from episodes given in order of their first request.

    An episode (a browsing session, an ``apt update`` run, one poll) is a few requests close in
    time; every request of an episode is at or after the episode's first one.  Only the episodes
    still in progress are held in memory.
    """
    heap: list[tuple[float, int, LabeledRequest]] = []
    seq = 0
    for episode in episodes:
        if not episode:
            continue
        first = episode[0].time
        while heap and heap[0][0] <= first:
            yield heapq.heappop(heap)[2]
        for req in episode:
            heapq.heappush(heap, (req.time, seq, req))
            seq += 1
    while heap:
        yield heapq.heappop(heap)[2]


def ordered_many(streams: Iterable[Iterator[Sequence[LabeledRequest]]]) -> Iterator[LabeledRequest]:
    """:func:`ordered` over several streams of episodes, each in order of first request."""
    return ordered(heapq.merge(*streams, key=_first_time))


def _first_time(episode: Sequence[LabeledRequest]) -> float:
    return episode[0].time if episode else float("-inf")


def merge(streams: Iterable[Iterator[LabeledRequest]]) -> Iterator[LabeledRequest]:
    """Merge time-ordered streams (ties keep the order of ``streams``: deterministic)."""
    return heapq.merge(*streams, key=_time)


def _time(req: LabeledRequest) -> float:
    return req.time


def clip(stream: Iterable[LabeledRequest], t0: float, t1: float) -> Iterator[LabeledRequest]:
    """The requests of a time-ordered stream inside ``[t0, t1)``."""
    for req in stream:
        if req.time >= t1:
            return
        if req.time >= t0:
            yield req
