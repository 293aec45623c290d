"""Automated real visitors that look odd: crawlers, monitors, feed readers, link previews, scans.

Used by :mod:`opsconsole.lab.scenarios` for every site.  Standard library only.  None of them is
an attack, and each is a trap for a naive detector:

* search-engine crawlers come from a few addresses in their own prefixes and ask for many gone
  pages (404), the same ones again and again; some revalidate (304);
* uptime monitors send ``HEAD /`` every 30–60 s from a rotating handful of probe addresses;
* feed readers poll the feed on a timer, mostly answered 304; aggregators say how many
  subscribers they fetch for;
* link previews (chat apps, social networks) fetch a page once when someone shares it;
* the internet's background scanning probes every site all the time (a few requests for
  ``/.env`` or ``/wp-login.php`` per address): part of every baseline, so not this run's attack.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from . import agents
from .core import LabeledRequest, arrivals, merge, ordered, wobble
from .nets import BY_NAME, audience, hosting_audience, service_ips, v4_text
from .paths import PROBES
from .repos import repo_view
from .sites import Site
from .world import World


def _rates(world: World, rng: random.Random, per_s: float, sigma: float = 0.4) -> list[float]:
    tl = world.time
    drift = wobble(rng, int(tl.duration) + 1, sigma, knot=120.0)
    return [per_s * d for d in drift]


def _crawler(
    world: World,
    site: Site,
    rng: random.Random,
    ips: list[str],
    ua: str | None,
    per_s: float,
    p_gone: float,
    *,
    t0: float | None = None,
) -> Iterator[LabeledRequest]:
    """One crawler's requests from ``t0`` (default: the start) to the end of the run."""
    tl = world.time
    t0 = tl.start if t0 is None else t0
    rates = _rates(world, rng, per_s, 0.6)[int(t0 - tl.start) :]
    pages = list(site.pages)
    for t in arrivals(rng, t0, rates):
        this_ua = ua or agents.googlebot(rng, world.epoch)
        r = rng.random()
        revalidate = False
        if r < 0.02:
            target = "/robots.txt"
        elif r < 0.03 and site.sitemap:
            target = site.sitemap
        elif r < 0.03 + p_gone and site.old_urls:
            target = rng.choice(site.old_urls)
        elif r < 0.08 + p_gone and site.assets:
            target = rng.choice(site.assets)  # rendering: stylesheets and scripts
        elif site.routes and rng.random() < 0.35:  # a forge's history is crawled too
            target = repo_view(rng, rng.choice(("commit", "commit", "tree", "log", "blame")))
        else:
            target = rng.choice(pages)
            revalidate = rng.random() < 0.25
        yield world.request(
            t,
            site,
            rng.choice(ips),
            "GET",
            target,
            this_ua,
            "",
            "search-crawler",
            revalidate=revalidate,
        )


def crawlers(world: World, site: Site, *, visiting: bool = False) -> Iterator[LabeledRequest]:
    """Googlebot and bingbot all along, a few smaller crawlers; ``visiting``: one more crawler
    starts a crawl run during the window (new addresses, a burst of old URLs)."""
    rng = world.rng("crawlers", site.name)
    tl = world.time
    streams = [
        _crawler(
            world,
            site,
            rng,
            service_ips(rng, "googlebot", rng.randint(3, 6), v6=1),
            None,
            tl.volume(rng.uniform(0.1, 0.35), 0.15),
            rng.uniform(0.2, 0.45),
        ),
        _crawler(
            world,
            site,
            rng,
            service_ips(rng, "bingbot", rng.randint(2, 5)),
            agents.BINGBOT,
            tl.volume(rng.uniform(0.03, 0.15), 0.15),
            rng.uniform(0.25, 0.5),
        ),
    ]
    for name, ua in agents.OTHER_CRAWLERS.items():
        if rng.random() < 0.5:
            ips = service_ips(rng, name, rng.randint(1, 3))
            rate = tl.volume(rng.uniform(0.005, 0.04), 0.2)
            streams.append(_crawler(world, site, rng, ips, ua, rate, rng.uniform(0.1, 0.4)))
    if visiting:
        vrng = world.rng("crawler-visit", site.name)
        name = vrng.choice(("applebot", "yandexbot", "ahrefsbot"))
        ips = service_ips(vrng, name, vrng.randint(2, 6))
        t0 = tl.window_start + vrng.uniform(0, tl.window / 3)
        rate = tl.volume(vrng.uniform(0.3, 1.2), 0.15)
        ua = agents.OTHER_CRAWLERS[name]
        streams.append(_crawler(world, site, vrng, ips, ua, rate, vrng.uniform(0.3, 0.6), t0=t0))
    return merge(streams)


def monitors(world: World, site: Site) -> Iterator[LabeledRequest]:
    """One or two uptime checks of ``/`` on a fixed period (never scaled: a timer is a timer)."""
    rng = world.rng("monitors", site.name)
    streams = []
    kinds = [rng.choice(("uptimerobot", "uptimerobot", "kuma"))]  # at least one HEAD / check
    if rng.random() < 0.6:
        kinds.append(rng.choice(("pingdom", "blackbox", "uptimerobot")))
    for kind in dict.fromkeys(kinds):
        if kind in ("uptimerobot", "pingdom"):
            ips, ua = service_ips(rng, kind, rng.randint(3, 6)), agents.MONITORS[kind]
            method = "HEAD" if kind == "uptimerobot" else "GET"
        else:
            host = hosting_audience(rng).household(rng)
            ips = [v4_text(world.net.v4(*host))]
            ua, method = (agents.BLACKBOX, "GET") if kind == "blackbox" else (agents.KUMA, "HEAD")
        period = rng.choice((30.0, 30.0, 45.0, 60.0, 60.0))
        streams.append(_periodic(world, site, rng, ips, ua, method, "/", period, "uptime-monitor"))
    return merge(streams)


