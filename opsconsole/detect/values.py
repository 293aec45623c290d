"""What each distinct value of a request says: paths, user agents, referers, methods.

Used by the analysis (:mod:`.analysis`) once per distinct value, never per request.  Paths are
taken as nginx matches them (``$uri``, from :mod:`opsconsole.controls.matching`); a path's
*shape* (``/<hex 12-31>``, ``/<org>/<repo>/commit/<hex 40>``) generalises the random tokens of a
flood into a regex a filter can carry; a user agent is classified (a browser, a crawler, a package
manager, a feed reader, a monitor, a tool) and reduced to its family (``Chrome/13x``); a referer
is none, this site, or another site.  Standard library and the controls' matching only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..controls.matching import request_line, unescape

ASSET_EXTENSIONS = frozenset(
    b".css .js .mjs .map .png .jpg .jpeg .gif .svg .webp .avif .ico .woff .woff2 .ttf .eot".split()
)
ASSET_DIRS = frozenset(b"static assets _next images img css js fonts media dist build".split())
"""What a browser fetches after a page: a client that fetches these (successfully, with this
site as referer) behaves like a person's browser."""

# --- user agents ---------------------------------------------------------------------------------

WANTED_CLIENTS: tuple[tuple[str, str, re.Pattern[bytes]], ...] = tuple(
    (kind, name, re.compile(pattern, re.IGNORECASE))
    for kind, name, pattern in (
        ("crawler", "Googlebot", rb"Googlebot|Google-InspectionTool|GoogleOther|AdsBot-Google"),
        ("crawler", "Bingbot", rb"bingbot|BingPreview|msnbot"),
        ("crawler", "Applebot", rb"Applebot"),
        ("crawler", "DuckDuckBot", rb"DuckDuckBot"),
        ("crawler", "YandexBot", rb"YandexBot|YandexImages"),
        ("crawler", "Baiduspider", rb"Baiduspider"),
        ("crawler", "a search crawler", rb"Qwantify|SeznamBot|Yeti/|Mojeek|PetalBot"),
        ("crawler", "a crawler that says who it is",
         rb"(bot|crawler|spider|archiver)\b[^()]*\+?https?://|\+https?://[^)]*\b(bot|crawl)"),
        ("preview", "link previews", rb"Slackbot|Twitterbot|facebookexternalhit|Discordbot|"
         rb"TelegramBot|WhatsApp|LinkedInBot|Mastodon|Iframely|Embedly"),
        ("package", "APT clients", rb"APT-HTTP|Debian APT|apt-cacher|Acquire"),
        ("package", "pip clients", rb"^pip/|^uv/|^poetry|^pdm/|^twine/|setuptools/"),
        ("package", "package clients", rb"^npm/|^yarn/|^pnpm|^Go-http-client/.*goproxy|^cargo/|"
         rb"^Bundler/|^RubyGems|^Composer/|^Maven|^Gradle|^NuGet|^Homebrew|^conda/|libdnf|"
         rb"^urlgrabber|^zypper|^pacman|^opkg|^apk-tools|^Wget/.*\(linux-gnu\)"),
        ("git", "git clients", rb"^git/|^JGit/|^libgit2|^go-git|GitHub-Hookshot"),
        ("feed", "feed readers", rb"Feedly|FreshRSS|Miniflux|NewsBlur|Inoreader|Tiny Tiny RSS|"
         rb"NetNewsWire|Feedbin|FeedFetcher|rss|Feedbro|The Old Reader|Newsboat|Liferea|"
         rb"Thunderbird|Akregator|Podcast|Overcast|feed"),
        ("survey", "internet surveys", rb"CensysInspect|Expanse, a Palo Alto|InternetMeasurement|"
         rb"researchscan|ipip\.net|Cortex-Xpanse|Shadowserver"),
        ("monitor", "uptime monitors", rb"UptimeRobot|Pingdom|StatusCake|Uptime-Kuma|"
         rb"Better ?Uptime|Site24x7|Datadog|NewRelic|check_http|monitoring-plugins|Zabbix|"
         rb"Nagios|Prometheus|blackbox|Hetrix|Freshping|Checkly|Monit/"),
    )
)  # fmt: skip
"""Real clients a site wants even when they look odd; a rule that stops one says so by name."""
_WANTED_ANY = re.compile(
    b"|".join(b"(?P<w%d>%s)" % (i, p.pattern) for i, (_k, _n, p) in enumerate(WANTED_CLIENTS)),
    re.IGNORECASE,
)
"""All of them in one pass (the first that matches names the client)."""
_WANTED_HINTS = tuple(
    [
        "google",
        "bing",
        "msnbot",
        "applebot",
        "duckduck",
        "yandex",
        "baidu",
        "qwant",
        "seznam",
        "yeti",
        "mojeek",
        "petal",
        "slack",
        "twitter",
        "facebook",
        "discord",
        "telegram",
        "whatsapp",
        "linkedin",
        "mastodon",
        "iframely",
        "embedly",
        "apt",
        "acquire",
        "pip/",
        "uv/",
        "poetry",
        "pdm/",
        "twine",
        "setuptools",
        "npm/",
        "yarn",
        "pnpm",
        "goproxy",
        "cargo",
        "bundler",
        "rubygems",
        "composer",
        "maven",
        "gradle",
        "nuget",
        "homebrew",
        "conda",
        "libdnf",
        "urlgrabber",
        "zypper",
        "pacman",
        "opkg",
        "apk-tools",
        "wget",
        "git",
        "feed",
        "rss",
        "miniflux",
        "newsblur",
        "inoreader",
        "netnewswire",
        "thunderbird",
        "akregator",
        "podcast",
        "overcast",
        "liferea",
        "newsboat",
        "censys",
        "expanse",
        "internetmeasurement",
        "researchscan",
        "ipip",
        "xpanse",
        "shadowserver",
        "uptime",
        "pingdom",
        "statuscake",
        "kuma",
        "site24x7",
        "datadog",
        "newrelic",
        "check_http",
        "monitoring",
        "zabbix",
        "nagios",
        "prometheus",
        "blackbox",
        "hetrix",
        "freshping",
        "checkly",
        "monit/",
        "http",
    ]
)
"""Words one of which every wanted client's user agent holds: a cheap test first (a regex of
forty alternatives over a browser's long user agent costs a hundred microseconds)."""

