"""The content of the five lab sites: pages, assets, feeds, repositories, package archives.

Used by :mod:`opsconsole.lab.scenarios` to build each :class:`~.sites.Site` once.  Standard
library only.  Starts from the lab's own catalog (:data:`opsconsole.lab.model.SITES`, every path
of which stays valid) and adds what real visitors of such sites ask for: scripts, images and a
feed; the forge's repositories with their commit histories and files; a Debian mirror and a
Python package index.  Everything here is fixed (not seed-dependent): a site is the same site in
every scenario, so the lab's nginx can be prepared once (:func:`~.sites.requirements`).
"""

from __future__ import annotations

from functools import cache

from ..model import SITES as LAB_SITES
from .repos import GIT_ROUTES, REPOS, debian, release_files, wheels
from .sites import Site


def _lab(name: str) -> frozenset[str]:
    return frozenset(next(s for s in LAB_SITES if s.name == name).pages)


_WORDS = [
    "shoes",
    "boots",
    "sneakers",
    "bag",
    "backpack",
    "wallet",
    "belt",
    "jacket",
    "coat",
    "sale",
    "gift",
    "black",
    "leather",
    "wool",
    "red",
    "blue",
    "size",
    "running",
    "hiking",
    "waterproof",
    "kids",
    "women",
    "men",
    "socks",
    "scarf",
    "gloves",
    "hat",
    "summer",
    "winter",
]
_FORUM_WORDS = [
    "nginx",
    "ipv6",
    "ssh",
    "backup",
    "upgrade",
    "error",
    "timeout",
    "config",
    "docker",
    "tls",
    "dns",
    "help",
]


def _www() -> Site:
    blog = ("hello-world", "release-1-4", "postmortem-2026-03", "ipv6-everywhere", "new-datacenter")
    pages = ["/", "/products/1", "/about", "/products/2", "/blog/hello-world", "/pricing"]
    pages += ["/products/3", "/docs", "/docs/install", "/contact", "/products/4", "/products/5"]
    pages += [f"/blog/{b}" for b in blog[1:]] + ["/products/6", "/docs/configuration"]
    pages += ["/docs/faq", "/careers", "/privacy"]
    images: dict[str, tuple[str, ...]]
    images = {f"/products/{i}": (f"/static/img/products/{i}.jpg",) for i in range(1, 7)}
    images.update({f"/blog/{b}": (f"/static/img/blog/{b}.webp",) for b in blog})
    images["/"] = ("/static/img/hero.webp",)
    images["/about"] = ("/static/img/team.jpg", "/static/img/team-2019.jpg")  # the old one is gone
    assets = ("/static/app.css", "/static/app.js", "/static/logo.svg")
    fonts = ("/static/fonts/inter-var.woff2",)
    api = ("/api/v1/status", "/api/v1/health")
    served = {*pages, *assets, *fonts, "/favicon.ico", "/feed.xml", "/sitemap.xml", *api}
    served |= {i for imgs in images.values() for i in imgs if "2019" not in i}
    old = (
        "/index.php", "/index.php?page=about", "/blog/2019/05/hello-world.html", "/blog/page/2",
        "/news/2018-annual-report", "/wp-content/uploads/2017/03/logo.png", "/products/7",
        "/products/8", "/products/widget-pro", "/en/about-us", "/de/ueber-uns", "/feed/",
        "/category/news/", "/tag/release/", "/docs/v1/install", "/downloads/opsconsole-0.9.tar.gz",
    )  # fmt: skip
    return Site(
        "www", "www.example.org", "general", pages, assets, fonts, images,
        feed="/feed.xml", sitemap="/sitemap.xml", old_urls=old, api=api,
        files=frozenset(served | _lab("www")), lab_pages=_lab("www"),
    )  # fmt: skip


def _shop() -> Site:
    cats = ("/category/shoes", "/category/bags", "/category/sale")
    pages = ["/", *cats[:2], "/products/1", "/products/2", "/search", "/cart", "/products/3"]
    pages += [f"/products/{i}" for i in range(4, 13)] + [cats[2], "/checkout", "/account/login"]
    pages += ["/shipping", "/returns", "/about"]
    images: dict[str, tuple[str, ...]]
    images = {f"/products/{i}": (f"/static/img/products/{i}.jpg",) for i in range(1, 13)}
    for c in cats:
        images[c] = tuple(f"/static/img/products/{i}-thumb.jpg" for i in range(1, 13, 2))
    api = ("/api/v1/products", *(f"/api/v1/products/{i}" for i in range(1, 13)))
    assets = ("/static/app.css", "/static/shop.js", "/static/logo.svg")
    served = {*pages, *assets, "/favicon.ico", *api, *(i for v in images.values() for i in v)}
    old = (
        *(f"/products/{i}" for i in range(13, 21)),
        "/shop/index.php?route=product/product&product_id=42", "/catalog/shoes.html",
        "/sale-2025", "/product/leather-bag", "/index.php?route=common/home",
    )  # fmt: skip
    return Site(
        "shop", "shop.example.org", "general", pages, assets, (), images, old_urls=old,
        api=api, search="/search", files=frozenset(served | _lab("shop")),
        lab_pages=_lab("shop"), words=_WORDS,
    )  # fmt: skip


