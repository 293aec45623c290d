"""Who visits the lab and what they ask for: real visitors and a flood, deterministic per seed.

Used by the traffic generator (:mod:`opsconsole.lab.traffic`), and by tests that want to know what
the generator sends.  Pure: it plans requests and never sends one.  Every address comes from the
documentation ranges (RFC 5737, RFC 3849) or the benchmarking range 198.18.0.0/15 (RFC 2544); they
only ever travel in an ``X-Forwarded-For`` header over loopback.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LEGIT_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.6723.102 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Debian APT-HTTP/1.3 (2.6.1)",
)

_LEGIT_UA_WEIGHTS = (12, 9, 7, 5, 4, 8, 8, 4, 1, 1)
"""Browser shares, roughly: desktop Chrome first; a search bot and apt are rare."""

FLOOD_USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/41.0.2228.0 Safari/537.36",
    "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "curl/7.68.0",
    "",
)
_FLOOD_UA_WEIGHTS = (40, 15, 20, 15, 7, 3)

_MISSING_PAGES = ("/favicon.ico", "/apple-touch-icon.png", "/products/999")
"""Paths real browsers ask for that the sites do not have: the few 404s of normal traffic."""

_FLOOD_SITE_WEIGHTS = {"www": 35, "shop": 25, "forums": 20, "git": 10, "repo": 10}

_V4_FLOOD = int(ipaddress.IPv4Address("198.18.0.0"))  # 198.18.0.0/15: 131,072 addresses
_V6_FLOOD = int(ipaddress.IPv6Address("2001:db8:ff00::"))  # 2001:db8:ff00::/40
_V6_POOL = 60_000
"""Distinct IPv6 flood clients (IPv4 adds up to 131,072)."""


@dataclass(frozen=True)
class PlannedRequest:
    service: str
    method: str
    path: str
    client_ip: str
    user_agent: str
    referer: str | None = None
    conditional: bool = False
    """Send ``If-Modified-Since`` (a revisit), so nginx may answer 304."""
    legit: bool = True


@dataclass(frozen=True)
class Client:
    ip: str
    user_agent: str
    sites: tuple[str, ...]


def legit_clients(seed: int, services: Sequence[str], count: int = 300) -> list[Client]:
    """A stable pool: IPv4 from 203.0.113.0/24 and 192.0.2.0/24, a sixth IPv6 in 2001:db8:1::/48."""
    rng = random.Random(f"opsconsole-lab:{seed}:clients")
    v4 = [f"203.0.113.{h}" for h in range(1, 255)] + [f"192.0.2.{h}" for h in range(1, 255)]
    n_v6 = count // 6
    ips = rng.sample(v4, min(count - n_v6, len(v4)))
    ips += [
        str(
            ipaddress.IPv6Address(
                f"2001:db8:1:{rng.randrange(1, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}"
            )
        )
        for _ in range(count - len(ips))
    ]
    clients = []
    for ip in ips:
        sites = tuple(rng.sample(list(services), rng.randint(1, min(3, len(services)))))
        clients.append(Client(ip, rng.choices(LEGIT_USER_AGENTS, _LEGIT_UA_WEIGHTS)[0], sites))
    return clients


class Browsing:
    """Real visitors: each client sticks to a few sites and walks their existing pages.

    Mostly 200; a revisit may be conditional (304); a few requests ask for a page that does not
    exist (404).  Busy clients are much busier than quiet ones, as on a real site.
    """

    def __init__(self, seed: int, pages: Mapping[str, Sequence[str]], count: int = 300) -> None:
        self._rng = random.Random(f"opsconsole-lab:{seed}:browsing")
        self._pages = {s: list(p) for s, p in pages.items()}
        self._page_weights = {
            s: list(
                itertools.accumulate(
                    4 if p == "/" else 3 if p.startswith("/static/") else 1 for p in ps
                )
            )
            for s, ps in self._pages.items()
        }
        self.clients = legit_clients(seed, list(pages), count)
        activity = [1.0 / (rank + 1) ** 0.8 for rank in range(len(self.clients))]
        self._by_site: dict[str, tuple[list[int], list[float]]] = {}
        for service in self._pages:
            idx = [i for i, c in enumerate(self.clients) if service in c.sites] or [0]
            self._by_site[service] = (idx, list(itertools.accumulate(activity[i] for i in idx)))
        self._last: dict[tuple[int, str], str] = {}
        self._seen: set[tuple[int, str, str]] = set()

    def next(self, service: str) -> PlannedRequest:
        rng = self._rng
        idx, cum = self._by_site[service]
        i = rng.choices(idx, cum_weights=cum)[0]
        client = self.clients[i]
        if rng.random() < 0.03:
            path = rng.choice(_MISSING_PAGES)
        else:
            path = rng.choices(self._pages[service], cum_weights=self._page_weights[service])[0]
        previous = self._last.get((i, service))
        if previous is not None:
            referer: str | None = f"https://{service}.example.org{previous}"
        else:
            referer = "https://www.google.com/" if rng.random() < 0.5 else None
        conditional = (i, service, path) in self._seen and rng.random() < 0.35
        self._seen.add((i, service, path))
        if not path.startswith("/static/"):
            self._last[(i, service)] = path
        return PlannedRequest(
            service, "GET", path, client.ip, client.user_agent, referer, conditional
        )


class Flood:
    """The attack: random 404 paths from a huge pool of addresses, a few /24s much heavier.

    About a third of the flood comes from six /24s (and two /48s), so that top-subnet lists point
    at something; the rest is spread thin, each address sending only a few requests.
    """

    def __init__(self, seed: int, services: Sequence[str]) -> None:
        self._rng = random.Random(f"opsconsole-lab:{seed}:flood")
        self.services = list(services)
        self._site_cum = list(
            itertools.accumulate(_FLOOD_SITE_WEIGHTS.get(s, 10) for s in self.services)
        )
        self.heavy_v4 = [f"198.{18 + k // 256}.{k % 256}" for k in self._rng.sample(range(512), 6)]
        self._heavy_v4_cum = list(itertools.accumulate((30, 22, 16, 12, 10, 10)))
        self.heavy_v6 = [_V6_FLOOD + (k << 80) for k in self._rng.sample(range(256), 2)]
        self._ua_cum = list(itertools.accumulate(_FLOOD_UA_WEIGHTS))

    def heavy_subnets(self) -> list[str]:
        """The heavy prefixes, heaviest first (what a good detector should find)."""
        v4 = [f"{p}.0/24" for p in self.heavy_v4]
        v6 = [str(ipaddress.IPv6Network((n, 48))) for n in self.heavy_v6]
        return v4 + v6

    def client_ip(self) -> str:
        rng = self._rng
        r = rng.random()
        if r < 0.35:
            prefix = rng.choices(self.heavy_v4, cum_weights=self._heavy_v4_cum)[0]
            return f"{prefix}.{rng.randint(1, 254)}"
        if r < 0.82:
            n = _V4_FLOOD + rng.randrange(131_072)
            if n & 0xFF in (0, 255):
                n ^= 1
            return str(ipaddress.IPv4Address(n))
        if r < 0.86:
            return str(ipaddress.IPv6Address(rng.choice(self.heavy_v6) + rng.randrange(1, 1 << 64)))
        # Spread the pool index over the whole /40 (Knuth's multiplicative hash), deterministically.
        k = rng.randrange(_V6_POOL)
        return str(
            ipaddress.IPv6Address(_V6_FLOOD + ((k * 2654435761 * 0x9E3779B97F4A7C15) % (1 << 88)))
        )

    def _hex(self, lo: int, hi: int) -> str:
        n = self._rng.randint(lo, hi)
        return f"{self._rng.getrandbits(4 * n):0{n}x}"

    def next(self) -> PlannedRequest:
        rng = self._rng
        service = rng.choices(self.services, cum_weights=self._site_cum)[0]
        r = rng.random()
        method = "GET"
        if r < 0.62:
            path = "/" + self._hex(8, 16)
        elif r < 0.87:
            path = "/wp-login.php?x=" + self._hex(6, 10)
            method = "POST" if rng.random() < 0.3 else "GET"
        else:
            path = f"/{self._hex(4, 8)}/{self._hex(6, 10)}.php"
        ua = rng.choices(FLOOD_USER_AGENTS, cum_weights=self._ua_cum)[0]
        return PlannedRequest(service, method, path, self.client_ip(), ua, None, False, legit=False)