BROWSER_UA = (
    r"^Mozilla/5\.0 \((Windows|Macintosh|X11|Linux|iPhone|iPad|Android)[^()]*\) "
    r".*(Safari/[0-9.]+|Firefox/[0-9.]+|Edg/[0-9.]+|OPR/[0-9.]+)$"
)
"""A regex for the user agents of real browsers (not crawlers, which say so after them)."""
_BROWSER = re.compile(
    rb"^Mozilla/5\.0 \((Windows|Macintosh|X11|iPhone|iPad|Linux|Android|CrOS|Mobile|Tablet)"
)
_FAMILY = re.compile(rb"(Edg|OPR|YaBrowser|SamsungBrowser|Firefox|Chrome|CriOS|FxiOS)/(\d+)")
_SAFARI = re.compile(rb"Version/(\d+)(?:\.\d+)?.*Safari/")
_OLD = re.compile(rb"MSIE |Trident/|Windows NT 5\.|Windows NT 6\.[01]|Android [1-4]\.")


@dataclass(frozen=True)
class Agent:
    text: bytes
    """As nginx matched it (unescaped)."""
    kind: str
    """browser, crawler, preview, package, git, feed, monitor, tool, empty or other."""
    name: str
    """Who, for people: ``Googlebot``, ``Chrome 131``, ``curl``."""
    family: bytes | None
    """A regex for the agent's family (``Chrome/131\\.``), None when there is none."""

    @property
    def wanted(self) -> bool:
        """A client the site wants though it may look odd (crawler, packages, feeds…).  Not an
        internet survey (Censys, Shadowserver…): it is named, but nothing on the site needs it,
        and scanners send its name."""
        return self.kind in ("crawler", "preview", "package", "git", "feed", "monitor")

    @property
    def verified_by_network(self) -> bool:
        """Crawlers and surveys come from their operators' own networks: one that claims the
        name from elsewhere is only using it (anyone can send Googlebot's user agent)."""
        return self.kind in ("crawler", "survey")


