"""nginx's ``limit_req`` in Python: the leaky bucket of our rendered rate limit, request by request.

:mod:`.matching` feeds it the requests that reach nginx's preaccess phase (those no block or
filter refused), in time order, to say which ones nginx would answer 429.  Standard library and
``.render`` (the one copy of the subnet key rules) only.

What is simulated, from ``ngx_http_limit_req_module.c`` (nginx 1.22), for the one zone and
``nodelay`` that :func:`.render.render` writes:

- The zone's key is ``$binary_remote_addr`` (``key="ip"``: one bucket per address; an
  IPv4-mapped IPv6 client is a different key from its IPv4 form) or the subnet variable
  (``key="subnet"``: the /24 or /48 text that :data:`.render.SUBNET_RULES` makes of the address).
- The rate is kept as nginx keeps it, in thousandths of a request per second with integer
  division (``1r/m`` is 16, not 16.67), and so is the bucket (``excess``).  A request ``ms``
  milliseconds after the key's last accepted one finds ``excess - rate * ms // 1000 + 1000``
  (at least 0); above ``burst * 1000`` it is refused and changes nothing, otherwise the bucket
  takes that value and the key's time moves on (only when ``ms > 0``, which is why a flood in
  one millisecond does not leak at all).  A key nginx has not seen starts at 0, not 1000: its
  first request is free, so ``burst=10`` lets 11 through at once.
- Keys are forgotten as nginx forgets them: each new key first removes up to two of the least
  recently seen ones that have been idle at least 60 s with an empty bucket.  nginx also evicts
  the oldest key when the 32 MB zone is full (about 250,000 keys); that is not simulated.  Either
  way a forgotten key is a fresh one.

Time: nginx uses its millisecond clock; ``combined`` logs whole seconds.  :func:`spread` places
the ``n`` requests logged in one second at ``k * 1000 // n`` ms into it, in log order: right for
a busy site, whose lines arrive evenly over the second, and for a client sending at a steady
rate.  Each request is then less than 1 s from where nginx saw it, so the distance between two
of them is off by less than 2 s, and a key's bucket by less than ``2 s * rate``: over a burst,
the number of a key's requests answered 429 can differ from nginx's by up to ``2 * rate + 1``
(for ``5r/s``, 11), and which ones by more.  The error is one-sided for a lone burst packed into
part of a second: spread over the whole second it drains faster than it did, so the simulation
refuses fewer.  With ``$msec`` in the log (``resolution=0.001``) the simulation follows nginx to
the millisecond; nginx's own clock (monotonic) and ``$msec`` (wall clock) can then still differ
by a millisecond, which moves a decision only for a request that met the bucket within
``rate * 1 ms`` of full.  nginx keeps its buckets across reloads; a replay starts them empty.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TypeVar

from .render import SUBNET_RULES

EXPIRE_IDLE_MS = 60_000
"""nginx forgets a key only after it has been idle this long (and its bucket is empty)."""

_RATE = re.compile(r"([0-9]+)r/([sm])")
_SUBNET = [
    (re.compile(pattern[1:].encode()), replacement.replace("$1", r"\1").encode())
    for pattern, replacement in SUBNET_RULES
]

T = TypeVar("T")


def subnet_key(client: str) -> str:
    """The subnet rate-limit key nginx computes from ``$remote_addr`` (its /24 or /48)."""
    raw = client.encode()
    for pattern, replacement in _SUBNET:
        m = pattern.search(raw)
        if m:
            return m.expand(replacement).decode()
    return client


class RateLimiter:
    """One ``limit_req_zone`` with ``limit_req ... nodelay``, fed in time order."""

    def __init__(self, rate: str, burst: int = 0, key: str = "ip") -> None:
        m = _RATE.fullmatch(rate)
        if m is None:
            raise ValueError(f"not a rate: {rate!r}")
        self.rate = int(m.group(1)) * 1000 // (60 if m.group(2) == "m" else 1)
        """Thousandths of a request per second, as nginx keeps it."""
        self.burst = burst * 1000
        self.key = key
        self._subnet = key == "subnet"
        self._cache: dict[str, str] = {}
        self._nodes: OrderedDict[str, list[int]] = OrderedDict()
        """key -> [excess, last ms]; the least recently seen key first."""

    def __len__(self) -> int:
        return len(self._nodes)

    def key_of(self, client: str) -> str:
        if not self._subnet:
            return client
        key = self._cache.get(client)
        if key is None:
            if len(self._cache) > 200_000:
                self._cache.clear()
            key = self._cache[client] = subnet_key(client)
        return key

    def allow(self, client: str, now_ms: int) -> bool:
        """Whether nginx lets this request of ``client`` at ``now_ms`` through (and count it)."""
        key = self.key_of(client)
        nodes = self._nodes
        node = nodes.get(key)
        if node is None:
            self._expire(now_ms)
            nodes[key] = [0, now_ms]
            return True
        nodes.move_to_end(key)  # nginx moves the key to the head even when it refuses
        ms = now_ms - node[1]
        if ms < 0:
            ms = 0
        excess = node[0] - self.rate * ms // 1000 + 1000
        if excess < 0:
            excess = 0
        if excess > self.burst:
            return False
        node[0] = excess
        if ms:
            node[1] = now_ms
        return True

    def _expire(self, now_ms: int) -> None:
        nodes = self._nodes
        for _ in range(2):
            if not nodes:
                return
            key, (excess, last) = next(iter(nodes.items()))
            ms = abs(now_ms - last)
            if ms < EXPIRE_IDLE_MS or excess - self.rate * ms // 1000 > 0:
                return
            del nodes[key]


def spread(items: Iterable[tuple[T, float]], resolution: float = 1.0) -> Iterator[tuple[T, int]]:
    """``(item, time in s)`` in log order -> ``(item, ms)``, requests that share a logged time
    spread evenly over the ``resolution`` (seconds) that time stands for."""
    step = resolution * 1000
    group: list[T] = []
    current: float | None = None
    for item, when in items:
        if when != current:
            yield from _place(group, current, step)
            group = []
            current = when
        group.append(item)
    yield from _place(group, current, step)


def _place(group: list[T], when: float | None, step: float) -> Iterator[tuple[T, int]]:
    if not group or when is None:
        return
    start = round(when * 1000)
    n = len(group)
    for k, item in enumerate(group):
        yield item, start + int(k * step) // n
