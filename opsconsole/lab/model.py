"""What a rehearsal lab is made of: its error, servers, services, site catalog and file layout.

Used by every other module of :mod:`opsconsole.lab` (the process starters, the config writer, the
traffic generator) and re-exported to callers through the package.  Pure data and path arithmetic:
nothing here starts a process or touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OpsConsoleError

DEFAULT_SERVERS = ("web1", "web2")

REPO_LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_time "$host"'
)
"""The one custom ``log_format`` of the lab (service ``repo``): nginx "main" plus two fields."""


class LabError(OpsConsoleError):
    """The lab could not be started, found or stopped; the message says what to do.

    ``exit_status`` is 2 when something must be installed first (nothing was started), 1 otherwise.
    """

    def __init__(self, message: str, *, exit_status: int = 1) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass(frozen=True)
class LabServer:
    """A simulated server: its own sshd on ``ssh_port``, its own nginx, its files in ``root``."""

    name: str
    ssh_port: int
    root: Path
    sshd_pid: int
    nginx_pid: int


@dataclass(frozen=True)
class LabService:
    """One site: an nginx ``server {}`` on its own loopback port on each of its servers."""

    name: str
    servers: tuple[str, ...]
    http_ports: dict[str, int]
    log_format: str
    """ "combined" or the nginx log_format string itself (the same string is in config.toml)."""


@dataclass(frozen=True)
class ScenarioRun:
    """A labelled scenario being replayed into the lab (:meth:`opsconsole.lab.Lab.start_scenario`).

    Times are epoch seconds: the live traffic began at ``live_start`` (everything before it was
    written into the logs: ``baseline_lines`` lines from ``baseline_from``), the scenario's event
    begins at ``attack_at`` (None: it has none) and its window ends at ``window_end``, after which
    ordinary traffic goes on.  ``labels`` holds the ground truth of every request.
    """

    name: str
    seed: int
    scale: float
    flood_after: float
    live_start: float
    attack_at: float | None
    window_end: float
    baseline_lines: int
    baseline_from: float | None
    labels: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "scale": self.scale,
            "flood_after": self.flood_after,
            "live_start": self.live_start,
            "attack_at": self.attack_at,
            "window_end": self.window_end,
            "baseline_lines": self.baseline_lines,
            "baseline_from": self.baseline_from,
            "labels": str(self.labels),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioRun:
        attack_at, first = data["attack_at"], data["baseline_from"]
        return cls(
            str(data["name"]),
            int(data["seed"]),
            float(data["scale"]),
            float(data["flood_after"]),
            float(data["live_start"]),
            None if attack_at is None else float(attack_at),
            float(data["window_end"]),
            int(data["baseline_lines"]),
            None if first is None else float(first),
            Path(data["labels"]),
        )


@dataclass(frozen=True)
class SiteSpec:
    """A site of the catalog: where it runs and which URL paths exist (everything else is 404)."""

    name: str
    title: str
    placement: tuple[int, ...] | None
    """Indices into the lab's server list (modulo its length); None = on every server."""
    pages: tuple[str, ...]
    log_format: str = "combined"

    def servers_in(self, servers: Sequence[str]) -> tuple[str, ...]:
        if self.placement is None:
            return tuple(servers)
        chosen = [servers[i % len(servers)] for i in self.placement]
        return tuple(dict.fromkeys(chosen))


_COMMON = ("/", "/about", "/static/app.css", "/robots.txt")

SITES: tuple[SiteSpec, ...] = (
    SiteSpec(
        "www",
        "Example Corp",
        None,
        (*_COMMON, "/contact", "/blog/hello-world", *(f"/products/{i}" for i in range(1, 7))),
    ),
    SiteSpec(
        "shop", "Example Shop", (0,), (*_COMMON, "/cart", *(f"/products/{i}" for i in range(1, 13)))
    ),
    SiteSpec(
        "forums", "Example Forums", (1,), (*_COMMON, "/latest", *(f"/t/{i}" for i in range(1, 9)))
    ),
    SiteSpec(
        "git",
        "Example Git",
        (1,),
        (*_COMMON, "/explore", "/alice/project", "/alice/project/commits"),
    ),
    SiteSpec(
        "repo",
        "Example Package Repository",
        (0,),
        (*_COMMON, "/dists/stable/Release", "/pool/main/o/opsconsole/opsconsole_0.1.0_all.deb"),
        REPO_LOG_FORMAT,
    ),
)
"""The sites of DESIGN §1: a main site on every server, the others spread over the first two."""

# Characters that would need escaping in nginx.conf, sshd_config or a shell command: a lab directory
# holding one is refused rather than quoted in three different syntaxes.
_UNSAFE_PATH = re.compile(r"[\"'\\$;{}#%`\s]|[\x00-\x1f]")


def check_lab_dir(path: Path) -> None:
    if _UNSAFE_PATH.search(str(path)):
        raise LabError(
            f"unusable lab directory {str(path)!r}: choose a path without spaces, quotes, "
            "'$', ';', '{', '}', '#', '%' or backslashes"
        )


@dataclass(frozen=True)
class Layout:
    """Where every file of a lab lives.  All simulated servers share this machine's filesystem."""

    dir: Path

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    @property
    def marker(self) -> Path:
        return self.dir / ".opsconsole-lab"

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    @property
    def ssh_dir(self) -> Path:
        return self.dir / "ssh"

    @property
    def client_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def home(self) -> Path:
        """HOME of SSH sessions into the lab (keeps the machine's own shell rc files out)."""
        return self.dir / "home"

    @property
    def traffic_log(self) -> Path:
        return self.dir / "traffic.log"

    @property
    def scenario_dir(self) -> Path:
        """What a scenario replay leaves: its labels and its progress."""
        return self.dir / "scenario"

    @property
    def scenario_labels(self) -> Path:
        return self.scenario_dir / "labels.tsv"

    @property
    def scenario_status(self) -> Path:
        return self.scenario_dir / "status.json"

    def server_root(self, server: str) -> Path:
        return self.dir / "servers" / server

    def nginx_prefix(self, server: str) -> Path:
        return self.server_root(server) / "nginx"

    def sshd_dir(self, server: str) -> Path:
        return self.server_root(server) / "sshd"

    def control_dir(self, server: str) -> Path:
        return self.server_root(server) / "control"

    def logs_dir(self, server: str) -> Path:
        return self.server_root(server) / "logs"

    def access_log(self, service: str, server: str) -> Path:
        return self.logs_dir(server) / f"{service}.access.log"

    def docroot(self, service: str, server: str) -> Path:
        return self.server_root(server) / "sites" / service