def _periodic(
    world: World,
    site: Site,
    rng: random.Random,
    ips: list[str],
    ua: str,
    method: str,
    target: str,
    period: float,
    actor: str,
    *,
    t0: float | None = None,
    changes: tuple[float, ...] = (),
    conditional: bool = False,
) -> Iterator[LabeledRequest]:
    """A client polling ``target`` every ``period`` s (± jitter); with ``conditional``, answered
    304 unless the resource changed (one of ``changes``) since its last poll."""
    tl = world.time
    t = (tl.start if t0 is None else t0) + rng.uniform(0, period)
    last = t
    while t < tl.end:
        changed = any(last <= c < t for c in changes)
        yield world.request(
            t,
            site,
            rng.choice(ips),
            method,
            target,
            ua,
            "",
            actor,
            revalidate=conditional and not changed,
        )
        last = t
        t += period * rng.uniform(0.97, 1.03)


def feed_readers(world: World, site: Site) -> Iterator[LabeledRequest]:
    """Self-hosted readers and aggregators polling the site's feed."""
    if not site.feed:
        return iter(())
    rng = world.rng("feeds", site.name)
    tl = world.time
    changes = tuple(
        sorted(tl.start + rng.uniform(0, tl.duration) for _ in range(rng.randint(1, 3)))
    )
    home = audience(rng)
    vps = hosting_audience(rng)
    streams = []
    for _ in range(tl.count(14, minimum=3)):
        net, k = (vps if rng.random() < 0.45 else home).household(rng)
        ip = world.net.household_ip(net, k)
        ua = rng.choice(agents.FEED_READERS)
        period = rng.choices((300.0, 600.0, 900.0, 1800.0, 3600.0), (2, 3, 3, 2, 1))[0]
        late = tl.start + rng.uniform(0, tl.duration) if rng.random() < 0.1 else None
        streams.append(
            _periodic(
                world,
                site,
                rng,
                [ip],
                ua,
                "GET",
                site.feed,
                period,
                "feed-reader",
                t0=late,
                changes=changes,
                conditional=rng.random() < 0.85,
            )
        )
    for name, template in agents.FEED_AGGREGATORS.items():
        if rng.random() < 0.7:
            ips = service_ips(rng, name, rng.randint(1, 3))
            ua = template.format(n=rng.randint(2, 180))
            period = rng.uniform(900.0, 1800.0)
            streams.append(
                _periodic(
                    world,
                    site,
                    rng,
                    ips,
                    ua,
                    "GET",
                    site.feed,
                    period,
                    "feed-reader",
                    changes=changes,
                    conditional=True,
                )
            )
    return merge(streams)


_PREVIEWS = (
    ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "aws"),
    ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", "gcp"),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "aws"),
    ("TelegramBot (like TwitterBot)", "hetzner"),
    ("WhatsApp/2.24.25.78 A", ""),
    ("Twitterbot/1.0", "gcp"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
     "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0", ""),
)  # fmt: skip


def link_previews(
    world: World, site: Site, *, page: str | None = None, rate: float = 0.0, t0: float | None = None
) -> Iterator[LabeledRequest]:
    """Chat apps and social networks fetching a shared page (and sometimes its image) once."""
    rng = world.rng("previews", site.name, page or "")
    tl = world.time
    per_s = rate or tl.volume(rng.uniform(0.004, 0.02), 0.25)
    start = tl.start if t0 is None else t0
    rates = [per_s] * int(tl.end - start)
    home = audience(rng)
    for t in arrivals(rng, start, rates):
        ua, cloud = rng.choice(_PREVIEWS)
        if cloud:
            ip = v4_text(world.net.v4(BY_NAME[cloud], rng.getrandbits(40)))
        else:  # WhatsApp fetches from the sender's phone
            ip = world.net.household_ip(*home.household(rng))
        target = page or rng.choice(site.pages[:8])
        yield world.request(t, site, ip, "GET", target, ua, "", "link-preview")


def background_scans(world: World, site: Site) -> Iterator[LabeledRequest]:
    """A scanner every few minutes, a handful of probes each, from anywhere."""
    rng = world.rng("background-scan", site.name)
    tl = world.time
    per_s = tl.volume(rng.uniform(1 / 300, 1 / 90), 0.3)
    clouds, homes = hosting_audience(rng), audience(rng, jitter=0.8)

    def episodes() -> Iterator[list[LabeledRequest]]:
        for t in arrivals(rng, tl.start, [per_s] * int(tl.duration)):
            net, k = (clouds if rng.random() < 0.7 else homes).household(rng)
            ip = v4_text(world.net.v4(net, k))
            ua = rng.choice(agents.SCANNERS + agents.OUTDATED[:4])
            episode = []
            for method, target in rng.sample(PROBES, rng.randint(1, 12)):
                episode.append(
                    world.request(t, site, ip, method, target, ua, "", "background-scan")
                )
                t += rng.expovariate(2.0)
            yield episode

    return ordered(episodes())
