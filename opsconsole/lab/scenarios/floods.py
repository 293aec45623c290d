"""The distributed floods: low-and-slow 404s, an AI crawler on the forge, a botnet with one user
agent, one attacker rotating through an IPv6 prefix.

Used by :mod:`opsconsole.lab.scenarios` (each function is one scenario's attack on one site).
Standard library only.  Each flood is built for its class, with the details drawn per seed: how
it ramps up and surges (:func:`profile`), where its addresses come from (:func:`addresses`:
residential proxies on the same networks as real visitors, mobile carriers' shared addresses,
clumps of cloud servers), which user agents it sends, how it invents paths
(:class:`~.paths.Dialect`), whether it fakes a referer.  Every request of a flood falls in the
window.
"""

from __future__ import annotations

import itertools
import math
import random
import string
from collections.abc import Iterator

from . import agents
from .browsing import Device
from .core import Density, LabeledRequest, Timeline, pick, wobble
from .nets import NETS, Net, audience, hosting_audience, proxy_audience, v4_text, v6_text
from .paths import Dialect, token, word
from .repos import VIEWS, repo_view
from .sites import Site
from .world import World

_LOWER, _DIGITS, _HEXDIGITS = string.ascii_lowercase, string.digits, "0123456789abcdef"
FLOOD_SIZE = 150_000
"""Requests of a flood in a 10-minute window at scale 1 (the benchmark size)."""


def profile(rng: random.Random, tl: Timeline) -> Density:
    """When the flood's requests fall: an onset, a ramp, a drifting plateau, maybe surges and a
    fade (the attack is only ever inside the window)."""
    n = int(tl.window)
    onset = rng.uniform(0, min(60.0, n * 0.1))
    ramp = rng.uniform(5.0, 120.0)
    drift = wobble(rng, n, rng.uniform(0.05, 0.3), knot=rng.choice((20.0, 30.0, 60.0)))
    surges = [
        (rng.uniform(onset, n), rng.uniform(20, 120), rng.uniform(0.3, 1.0))
        for _ in range(rng.choice((0, 0, 1, 2)))
    ]
    fade = rng.uniform(0.7, 0.95) * n if rng.random() < 0.3 else None
    weights = []
    for s in range(n):
        if s < onset:
            weights.append(0.0)
            continue
        w = min(1.0, (s - onset + 1) / ramp) * drift[s]
        for center, width, height in surges:
            w *= 1 + height * math.exp(-(((s - center) / width) ** 2))
        if fade is not None and s > fade:
            w *= max(0.05, 1 - (s - fade) / (n - fade))
        weights.append(w)
    return Density(math.ceil(tl.window_start), weights)


def addresses(
    world: World,
    rng: random.Random,
    n: int,
    *,
    p_residential: float,
    p_v6: float,
    providers: int = 5,
    residential: str = "proxy",
) -> list[str]:
    """``n`` distinct client addresses of one attack.

    Residential ones are households of the same networks real visitors live in (``proxy``: the
    geography of residential-proxy pools; ``visitors``: that of the sites' own visitors).  Cloud
    ones come in clumps: a few providers, a few /24s each, many hosts per /24.
    """
    homes = proxy_audience(rng) if residential == "proxy" else audience(rng, jitter=0.6)
    clouds = hosting_audience(rng, providers=providers)
    clumps = [world.net.v4(*clouds.household(rng)) & ~0xFF for _ in range(rng.randint(3, 40))]
    scattered = rng.uniform(0.2, 0.6)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        if rng.random() < p_residential:
            net, k = homes.household(rng)
            # About 60 % of access networks' users have IPv6: this keeps the share near p_v6.
            v6 = bool(net.v6_blocks) and rng.random() < min(1.0, 1.6 * p_v6)
            ip = world.net.address(net, k, rng.randrange(4), v6=v6)
        elif rng.random() < scattered:
            net, k = clouds.household(rng)
            ip = world.net.address(net, k, v6=rng.random() < p_v6)
        else:
            ip = v4_text(rng.choice(clumps) + rng.randint(1, 254))
        if ip not in seen:
            seen.add(ip)
            out.append(ip)
    return out


