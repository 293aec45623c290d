"""Bounded-memory counting: a capped heavy-hitters counter and a distinct-count sketch.

Used by :mod:`opsconsole.stats.traffic`.  Both are exact until the data outgrows them, then say so
(``estimated``): an attack that brings millions of distinct IPs, paths or user agents must not
grow the console's memory without bound.

* :class:`TopCounter` — a ``collections.Counter`` (updated from iterables in C) that, when it holds
  more than ``cap`` keys, drops its long tail (at most ``cap // 2`` keys stay).  A kept key can
  then be undercounted by what it had when it was dropped earlier, at most ``error_bound`` (the
  sum of the cut-off counts); heavy hitters — what an operator blocks — are never dropped, and
  their counts stay exact while they stay above every cut-off.
* :class:`DistinctCounter` — a K-minimum-values sketch of 64-bit hashes (standard error about
  1/sqrt(k), 1.6 % with the default k = 4096).  Sketches of different seconds merge by union.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator

_HASH_SPACE = float(2**64)


class TopCounter:
    """Counts keys; memory bounded by ``cap``; exact until the first prune."""

    __slots__ = ("cap", "counts", "error_bound")

    def __init__(self, cap: int = 200_000) -> None:
        self.cap = cap
        self.counts: Counter[bytes] = Counter()
        self.error_bound = 0

    @property
    def estimated(self) -> bool:
        return self.error_bound > 0

    def update(self, keys: Iterable[bytes]) -> None:
        self.counts.update(keys)
        if len(self.counts) > self.cap:
            self.prune()

    def add(self, key: bytes, n: int) -> None:
        self.counts[key] += n

    def subtract(self, other: Counter[bytes]) -> None:
        """Remove counts that leave a sliding window; keys falling to zero disappear."""
        counts = self.counts
        for key, n in other.items():
            left = counts.get(key, 0) - n
            if left > 0:
                counts[key] = left
            elif key in counts:
                del counts[key]

    def prune(self) -> None:
        keep = self.cap // 2
        # Sorting the counts (ints, in C) finds the cut-off ~10x faster than heapq on items.
        cut = sorted(self.counts.values(), reverse=True)[keep]
        # Everything tied at the cut-off goes too: under a flood that is the count-1 tail.
        kept = {k: n for k, n in self.counts.items() if n > cut}
        self.error_bound += cut
        self.counts = Counter(kept)

    def top(self, n: int) -> list[tuple[bytes, int]]:
        # Ties broken by key so that output is deterministic.
        return heapq.nsmallest(n, self.counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def __len__(self) -> int:
        return len(self.counts)


def hash64(key: bytes) -> int:
    """A stable 64-bit hash (Python's hash() is salted per process and cannot merge across)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


class DistinctCounter:
    """K-minimum-values distinct counter over bytes keys."""

    __slots__ = ("_heap", "_members", "k")

    def __init__(self, k: int = 4096) -> None:
        self.k = k
        self._heap: list[int] = []  # max-heap (negated) of the k smallest hashes
        self._members: set[int] = set()

    def add_many(self, keys: Iterable[bytes]) -> None:
        heap, members, k = self._heap, self._members, self.k
        threshold = -heap[0] if len(heap) >= k else None
        for h in map(hash64, keys):
            if h in members:
                continue
            if threshold is None:
                heapq.heappush(heap, -h)
                members.add(h)
                if len(heap) >= k:
                    threshold = -heap[0]
            elif h < threshold:
                members.discard(-heapq.heappushpop(heap, -h))
                members.add(h)
                threshold = -heap[0]

    def hashes(self) -> Iterator[int]:
        return iter(self._members)

    def merge(self, others: Iterable[DistinctCounter]) -> None:
        for other in others:
            self._add_hashes(other.hashes())

    def _add_hashes(self, hashes: Iterable[int]) -> None:
        heap, members, k = self._heap, self._members, self.k
        for h in hashes:
            if h in members:
                continue
            if len(heap) < k:
                heapq.heappush(heap, -h)
                members.add(h)
            elif h < -heap[0]:
                members.discard(-heapq.heappushpop(heap, -h))
                members.add(h)

    def estimate(self) -> int:
        if len(self._heap) < self.k:
            return len(self._heap)  # fewer than k distinct: exact
        kth = -self._heap[0]
        return int((self.k - 1) * _HASH_SPACE / (kth + 1))
