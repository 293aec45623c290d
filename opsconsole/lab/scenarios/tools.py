"""Real clients that are programs: package managers, git, scripts and command-line downloads.

Used by :mod:`opsconsole.lab.scenarios`: package managers on the ``repo`` site, git clients on
the forge (``git``), API and curl users on the others.  Standard library only.  What makes them
look odd, and real: one user agent family from thousands of machines (CI runners are born and die
in cloud networks, a new address per job), deep paths (``/debian/pool/…``, ``/simple/<pkg>/``),
bursts of a few dozen requests in a second, their own 404s (apt tries ``InRelease`` before
``Release``; a typo in a requirements file; a link to an old release), polls on timers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from . import agents
from .core import LabeledRequest, arrivals, merge, ordered, ordered_many, zipf
from .nets import Audience, audience, hosting_audience, service_ips, v4_text
from .repos import REPOS, SECURITY_SUITES, debian, release_files, wheels
from .sites import Site, file_bytes
from .world import World


class _Hosts:
    """Where one kind of program runs: CI jobs in clouds (a new address each), home machines,
    and a fixed fleet of servers that come back."""

    def __init__(self, world: World, rng: random.Random, fleet: int) -> None:
        self.world, self.rng = world, rng
        self.clouds: Audience = hosting_audience(rng)
        self.homes: Audience = audience(rng, jitter=0.5)
        self.fleet = [self.clouds.household(rng) for _ in range(fleet)]
        self.fleet_ua: dict[int, str] = {}

    def pick(self, p_ci: float, p_home: float, ua: str) -> tuple[str, str, bool]:
        """(address, user agent, fresh): ``fresh`` machines have nothing cached."""
        rng, net = self.rng, self.world.net
        r = rng.random()
        if r < p_ci:
            host = self.clouds.household(rng)
            return net.address(*host, v6=rng.random() < 0.3), ua, True
        if r < p_ci + p_home:
            return net.household_ip(*self.homes.household(rng)), ua, False
        i = rng.randrange(len(self.fleet))
        return net.address(*self.fleet[i], v6=i % 3 == 0), self.fleet_ua.setdefault(i, ua), False


def _apt_run(
    world: World, site: Site, rng: random.Random, t: float, hosts: _Hosts
) -> list[LabeledRequest]:
    ip, ua, fresh = hosts.pick(0.6, 0.25, agents.apt(rng))
    debs = debian()
    out: list[LabeledRequest] = []
    arch = "arm64" if rng.random() < 0.2 else "amd64"

    def get(path: str, revalidate: bool = False, gap: float = 0.03) -> LabeledRequest:
        nonlocal t
        t += rng.uniform(0.002, gap)
        req = world.request(
            t, site, ip, "GET", path, ua, "", "package-manager", revalidate=revalidate
        )
        out.append(req)
        if req.status == 200 and path.endswith(".deb"):
            t += file_bytes(path) / rng.uniform(5e6, 80e6)
        return req

    release = ua.rsplit("(", 1)[-1].rstrip(")")
    codename = {"2.6.1": "bookworm", "3.0.3": "trixie"}.get(release)
    if codename:
        for suite in (codename, f"{codename}-updates", f"{codename}-security"):
            changed = fresh or rng.random() < 0.15
            get(release_files(suite)[0], revalidate=not changed)
            if changed:
                for f in debs.by_hash[suite]:
                    if f"binary-{arch}" in f and (suite not in SECURITY_SUITES or "main" in f):
                        get(f)
        installs = rng.randint(3, 20) if fresh else rng.choice((0, 0, 0, 1, 2, 4))
        pool = [p for p in debs.packages if p.endswith((f"_{arch}.deb", "_all.deb"))]
        for path in rng.sample(pool, min(installs, len(pool))):
            get(path, gap=0.01)
    if not codename or rng.random() < 0.25:  # the project's own (unsigned) repository
        get("/dists/stable/InRelease")
        changed = fresh or rng.random() < 0.2
        if get("/dists/stable/Release", revalidate=not changed).status == 200:
            get("/dists/stable/Release.gpg")
            get(f"/dists/stable/main/binary-{arch}/Packages.gz")
            if rng.random() < 0.4:
                get("/pool/main/o/opsconsole/opsconsole_0.2.1_all.deb")
    if rng.random() < 0.02:
        get("/debian/dists/buster/InRelease")  # a machine nobody upgraded
    return out


def _pip_run(
    world: World, site: Site, rng: random.Random, t: float, hosts: _Hosts
) -> list[LabeledRequest]:
    ip, ua, _fresh = hosts.pick(0.75, 0.2, agents.pip(rng))
    names = list(wheels())
    cum = zipf(len(names), 0.9)
    out = []
    wanted = dict.fromkeys(rng.choices(names, cum_weights=cum, k=rng.randint(3, 25)))
    if rng.random() < 0.03:
        wanted[rng.choice(("reqeusts", "pyyml", "django-rest", "numpi"))] = None  # a typo: 404
    for name in wanted:
        t += rng.uniform(0.01, 0.12)
        index = world.request(t, site, ip, "GET", f"/simple/{name}/", ua, "", "package-manager")
        out.append(index)
        if index.status == 200:
            files = wheels()[name]
            wheel = files[-1] if rng.random() < 0.8 else rng.choice(files)
            t += rng.uniform(0.01, 0.08)
            out.append(world.request(t, site, ip, "GET", wheel, ua, "", "package-manager"))
            t += file_bytes(wheel) / rng.uniform(10e6, 100e6)
    return out


def package_managers(world: World, site: Site) -> Iterator[LabeledRequest]:
    """apt and pip (and uv) runs on the package repository."""
    rng = world.rng("packages", site.name)
    tl = world.time
    hosts = _Hosts(world, rng, tl.count(40, minimum=4))
    apt_rate = tl.volume(rng.uniform(0.15, 0.3), 0.05)
    pip_rate = tl.volume(rng.uniform(0.1, 0.22), 0.05)
    shift = rng.uniform(0.85, 1.2)
    rates = [
        apt_rate + pip_rate * (shift if s >= tl.baseline else 1) for s in range(int(tl.duration))
    ]
    p_apt = apt_rate / (apt_rate + pip_rate)

    def episodes() -> Iterator[list[LabeledRequest]]:
        for t in arrivals(rng, tl.start, rates):
            run = _apt_run if rng.random() < p_apt else _pip_run
            episode = run(world, site, rng, t, hosts)
            if episode:
                yield episode

    return ordered(episodes())


def _fetches(
    world: World,
    site: Site,
    rng: random.Random,
    ip: str,
    ua: str,
    slug: str,
    times: Iterator[float],
) -> Iterator[list[LabeledRequest]]:
    """``git fetch`` (or clone) episodes: refs advertisement, then a pack when refs moved."""
    for t in times:
        if t >= world.time.end:
            return
        refs = f"/{slug}.git/info/refs?service=git-upload-pack"
        episode = [world.request(t, site, ip, "GET", refs, ua, "", "git-client")]
        for _ in range(rng.choice((0, 0, 1, 1, 1, 2))):
            t += rng.uniform(0.05, 0.6)
            episode.append(
                world.request(
                    t, site, ip, "POST", f"/{slug}.git/git-upload-pack", ua, "", "git-client"
                )
            )
        yield episode


def _timer(rng: random.Random, t0: float, t1: float, period: float) -> Iterator[float]:
    t = t0 + rng.uniform(0, period)
    while t < t1:
        yield t
        t += period * rng.uniform(0.9, 1.1)


def git_clients(world: World, site: Site) -> Iterator[LabeledRequest]:
    """Developers fetching (some editors auto-fetch every 3 min), CI clones from clouds, a
    mirror polling every minute or so, the Go module proxy resolving a module path."""
    rng = world.rng("git-clients", site.name)
    tl = world.time
    slugs = [r.slug for r in REPOS]
    homes, clouds = audience(rng, jitter=0.5), hosting_audience(rng)
    streams: list[Iterator[list[LabeledRequest]]] = []
    for _ in range(tl.count(25, minimum=4)):
        ip = world.net.household_ip(*homes.household(rng))
        mean = 180.0 if rng.random() < 0.3 else rng.uniform(600, 2400)
        times = (
            _timer(rng, tl.start, tl.end, mean)
            if mean == 180.0
            else arrivals(rng, tl.start, [1 / mean] * int(tl.duration))
        )
        streams.append(_fetches(world, site, rng, ip, agents.git(rng), rng.choice(slugs), times))
    mirror = v4_text(world.net.v4(*clouds.household(rng)))
    streams.append(
        _fetches(
            world,
            site,
            rng,
            mirror,
            "git/2.39.5",
            "ops/opsconsole",
            _timer(rng, tl.start, tl.end, rng.uniform(60, 300)),
        )
    )
    ci_rate = tl.volume(rng.uniform(0.02, 0.06), 0.2)

    def ci() -> Iterator[list[LabeledRequest]]:
        for t in arrivals(rng, tl.start, [ci_rate] * int(tl.duration)):
            ip = world.net.address(*clouds.household(rng), v6=rng.random() < 0.25)
            yield from _fetches(
                world, site, rng, ip, agents.git(rng), rng.choice(slugs), iter((t,))
            )

    streams.append(ci())
    goproxy = service_ips(rng, "goproxy", 4)

    def go() -> Iterator[list[LabeledRequest]]:
        for t in arrivals(rng, tl.start, [tl.volume(0.004, 0.5)] * int(tl.duration)):
            ip = rng.choice(goproxy)
            yield [
                world.request(
                    t,
                    site,
                    ip,
                    "GET",
                    "/ops/opsconsole?go-get=1",
                    "Go-http-client/1.1",
                    "",
                    "git-client",
                )
            ]

    streams.append(go())
    return merge((ordered_many(streams), downloads(world, site)))


def downloads(world: World, site: Site) -> Iterator[LabeledRequest]:
    """curl and wget fetching release files (a few through old links that now 404)."""
    rng = world.rng("downloads", site.name)
    tl = world.time
    if site.name == "git":
        files = [f"/{r.slug}/archive/{t}.tar.gz" for r in REPOS for t in r.tags]
        gone = ["/ops/opsconsole/archive/v0.0.9.tar.gz", "/alice/project/archive/v0.8.0.tar.gz"]
    elif site.name == "repo":
        files = [
            f"/pool/main/o/opsconsole/opsconsole_{v}_all.deb" for v in ("0.1.0", "0.2.0", "0.2.1")
        ]
        gone = ["/pool/main/o/opsconsole/opsconsole_0.0.9_all.deb"]
    else:
        return iter(())
    homes = audience(rng)
    rate = tl.volume(rng.uniform(0.004, 0.015), 0.5)

    def gen() -> Iterator[LabeledRequest]:
        for t in arrivals(rng, tl.start, [rate] * int(tl.duration)):
            ip = world.net.household_ip(*homes.household(rng))
            ua = rng.choice(
                ("curl/8.5.0", "curl/7.88.1", "Wget/1.21.3", "Wget/1.24.5", "curl/8.11.1")
            )
            path = rng.choice(gone) if rng.random() < 0.1 else rng.choice(files)
            yield world.request(t, site, ip, "GET", path, ua, "", "api-client")

    return gen()


def api_clients(world: World, site: Site) -> Iterator[LabeledRequest]:
    """Scripts polling an API on a timer, integrations, admins' ``curl -I``, downloads."""
    rng = world.rng("api", site.name)
    tl = world.time
    clouds = hosting_audience(rng)
    streams: list[Iterator[LabeledRequest]] = [downloads(world, site)]
    for _ in range(rng.randint(1, 3) if site.api else 0):
        ip = v4_text(world.net.v4(*clouds.household(rng)))
        ua = rng.choice(agents.CLI)
        path = site.api[0] if rng.random() < 0.6 else rng.choice(site.api)
        if site.name == "shop" and rng.random() < 0.5:
            path = f"{site.api[0]}?page={rng.randint(1, 3)}"
        period = rng.choice((30.0, 60.0, 60.0, 120.0, 300.0))
        streams.append(_poll(world, site, rng, ip, ua, path, _timer(rng, tl.start, tl.end, period)))
    homes = audience(rng)
    admin_rate = tl.volume(rng.uniform(0.001, 0.004), 0.5)

    def admins() -> Iterator[LabeledRequest]:
        for t in arrivals(rng, tl.start, [admin_rate] * int(tl.duration)):
            ip = world.net.household_ip(*homes.household(rng))
            method = "HEAD" if rng.random() < 0.6 else "GET"
            ua = rng.choice(
                ("curl/8.5.0", "curl/8.11.1", "curl/7.88.1", "HTTPie/3.2.4", "xh/0.23.0")
            )
            yield world.request(
                t, site, ip, method, rng.choice(("/", "/", "/robots.txt")), ua, "", "api-client"
            )

    streams.append(admins())
    return merge(streams)


def _poll(
    world: World,
    site: Site,
    rng: random.Random,
    ip: str,
    ua: str,
    path: str,
    times: Iterator[float],
) -> Iterator[LabeledRequest]:
    for t in times:
        yield world.request(t, site, ip, "GET", path, ua, "", "api-client")
