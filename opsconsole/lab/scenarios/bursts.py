"""Short, concentrated events: a scanner burst (an attack) and a flash crowd (not one).

Used by :mod:`opsconsole.lab.scenarios`.  Standard library only.

* scanner: a handful of addresses, each walking its own word list (admin pages, leaked
  secrets, backups, CVE exploit URLs, then directory brute force) at several requests per second
  for a minute or a few; mostly 404, some 200, 403, 405 and 400 (path traversal);
* flash crowd: a link on a news site sends thousands of new visitors to one page within
  minutes, then fades; real browsers in their real mix (more phones than usual), each loading
  the page with the news site as referer and its assets with the page as referer; chat apps'
  link previews fetch the page as the link spreads.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from . import agents
from .bots import link_previews
from .browsing import Device, browse, session_length
from .core import Density, LabeledRequest, merge, ordered
from .nets import audience, hosting_audience
from .paths import PROBES
from .sites import Site
from .world import World

_DIRWORDS = [
    "admin",
    "administrator",
    "backup",
    "backups",
    "bak",
    "bin",
    "config",
    "conf",
    "data",
    "db",
    "debug",
    "demo",
    "dev",
    "docs",
    "download",
    "downloads",
    "files",
    "images",
    "img",
    "inc",
    "include",
    "install",
    "js",
    "lib",
    "log",
    "logs",
    "mail",
    "media",
    "old",
    "panel",
    "private",
    "public",
    "scripts",
    "server",
    "setup",
    "shell",
    "sql",
    "src",
    "static",
    "storage",
    "system",
    "temp",
    "test",
    "tests",
    "tmp",
    "tools",
    "upload",
    "uploads",
    "user",
    "users",
    "vendor",
    "web",
    "webadmin",
    "wp",
    "www",
    "api",
    "v1",
    "v2",
    "console",
    "dashboard",
    "login",
    "register",
    "account",
    "cp",
    "cpanel",
    "webmail",
    "portal",
    "secure",
    "status",
    "metrics",
    "env",
    "hidden",
    "archive",
    "export",
    "import",
    "cron",
    "jobs",
]
_DIREXT = ("", "/", ".php", ".bak", ".old", ".zip", ".txt", ".html", ".asp", ".sql", ".tar.gz")


def wordlist(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """A scanner's ``n`` probes: the well-known ones in its own order, then brute force."""
    probes = list(PROBES)
    rng.shuffle(probes)
    keep = probes[: rng.randint(len(probes) // 3, len(probes))]
    exts = rng.sample(_DIREXT, rng.randint(2, 6))
    brute = [("GET", f"/{w}{e}") for w in _DIRWORDS for e in exts]
    if rng.random() < 0.5:
        brute.sort(key=lambda p: p[1])  # dirb-style, alphabetical
    else:
        rng.shuffle(brute)
    out = keep + brute
    while len(out) < n:
        out.append(("GET", f"/{rng.choice(_DIRWORDS)}/{rng.choice(_DIRWORDS)}{rng.choice(exts)}"))
    return out[:n]


def scanner(world: World, site: Site) -> Iterator[LabeledRequest]:
    """3–12 scanners, each a burst of several requests per second inside the window."""
    rng = world.rng("attack", "scanner", site.name)
    tl = world.time
    clouds, homes = hosting_audience(rng, providers=4), audience(rng, jitter=0.8)
    streams = []
    for _ in range(rng.randint(3, 12)):
        net, k = (clouds if rng.random() < 0.75 else homes).household(rng)
        ip = world.net.address(net, k, v6=rng.random() < 0.1)
        uas = rng.sample(agents.SCANNERS, rng.choice((1, 1, 1, 3)))
        m = round(rng.uniform(300, 4000) * max(tl.scale, 0.05))
        rate = rng.uniform(2.0, 25.0)
        length = m / rate
        t0 = tl.window_start + rng.uniform(0, max(1.0, tl.window - length))
        streams.append(_scan(world, site, rng, ip, uas, wordlist(rng, m), t0, rate))
    return merge(streams)


def _scan(
    world: World,
    site: Site,
    rng: random.Random,
    ip: str,
    uas: list[str],
    probes: list[tuple[str, str]],
    t: float,
    rate: float,
) -> Iterator[LabeledRequest]:
    out = []
    for method, target in probes:
        out.append(
            world.request(t, site, ip, method, target, rng.choice(uas), "", "scanner", attack=True)
        )
        t += rng.expovariate(rate)
    return iter(out)


_NEWS = {
    "https://news.ycombinator.com/": "tech",
    "https://www.reddit.com/": "social",
    "https://lobste.rs/": "tech",
    "https://www.heise.de/": "general",
    "https://slashdot.org/": "tech",
}


def crowd_page(site: Site, rng: random.Random) -> str:
    """The page the news site links to."""
    if site.name == "www":
        return rng.choice([p for p in site.pages if p.startswith("/blog/")])
    if site.name == "forums":
        return rng.choice([p for p in site.pages if p.startswith("/t/")])
    if site.name == "git":
        return "/ops/opsconsole"
    return site.pages[min(1, len(site.pages) - 1)]


def flash_crowd(world: World, site: Site) -> Iterator[LabeledRequest]:
    """Thousands of new visitors following one link, posted early in the window."""
    rng = world.rng("flash-crowd", site.name)
    tl = world.time
    page = crowd_page(site, rng)
    news = rng.choice(list(_NEWS))
    kind = _NEWS[news]
    others = [
        ("", rng.uniform(0.1, 0.2)),
        ("https://t.co/", 0.04),
        ("https://www.google.com/", 0.02),
    ]
    if "reddit" in news:
        others.append(("android-app://com.reddit.frontpage/", 0.05))
    refs, weights = [news, *(r for r, _ in others)], [1.0, *(w for _, w in others)]
    visitors = max(30, round(rng.uniform(3000, 8000) * tl.scale))
    posted = rng.uniform(0, tl.window / 4)
    rise, decay = rng.uniform(30, 180), rng.uniform(150, 900)
    weights_s = [
        0.0
        if s < posted
        else (1 - math.exp(-(s - posted + 1) / rise)) * math.exp(-(s - posted) / decay)
        for s in range(int(tl.window))
    ]
    density = Density(math.ceil(tl.window_start), weights_s)
    homes = audience(rng, regions={"na": 1.2, "eu": 1.0, "asia": 0.3, "latam": 0.2, "oceania": 0.2})
    times = sorted(density.sample(rng) for _ in range(visitors))

    def episodes() -> Iterator[list[LabeledRequest]]:
        for t in times:
            device = Device(
                world.net.household_ip(*homes.household(rng)),
                agents.pick_browser(rng, world.epoch, kind),
            )
            referer = rng.choices(refs, weights)[0]
            pages = session_length(rng, 0.25)
            yield browse(world, site, rng, t, device, page, referer, "flash-crowd", pages=pages)

    previews = link_previews(
        world, site, page=page, rate=visitors / tl.window * 0.01, t0=tl.window_start + posted
    )
    return merge((ordered(episodes()), previews))
