"""The configuration file (DESIGN §3): find it, read it with ``tomllib``, validate it strictly.

Every front end calls :func:`load_config` once at start.  Unknown keys, wrong types, bad durations
and dangling references are refused with a :class:`~opsconsole.errors.ConfigError` naming the file,
the key path (``services.shop.access_log``) and what was expected, so a typo never passes silently.
The dataclasses below are the documentation of every key: each field says what it is for.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .durations import parse_duration
from .errors import ConfigError

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,47}")
"""Server and service names: they become file names and (with '-' as '_') nginx variable names."""


@dataclass(frozen=True)
class ConsoleConfig:
    theme: str = "opsconsole-dark"
    """A theme from themes/ or a built-in Textual theme."""
    window: float = 60.0
    """Sliding window of the top lists, in seconds (written as a duration: "60s", "5m")."""
    operator: str = ""
    """Name written to the audit trail; default $USER@hostname."""
    read_only: bool = False
    """True: every action is refused (safe mode)."""
    export: tuple[str, int] | None = None
    """(host, port) where the console serves its numbers to Prometheus (``/metrics``), as
    ``opsconsole export`` does; None: not served."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``127.0.0.1:9464``, ``[::1]:9464``, ``localhost:9464``) as (host, port);
    ValueError saying what is wrong.  HOST is an IP address or ``localhost``, never a name to
    look up elsewhere."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9464, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"write an IPv6 address in brackets, as [::1]:9464, got {text!r}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (or localhost)") from None
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


@dataclass(frozen=True)
class HealthConfig:
    interval: float = 10.0
    """Seconds between two health rounds in the TUI ("10s")."""
    timeout: float = 5.0
    """Timeout of one HTTP probe or host probe ("5s")."""
    follow_redirects: bool = False
    """Follow HTTP redirects when probing a service URL."""
    latency_warn_ms: float = 1000.0
    """An HTTP answer slower than this is 'warn'."""
    memory_warn_percent: float = 85.0
    disk_warn_percent: float = 85.0
    load_warn_per_cpu: float = 2.0
    """1-minute load divided by the number of CPUs above which a host is 'warn'."""
    syn_recv_warn: int = 100
    """This many half-open (SYN_RECV) connections or more is 'warn' (a SYN flood symptom)."""
    tls_warn_days: int = 14
    """An https certificate with fewer days left than this is 'warn'."""


@dataclass(frozen=True)
class NotifyConfig:
    webhooks: tuple[str, ...] = ()
    """Incoming-webhook URLs (Slack, Mattermost, Matrix hookshot…), each POSTed a JSON body with
    a ``text`` line for every change, confirm, rollback and automatic revert.  Their paths and
    queries are secrets: opsconsole only ever shows them as :func:`shown_url` does."""


def shown_url(url: str) -> str:
    """A webhook URL as it may be shown (messages, logs, state files): scheme and host only,
    ``https://hooks.slack.com/…`` — the path and query of an incoming webhook are its secret."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(an invalid URL)"
    if not parts.scheme or not parts.hostname:
        return f"{parts.scheme}:// without a host" if parts.scheme else "(not a URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/…"


@dataclass(frozen=True)
class ServerConfig:
    name: str
    host: str
    """Host name, an alias from ~/.ssh/config, or "local" for this machine without SSH."""
    port: int | None = None
    """SSH port; default from ~/.ssh/config, else 22."""
    user: str | None = None
    """SSH user; default from ~/.ssh/config, else the local user."""
    known_hosts: str | None = "~/.ssh/known_hosts"
    """known_hosts file used for strict host-key checking; nothing is ever auto-accepted."""
    client_keys: tuple[str, ...] = ()
    """Private key files; empty means the SSH agent and the ~/.ssh defaults."""
    sudo: bool = False
    """Run nginx and control-file commands under `sudo -n`."""
    python: str = "python3"
    """Interpreter on the server used by the host probe and the aggregating mode."""

    @property
    def is_local(self) -> bool:
        return self.host == "local"


READ_MODES = ("raw", "aggregate", "auto")


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    servers: tuple[str, ...]
    """Servers the site runs on; stats aggregate over them, controls fan out to all."""
    access_log: str
    """Absolute path of the site's access log on each server."""
    kind: str = "nginx"
    log_format: str = "combined"
    """"combined", or the nginx log_format string itself."""
    url: str | None = None
    """URL probed by the health check."""
    control_dir: str = "/etc/nginx/opsconsole"
    """Directory holding the rendered snippets, the state and the audit trail of the service."""
    nginx_test: str = "nginx -t"
    nginx_reload: str = "nginx -s reload"
    mode: str = "raw"
    """How the live console reads the log (DESIGN §4): "raw" streams the lines and parses them
    here; "aggregate" parses on each server (``python3 -``, nothing installed) and ships
    per-second summaries; "auto" streams raw and aggregates while the raw stream falls behind.
    A server without a usable python3 stays raw and says so."""

    # "{server}" in a path or command stands for the server's name, for fleets (and the local
    # rehearsal lab) where servers of one service keep their files in different places.
    def access_log_on(self, server: str) -> str:
        return self.access_log.replace("{server}", server)

    def control_dir_on(self, server: str) -> str:
        return self.control_dir.replace("{server}", server)

    def nginx_test_on(self, server: str) -> str:
        return self.nginx_test.replace("{server}", server)

    def nginx_reload_on(self, server: str) -> str:
        return self.nginx_reload.replace("{server}", server)


