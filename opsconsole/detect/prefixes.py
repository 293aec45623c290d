"""Choosing the client networks to block: the broadest clean prefixes that hold the attack.

Used by :mod:`.analysis` for the ``block`` suggestion.  The attack's client addresses are placed
in the prefix tree (IPv4 /16 to /32, IPv6 /32 to /64 on the first 64 bits, /128 for single
hosts); a prefix may be blocked when it is *clean* — no address in it sent a baseline request,
and none of its window clients behaves like a real visitor or is a client the site wants — and
*dense* enough that blocking it is a statement about a network rather than a guess (a /24 needs
several attacking addresses, a /16 dozens).  The broadest such prefixes are chosen, so an IPv6
attacker rotating through a /40 is one rule and 30,000 addresses in cloud clumps become a few
hundred networks (the tree-knapsack idea of Soldo, Argyraki and Markopoulou, with the budget spent
as "no known client inside").  Standard library and NumPy only.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

V4_LEVELS = tuple(range(28, 15, -2))
"""IPv4 prefix lengths tried, longest first (never broader than /16; single hosts apart)."""
V6_LEVELS = tuple(range(60, 31, -4))
"""IPv6 prefix lengths on the first 64 bits, longest first (never broader than /32; single
/64s apart)."""
DENSITY = {4: 0.3, 6: 0.15}
"""A prefix of length L must hold at least 2 ** ((top - L) * DENSITY) attacking addresses."""
HOST_REQUESTS = 10
"""A single address is blocked only when it sent at least this many window requests."""


def address(text: bytes) -> tuple[int, int] | None:
    """(4, 32-bit value) or (6, first 64 bits) of a client address; None if it is not one.
    An IPv4-mapped IPv6 address counts as the IPv4 address (as nginx's ``geo`` does)."""
    s = text.decode("ascii", "replace")
    try:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, s))
    except OSError:
        pass
    try:
        raw = socket.inet_pton(socket.AF_INET6, s)
    except OSError:
        return None
    if raw[:12] == b"\0" * 10 + b"\xff\xff":
        return 4, int.from_bytes(raw[12:])
    return 6, int.from_bytes(raw[:8])


@dataclass(frozen=True)
class Prefix:
    version: int
    value: int
    """The prefix's first bits (32 for IPv4, 64 for IPv6), host bits zero."""
    length: int
    addresses: int
    """Attacking addresses inside."""

    def cidr(self) -> str:
        net: ipaddress.IPv4Network | ipaddress.IPv6Network
        if self.version == 4:
            net = ipaddress.IPv4Network((self.value, self.length))
        else:
            net = ipaddress.IPv6Network((self.value << 64, self.length))
        return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


@dataclass(frozen=True)
class Addresses:
    """Every distinct client of a table as numbers: version (0 when not an address) and value
    (IPv4's 32 bits, or IPv6's first 64), for vectorised prefix tests."""

    version: npt.NDArray[np.int8]
    value: npt.NDArray[np.uint64]

    @classmethod
    def of(cls, clients: Sequence[bytes]) -> Addresses:
        parsed = [address(c) for c in clients]
        version = np.array([a[0] if a else 0 for a in parsed], dtype=np.int8)
        value = np.array([a[1] if a else 0 for a in parsed], dtype=np.uint64)
        return cls(version, value)

    def within(self, prefixes: Sequence[Prefix]) -> npt.NDArray[np.bool_]:
        """Which clients lie in one of ``prefixes``."""
        inside = np.zeros(len(self.version), dtype=bool)
        groups: dict[tuple[int, int], list[int]] = {}
        for p in prefixes:
            groups.setdefault((p.version, min(p.length, 32 if p.version == 4 else 64)), []).append(
                p.value
            )
        for (version, length), values in groups.items():
            shift = np.uint64((32 if version == 4 else 64) - length)
            keys = np.array(values, dtype=np.uint64) >> shift
            mine = self.version == version
            inside[mine] |= np.isin(self.value[mine] >> shift, keys)
        return inside


def _covering(lo: int, hi: int, top: int, length: int) -> int:
    """The longest prefix length (at least ``length``) holding both ``lo`` and ``hi``."""
    return max(length, top - (lo ^ hi).bit_length())


def _min_addresses(version: int, top: int, length: int) -> float:
    return float(2 ** ((top - length) * DENSITY[version]))


def choose(
    suspects: Sequence[tuple[int, int]],
    suspect_requests: Sequence[int],
    known: Sequence[tuple[int, int]],
    *,
    host_requests: int = HOST_REQUESTS,
) -> list[Prefix]:
    """The prefixes to block: the broadest clean ones, none inside another, each then narrowed
    to the longest prefix that still holds all of its attacking addresses (the attacker's own
    allocation, not its neighbours').  ``host_requests``: the window requests a single address
    must have sent to be blocked on its own.

    ``suspects``: the attacking addresses (version, value) with their window request counts;
    ``known``: every address a prefix must not contain (baseline clients, real visitors and
    wanted clients of the window).
    """
    chosen: list[Prefix] = []
    for version, top, levels, host_len in ((4, 32, V4_LEVELS, 32), (6, 64, V6_LEVELS, 128)):
        idx = [i for i, a in enumerate(suspects) if a[0] == version]
        if not idx:
            continue
        values = np.array([suspects[i][1] for i in idx], dtype=np.uint64)
        counts = np.array([suspect_requests[i] for i in idx], dtype=np.int64)
        order = np.argsort(values, kind="stable")
        values, counts = values[order], counts[order]
        known_values = np.array([v for ver, v in known if ver == version], dtype=np.uint64)
        covered = np.zeros(len(values), dtype=bool)  # inside a prefix chosen already
        for length in reversed(levels):  # broadest first
            shift = np.uint64(top - length)
            keys = values >> shift
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            ends = np.r_[starts[1:], len(keys)]
            n_addr = ends - starts
            dirty = np.isin(keys[starts], known_values >> shift)
            taken = np.logical_or.reduceat(covered, starts)
            ok = (n_addr >= _min_addresses(version, top, length)) & ~dirty & ~taken
            for j in np.flatnonzero(ok).tolist():
                lo, hi = int(values[starts[j]]), int(values[ends[j] - 1])
                tight = _covering(lo, hi, top, length)
                chosen.append(Prefix(version, (lo >> (top - tight)) << (top - tight), tight,
                                     int(n_addr[j])))  # fmt: skip
                covered[starts[j] : ends[j]] = True
        # Single hosts that sent many requests, outside every chosen prefix.
        known_set = set(known_values.tolist())
        busy = np.flatnonzero(~covered & (counts >= host_requests)).tolist()
        for k in busy:
            value = int(values[k])
            if value not in known_set:
                chosen.append(Prefix(version, value, host_len if version == 4 else 64, 1))
    return chosen
