"""What each lab site serves, and what its nginx answers to any request (status and body size).

Used by the visitor and attack modules (every label's status comes from :meth:`Site.answer`) and
by whoever makes the lab's nginx serve the scenarios (:func:`lab_requirements`).  Standard
library only.  The rules are those of the lab's ``server {}`` (:mod:`opsconsole.lab.nginx`):
``root`` + ``index index.html`` + ``location / { try_files $uri $uri.html $uri/ =404; }``, plus
the regex locations of :class:`Route` that answer ``return 200`` (the forge's repository views).
Checked against nginx 1.22 with ``server_tokens off``:

* ``$uri`` is the path percent-decoded, with ``//``, ``/./`` and ``/../`` resolved; an invalid
  ``%`` escape, ``%00`` or a ``..`` above the root is 400, answered before the headers are read
  (so the log shows ``"-"`` for referer and user agent);
* a directory without its trailing slash is 301, with it and without ``index.html`` 403;
* GET and HEAD of a file are 200 (HEAD sends no body), 304 for a revalidation; POST is 405, as
  is any other method; a missing file is 404 whatever the method;
* error bodies are 146 (403, 404), 150 (400, 405) and 162 (301) bytes; MSIE clients get 402 more
  bytes of padding on 4xx/5xx pages (``msie_padding``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from .core import mix, name_hash

ERROR_BYTES = {301: 162, 400: 150, 403: 146, 404: 146, 405: 150}
MSIE_PADDING = 402

_HEX = re.compile(r"%([0-9A-Fa-f]{2})")


def normalize(path: str) -> str | None:
    """nginx's ``$uri`` for a request path (no query string), or None where nginx says 400."""
    if "%" in path:
        if path.count("%") != len(_HEX.findall(path)) or re.search(r"%00", path):
            return None
        path = _HEX.sub(lambda m: chr(int(m.group(1), 16)), path)
    if "//" not in path and "/." not in path:
        return path
    segments: list[str] = []
    parts = path.split("/")[1:]
    for s in parts:
        if s in ("", "."):
            continue
        if s == "..":
            if not segments:
                return None
            segments.pop()
        else:
            segments.append(s)
    trailing = path.endswith(("/", "/.", "/..")) and bool(segments)
    return "/" + "/".join(segments) + ("/" if trailing else "")


def docroot_file(url_path: str) -> str:
    """The file (relative to the site's root) that serves ``url_path`` as this catalog means it:
    ``/`` and ``…/`` → ``index.html``; a last segment with a dot as is; otherwise ``.html``."""
    rel = url_path.lstrip("/")
    if not rel or rel.endswith("/"):
        return rel + "index.html"
    return rel if "." in rel.rsplit("/", 1)[-1] else rel + ".html"


@dataclass(frozen=True)
class Route:
    """A regex location answered ``return 200`` (any method): views no static tree can hold."""

    pattern: str
    """Matched against ``$uri``; the same syntax for Python's ``re`` and nginx's PCRE."""
    kind: str
    """What it stands for (``commit``, ``blame`` …): picks a plausible body size."""

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def nginx(self) -> str:
        body = f'default_type text/html; return 200 "{self.kind}\\n";'
        return f'location ~ "{self.pattern}" {{ {body} }}'


_SIZES = {
    ".css": (6_000, 60_000), ".js": (20_000, 320_000), ".svg": (900, 9_000),
    ".woff2": (20_000, 90_000), ".jpg": (30_000, 400_000), ".webp": (12_000, 160_000),
    ".png": (2_000, 90_000), ".ico": (1_150, 15_086), ".xml": (4_000, 40_000),
    ".rss": (8_000, 50_000), ".txt": (60, 400), ".deb": (9_000, 6_000_000),
    ".whl": (15_000, 9_000_000), ".gz": (40_000, 2_000_000), ".xz": (400_000, 9_000_000),
}  # fmt: skip
_ROUTE_SIZES = {
    "commit": (9_000, 220_000), "diff": (1_500, 180_000), "tree": (14_000, 90_000),
    "blame": (40_000, 600_000), "raw": (300, 60_000), "log": (30_000, 80_000),
    "compare": (25_000, 900_000), "upload-pack": (500, 2_500_000),
}  # fmt: skip