def _counts(rng: random.Random, total: int, weights: list[float]) -> list[int]:
    """Requests per address (1, 2 … len(weights)) until ``total`` requests are placed."""
    sizes = list(range(1, len(weights) + 1))
    cum = list(itertools.accumulate(weights))
    mean = sum(s * w for s, w in zip(sizes, weights, strict=True)) / cum[-1]
    out: list[int] = []
    placed = 0
    while placed < total:
        for c in rng.choices(sizes, cum_weights=cum, k=int((total - placed) / mean) + 1):
            if placed >= total:
                break
            c = min(c, total - placed)
            out.append(c)
            placed += c
    return out


def _schedule(
    rng: random.Random, density: Density, counts: list[int], span: float, end: float
) -> list[tuple[float, int]]:
    """(time, address index) of every request: each address starts at a time drawn from the
    flood's profile and spreads its few requests over about ``span`` seconds."""
    events = []
    for i, c in enumerate(counts):
        t0 = density.sample(rng)
        events.append((t0, i))
        for _ in range(c - 1):
            t = t0 + rng.expovariate(1.0 / span)
            events.append((t if t < end else density.sample(rng), i))
    events.sort()
    return events


class _Agents:
    """A flood kit's user-agent mix: real current browsers, a uniform pick over real versions,
    Chrome with full build numbers, outdated strings, libraries."""

    KINDS = ("browsers", "uniform", "full-chrome", "outdated", "libraries")

    def __init__(self, rng: random.Random, world: World) -> None:
        weights = [rng.expovariate(1.0) * (3 if k == "browsers" else 1) for k in self.KINDS]
        for i in rng.sample(range(1, 5), rng.randint(0, 3)):
            weights[i] = 0.0
        self.cum = list(itertools.accumulate(weights))
        self.epoch = world.epoch
        self.catalog = agents.browser_mix(int(world.epoch // 86400))[0]
        self.current = agents.chrome_major(world.epoch)

    def pick(self, rng: random.Random) -> str:
        kind = pick(rng, self.KINDS, self.cum)
        if kind == "browsers":
            return agents.pick_browser(rng, self.epoch)
        if kind == "uniform":
            return rng.choice(self.catalog)
        if kind == "full-chrome":
            return agents.full_chrome(rng, rng.randint(90, self.current))
        if kind == "outdated":
            return rng.choice(agents.OUTDATED)
        return rng.choice((*agents.CLI[5:], ""))


def _fake_referers(rng: random.Random, site: Site) -> tuple[float, list[str]]:
    fakes = [
        "https://www.google.com/",
        site.url("/"),
        "https://www.bing.com/",
        site.url(rng.choice(site.pages)),
        f"https://{word(rng)}.com/",
        "https://yandex.ru/",
    ]
    return rng.choice((1.0, 1.0, rng.uniform(0.5, 0.95))), rng.sample(fakes, rng.randint(1, 4))


def _dirs(site: Site) -> tuple[str, ...]:
    return tuple(sorted({p.rsplit("/", 1)[0] + "/" for p in site.pages if p.count("/") > 1}))


def _missing(rng: random.Random, site: Site, dialect: Dialect) -> str:
    while True:  # a made-up path that happens to exist would not be a 404
        path = dialect.path(rng)
        if not site.exists(path):
            return path


def low_and_slow(world: World, site: Site) -> Iterator[LabeledRequest]:
    """Tens of thousands of addresses, 1–5 requests each, random paths that 404."""
    rng = world.rng("attack", "low-and-slow", site.name)
    tl = world.time
    total = round(FLOOD_SIZE * tl.scale * rng.uniform(0.85, 1.15))
    counts = _counts(rng, total, [rng.uniform(0.5, 3.0) * 0.75**k for k in range(5)])
    ips = addresses(
        world, rng, len(counts), p_residential=rng.uniform(0.55, 0.92), p_v6=rng.uniform(0.03, 0.15)
    )
    uas = _Agents(rng, world)
    stable = rng.choice((1.0, 0.85, 0.3))
    ip_ua = [uas.pick(rng) for _ in ips]
    dialect = Dialect(rng, _dirs(site))
    p_none, fakes = _fake_referers(rng, site)
    p_head, p_post = rng.choice((0.0, 0.0, 0.02, 0.1)), rng.choice((0.0, 0.0, 0.01, 0.05))
    density = profile(rng, tl)
    span = rng.choice((20.0, 60.0, 180.0, 600.0))
    for t, i in _schedule(rng, density, counts, span, tl.end):
        ua = ip_ua[i] if rng.random() < stable else uas.pick(rng)
        referer = "" if rng.random() < p_none else rng.choice(fakes)
        r = rng.random()
        method = "HEAD" if r < p_head else "POST" if r < p_head + p_post else "GET"
        req = world.request(
            t, site, ips[i], method, dialect.path(rng), ua, referer, "low-and-slow", attack=True
        )
        while req.status != 404:  # a made-up path that happens to exist is not this flood's
            req = world.request(
                t, site, ips[i], method, dialect.path(rng), ua, referer, "low-and-slow", attack=True
            )
        yield req


_VIEW_QUERIES = (
    "?display=source",
    "?style=split&whitespace=ignore-all",
    "?style=unified",
    "?page=2",
    "?page=3",
    "?expand=1",
    "?whitespace=ignore-change",
)


def ai_crawler(world: World, site: Site) -> Iterator[LabeledRequest]:
    """Residential addresses everywhere, real current browsers' user agents, one to a few
    expensive repository views each (answered 200), no referer, no assets."""
    rng = world.rng("attack", "ai-crawler", site.name)
    tl = world.time
    total = round(FLOOD_SIZE * tl.scale * rng.uniform(0.85, 1.15))
    counts = _counts(
        rng,
        total,
        [rng.uniform(2, 5), rng.uniform(1, 3), rng.uniform(0.3, 1.5), rng.uniform(0.1, 0.8)],
    )
    ips = addresses(
        world,
        rng,
        len(counts),
        p_residential=rng.uniform(0.9, 1.0),
        p_v6=rng.uniform(0.05, 0.3),
        residential=rng.choice(("proxy", "visitors")),
    )
    kind = rng.choice(("general", "tech"))
    ip_ua = [agents.pick_browser(rng, world.epoch, kind) for _ in ips]
    view_weights = [rng.uniform(0.2, 1.0) for _ in VIEWS]
    p_query = rng.choice((0.0, 0.05, 0.15))
    for t, i in _schedule(rng, profile(rng, tl), counts, rng.choice((5.0, 30.0, 120.0)), tl.end):
        target = repo_view(rng, rng.choices(VIEWS, view_weights)[0])
        if rng.random() < p_query:
            target += rng.choice(_VIEW_QUERIES)
        yield world.request(t, site, ips[i], "GET", target, ip_ua[i], "", "ai-crawler", attack=True)


def botnet_twins(rng: random.Random, world: World, ua: str) -> list[Device]:
    """The rare real visitor whose old browser sends the same string as the botnet."""
    if ua.startswith("Java/") or rng.random() < 0.5:
        return []
    homes = audience(rng)
    return [
        Device(world.net.household_ip(*homes.household(rng)), ua) for _ in range(rng.randint(1, 3))
    ]


def botnet_ua(world: World, site: Site, ua: str) -> Iterator[LabeledRequest]:
    """Thousands of addresses (cloud clumps, compromised home devices) with one odd user agent,
    hitting a few real pages or the search with random query strings."""
    rng = world.rng("attack", "botnet-ua", site.name)
    tl = world.time
    n_ips = max(20, round(rng.uniform(2500, 9000) * tl.scale))
    total = round(FLOOD_SIZE * tl.scale * rng.uniform(0.7, 1.2))
    ips = addresses(
        world,
        rng,
        n_ips,
        p_residential=rng.uniform(0.1, 0.5),
        p_v6=0.02,
        providers=rng.randint(2, 6),
    )
    weights = [rng.lognormvariate(0, rng.uniform(0.3, 1.0)) for _ in ips]
    pages = rng.sample(list(site.pages[:10]), rng.randint(1, 3))
    styles = rng.sample(("search", "page-query", "bust", "plain"), rng.randint(1, 2))
    if not site.search:
        styles = [s for s in styles if s != "search"] or ["page-query"]
    p_none = rng.choice((1.0, 1.0, 0.0))
    density = profile(rng, tl)
    who = rng.choices(range(n_ips), weights, k=total)
    times = sorted(density.sample(rng) for _ in range(total))
    for t, i in zip(times, who, strict=True):
        style = rng.choice(styles)
        if style == "search":
            if rng.random() < 0.5:
                q = "+".join(word(rng) for _ in range(rng.randint(1, 3)))
            else:
                q = token(rng, _LOWER + _DIGITS, rng.randint(4, 12))
            target = f"{site.search}?q={q}"
        elif style == "page-query":
            key, value = (
                token(rng, _LOWER, rng.randint(1, 6)),
                token(rng, _HEXDIGITS, rng.randint(4, 16)),
            )
            target = f"{rng.choice(pages)}?{key}={value}"
        elif style == "bust":
            target = f"/?{rng.randrange(10**9, 10**13)}"
        else:
            target = rng.choice(pages)
        referer = "" if rng.random() < p_none else site.url("/")
        yield world.request(t, site, ips[i], "GET", target, ua, referer, "botnet-ua", attack=True)


def v6_prefix(rng: random.Random) -> tuple[Net, int, int]:
    """(network, prefix, length) of an attacker's IPv6 allocation: a /40, /44 or /48."""
    nets = [n for n in NETS if n.v6_blocks and (n.kind == "hosting" or rng.random() < 0.3)]
    net = rng.choice(nets)
    base, plen = rng.choice(net.v6_blocks)
    length = rng.choice((40, 44, 48, 48))
    prefix = base | (rng.getrandbits(length - plen) << (128 - length))
    return net, prefix, length


def v6_twins(rng: random.Random, world: World, prefix: int, length: int) -> list[Device]:
    """Real visitors in the same /32 as the attacker, outside its prefix."""
    out: list[Device] = []
    n = rng.randint(2, 5)
    while len(out) < n:
        other = (prefix >> 96 << 96) | rng.getrandbits(96)
        if other >> (128 - length) != prefix >> (128 - length):
            out.append(Device(v6_text(other), agents.pick_browser(rng, world.epoch)))
    return out


def ipv6_rotate(world: World, site: Site, prefix: int, length: int) -> Iterator[LabeledRequest]:
    """One attacker, a new address inside one IPv6 prefix for every request."""
    rng = world.rng("attack", "ipv6-rotate", site.name)
    tl = world.time
    total = round(FLOOD_SIZE * tl.scale * rng.uniform(0.85, 1.15))
    host_bits = 128 - length
    if rng.random() < 0.5:  # random interface identifiers inside a few /64s only
        host_bits = min(host_bits, 64 + rng.randint(0, 8))
    fixed = rng.choice(
        (
            [agents.pick_browser(rng, world.epoch)],
            [agents.full_chrome(rng, 120)],
            ["python-requests/2.32.3", agents.pick_browser(rng, world.epoch)],
            [],
        )
    )
    p_valid = rng.choice((0.0, 0.5, 1.0))
    dialect = Dialect(rng, _dirs(site))
    density = profile(rng, tl)
    times = sorted(density.sample(rng) for _ in range(total))
    for t in times:
        ip = v6_text(prefix | rng.getrandbits(host_bits))
        ua = rng.choice(fixed) if fixed else agents.pick_browser(rng, world.epoch)
        if rng.random() < p_valid:
            target = rng.choice(site.pages)
            if rng.random() < 0.5:
                target += f"?{token(rng, _LOWER + _DIGITS, rng.randint(6, 12))}"
        else:
            target = _missing(rng, site, dialect)
        yield world.request(t, site, ip, "GET", target, ua, "", "ipv6-rotate", attack=True)