@dataclass(frozen=True)
class Config:
    path: Path
    console: ConsoleConfig
    health: HealthConfig
    servers: dict[str, ServerConfig] = field(default_factory=dict)
    services: dict[str, ServiceConfig] = field(default_factory=dict)
    example: bool = False
    """``example = true``: the documented example shipped in the checkout, which describes no
    real fleet; :func:`load_config` refuses it, so it never stands in for the operator's own
    config (or the lab's) just because it sits in the current directory."""
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    """``[notify]``: where changes are announced (nowhere by default)."""

    def service(self, name: str) -> ServiceConfig:
        """The service called ``name``; a ConfigError listing the known ones otherwise."""
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise ConfigError(
                str(self.path), f"services.{name}", f"no such service (configured: {known})"
            ) from None


def default_operator() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def find_config(explicit: str | None = None) -> Path:
    """Apply the search order of DESIGN §3 and return the first config that exists."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("OPSCONSOLE_CONFIG")
    if env:
        return Path(env)
    candidates = [Path("config.toml")]
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    candidates.append(Path(xdg) / "opsconsole" / "config.toml")
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        "config.toml",
        "",
        "no config file found (looked for --config, $OPSCONSOLE_CONFIG, ./config.toml, "
        f"{candidates[1]}); `opsconsole lab up` writes one for a local rehearsal fleet",
    )


def load_config(explicit: str | None = None) -> Config:
    """Find, read and validate the config.  Raises ConfigError (exit status 2) on any problem."""
    path = find_config(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot be read: {e.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"is not valid TOML: {e}") from None
    config = parse_config(data, path)
    if config.example:
        raise ConfigError(
            str(path),
            "example",
            "this is opsconsole's documented example, not a fleet (found "
            + ("as given" if explicit else "first in the search order")
            + "): copy it, describe your servers and delete the `example = true` line — or use "
            "the rehearsal lab, whose `opsconsole lab up` prints the `export "
            "OPSCONSOLE_CONFIG=…` line to run",
        )
    return config


T = TypeVar("T")


class _Reader:
    """Reads one table, checking types and remembering which keys were used."""

    def __init__(self, file: str, prefix: str, table: Any) -> None:
        self.file = file
        self.prefix = prefix
        if not isinstance(table, dict):
            raise ConfigError(file, prefix, "expected a table")
        self.table: dict[str, Any] = table

    def error(self, key: str, expected: str) -> ConfigError:
        return ConfigError(self.file, f"{self.prefix}.{key}" if self.prefix else key, expected)

    def get(self, key: str, kind: type[T], default: T, what: str) -> T:
        if key not in self.table:
            return default
        value = self.table[key]
        # bool is an int subclass in Python: never accept one for the other.
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.error(key, f"expected {what}, got {value!r}")
        if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise self.error(key, f"expected {what}, got {value!r}")
        if kind not in (int, float) and not isinstance(value, kind):
            raise self.error(key, f"expected {what}, got {value!r}")
        return kind(value)  # type: ignore[call-arg]

    def text(self, key: str, default: str, what: str = "a string") -> str:
        return self.get(key, str, default, what)

    def optional_text(self, key: str, what: str = "a string") -> str | None:
        if key not in self.table:
            return None
        return self.get(key, str, "", what)

    def duration(self, key: str, default: float) -> float:
        if key not in self.table:
            return default
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(key, f'expected a duration such as "60s" or "5m", got {value!r}')
        try:
            return parse_duration(str(value))
        except ValueError as e:
            raise self.error(key, str(e)) from None

    def listen(self, key: str) -> tuple[str, int] | None:
        text = self.optional_text(key, 'HOST:PORT, such as "127.0.0.1:9464"')
        if text is None:
            return None
        try:
            return parse_listen(text)
        except ValueError as e:
            raise self.error(key, str(e)) from None

    def check(self, key: str, ok: Callable[[Any], bool], expected: str) -> None:
        if key in self.table and not ok(self.table[key]):
            raise self.error(key, f"{expected}, got {self.table[key]!r}")

    def refuse_unknown(self, known: set[str]) -> None:
        for key in self.table:
            if key not in known:
                raise self.error(key, f"unknown key (expected one of: {', '.join(sorted(known))})")


_CONSOLE_KEYS = {"theme", "window", "operator", "read_only", "export"}
_HEALTH_KEYS = {f for f in HealthConfig.__dataclass_fields__}
_SERVER_KEYS = {f for f in ServerConfig.__dataclass_fields__ if f != "name"}
_SERVICE_KEYS = {f for f in ServiceConfig.__dataclass_fields__ if f != "name"}


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate a parsed TOML document; ``path`` is only used in messages."""
    file = str(path)
    top = _Reader(file, "", data)
    top.refuse_unknown({"example", "console", "health", "notify", "servers", "services"})
    example = top.get("example", bool, False, "true or false")

    c = _Reader(file, "console", data.get("console", {}))
    c.refuse_unknown(_CONSOLE_KEYS)
    console = ConsoleConfig(
        theme=c.text("theme", ConsoleConfig.theme),
        window=c.duration("window", ConsoleConfig.window),
        operator=c.text("operator", "") or default_operator(),
        read_only=c.get("read_only", bool, False, "true or false"),
        export=c.listen("export"),
    )

    h = _Reader(file, "health", data.get("health", {}))
    h.refuse_unknown(_HEALTH_KEYS)
    health = HealthConfig(
        interval=h.duration("interval", HealthConfig.interval),
        timeout=h.duration("timeout", HealthConfig.timeout),
        follow_redirects=h.get("follow_redirects", bool, False, "true or false"),
        latency_warn_ms=h.get("latency_warn_ms", float, 1000.0, "a number of milliseconds"),
        memory_warn_percent=h.get("memory_warn_percent", float, 85.0, "a percentage"),
        disk_warn_percent=h.get("disk_warn_percent", float, 85.0, "a percentage"),
        load_warn_per_cpu=h.get("load_warn_per_cpu", float, 2.0, "a number"),
        syn_recv_warn=h.get("syn_recv_warn", int, 100, "a whole number"),
        tls_warn_days=h.get("tls_warn_days", int, 14, "a whole number of days"),
    )
    for key in ("memory_warn_percent", "disk_warn_percent"):
        h.check(key, lambda v: 0 < v <= 100, "expected a percentage between 0 and 100")
    h.check("latency_warn_ms", lambda v: v > 0, "expected a positive number of milliseconds")
    h.check("load_warn_per_cpu", lambda v: v > 0, "expected a positive number")
    h.check("syn_recv_warn", lambda v: v >= 1, "expected a whole number of at least 1")
    h.check("tls_warn_days", lambda v: 0 <= v <= 3650, "expected a number of days from 0 to 3650")

    notify = _notify(_Reader(file, "notify", data.get("notify", {})))

    servers: dict[str, ServerConfig] = {}
    s_all = _Reader(file, "servers", data.get("servers", {}))
    for name, table in s_all.table.items():
        if not NAME_RE.fullmatch(name):
            raise s_all.error(name, "a server name is a letter then letters, digits, '_' or '-'")
        r = _Reader(file, f"servers.{name}", table)
        r.refuse_unknown(_SERVER_KEYS)
        if "host" not in r.table:
            raise r.error("host", 'missing: expected a host name, an ssh alias or "local"')
        host = r.text("host", "", 'a host name, an ssh alias or "local"')
        if not host or host.startswith("-") or any(ch.isspace() for ch in host):
            raise r.error("host", f"expected a host name without spaces, got {host!r}")
        r.check("port", lambda v: isinstance(v, int) and 0 < v < 65536, "expected a port 1-65535")
        keys = r.table.get("client_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise r.error("client_keys", f"expected a list of key file paths, got {keys!r}")
        kh = r.table.get("known_hosts", "~/.ssh/known_hosts")
        if not isinstance(kh, str) or not kh:
            raise r.error("known_hosts", f"expected the path of a known_hosts file, got {kh!r}")
        servers[name] = ServerConfig(
            name=name,
            host=host,
            port=r.table.get("port"),
            user=r.optional_text("user", "a user name"),
            known_hosts=kh,
            client_keys=tuple(keys),
            sudo=r.get("sudo", bool, False, "true or false"),
            python=r.text("python", "python3", "an interpreter name or path"),
        )

    services: dict[str, ServiceConfig] = {}
    normalized: dict[str, str] = {}
    v_all = _Reader(file, "services", data.get("services", {}))
    for name, table in v_all.table.items():
        if not NAME_RE.fullmatch(name):
            raise v_all.error(name, "a service name is a letter then letters, digits, '_' or '-'")
        norm = name.lower().replace("-", "_")
        if norm in normalized:
            raise v_all.error(name, f"clashes with service {normalized[norm]!r} in nginx names")
        normalized[norm] = name
        r = _Reader(file, f"services.{name}", table)
        r.refuse_unknown(_SERVICE_KEYS)
        names = r.table.get("servers")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise r.error("servers", "expected a non-empty list of server names")
        for n in names:
            if n not in servers:
                known = ", ".join(sorted(servers)) or "none"
                raise r.error("servers", f"names unknown server {n!r} (configured: {known})")
        if "access_log" not in r.table:
            raise r.error("access_log", "missing: expected the absolute path of the access log")
        log = r.text("access_log", "", "an absolute path")
        if not log.startswith("/") or "\n" in log or "\x00" in log:
            raise r.error("access_log", f"expected an absolute path, got {log!r}")
        kind = r.text("kind", "nginx")
        if kind != "nginx":
            raise r.error("kind", f'expected "nginx" (the only kind supported), got {kind!r}')
        fmt = r.text("log_format", "combined", 'a log format: "combined" or an nginx log_format')
        try:
            from .logs.logformat import compile_format

            compile_format(fmt)
        except ValueError as e:
            raise r.error("log_format", str(e)) from None
        url = r.optional_text("url", "an http:// or https:// URL")
        if url is not None and not re.match(r"https?://[^\s/]+", url):
            raise r.error("url", f"expected an http:// or https:// URL, got {url!r}")
        cdir = r.text("control_dir", ServiceConfig.control_dir, "an absolute path")
        if not cdir.startswith("/") or any(ch in cdir for ch in "\n\x00"):
            raise r.error("control_dir", f"expected an absolute path, got {cdir!r}")
        mode = r.text("mode", "raw", '"raw", "aggregate" or "auto"')
        if mode not in READ_MODES:
            raise r.error("mode", f'expected "raw", "aggregate" or "auto", got {mode!r}')
        services[name] = ServiceConfig(
            name=name,
            mode=mode,
            servers=tuple(names),
            access_log=log,
            kind=kind,
            log_format=fmt,
            url=url,
            control_dir=cdir,
            nginx_test=r.text("nginx_test", ServiceConfig.nginx_test, "a command"),
            nginx_reload=r.text("nginx_reload", ServiceConfig.nginx_reload, "a command"),
        )

    return Config(
        path=path,
        console=console,
        health=health,
        servers=servers,
        services=services,
        example=example,
        notify=notify,
    )


def _notify(r: _Reader) -> NotifyConfig:
    """``[notify]``: each webhook an http(s) URL with a host, listed once.  A bad one is shown
    as :func:`shown_url` shows it, never whole (its path is a secret)."""
    r.refuse_unknown({"webhooks"})
    hooks = r.table.get("webhooks", [])
    if not isinstance(hooks, list):
        raise r.error("webhooks", "expected a list of http:// or https:// URLs")
    seen: set[str] = set()
    for i, url in enumerate(hooks):
        key = f"webhooks[{i}]"
        if not isinstance(url, str):
            raise r.error(key, f"expected an http:// or https:// URL, got {type(url).__name__}")
        try:
            parts = urlsplit(url)
            ok = (
                parts.scheme in ("http", "https")
                and bool(parts.hostname)
                and (parts.port is None or parts.port > 0)
            )
        except ValueError:
            ok = False
        if not ok or any(ch.isspace() or ord(ch) < 32 for ch in url):
            raise r.error(
                key, f"expected an http:// or https:// URL with a host, got {shown_url(url)}"
            )
        if url in seen:
            raise r.error(key, f"{shown_url(url)} is listed twice (it would be posted twice)")
        seen.add(url)
    return NotifyConfig(webhooks=tuple(hooks))
