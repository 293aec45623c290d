"""Where clients come from: ISP, mobile and hosting networks, and the addresses inside them.

Used by the visitor and attack modules of :mod:`opsconsole.lab.scenarios`.  Standard library only.
The table is public address space, approximately as the big access and hosting networks hold
it; addresses only ever appear as text in generated log lines (never sent anything).  What
matters for detection is the structure, which is the same for real visitors and attackers:

* a household is ``(network, k)``; its IPv4 address, and its IPv6 /64, are a pure function of
  the seed, the network and ``k`` (:func:`opsconsole.lab.scenarios.core.mix`), so any part of a
  scenario can name the same household (a residential proxy on a real visitor's line);
* inside a network, addresses cluster: a few hot /16s, and /24s of uneven popularity inside them,
  so some /24s hold several visitors while most hold one;
* mobile networks put many users behind few IPv4 addresses (carrier-grade NAT) and give each
  device its own IPv6 /64.
"""

from __future__ import annotations

import bisect
import ipaddress
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from .core import cumulative, mix, name_hash, pick, unit


@dataclass(frozen=True)
class Net:
    name: str
    kind: str
    """``residential``, ``mobile`` (carrier-grade NAT on IPv4) or ``hosting``."""
    region: str
    weight: float
    """Relative number of users (residential, mobile) or of servers (hosting)."""
    v4: tuple[str, ...]
    v6: tuple[str, ...] = ()
    v6_share: float = 0.0
    """Share of devices that reach a dual-stack site over IPv6."""

    @cached_property
    def v4_blocks(self) -> tuple[tuple[int, int], ...]:
        return tuple(_block(c) for c in self.v4)

    @cached_property
    def v6_blocks(self) -> tuple[tuple[int, int], ...]:
        return tuple(_block(c) for c in self.v6)

    @cached_property
    def v4_cum(self) -> list[float]:
        return cumulative(2.0 ** (32 - plen) for _, plen in self.v4_blocks)

    @cached_property
    def salt(self) -> int:
        return name_hash(self.name)


def _block(cidr: str) -> tuple[int, int]:
    n = ipaddress.ip_network(cidr)
    return int(n.network_address), n.prefixlen


def _r(name: str, region: str, w: float, v4: str, v6: str = "", share: float = 0.0) -> Net:
    return Net(name, "residential", region, w, tuple(v4.split()), tuple(v6.split()), share)


def _m(name: str, region: str, w: float, v4: str, v6: str = "", share: float = 0.0) -> Net:
    return Net(name, "mobile", region, w, tuple(v4.split()), tuple(v6.split()), share)


def _h(name: str, region: str, w: float, v4: str, v6: str = "") -> Net:
    return Net(name, "hosting", region, w, tuple(v4.split()), tuple(v6.split()), 0.3)


