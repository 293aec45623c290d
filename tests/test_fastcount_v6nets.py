"""IPv6 clients' /48s made in C (``Tally(v6nets=True)``, what ``stats --since`` counts with) are
the subnets :func:`~opsconsole.stats.snapshot.subnet_of` makes of them, byte for byte, for
every spelling servers log; the shapes C does not map are left to Python, never guessed."""

from __future__ import annotations

import random
from collections import Counter

from test_fastcount import needs_ext

from opsconsole.logs.logformat import COMBINED, compile_format
from opsconsole.stats import fast

CODE = (fast.program(compile_format(COMBINED)) if fast.available() else None) or b""


def v6_spellings(rng: random.Random, n: int) -> list[str]:
    """IPv6 clients as servers log them, and the odd shapes a /48 must not be guessed for."""
    out = []
    for _ in range(n):
        h = [rng.choice([0, 0, rng.randrange(1 << 16)]) for _ in range(8)]
        full = ":".join(f"{x:x}" for x in h)
        out += [
            full,
            full.upper(),
            ":".join(f"{x:04x}" for x in h),  # leading zeros
            f"{h[0]:x}:{h[1]:x}:{h[2]:x}::{h[7]:x}",
            f"{h[0]:x}::{h[7]:x}",  # "::" before the third hextet: Python's way
            f"::ffff:198.18.{h[1] % 256}.{h[2] % 256}",
            f"fe80::{h[3]:x}%eth0",
        ]
    out += ["1:2:3:", "1:2:3:zz", "12345:1:2:3", "1:2:3:4:5:6:7:8:9", "::", "::1", "0:0:0::1"]
    out += ["a:b:c::", "host.example.org", "unknown", "1:2", ":::"]
    return out


@needs_ext
def test_ipv6_clients_get_the_same_subnet_in_c_as_in_python() -> None:
    from opsconsole.stats.snapshot import subnet_of

    clients = v6_spellings(random.Random(11), 300)
    chunk = b"".join(
        f'{c} - - [24/Nov/2026:15:00:00 +0000] "GET / HTTP/1.1" 200 9 "-" "a"\n'.encode()
        for c in clients
    )
    results = {}
    for v6nets in (False, True):
        tally = fast.Tally(["nets", "others"], v6nets=v6nets)
        tally.count(chunk, CODE, check_time=False, parallel=False)
        nets: Counter[bytes] = Counter()
        others: Counter[bytes] = Counter()
        tally.export(nets=nets, others=others)
        mapped = Counter(nets)
        for addr, n in others.items():
            mapped[subnet_of(addr)] += n
        results[v6nets] = (mapped, others)
    assert results[True][0] == results[False][0]  # every client in the same subnet
    # Most spellings were mapped in C; what was left for Python is of the other shapes only.
    left = set(results[True][1])
    assert len(left) < len(set(results[False][1])) / 2
    assert b"host.example.org" in left and b"1:2:3:zz" in left and b"::1" in left
    for client in set(clients):  # one by one: each key C made is subnet_of's, byte for byte
        tally = fast.Tally(["nets", "others"], v6nets=True)
        line = f'{client} - - [24/Nov/2026:15:00:00 +0000] "GET / HTTP/1.1" 200 9 "-" "a"\n'
        tally.count(line.encode(), CODE, check_time=False, parallel=False)
        one_net, one_other = Counter[bytes](), Counter[bytes]()
        tally.export(nets=one_net, others=one_other)
        if one_net:
            assert (list(one_net), one_other) == ([subnet_of(client.encode())], {}), client
        else:
            assert list(one_other) == [client.encode()], client
