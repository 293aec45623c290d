"""A real nginx per simulated server: its config, its sites' static files, and its start.

Called by :class:`opsconsole.lab.Lab` at start.  Each server runs ``nginx -p PREFIX -c nginx.conf``
with its pid file, error log, default access log and all five temp paths inside the prefix
(LAB-NOTES), one ``server {}`` per site on its own loopback port, ``realip`` trusting 127.0.0.1
only (so the traffic generator can present any client address in ``X-Forwarded-For``), and the
control-snippet includes of DESIGN §5 — the same includes an operator adds to a production nginx.

Every site also serves what the labelled scenarios ask for beyond the lab's catalog
(:func:`opsconsole.lab.scenarios.lab_requirements`: the extra files, small placeholders, and the
forge's repository views), so that a scenario replayed over HTTP answers the statuses of its labels.
"""

from __future__ import annotations

import getpass
import html
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .model import LabError, Layout, SiteSpec
from .procs import ProcRecord, free_ports, log_tail, spawn, wait_started
from .scenarios import lab_requirements
from .scenarios import sites as scenario_sites

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def find_nginx() -> str | None:
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(
        "nginx", path="/usr/sbin:/usr/local/sbin:/sbin:" + os.environ.get("PATH", "")
    )


def nginx_argv(nginx: str, prefix: Path, *extra: str) -> list[str]:
    """``nginx -p PREFIX -e logs/error.log -c nginx.conf …``: nothing outside the prefix is used.

    ``-e`` keeps nginx from opening its compiled-in error log (/var/log/nginx) before it has read
    the config.
    """
    return [nginx, "-p", str(prefix), "-e", "logs/error.log", "-c", "nginx.conf", *extra]


def _file_for(docroot: Path, url_path: str) -> Path:
    """The file nginx serves for ``url_path`` under ``try_files $uri $uri.html $uri/``."""
    if url_path == "/":
        return docroot / "index.html"
    rel = url_path.lstrip("/")
    return docroot / (rel if "." in rel.rsplit("/", 1)[-1] else f"{rel}.html")


def _page(site: SiteSpec, server: str, url_path: str) -> bytes:
    if url_path.endswith(".css"):
        return b"body { font-family: sans-serif; margin: 2em auto; max-width: 40em; }\n"
    if url_path.endswith(".txt"):
        return b"User-agent: *\nDisallow: /cart\n"
    if url_path.endswith(".deb"):
        return b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n"
    if not url_path.endswith(("/", ".html")) and "/dists/" in url_path:
        return b"Origin: Example\nSuite: stable\nCodename: lab\n"
    links = "".join(
        f'<li><a href="{html.escape(p)}">{html.escape(p)}</a></li>'
        for p in site.pages
        if not p.startswith("/static/") and "." not in p.rsplit("/", 1)[-1]
    )
    title = html.escape(f"{site.title} — {url_path}")
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f'<link rel="stylesheet" href="/static/app.css"></head><body><h1>{title}</h1>'
        f"<p>Served by the rehearsal server {html.escape(server)}.</p><ul>{links}</ul>"
        "</body></html>\n"
    ).encode()


def _extra_file(site: SiteSpec, server: str, url_path: str, rel: str) -> bytes:
    """A small stand-in for a file a scenario asks for (its real size does not matter here)."""
    if rel.endswith(".html") or url_path.endswith((".css", ".txt")):
        return _page(site, server, url_path)
    return f"rehearsal lab file {url_path}\n".encode()


def write_sites(layout: Layout, server: str, sites: Sequence[SiteSpec]) -> None:
    """Static docroots (real files: the catalog's paths answer 200, and those the scenarios ask
    for) and empty control snippets."""
    control = layout.control_dir(server)
    control.mkdir(parents=True, exist_ok=True)
    layout.logs_dir(server).mkdir(parents=True, exist_ok=True)
    required = lab_requirements()
    for site in sites:
        docroot = layout.docroot(site.name, server)
        for url_path in site.pages:
            path = _file_for(docroot, url_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_page(site, server, url_path))
        extra = required.get(site.name)
        for url_path, rel in extra.files.items() if extra else ():
            if rel.startswith("/") or ".." in rel.split("/"):
                raise LabError(f"a scenario asks site {site.name} for a file outside it: {rel!r}")
            path = docroot / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_extra_file(site, server, url_path, rel))
        # Empty snippets from the start, so `nginx -t` passes before any control is applied.
        for suffix in ("http.conf", "server.conf"):
            (control / f"{site.name}.{suffix}").touch()