NETS: tuple[Net, ...] = (
    _r("comcast", "na", 10, "73.0.0.0/8 98.192.0.0/10 24.0.0.0/12", "2601::/20", 0.55),
    _r("charter", "na", 7, "174.96.0.0/12 24.160.0.0/12 76.160.0.0/11", "2600:6c00::/24", 0.4),
    _r("att", "na", 6, "99.0.0.0/11 108.192.0.0/11", "2600:1700::/24", 0.5),
    _r("verizon", "na", 5, "71.160.0.0/11 96.224.0.0/11", "2600:4000::/24", 0.45),
    _r("cox", "na", 3, "68.0.0.0/12 70.160.0.0/11", "2600:8800::/24", 0.4),
    _r("rogers", "na", 2, "99.224.0.0/11", "2607:fea8::/32", 0.3),
    _r("bell", "na", 2, "70.24.0.0/13 142.112.0.0/12"),
    _r("dtag", "eu", 6, "79.192.0.0/10 87.128.0.0/10 91.0.0.0/10 93.192.0.0/10", "2003::/19", 0.6),
    _r("vodafone-de", "eu", 3, "88.64.0.0/12 94.216.0.0/13", "2a02:8100::/27", 0.5),
    _r("orange-fr", "eu", 4, "90.0.0.0/9 86.192.0.0/11", "2a01:c000::/19", 0.5),
    _r("free-fr", "eu", 3, "78.192.0.0/10 82.64.0.0/14", "2a01:e00::/26", 0.7),
    _r("bt", "eu", 4, "86.128.0.0/11 81.128.0.0/11 109.144.0.0/12", "2a00:23c0::/27", 0.4),
    _r("virgin-media", "eu", 3, "81.96.0.0/12 86.0.0.0/13", "2a02:c7c::/30", 0.3),
    _r("telefonica-es", "eu", 3, "83.32.0.0/11 88.0.0.0/11", "2a0c:5a80::/29", 0.2),
    _r("tim-it", "eu", 3, "79.0.0.0/11 93.32.0.0/11"),
    _r("kpn", "eu", 2, "77.160.0.0/11", "2a02:a400::/26", 0.5),
    _r("ziggo", "eu", 2, "84.24.0.0/13 77.248.0.0/14", "2001:1c00::/23", 0.5),
    _r("orange-pl", "eu", 2, "83.0.0.0/11"),
    _r("turk-telekom", "me", 1.5, "78.160.0.0/11 88.224.0.0/11"),
    _r("ntt-ocn", "asia", 3, "114.144.0.0/12 153.128.0.0/10", "2400:4050::/32", 0.4),
    _r("softbank", "asia", 3, "126.0.0.0/8", "2400:2410::/32", 0.3),
    _r("kt", "asia", 2, "121.128.0.0/10"),
    _r("chinanet", "asia", 4, "36.96.0.0/11 113.64.0.0/10 183.0.0.0/10", "240e::/20", 0.5),
    _r("china-unicom", "asia", 2, "112.224.0.0/11 123.112.0.0/12", "2408:8000::/20", 0.4),
    _r("airtel-in", "asia", 3, "122.160.0.0/12 106.192.0.0/11", "2401:4900::/32", 0.5),
    _r("vnpt", "asia", 2, "113.160.0.0/11 14.160.0.0/11"),
    _r("viettel", "asia", 1.5, "116.96.0.0/12 27.64.0.0/12"),
    _r("telkom-id", "asia", 2, "36.64.0.0/11 180.240.0.0/13"),
    _r("pldt", "asia", 1, "49.144.0.0/13"),
    _r("telstra", "oceania", 1.5, "101.160.0.0/11 1.120.0.0/13", "2001:8003::/32", 0.3),
    _r("vivo-br", "latam", 3, "177.0.0.0/10 189.0.0.0/11", "2804:14c::/31", 0.4),
    _r("claro-br", "latam", 2, "179.64.0.0/10 187.0.0.0/11", "2804:14d::/32", 0.4),
    _r("telmex", "latam", 2, "189.128.0.0/10 187.128.0.0/10"),
    _r("telecom-ar", "latam", 1, "181.0.0.0/12"),
    _r("mtn-za", "africa", 1, "41.0.0.0/11"),
    _m("tmobile-us", "na", 6, "172.32.0.0/11 172.56.0.0/14", "2607:fb90::/28", 0.9),
    _m("verizon-wireless", "na", 5, "174.192.0.0/10", "2600:1000::/24", 0.8),
    _m("att-mobility", "na", 4, "107.64.0.0/10", "2600:380::/28", 0.8),
    _m("telekom-mobile", "eu", 2, "80.187.0.0/16 109.40.0.0/13", "2a01:598::/29", 0.7),
    _m("three-uk", "eu", 2, "92.40.0.0/14"),
    _m("jio", "asia", 4, "49.32.0.0/11 157.32.0.0/12", "2409:4000::/22", 0.9),
    _m("claro-mobile-br", "latam", 2, "191.0.0.0/12"),
    _h("aws", "na", 6, "3.0.0.0/9 18.128.0.0/9 52.0.0.0/10 54.144.0.0/12", "2600:1f00::/24"),
    _h("gcp", "na", 3, "34.64.0.0/10 35.184.0.0/13 104.154.0.0/15", "2600:1900::/28"),
    _h("azure", "na", 3, "20.0.0.0/11 40.64.0.0/10 52.224.0.0/11", "2603:1000::/24"),
    _h(
        "digitalocean",
        "na",
        3,
        "159.65.0.0/16 167.99.0.0/16 178.62.0.0/16 104.248.0.0/16 165.227.0.0/16 "
        "134.209.0.0/16 68.183.0.0/16 142.93.0.0/16 206.189.0.0/16",
        "2604:a880::/32 2a03:b0c0::/32",
    ),
    _h(
        "ovh",
        "eu",
        3,
        "51.68.0.0/16 51.75.0.0/16 51.89.0.0/16 54.36.0.0/16 145.239.0.0/16 137.74.0.0/16 "
        "51.222.0.0/16 147.135.0.0/16",
        "2001:41d0::/32",
    ),
    _h(
        "hetzner",
        "eu",
        3,
        "5.9.0.0/16 88.198.0.0/16 95.216.0.0/16 135.181.0.0/16 65.108.0.0/16 116.202.0.0/16 "
        "168.119.0.0/16 49.12.0.0/16 78.46.0.0/15",
        "2a01:4f8::/29",
    ),
    _h(
        "linode",
        "na",
        2,
        "45.33.0.0/17 139.162.0.0/16 172.104.0.0/15 45.79.0.0/16",
        "2600:3c00::/27",
    ),
    _h(
        "vultr",
        "na",
        2,
        "45.32.0.0/16 45.76.0.0/16 45.77.0.0/16 149.28.0.0/16 108.61.0.0/16",
        "2001:19f0::/32",
    ),
    _h("contabo", "eu", 1.5, "161.97.0.0/16 207.180.192.0/18 173.212.192.0/18", "2a02:c207::/32"),
    _h("alibaba", "asia", 2, "47.74.0.0/15 47.88.0.0/14 8.208.0.0/12", "2408:4000::/22"),
    _h("tencent", "asia", 1.5, "43.128.0.0/10 119.28.0.0/15"),
    _h("oracle", "na", 1, "129.146.0.0/16 150.136.0.0/16 152.67.0.0/16 140.238.0.0/16"),
    _h("m247", "eu", 1, "37.120.192.0/18 89.187.160.0/19", "2a0d:5600::/29"),
    _h("leaseweb", "eu", 1, "5.79.64.0/18 37.48.64.0/18 85.17.0.0/16"),
)
"""Access and hosting networks; weights are shares of users (or servers) within a kind."""