def agent(raw: bytes) -> Agent:
    text = b"" if raw == b"-" else unescape(raw)
    if not text:
        return Agent(text, "empty", "no user agent", None)
    low = text.lower().decode("latin-1")
    found = _WANTED_ANY.search(text) if any(h in low for h in _WANTED_HINTS) else None
    if found is not None and found.lastgroup is not None:
        kind, name, _p = WANTED_CLIENTS[int(found.lastgroup[1:])]
        return Agent(text, kind, name, None)
    if _BROWSER.match(text):
        fam = _FAMILY.findall(text)
        if fam:
            product, major = fam[0] if fam[0][0] not in (b"Chrome",) or len(fam) == 1 else fam[-1]
            if any(p == b"Edg" for p, _ in fam):
                product, major = next((p, m) for p, m in fam if p == b"Edg")
            old = " (outdated)" if _OLD.search(text) else ""
            name = f"{product.decode()} {major.decode()}{old}"
            return Agent(text, "browser", name, re.escape(product) + b"/" + major + rb"\.")
        m = _SAFARI.search(text)
        if m:
            return Agent(text, "browser", f"Safari {m[1].decode()}", rb"Version/" + m[1] + rb"\.")
        return Agent(text, "browser", "a browser", None)
    if text.startswith(b"Mozilla/4.0") or _OLD.search(text):
        return Agent(text, "browser", "an outdated browser", None)
    tool = re.match(rb"([A-Za-z][A-Za-z0-9._-]{1,30})/", text)
    if tool:
        return Agent(text, "tool", tool[1].decode(), re.escape(tool[1]) + b"/")
    return Agent(text, "other", "an unknown client", None)


# --- referers ------------------------------------------------------------------------------------