def file_bytes(url_path: str) -> int:
    """A stable, plausible size for a file of the catalog (the lab may write smaller ones)."""
    last = url_path.rsplit("/", 1)[-1]
    ext = last[last.rfind(".") :] if "." in last else ""
    lo, hi = _SIZES.get(ext, (3_000, 42_000))
    if "/by-hash/" in url_path:
        lo, hi = _SIZES[".xz"]
    elif last in ("InRelease", "Release"):
        lo, hi = 40_000, 160_000
    elif "/api/" in url_path:
        lo, hi = 120, 9_000
    return lo + mix(name_hash(url_path)) % (hi - lo)


@dataclass
class Site:
    """One site of the lab's catalog, extended with what real visitors of such a site ask for."""

    name: str
    host: str
    audience: str
    """Browser mix of its visitors (:func:`opsconsole.lab.scenarios.agents.browser_mix`)."""
    pages: Sequence[str]
    """HTML pages real visitors browse, most popular first (some with a query string)."""
    assets: Sequence[str] = ()
    """Loaded by every HTML page, in load order (stylesheet first)."""
    fonts: Sequence[str] = ()
    """Loaded by the stylesheet: their referer is the stylesheet's URL."""
    images: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Page → the images it shows (some missing on the server: a real visitor's 404)."""
    icon: str | None = "/favicon.ico"
    """What browsers fetch as the site icon (404 when the file is not in ``files``)."""
    feed: str | None = None
    sitemap: str | None = None
    old_urls: Sequence[str] = ()
    """Gone pages a search engine still asks for (404)."""
    api: Sequence[str] = ()
    search: str | None = None
    files: frozenset[str] = frozenset()
    """Every URL path answered from a file (the lab's pages and the extras a scenario needs)."""
    lab_pages: frozenset[str] = frozenset()
    """The paths :data:`opsconsole.lab.model.SITES` already serves."""
    routes: Sequence[Route] = ()
    words: Sequence[str] = ()
    """Words of the site's content (what real visitors type into its search box)."""

    def url(self, path: str) -> str:
        return f"https://{self.host}{path}"

    @cached_property
    def _docroot(self) -> tuple[frozenset[str], frozenset[str]]:
        files = frozenset(docroot_file(u) for u in self.files)
        dirs = {""}
        for f in files:
            parts = f.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return files, frozenset(dirs)

    def resolve(self, uri: str) -> tuple[int, str]:
        """(status, matched kind) of a normalised ``$uri`` for GET: 200, 301, 403 or 404."""
        for route in self.routes:
            if route.regex.match(uri):
                return 200, route.kind
        files, dirs = self._docroot
        rel = uri[1:]
        if uri.endswith("/"):
            if rel.rstrip("/") in dirs:
                return (200, "file") if rel + "index.html" in files else (403, "")
            return 404, ""
        if rel in files or rel + ".html" in files:
            return 200, "file"
        return (301, "") if rel in dirs else (404, "")

    def answer(
        self, method: str, target: str, *, revalidate: bool = False, msie: bool = False
    ) -> tuple[int, int]:
        """(status, ``$body_bytes_sent``) of the site's nginx for this request."""
        path = target.split("?", 1)[0]
        uri = normalize(path)
        if uri is None:
            return 400, 0 if method == "HEAD" else ERROR_BYTES[400]
        status, kind = self.resolve(uri)
        if status == 200 and kind == "file":
            if method not in ("GET", "HEAD"):
                status = 405
            elif revalidate and method == "GET":
                return 304, 0
        if method == "HEAD":
            return status, 0
        if status == 200:
            if kind == "file":
                return 200, file_bytes(uri + ("index.html" if uri.endswith("/") else ""))
            lo, hi = _ROUTE_SIZES.get(kind, (2_000, 50_000))
            return 200, lo + mix(name_hash(target)) % (hi - lo)
        return status, ERROR_BYTES[status] + (MSIE_PADDING if msie and status >= 400 else 0)

    def exists(self, path: str) -> bool:
        uri = normalize(path.split("?", 1)[0])
        return uri is not None and self.resolve(uri)[0] == 200


@dataclass(frozen=True)
class LabRequirements:
    """What one lab site's nginx must serve so that a replay answers what the labels say."""

    service: str
    files: Mapping[str, str]
    """URL path → file under the site's root, for every path not in the lab's catalog yet."""
    locations: tuple[str, ...]
    """``location`` blocks to add inside the site's ``server {}`` (before ``location /``)."""


def requirements(site: Site) -> LabRequirements:
    extra = sorted(site.files - site.lab_pages)
    return LabRequirements(
        site.name, {u: docroot_file(u) for u in extra}, tuple(r.nginx() for r in site.routes)
    )