BY_NAME: Mapping[str, Net] = {n.name: n for n in NETS}

SERVICE_RANGES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "googlebot": (("66.249.64.0/19",), ("2001:4860:4801::/48",)),
    "bingbot": (("157.55.39.0/24", "207.46.13.0/24", "40.77.167.0/24", "52.167.144.0/24"), ()),
    "applebot": (("17.241.208.0/20", "17.22.237.0/24"), ()),
    "yandexbot": (("5.255.253.0/24", "213.180.203.0/24", "87.250.224.0/19"), ()),
    "ahrefsbot": (("54.36.148.0/23", "51.222.253.0/24"), ()),
    "semrushbot": (("185.191.171.0/24", "85.208.96.0/24"), ()),
    "uptimerobot": (
        ("69.162.124.224/28", "63.143.42.240/28", "216.245.221.80/28", "208.115.199.16/28"),
        ("2607:ff68:107::/48",),
    ),
    "pingdom": (("185.180.12.64/26", "178.255.152.0/27", "43.229.84.0/26"), ()),
    "feedly": (("52.5.0.0/16", "3.224.0.0/12"), ()),
    "inoreader": (("185.111.84.0/24",), ()),
    "newsblur": (("143.198.0.0/16",), ()),
    "goproxy": (("34.80.0.0/12", "35.240.0.0/13"), ()),
}
"""The published (or typical) ranges of services that visit every site: crawlers, monitors,
feed aggregators, the Go module proxy.  Their clients use a handful of addresses in them."""


def v4_text(n: int) -> str:
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def v6_text(n: int) -> str:
    return str(ipaddress.IPv6Address(n))


def _skewed(u: float, n: int, power: float) -> int:
    """A rank in ``[0, n)``: low ranks much more likely for ``power`` > 1."""
    return min(n - 1, int(n * u**power))


class Internet:
    """Addresses of households and servers for one seed (the hot prefixes depend on it)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed & ((1 << 63) - 1)

    def _h(self, net: Net, k: int, *more: int) -> int:
        return mix(self.seed, net.salt, k, *more)

    def v4(self, net: Net, k: int) -> int:
        """Household (or server) ``k``'s IPv4 address, as an integer."""
        h = self._h(net, k)
        b = bisect.bisect_right(net.v4_cum, unit(h, 1) * net.v4_cum[-1])
        base, plen = net.v4_blocks[min(b, len(net.v4_blocks) - 1)]
        salt = mix(self.seed, net.salt, b)
        n24 = 1 << (24 - plen) if plen <= 24 else 1
        if net.kind == "mobile":
            # Carrier-grade NAT: the whole network egresses through a few dozen /24s.
            i24 = (_skewed(unit(h, 2), 48, 1.3) * 2654435761 + salt) % n24
            host = 1 + mix(h, 3) % 254
        elif n24 > 256:
            n16 = n24 >> 8
            power = 1.4 if net.kind == "hosting" else 2.0
            r16 = _skewed(unit(h, 2), n16, power)
            i16 = (r16 * (2 * (salt % 997) + 1) + salt) % n16
            r24 = _skewed(unit(h, 4), 256, 1.6)
            i24 = (i16 << 8) | ((r24 * 167 + (salt >> 12)) & 255)
            host = 1 + mix(h, 3) % 254
        else:
            i24 = _skewed(unit(h, 2), n24, 1.3) if n24 > 1 else 0
            host = 1 + mix(h, 3) % min(254, (1 << (32 - plen)) - 2)
        return base + (i24 << 8) + host

    def v6(self, net: Net, k: int, device: int = 0) -> int | None:
        """Device ``device`` of household ``k`` on IPv6 (None if its network has none).

        An access network delegates a /56 to the household; each device picks a random
        interface identifier (privacy addresses) inside the first /64.  A server gets ``::N``.
        """
        if not net.v6_blocks:
            return None
        h = self._h(net, k, 6)
        base, plen = net.v6_blocks[h % len(net.v6_blocks)]
        region_bits = max(0, 40 - plen)
        region = _skewed(unit(h, 7), 1 << region_bits, 1.8) if region_bits else 0
        customer = mix(h, 8) & 0xFFFF  # a /56 inside the /40
        prefix = base | (region << 88) | (customer << 72)
        if net.kind == "hosting":
            return prefix | (mix(h, 9) & 0xFF) << 64 | (1 + mix(h, 10) % 16)
        return prefix | (mix(h, 11, device) & ((1 << 64) - 1))

    def address(self, net: Net, k: int, device: int = 0, *, v6: bool = False) -> str:
        if v6:
            six = self.v6(net, k, device)
            if six is not None:
                return v6_text(six)
        return v4_text(self.v4(net, k))

    def prefers_v6(self, net: Net, k: int, device: int = 0) -> bool:
        return bool(net.v6_blocks) and unit(self.seed, net.salt, k, device, 12) < net.v6_share

    def household_ip(self, net: Net, k: int, device: int = 0) -> str:
        """The address a device of household ``k`` uses for a dual-stack site."""
        return self.address(net, k, device, v6=self.prefers_v6(net, k, device))