_REF_HOST = re.compile(rb"^[a-z][a-z0-9+.-]*://([^/?#:]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Referer:
    text: bytes
    kind: str
    """none, self (this site) or other."""
    host: bytes


def referer(raw: bytes, own_hosts: frozenset[bytes]) -> Referer:
    text = b"" if raw == b"-" else unescape(raw)
    if not text:
        return Referer(text, "none", b"")
    m = _REF_HOST.match(text)
    host = m[1].lower() if m else b""
    return Referer(text, "self" if host in own_hosts else "other", host)


# --- paths ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    uri: bytes | None
    """``$uri`` (None: nginx answers 400 before any rule)."""
    asset: bool
    ext: bytes


_SIMPLE_PATH = re.compile(rb"/[^%#\\\x00-\x20\x7f?]*(?:[?][^\x00-\x20\x7f]*)?")
_NEEDS_WORK = re.compile(rb"/\.|//")


def target(raw: bytes) -> Target:
    if _SIMPLE_PATH.fullmatch(raw) and not _NEEDS_WORK.search(raw.partition(b"?")[0]):
        uri = raw.partition(b"?")[0]  # nothing to decode or resolve: $uri is the path
    else:
        text = unescape(raw) if b"\\" in raw else raw
        _m, uri, invalid = request_line(b"GET " + text + b" HTTP/1.1")
        if invalid is not None:
            return Target(None, False, b"")
    last = uri.rsplit(b"/", 1)[-1]
    dot = last.rfind(b".")
    ext = last[dot:].lower() if dot > 0 else b""
    first = uri[1:].split(b"/", 1)[0]
    return Target(uri, ext in ASSET_EXTENSIONS or first in ASSET_DIRS, ext)


# Segment shapes, most specific first: (name, regex class, full-match test).
_SHAPES: tuple[tuple[str, bytes, re.Pattern[bytes]], ...] = (
    ("uuid", b"", re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                             rb"[0-9a-fA-F]{12}")),
    ("digits", b"[0-9]", re.compile(rb"[0-9]+")),
    ("hex", b"[0-9a-f]", re.compile(rb"(?=[a-f]*[0-9])(?=[0-9]*[a-f])[0-9a-f]{6,}")),
    ("HEX", b"[0-9A-F]", re.compile(rb"(?=[A-F]*[0-9])(?=[0-9]*[A-F])[0-9A-F]{6,}")),
    ("slug", b"", re.compile(rb"[a-z]+(?:-[a-z]+)+")),
    ("word", b"[a-z]", re.compile(rb"[a-z]+")),
    ("alnum", b"[a-z0-9]", re.compile(rb"[a-z0-9]+")),
    ("b62", b"[A-Za-z0-9]", re.compile(rb"[A-Za-z0-9]+")),
    ("b64url", b"[A-Za-z0-9_-]", re.compile(rb"[A-Za-z0-9_-]+")),
)  # fmt: skip
_MARKED: dict[str, tuple[bytes, bytes]] = {
    "alnum": (b"[a-z0-9]", b"([a-z][0-9]|[0-9][a-z])"),
    "b62": (b"[A-Za-z0-9]", b"([a-z][A-Z]|[A-Za-z][0-9]|[0-9][A-Za-z])"),
    "b64url": (b"[A-Za-z0-9_-]", b"([a-z][A-Z]|[A-Za-z][0-9]|[0-9][A-Za-z]|_)"),
}
"""Token shapes as (their characters, the mark a word of the site's lacks): a letter beside a
digit, a capital after a small letter (``iPhone``, not ``About`` or ``FAQ``), an underscore."""
TOKENS = frozenset({"alnum", "b62", "b64url", "hex", "HEX"})
"""Shapes of invented tokens, merged as ``tok`` (one flood draws them from one alphabet)."""
_UUID = rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SLUG_PART = rb"[a-z]+"


_RUN = re.compile(rb"[0-9A-Za-z]+|[^0-9A-Za-z]+")
_RUN_CLASSES = {"d": b"[0-9]", "h": b"[0-9a-f]", "H": b"[0-9a-f]", "l": b"[a-z]",
                "u": b"[A-Z]", "a": b"[A-Za-z0-9]"}  # fmt: skip


def runs(seg: bytes) -> list[tuple[str, bytes]]:
    """A segment as runs of one character class, punctuation kept as it is:
    ``3f2a91c…...9c1b0e…`` -> hex, ``...``, hex (``H``: a hex run of 16 or more)."""
    out: list[tuple[str, bytes]] = []
    for m in _RUN.finditer(seg):
        text = m.group()
        if not text[0:1].isalnum():
            out.append(("p", text))
        elif text.isdigit():
            out.append(("d", text))
        elif re.fullmatch(rb"[0-9a-f]+", text) and re.search(rb"[0-9]", text) and len(text) >= 6:
            out.append(("H" if len(text) >= 16 else "h", text))
        elif text.islower():
            out.append(("l", text))
        elif text.isupper():
            out.append(("u", text))
        else:
            out.append(("a", text))
    return out


_HEX_CHARS = b"0123456789abcdef"
_B64URL_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def segment_shape(seg: bytes) -> str:
    """The shape of one path segment (the first of :data:`_SHAPES` that fits it, or its runs);
    tested with bytes methods first, as the regexes of :data:`_SHAPES` would answer."""
    if seg.isdigit():
        return "digits"
    if not seg.translate(None, _HEX_CHARS) and len(seg) >= 6 and not seg.isalpha():
        return "hex"  # hex digits only, with a letter and a digit (digits-only returned above)
    if seg.isalpha() and seg.islower():
        return "word"
    if len(seg) == 36 and _SHAPES[0][2].fullmatch(seg):
        return "uuid"
    if b"-" in seg and seg.islower() and _SHAPES[4][2].fullmatch(seg):
        return "slug"
    if seg.isalnum():
        if seg.islower():
            return "alnum"
        if seg.isupper() and _SHAPES[3][2].fullmatch(seg):
            return "HEX"
        return "b62"
    if not seg.translate(None, _B64URL_CHARS):
        return "b64url"
    parts = runs(seg)
    if not parts or len(parts) > 12:
        return "other"
    return "r:" + ",".join(k if k != "p" else "p" + t.hex() for k, t in parts)


