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
        known_values = np.array([v for ver, v in known if ver == version], dtype=np.uint64)
        taken: dict[int, set[int]] = {}  # length -> prefixes chosen at that length
        for length in reversed(levels):  # broadest first
            shift = np.uint64(top - length)
            prefixes, n_addr = np.unique(values >> shift, return_counts=True)
            dirty = np.isin(prefixes, known_values >> shift) if len(known_values) else None
            need = _min_addresses(version, top, length)
            for j, p in enumerate(prefixes.tolist()):
                if n_addr[j] < need or (dirty is not None and dirty[j]):
                    continue
                if any(p >> (length - L) in ps for L, ps in taken.items() if length > L):
                    continue  # inside a broader prefix already chosen
                taken.setdefault(length, set()).add(p)
                inside = values[(values >> shift) == np.uint64(p)]
                tight = _covering(int(inside.min()), int(inside.max()), top, length)
                tight_value = (int(inside.min()) >> (top - tight)) << (top - tight)
                chosen.append(Prefix(version, tight_value, tight, int(n_addr[j])))
        # Single hosts that sent many requests, outside every chosen prefix.
        known_set = set(known_values.tolist())
        for value, n in zip(values.tolist(), counts.tolist(), strict=True):
            if n < host_requests or value in known_set:
                continue
            if any(value >> (top - L) in ps for L, ps in taken.items()):
                continue
            length = host_len if version == 4 else 64
            chosen.append(Prefix(version, value, length, 1))
    return chosen