class Audience:
    """A population of households: which networks its members live in, and how often."""

    def __init__(self, nets: Sequence[Net], weights: Sequence[float]) -> None:
        self.nets = list(nets)
        self.cum = cumulative(weights)

    def pick(self, rng: random.Random) -> Net:
        return pick(rng, self.nets, self.cum)

    def household(self, rng: random.Random) -> tuple[Net, int]:
        return self.pick(rng), rng.getrandbits(40)


_SITE_REGIONS = {"na": 1.0, "eu": 1.1, "asia": 0.45, "latam": 0.25, "oceania": 0.15}
_PROXY_REGIONS = {"na": 0.55, "eu": 0.45, "asia": 1.3, "latam": 1.1, "oceania": 0.1}


def audience(
    rng: random.Random,
    kinds: Sequence[str] = ("residential", "mobile"),
    regions: Mapping[str, float] | None = None,
    jitter: float = 0.35,
) -> Audience:
    """Residential and mobile networks weighted by size and region, each weight shaken by a
    log-normal factor (every site, and every botnet, has its own geography)."""
    regions = regions or _SITE_REGIONS
    chosen = [n for n in NETS if n.kind in kinds]
    weights = [
        n.weight * regions.get(n.region, 0.1) * rng.lognormvariate(0, jitter) for n in chosen
    ]
    return Audience(chosen, weights)


def proxy_audience(rng: random.Random) -> Audience:
    """Residential proxy exits: the same networks as real visitors, another geography."""
    return audience(rng, regions=_PROXY_REGIONS, jitter=0.6)


def hosting_audience(rng: random.Random, providers: int | None = None) -> Audience:
    """Hosting networks; with ``providers``, only that many of them (a botnet's few clouds)."""
    nets = [n for n in NETS if n.kind == "hosting"]
    if providers is not None:
        nets = rng.sample(nets, min(providers, len(nets)))
    return Audience(nets, [n.weight * rng.lognormvariate(0, 0.5) for n in nets])


def service_ips(rng: random.Random, service: str, n: int, *, v6: int = 0) -> list[str]:
    """``n`` IPv4 (and ``v6`` IPv6) addresses of a service: a few /24s (or its small ranges)
    with several hosts each, the way crawler and monitor fleets look in a log."""
    v4_ranges, v6_ranges = SERVICE_RANGES[service]
    subnets: list[tuple[int, int]] = []
    for _ in range(max(1, n // 3)):
        base, plen = _block(rng.choice(v4_ranges))
        if plen < 24:
            base += rng.randrange(1 << (24 - plen)) << 8
        subnets.append((base, max(plen, 24)))
    out: list[str] = []
    while len(out) < n:
        base, plen = rng.choice(subnets)
        ip = v4_text(base + rng.randrange(1, (1 << (32 - plen)) - 1))
        if ip not in out:
            out.append(ip)
    for _ in range(v6 if v6_ranges else 0):
        base, _plen = _block(rng.choice(v6_ranges))
        out.append(v6_text(base | rng.getrandbits(16) << 64 | rng.randrange(1, 1 << 12)))
    return out
