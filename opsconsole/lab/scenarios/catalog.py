"""The scenarios by name, and :func:`generate`, which runs one: ordinary traffic plus its event.

Used through :mod:`opsconsole.lab.scenarios` (the package re-exports :data:`SCENARIOS` and
:func:`generate`).  Standard library only.  Ordinary traffic depends only on the seed and the
site, never on the scenario, so every scenario of one seed shares its baseline's visitors; the
scenario adds its event on one target site (its attack, or a flash crowd) and may change real
traffic where its class needs a trap (the rare real visitor with the botnet's user agent, real
visitors next to the attacker's IPv6 prefix, a crawler visiting during a quiet window).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from . import agents, bots, bursts, floods, tools
from .browsing import Device, browsers
from .content import sites as site_catalog
from .core import LabeledRequest, Timeline, clip, merge
from .nets import Internet
from .sites import Site
from .world import World

DEFAULT_START = float(calendar.timegm((2026, 11, 24, 14, 20, 0, 0, 0, 0)))
"""Start of the baseline when ``start`` is None: output is the same on every machine."""


@dataclass
class Plan:
    """What a scenario adds to, or changes in, the run's ordinary traffic."""

    streams: list[Iterator[LabeledRequest]] = field(default_factory=list)
    twins: list[Device] = field(default_factory=list)
    """Real visitors of the target site that look like the attack."""
    crawler_visit: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    attack: bool
    """Whether the scenario labels any request as an attack."""
    targets: tuple[str, ...]
    """Sites it happens on, in order of preference (the first one the run has is used)."""
    plan: Callable[[World, Site], Plan]
    required: bool = False
    """True: the scenario only makes sense on its first target (the forge's repositories)."""

    def target(self, services: Sequence[str]) -> str:
        for name in self.targets:
            if name in services:
                return name
        if self.required:
            raise ValueError(f"scenario {self.name!r} needs the {self.targets[0]!r} site")
        return services[0]


def _botnet(world: World, site: Site) -> Plan:
    rng = world.rng("attack", "botnet-ua", "agent")
    ua = rng.choice(agents.OUTDATED)
    return Plan([floods.botnet_ua(world, site, ua)], floods.botnet_twins(rng, world, ua))


def _ipv6(world: World, site: Site) -> Plan:
    rng = world.rng("attack", "ipv6-rotate", "prefix")
    _net, prefix, length = floods.v6_prefix(rng)
    twins = floods.v6_twins(rng, world, prefix, length)
    return Plan([floods.ipv6_rotate(world, site, prefix, length)], twins)


_ALL = ("www", "shop", "forums", "git", "repo")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "low-and-slow",
            "tens of thousands of addresses, 1-5 requests each, random never-seen paths (404)",
            True, _ALL, lambda w, s: Plan([floods.low_and_slow(w, s)]),
        ),
        Scenario(
            "ai-crawler",
            "residential addresses, current browser agents, expensive repository views (200)",
            True, ("git",), lambda w, s: Plan([floods.ai_crawler(w, s)]), required=True,
        ),
        Scenario(
            "botnet-ua",
            "one odd or outdated user agent over thousands of addresses, real pages and search",
            True, ("shop", "forums", "www", "git", "repo"), _botnet,
        ),
        Scenario(
            "ipv6-rotate",
            "one attacker, a new address inside one IPv6 prefix for every request",
            True, ("forums", "www", "shop", "git", "repo"), _ipv6,
        ),
        Scenario(
            "scanner",
            "a handful of addresses probing logins, secrets and CVE paths, many requests each",
            True, _ALL, lambda w, s: Plan([bursts.scanner(w, s)]),
        ),
        Scenario(
            "quiet",
            "no attack: ordinary traffic, a slightly different mix, a crawler visiting",
            False, _ALL, lambda w, s: Plan(crawler_visit=True),
        ),
        Scenario(
            "flash-crowd",
            "no attack: thousands of new visitors follow one link from a news site",
            False, ("www", "forums", "git", "shop", "repo"),
            lambda w, s: Plan([bursts.flash_crowd(w, s)]),
        ),
    )
}  # fmt: skip


def ordinary(world: World, site: Site, plan: Plan | None = None) -> list[Iterator[LabeledRequest]]:
    """Every real-visitor stream of one site (``plan``: the target's changes)."""
    plan = plan or Plan()
    streams = [
        browsers(world, site, plan.twins or None),
        bots.crawlers(world, site, visiting=plan.crawler_visit),
        bots.monitors(world, site),
        bots.feed_readers(world, site),
        bots.link_previews(world, site),
        bots.background_scans(world, site),
        tools.api_clients(world, site),
    ]
    if site.name == "repo":
        streams.append(tools.package_managers(world, site))
    if site.name == "git":
        streams.append(tools.git_clients(world, site))
    return streams


def generate(
    name: str,
    *,
    seed: int = 1,
    baseline: float = 1800.0,
    window: float = 600.0,
    scale: float = 1.0,
    start: float | None = None,
    services: Sequence[str] | None = None,
) -> Iterator[LabeledRequest]:
    """The labeled requests of scenario ``name``, in time order.

    The run covers ``[start, start + baseline + window)``; the window is its last ``window``
    seconds and holds the attack, if any.  ``scale`` multiplies every volume (1.0: a flood of
    about 150,000 requests in a 10-minute window, ordinary traffic of a few to a few tens of
    requests per second per site).  ``services`` restricts the sites (default: all of the lab's).
    Raises ValueError for an unknown scenario or site, or a non-positive scale or window.
    """
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    if not window >= 1 or not baseline >= 0:
        raise ValueError("window must be at least 1 s and baseline not negative")
    catalog = site_catalog()
    chosen = list(dict.fromkeys(services)) if services is not None else list(catalog)
    unknown = [s for s in chosen if s not in catalog]
    if unknown or not chosen:
        raise ValueError(f"unknown site(s) {unknown}; known: {', '.join(catalog)}")
    tl = Timeline(DEFAULT_START if start is None else float(start), baseline, window, scale)
    world = World(seed, tl, chosen, {s: catalog[s] for s in chosen}, Internet(seed))
    target = scenario.target(chosen)
    plan = scenario.plan(world, catalog[target])
    streams: list[Iterator[LabeledRequest]] = []
    for service in chosen:
        streams += ordinary(world, catalog[service], plan if service == target else None)
    streams += plan.streams
    return clip(merge(streams), tl.start, tl.end)
