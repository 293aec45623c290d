"""Real people in real browsers: sessions of pages, each with its stylesheet, scripts and images.

Used by :mod:`opsconsole.lab.scenarios` for every site's browsers, and by the flash-crowd
scenario (the same sessions, arriving from one link).  Standard library only.  What a detector
sees of a browser, and what this reproduces:

* a page, then its assets within a second, with the page's URL as referer (fonts: the
  stylesheet's URL); the site icon on a device's first visit; a few images the page references
  but the server lost (404s from real visitors);
* later pages after a reading pause, with the previous page as referer; cached assets are not
  fetched again, or revalidated (304), and so are revisited pages;
* the entry referer is a search engine or another site as an origin (``https://www.google.com/``,
  browsers' default ``strict-origin-when-cross-origin`` policy), often nothing;
* regulars (stable households, several devices, offices behind one NAT address) come back;
  most visitors are new; a few come through a VPN provider's exit in a hosting network.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import agents
from .core import LabeledRequest, arrivals, cumulative, ordered, wobble, zipf
from .nets import Audience, Net, audience, hosting_audience, v4_text
from .paths import token
from .repos import REPO_BY_SLUG
from .sites import Site
from .world import World

SESSIONS_PER_S = {"www": 0.9, "shop": 0.7, "forums": 0.45, "git": 0.35, "repo": 0.05}
"""Browser sessions starting per second at scale 1 (about 10 requests each)."""
REGULARS = {"www": 500, "shop": 400, "forums": 350, "git": 250, "repo": 30}
CONTINUE = {"www": 0.5, "shop": 0.6, "forums": 0.72, "git": 0.65, "repo": 0.3}
"""Chance that a visitor opens one more page (forum readers read on)."""

_ENTRY = (
    ("", 38), ("https://www.google.com/", 31), ("https://www.bing.com/", 4),
    ("https://duckduckgo.com/", 4), ("https://github.com/", 3),
    ("https://news.ycombinator.com/", 2),
    ("https://www.reddit.com/", 3), ("https://t.co/", 2), ("https://www.linkedin.com/", 1),
    ("android-app://com.google.android.gm/", 1), ("https://www.google.de/", 2),
    ("https://www.ecosia.org/", 1), ("https://forums.example.org/", 2),
    ("https://l.facebook.com/", 1), ("https://www.example.org/", 2), ("https://lobste.rs/", 1),
)  # fmt: skip
_ENTRY_REFS = tuple(r for r, _ in _ENTRY)
_ENTRY_CUM = cumulative(w for _, w in _ENTRY)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class Device:
    """One browser on one device: what it sends and what it has cached."""

    ip: str
    ua: str
    cache: set[str] = field(default_factory=set)


@dataclass
class Household:
    net: Net
    k: int
    devices: list[Device]


def _think(rng: random.Random) -> float:
    return min(900.0, max(2.0, rng.lognormvariate(math.log(22), 1.05)))


def _target(site: Site, rng: random.Random, page: str) -> str:
    """The request target for a visit to ``page``: a search with words, a repository view."""
    if page == site.search and site.words:
        q = "+".join(rng.sample(list(site.words), rng.choice((1, 1, 2, 2, 3))))
        return f"{page}?q={q}"
    if site.name == "git" and rng.random() < 0.35:
        slug = rng.choice(
            ("alice/project", "ops/opsconsole", "ops/opsconsole", "infra/ansible-roles")
        )
        repo = REPO_BY_SLUG[slug]
        recent = repo.commits[min(len(repo.commits) - 1, int(rng.expovariate(0.15)))]
        path = rng.choice(repo.paths)
        return rng.choice(
            (
                f"/{slug}/commit/{recent}",
                f"/{slug}/src/branch/main/{path}",
                f"/{slug}/commits/branch/main",
                f"/{slug}/src/branch/main",
                f"/{slug}/blame/branch/main/{path}",
            )
        )
    return page


def _landing(rng: random.Random, target: str, referer: str) -> str:
    """How a visitor's first URL really looks: tracking parameters added by the site that
    linked it, now and then a link broken on the way (a 404 for a real visitor)."""
    sep = "&" if "?" in target else "?"
    r = rng.random()
    if "facebook" in referer or "instagram" in referer:
        return f"{target}{sep}fbclid=IwAR{token(rng, _B64, rng.randint(40, 60))}"
    if r < 0.025:
        campaign = rng.choice(("november", "release-1-4", "weekly", "black-friday"))
        return f"{target}{sep}utm_source=newsletter&utm_medium=email&utm_campaign={campaign}"
    if r < 0.035 and "google" in referer:
        return f"{target}{sep}gclid={token(rng, _B64, 40)}"
    if r < 0.042 and target != "/":
        return target + rng.choice((")", ".", ",", "/", "%22", "%E2%80%A6"))  # copied from chat
    return target


def _next_page(site: Site, rng: random.Random, cum: list[float], current: str) -> str:
    for _ in range(4):
        page = rng.choices(site.pages, cum_weights=cum)[0] if rng.random() < 0.7 else None
        page = page or rng.choice(site.pages)
        if page != current:
            return page
    return site.pages[0]


def browse(
    world: World,
    site: Site,
    rng: random.Random,
    t: float,
    device: Device,
    entry: str,
    referer: str,
    actor: str,
    *,
    pages: int,
) -> list[LabeledRequest]:
    """One visit: ``pages`` page views starting with ``entry``, each with what it loads."""
    out: list[LabeledRequest] = []
    cum = zipf(len(site.pages), 1.0)
    ip, ua = device.ip, device.ua
    page = entry
    for n in range(pages):
        target = entry if n == 0 else _target(site, rng, page)
        revisit = target in device.cache and rng.random() < 0.6
        out.append(
            world.request(t, site, ip, "GET", target, ua, referer, actor, revalidate=revisit)
        )
        device.cache.add(target)
        page_url = site.url(target)
        at = t + rng.uniform(0.08, 0.35)
        resources = [(a, page_url) for a in site.assets]
        css = site.url(site.assets[0]) if site.assets else page_url
        resources += [(f, css) for f in site.fonts]
        resources += [(i, page_url) for i in site.images.get(page, ())]
        if site.icon and site.icon not in device.cache:
            resources.append((site.icon, page_url))
        for path, ref in resources:
            at += rng.expovariate(12.0)
            if path in device.cache:
                if rng.random() < 0.12:  # a reload, or heuristic freshness ran out
                    out.append(
                        world.request(at, site, ip, "GET", path, ua, ref, actor, revalidate=True)
                    )
                continue
            req = world.request(at, site, ip, "GET", path, ua, ref, actor)
            out.append(req)
            if req.status == 200 or path == site.icon:
                device.cache.add(path)
        if "iPhone" in ua and n == 0 and rng.random() < 0.15:
            for icon in ("/apple-touch-icon-precomposed.png", "/apple-touch-icon.png"):
                at += rng.uniform(0.05, 0.4)
                out.append(world.request(at, site, ip, "GET", icon, ua, "", actor))
        referer = page_url
        t = max(at, t) + _think(rng)
        page = _next_page(site, rng, cum, page)
        if t >= world.time.end:
            break
    out.sort(key=lambda r: r.time)
    return out


def session_length(rng: random.Random, p_continue: float) -> int:
    n = 1
    while rng.random() < p_continue and n < 40:
        n += 1
    return n


def new_device(world: World, rng: random.Random, aud: Audience, kind: str) -> Device:
    net, k = aud.household(rng)
    return Device(world.net.household_ip(net, k), agents.pick_browser(rng, world.epoch, kind))


def _regulars(world: World, site: Site, rng: random.Random, aud: Audience) -> list[Household]:
    out = []
    for i in range(world.time.count(REGULARS[site.name], minimum=8)):
        net, k = aud.household(rng)
        office = i % 40 == 7  # an office behind one address: many browsers, IPv4 only
        n = rng.randint(6, 16) if office else rng.choices((1, 2, 3), (70, 22, 8))[0]
        devices = []
        for d in range(n):
            ip = v4_text(world.net.v4(net, k)) if office else world.net.household_ip(net, k, d)
            devices.append(Device(ip, agents.pick_browser(rng, world.epoch, site.audience)))
        out.append(Household(net, k, devices))
    return out


def browsers(
    world: World, site: Site, extra: list[Device] | None = None
) -> Iterator[LabeledRequest]:
    """Every browser visit to ``site`` over the whole run (baseline and window).

    ``extra`` devices (e.g. the rare real visitor with a botnet's user agent) join the regulars.
    """
    rng = world.rng("browsers", site.name)
    aud = audience(rng)
    regulars = _regulars(world, site, rng, aud)
    for device in extra or ():
        regulars.append(Household(aud.nets[0], 0, [device]))
    # Some regulars come back often (a forum's daily readers), most once or twice an hour.
    activity = cumulative(rng.lognormvariate(0, 0.8) for _ in regulars)
    vpn_aud = hosting_audience(rng, providers=4)
    vpn_exits = [v4_text(world.net.v4(*vpn_aud.household(rng))) for _ in range(rng.randint(5, 14))]
    tl = world.time
    level = SESSIONS_PER_S[site.name] * rng.uniform(0.8, 1.25) * tl.scale
    shift = rng.uniform(0.85, 1.2)  # the window is never quite like the baseline
    drift = wobble(rng, int(tl.duration) + 1, 0.12)
    rates = [level * drift[s] * (shift if s >= tl.baseline else 1.0) for s in range(len(drift))]
    p_regular = rng.uniform(0.3, 0.45)
    cum = zipf(len(site.pages), 1.1)
    extra_cut = len(regulars) - len(extra or ())

    def episodes() -> Iterator[list[LabeledRequest]]:
        for t in arrivals(rng, tl.start, rates):
            if t >= tl.end:
                return
            r = rng.random()
            if extra and rng.random() < 0.006:
                device = rng.choice(regulars[extra_cut:]).devices[0]
            elif r < p_regular:
                household = rng.choices(regulars[:extra_cut], cum_weights=activity[:extra_cut])[0]
                device = rng.choice(household.devices)
            elif r < p_regular + 0.03:
                device = Device(rng.choice(vpn_exits), agents.pick_browser(rng, world.epoch))
            else:
                device = new_device(world, rng, aud, site.audience)
            entry = rng.choices(site.pages, cum_weights=cum)[0]
            referer = rng.choices(_ENTRY_REFS, cum_weights=_ENTRY_CUM)[0]
            if referer == site.url("/"):
                referer = ""
            n = session_length(rng, CONTINUE[site.name])
            target = _landing(rng, _target(site, rng, entry), referer)
            yield browse(world, site, rng, t, device, target, referer, "browser", pages=n)

    return ordered(episodes())