def _forums() -> Site:
    users = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
    pages = ["/", "/latest", *(f"/t/{i}" for i in range(1, 9)), "/top", "/categories"]
    pages += ["/c/announcements", "/c/help", "/search", *(f"/u/{u}" for u in users), "/about"]
    images = {
        f"/t/{i}": tuple(f"/static/avatars/{users[(i + j) % len(users)]}.png" for j in range(3))
        for i in range(1, 9)
    }
    assets = ("/static/app.css", "/static/forum.js")
    served = {*pages, *assets, "/latest.rss", *(i for v in images.values() for i in v)}
    old = (
        "/viewtopic.php?t=123", "/viewtopic.php?f=2&t=88", "/viewforum.php?f=2", "/memberlist.php",
        "/index.php?topic=55.0", *(f"/t/{i}" for i in range(9, 16)), "/forum/rules",
    )  # fmt: skip
    return Site(
        "forums", "forums.example.org", "tech", pages, assets, (), images,
        icon="/favicon.ico", feed="/latest.rss", old_urls=old, search="/search",
        files=frozenset(served | _lab("forums")), lab_pages=_lab("forums"), words=_FORUM_WORDS,
    )  # fmt: skip


def _git() -> Site:
    pages = ["/", "/alice/project", "/ops/opsconsole", "/explore", "/alice/project/commits"]
    for r in REPOS:
        pages += [p for p in (f"/{r.slug}", f"/{r.slug}/commits") if p not in pages]
        pages += [f"/{r.slug}/issues", f"/{r.slug}/releases"]
    pages += ["/alice", "/ops", "/infra", "/explore/repos", "/user/login"]
    assets = ("/static/app.css", "/assets/css/theme-forgejo-auto.css", "/assets/js/index.js")
    served = {*pages, *assets, "/assets/img/logo.svg", "/assets/img/favicon.svg"}
    for r in REPOS:
        served.add(f"/{r.slug}.git/info/refs")
        served.update(f"/{r.slug}/archive/{t}.tar.gz" for t in r.tags)
        if r.feed:
            served.add(f"/{r.slug}.rss")
    old = (
        "/alice/oldproject", "/alice/project/wiki/Home", "/gitweb/?p=project.git;a=summary",
        "/cgit/project/log/", "/alice/project/src/master/README.md", "/alice/project/tree/master",
        "/ops/opsconsole/issues/12", "/ops/console",
    )  # fmt: skip
    return Site(
        "git", "git.example.org", "tech", pages, assets, (), {"/": ("/assets/img/logo.svg",)},
        icon="/assets/img/favicon.svg", feed="/ops/opsconsole.rss", old_urls=old,
        files=frozenset(served | _lab("git")), lab_pages=_lab("git"), routes=GIT_ROUTES,
    )  # fmt: skip


def _repo() -> Site:
    debs = debian()
    served = {"/", "/about", "/debian/", "/simple/", "/static/app.css"}
    served |= {
        "/dists/stable/main/binary-amd64/Packages.gz",
        "/dists/stable/main/binary-arm64/Packages.gz",
        "/pool/main/o/opsconsole/opsconsole_0.2.0_all.deb",
        "/pool/main/o/opsconsole/opsconsole_0.2.1_all.deb",
    }
    served.update(debs.packages)
    for suite, files in debs.by_hash.items():
        served.update(files)
        served.update(release_files(suite))
    for name, files in wheels().items():
        served.add(f"/simple/{name}/")
        served.update(files)
    old = ("/debian/dists/buster/InRelease", "/debian/dists/stretch/Release", "/ubuntu/")
    return Site(
        "repo", "repo.example.org", "tech", ["/", "/about", "/debian/", "/simple/"],
        ("/static/app.css",), icon="/favicon.ico", old_urls=old,
        files=frozenset(served | _lab("repo")), lab_pages=_lab("repo"),
    )  # fmt: skip


@cache
def sites() -> dict[str, Site]:
    """Every site of the lab's catalog, by service name, in the catalog's order."""
    built = {s.name: s for s in (_www(), _shop(), _forums(), _git(), _repo())}
    return {s.name: built[s.name] for s in LAB_SITES if s.name in built}
