"""Bounded-memory counting: heavy hitters, distinct counts, and which keys are new.

Used by :mod:`opsconsole.stats.traffic`.  The counters are exact until the data outgrows them,
then say so (``estimated``): an attack that brings millions of distinct IPs, paths or user
agents must not grow the console's memory without bound.

* :class:`TopCounter` — a ``collections.Counter`` (updated from iterables in C) that, when it holds
  more than ``cap`` keys, drops its long tail (at most ``cap // 2`` keys stay).  A kept key can
  then be undercounted by what it had when it was dropped earlier, at most ``error_bound`` (the
  sum of the cut-off counts); heavy hitters — what an operator blocks — are never dropped, and
  their counts stay exact while they stay above every cut-off.
* :class:`DistinctCounter` — a K-minimum-values sketch of 64-bit hashes (standard error about
  1/sqrt(k), 1.6 % with the default k = 4096).  Sketches of different seconds merge by union.
* :class:`SeenFilter` — a fixed-size two-generation Bloom filter: which client IPs are new.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator

from . import fast

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

    def take_pruned(self, kept: Counter[bytes], cut: int) -> None:
        """Hold ``kept``, what :meth:`prune` would have kept of these counts with this cut
        (computed elsewhere: :meth:`opsconsole.stats.fast.Tally.settle`)."""
        self.counts = kept
        self.error_bound += cut

    def top(self, n: int) -> list[tuple[bytes, int]]:
        """The ``n`` largest counts, ties broken by key (the output is deterministic)."""
        counts = self.counts
        if n <= 0:
            return []
        if len(counts) > 4 * n:
            ranked = fast.top_items(counts, n)  # one pass in C, with the extension
            if ranked is not None:
                return ranked
            # The n-th largest count, found in C; only the keys at or above it are sorted, and
            # of those tied at it (under a flood, the count-1 tail) only the smallest keys.
            cut = heapq.nlargest(n, counts.values())[-1]
            above = [kv for kv in counts.items() if kv[1] > cut]
            tied = heapq.nsmallest(n - len(above), [k for k, c in counts.items() if c == cut])
            items = above + [(k, cut) for k in tied]
        else:
            items = list(counts.items())
        items.sort(key=lambda kv: (-kv[1], kv[0]))
        return items[:n]

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

    def add_hashes(self, hashes: Iterable[int]) -> None:
        """Merge the 64-bit hashes (:func:`hash64`) of a sketch built elsewhere (the agent)."""
        self._add_hashes(hashes)

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


class SeenFilter:
    """Which keys were seen recently: for the rate of new client IPs in the live window.

    Two generations of a Bloom filter (two probes taken from one 64-bit hash), ``2**bits_log2``
    bits each.  A generation is retired when it has taken ``bits / 8`` keys (about 3 % false
    positives at most) or is ``max_age`` seconds old; "new" then means "not seen within the last
    one or two generations".  Memory is fixed (2 x 512 KiB by default).  A false positive makes
    a new key pass for seen, so new-key counts can be a little low, never high.
    """

    __slots__ = ("_cur", "_limit", "_mask", "_old", "_started", "_taken", "max_age")

    def __init__(self, bits_log2: int = 22, max_age: float = 600.0) -> None:
        size = 1 << (bits_log2 - 3)
        self._cur = bytearray(size)
        self._old = bytearray(size)
        self._mask = (1 << bits_log2) - 1
        self._limit = (1 << bits_log2) // 8
        self._taken = 0
        self._started: float | None = None
        self.max_age = max_age

    def add_new(self, keys: Iterable[bytes], now: float) -> int:
        """Remember ``keys`` (distinct); return how many of them were not seen recently."""
        if self._started is None:
            self._started = now
        elif self._taken >= self._limit or now - self._started >= self.max_age:
            self._old, self._cur = self._cur, bytearray(len(self._cur))
            self._taken, self._started = 0, now
        cur, old, mask = self._cur, self._old, self._mask
        new = taken = 0
        for h in map(hash, keys):  # salted per process: fine, the filter never leaves it
            a = h & mask
            b = (h >> 32) & mask
            ia, ma, ib, mb = a >> 3, 1 << (a & 7), b >> 3, 1 << (b & 7)
            if cur[ia] & ma and cur[ib] & mb:
                continue
            cur[ia] |= ma
            cur[ib] |= mb
            taken += 1
            if not (old[ia] & ma and old[ib] & mb):
                new += 1
        self._taken += taken
        return new