def runs_regex(shape: str, segments: list[bytes]) -> bytes:
    """A regex for segments of one run shape (``r:…``) with the lengths they showed."""
    kinds = shape[2:].split(",")
    cols = [runs(s) for s in segments]
    out = []
    for i, kind in enumerate(kinds):
        if kind.startswith("p"):
            out.append(re.escape(bytes.fromhex(kind[1:])))
            continue
        lengths = [len(c[i][1]) for c in cols if i < len(c)]
        lo, hi = max(1, min(lengths) - 1), max(lengths) + 2
        out.append(_RUN_CLASSES[kind] + (b"{%d,%d}" % (lo, hi)))
    return b"".join(out)


def split_ext(seg: bytes) -> tuple[bytes, bytes]:
    """``a8f3.php`` -> (``a8f3``, ``.php``) for a short alphabetic extension."""
    dot = seg.rfind(b".")
    if 0 < dot >= len(seg) - 7 and seg[dot + 1 :].isalpha():
        return seg[:dot], seg[dot:]
    return seg, b""


def token_regex(names: list[bytes]) -> bytes:
    """A regex for tokens of several shapes (:data:`TOKENS`): the characters they use, a mark
    one of them needs (as in :data:`_MARKED`), the longest length seen."""
    joined = b"".join(names)
    upper = any(n.isalnum() and not n.islower() for n in names) or bool(
        joined.translate(None, b"abcdefghijklmnopqrstuvwxyz0123456789_-")
    )
    chars = b"A-Za-z0-9" if upper else b"a-z0-9"
    marks = [b"[a-z][A-Z]", b"[A-Za-z][0-9]", b"[0-9][A-Za-z]"] if upper else [
        b"[a-z][0-9]", b"[0-9][a-z]"]  # fmt: skip
    if b"_" in joined:
        chars += b"_"
        marks.append(b"_")
    if b"-" in joined:
        chars += b"-"
    cls = b"[" + chars + b"]"
    room = b"{0,%d}" % max(1, min(1000, max(len(n) for n in names)))
    # The first run is lazy: the mark is tried as early as it can be, so a path costs its
    # length to match or to refuse (a greedy one backtracks over every split).
    return cls + room + b"?(" + b"|".join(marks) + b")" + cls + room


def segment_regex(shape: str, lengths: tuple[int, int]) -> bytes:
    """A regex for segments of ``shape`` whose lengths were ``lengths`` (min, max)."""
    lo, hi = lengths
    if shape == "uuid":
        return _UUID
    if shape == "slug":
        words_lo, words_hi = max(2, lo), min(8, max(hi, lo))
        return (
            _SLUG_PART
            + b"(-"
            + _SLUG_PART
            + b"){"
            + f"{words_lo - 1},{words_hi - 1}".encode()
            + b"}"
        )
    marked = _MARKED.get(shape)
    if marked is not None:
        # An invented token carries a mark the site's own words lack (see _MARKED): the regex
        # requires one.  Its length is bounded above only (this dialect has no lookahead to
        # bound it on both sides).
        chars, mark = marked
        room = b"{0,%d}" % max(1, min(1000, hi))
        return chars + room + b"?" + mark + chars + room  # lazy: see token_regex
    cls = next(c for n, c, _ in _SHAPES if n == shape) if shape != "other" else b"[^/]"
    # A little room on both sides: the flood draws its lengths from a range we saw part of.
    lo, hi = max(1, lo - 1), min(1000, hi + 2)
    return cls + (b"{%d}" % lo if lo == hi else b"{%d,%d}" % (lo, hi))