def route_locations(service: str) -> list[str]:
    """The forge's repository views (the scenarios' :class:`~.scenarios.sites.Route`) as nginx
    ``location`` blocks that answer 200 to any method.

    Not the ``return 200`` inside the regex location that ``lab_requirements()`` spells: a
    ``return`` there ends the request in the rewrite phase, before ``limit_req`` (preaccess), so
    an operator's rate limit would never touch these views in the lab — it would on a real forge.
    ``try_files`` runs after the preaccess and access phases; its fallback, a named location,
    then answers.
    """
    site = scenario_sites().get(service)
    out: list[str] = []
    for i, route in enumerate(site.routes if site else ()):
        name = f"@lab_route_{i}_{route.kind.replace('-', '_')}"
        out += [
            f'location ~ "{route.pattern}" {{ try_files /.opsconsole-route {name}; }}',
            f'location {name} {{ default_type text/html; return 200 "{route.kind}\\n"; }}',
        ]
    return out


def render_conf(layout: Layout, server: str, sites: Sequence[tuple[SiteSpec, int]]) -> str:
    """nginx.conf of one server; ``sites`` pairs each site with its listening port."""
    prefix = layout.nginx_prefix(server)
    control = layout.control_dir(server)
    out = [
        f"# nginx of the opsconsole rehearsal lab, server {server}. Written by opsconsole lab up."
    ]
    if os.geteuid() == 0:
        # Workers read docroots under the lab dir, which may be private to the user (mode 0700).
        out.append(f"user {getpass.getuser()};")
    out += [
        "daemon off;",
        "worker_processes 1;",
        f"pid {prefix}/nginx.pid;",
        f"error_log {prefix}/logs/error.log notice;",
        "events { worker_connections 1024; }",
        "http {",
        "    types { text/html html; text/css css; text/plain txt;"
        " application/vnd.debian.binary-package deb; }",
        "    default_type text/plain;",
        *(f"    {name}_temp_path {prefix}/temp/{name};" for name in _TEMP_PATHS),
        f"    access_log {prefix}/logs/access.log combined;",
        "    server_tokens off;",
        "    sendfile on;",
        "    keepalive_timeout 30s;",
        "    keepalive_requests 10000;",
        "    # Only the local traffic generator is trusted to say who the client is.",
        "    set_real_ip_from 127.0.0.1;",
        "    real_ip_header X-Forwarded-For;",
    ]
    for site, _port in sites:
        if site.log_format != "combined":
            out.append(f"    log_format lab_{site.name} '{site.log_format}';")
    out.append(f"    include {control}/*.http.conf;")
    for site, port in sites:
        fmt = "combined" if site.log_format == "combined" else f"lab_{site.name}"
        out += [
            "    server {",
            f"        listen 127.0.0.1:{port};",
            f"        server_name {site.name};",
            f"        root {layout.docroot(site.name, server)};",
            "        index index.html;",
            f"        access_log {layout.access_log(site.name, server)} {fmt};",
            f"        include {control}/{site.name}.server.conf;",
            *(f"        {location}" for location in route_locations(site.name)),
            "        location / { try_files $uri $uri.html $uri/ =404; }",
            "    }",
        ]
    out.append("}")
    return "\n".join(out) + "\n"


def start_nginx(
    layout: Layout, server: str, sites: Sequence[SiteSpec], nginx: str, *, attempts: int = 3
) -> tuple[ProcRecord, subprocess.Popen[bytes], dict[str, int]]:
    """Start ``server``'s nginx with one free port per site; return record, handle and ports.

    Returns once the master has written its PID file (after binding every port).  ``nginx -t``
    runs first so that a config problem is reported in nginx's own words.
    """
    prefix = layout.nginx_prefix(server)
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    for name in _TEMP_PATHS:
        (prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
    write_sites(layout, server, sites)
    log = prefix / "logs" / "error.log"
    pid_file = prefix / "nginx.pid"
    for attempt in range(attempts):
        ports = dict(zip((s.name for s in sites), free_ports(len(sites)), strict=True))
        conf = render_conf(layout, server, [(s, ports[s.name]) for s in sites])
        (prefix / "nginx.conf").write_text(conf)
        test = subprocess.run(
            nginx_argv(nginx, prefix, "-t", "-q"), capture_output=True, text=True, check=False
        )
        if test.returncode != 0:
            message = test.stderr.strip().replace("\n", " | ")
            raise LabError(f"nginx of {server} refused its lab config: {message}")
        pid_file.unlink(missing_ok=True)
        name = f"nginx of {server}"
        record, popen = spawn(name, nginx_argv(nginx, prefix), output=prefix / "logs" / "nginx.out")
        try:
            wait_started(name, popen, pid_file=pid_file, log=log)
        except LabError:
            if attempt + 1 < attempts and "Address already in use" in log_tail(log, 20):
                continue
            raise
        return record, popen, ports
    raise AssertionError("unreachable")
