"""The rehearsal lab as one object: start it, find it again, ask after it, stop it.

Called by ``opsconsole lab up|down|status`` (:mod:`opsconsole.cli.lab`), by ``opsconsole demo`` and
by the test fixtures.  A lab is a directory; ``lab.json`` in it records every process the lab
started (PID and start time) and exists exactly while the lab runs, so another process can
re-open it with :meth:`Lab.load` and stop exactly those processes — never anything found by name.
Each save is mirrored in the machine's lab registry (:mod:`.registry`) with the lab's owner — the
process the lab should die with, None once :meth:`Lab.detach` let it outlive its starter — so that
a lab left running by a killed demo is found and stopped by the next one.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..config import NAME_RE
from . import registry
from .configfile import render_config, write_config
from .model import (
    DEFAULT_SERVERS,
    SITES,
    LabError,
    LabServer,
    LabService,
    Layout,
    ScenarioRun,
    check_lab_dir,
)
from .nginx import find_nginx, start_nginx
from .procs import ProcRecord, log_tail, spawn, stop_process
from .replay import DEFAULT_SCALE, validate
from .sshd import find_sshd, start_sshd, write_client_key, write_known_hosts, write_ssh_config
from .traffic import FLOOD_RPS, LEGIT_RPS, MAX_DURATION

STATE_VERSION = 1
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
SCENARIO_READY_TIMEOUT = 180.0
"""Seconds a scenario replay may take to generate its run and write its past into the logs."""


def require_software() -> tuple[str, str]:
    """Absolute paths of nginx and sshd; LabError (exit status 2) naming what to install."""
    nginx, sshd = find_nginx(), find_sshd()
    missing = [pkg for pkg, found in (("nginx", nginx), ("openssh-server", sshd)) if not found]
    if missing or nginx is None or sshd is None:
        what = " and ".join(
            f"{'sshd' if pkg == 'openssh-server' else pkg} is not installed" for pkg in missing
        )
        raise LabError(f"{what}: apt-get install {' '.join(missing)}", exit_status=2)
    return nginx, sshd


class Lab:
    """A running (or stopped) rehearsal fleet.  Build one with :meth:`start` or :meth:`load`."""

    def __init__(self, layout: Layout, *, user: str, seed: int, nginx: str) -> None:
        self.layout = layout
        self.user = user
        self.seed = seed
        self.nginx = nginx
        self.servers: dict[str, LabServer] = {}
        self.services: dict[str, LabService] = {}
        self.owner: ProcRecord | None = None
        """The process the lab should not outlive (see :meth:`detach`); None: no owner."""
        self.scenario: ScenarioRun | None = None
        """The labelled scenario the lab's traffic process replays (:meth:`start_scenario`)."""
        self._records: dict[str, ProcRecord] = {}
        self._popens: dict[str, subprocess.Popen[bytes]] = {}

    # -- where things are ------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return self.layout.dir

    @property
    def config_path(self) -> Path:
        return self.layout.config_path

    @property
    def known_hosts(self) -> Path:
        return self.layout.known_hosts

    @property
    def client_key(self) -> Path:
        return self.layout.client_key

    def _server(self, server: str) -> LabServer:
        try:
            return self.servers[server]
        except KeyError:
            raise LabError(f"no server {server!r} in the lab ({', '.join(self.servers)})") from None

    def _service(self, service: str) -> LabService:
        try:
            return self.services[service]
        except KeyError:
            known = ", ".join(self.services)
            raise LabError(f"no service {service!r} in the lab ({known})") from None

    def access_log(self, service: str, server: str) -> Path:
        if server not in self._service(service).servers:
            raise LabError(f"service {service!r} does not run on {server!r}")
        return self.layout.access_log(service, server)

    def control_dir(self, server: str) -> Path:
        return self.layout.control_dir(self._server(server).name)

    def nginx_prefix(self, server: str) -> Path:
        return self.layout.nginx_prefix(self._server(server).name)

    def url(self, service: str, server: str | None = None) -> str:
        """The site's base URL on ``server`` (default: its first server)."""
        svc = self._service(service)
        on = server or svc.servers[0]
        if on not in svc.http_ports:
            raise LabError(f"service {service!r} does not run on {on!r}")
        return f"http://127.0.0.1:{svc.http_ports[on]}/"

    def connect_options(self, server: str) -> dict[str, Any]:
        """Keyword arguments for ``asyncssh.connect`` into ``server``, strictly checked."""
        return {
            "host": "127.0.0.1",
            "port": self._server(server).ssh_port,
            "username": self.user,
            "known_hosts": str(self.known_hosts),
            "client_keys": [str(self.client_key)],
        }

    # -- life cycle ------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        dir: Path | str | None = None,
        *,
        traffic: bool = True,
        flood_after: float | None = 20.0,
        seed: int = 1,
        servers: tuple[str, ...] = DEFAULT_SERVERS,
    ) -> Lab:
        """Start sshd and nginx for every server; return once all of them answer.

        ``dir`` defaults to a new temporary directory.  A directory holding a running lab is
        refused; one holding a stopped lab is reused (its old files replaced).  On any failure,
        whatever was started is stopped again before the LabError is raised.

        The calling process owns the lab: if it dies without stopping it (SIGKILL), the next
        ``opsconsole demo`` or ``lab up`` finds the lab's processes stale and offers to stop them.
        Call :meth:`detach` for a lab meant to outlive its starter.
        """
        nginx, sshd = require_software()
        if not servers or len(set(servers)) != len(servers):
            raise LabError(f"a lab needs distinct server names, got {servers!r}", exit_status=2)
        for name in servers:
            if not NAME_RE.fullmatch(name):
                raise LabError(f"unusable server name {name!r}: {NAME_RE.pattern}", exit_status=2)
        path = Path(dir) if dir is not None else Path(tempfile.mkdtemp(prefix="opsconsole-lab-"))
        layout = Layout(path.resolve())
        check_lab_dir(layout.dir)
        _prepare_dir(layout)
        lab = cls(layout, user=getpass.getuser(), seed=seed, nginx=nginx)
        lab.owner = registry.this_process()
        registry.record(layout.dir, lab.owner, {})  # first: a registry error starts nothing
        try:
            lab._start_servers(servers, sshd)
            if traffic:
                lab.start_traffic(flood_after)
        except BaseException:
            lab.stop()
            raise
        return lab

    def _start_servers(self, servers: tuple[str, ...], sshd: str) -> None:
        layout = self.layout
        write_client_key(layout, self.user)
        layout.home.mkdir(exist_ok=True)
        placement = {site.name: site.servers_in(servers) for site in SITES}
        ssh_ports: dict[str, int] = {}
        http_ports: dict[str, dict[str, int]] = {site.name: {} for site in SITES}
        for server in servers:
            record, popen, ssh_ports[server] = start_sshd(layout, server, self.user, sshd)
            self._track(f"{server}/sshd", record, popen)
            sites = [site for site in SITES if server in placement[site.name]]
            record, popen, ports = start_nginx(layout, server, sites, self.nginx)
            self._track(f"{server}/nginx", record, popen)
            for name, port in ports.items():
                http_ports[name][server] = port
        for server in servers:
            self.servers[server] = LabServer(
                server,
                ssh_ports[server],
                layout.server_root(server),
                self._records[f"{server}/sshd"].pid,
                self._records[f"{server}/nginx"].pid,
            )
        for site in SITES:
            self.services[site.name] = LabService(
                site.name, placement[site.name], http_ports[site.name], site.log_format
            )
        write_known_hosts(layout, ssh_ports)
        write_ssh_config(layout, ssh_ports, self.user)
        write_config(layout, render_config(layout, self.user, ssh_ports, self.services, self.nginx))
        self._save()

    def _track(self, key: str, record: ProcRecord, popen: subprocess.Popen[bytes]) -> None:
        self._records[key] = record
        self._popens[key] = popen
        self._save()  # at once: a lab that dies half-started can still be stopped by `lab down`

    def start_traffic(
        self,
        flood_after: float | None = 20.0,
        *,
        legit_rps: float = LEGIT_RPS,
        flood_rps: float = FLOOD_RPS,
        max_duration: float = MAX_DURATION,
    ) -> None:
        """(Re)start the traffic generator: browsing now, a flood after ``flood_after`` seconds."""
        self.stop_traffic()
        argv = [
            *("--lab", str(self.dir), "--seed", str(self.seed)),
            *("--legit-rps", str(legit_rps), "--flood-rps", str(flood_rps)),
            *("--flood-after", str(-1.0 if flood_after is None else flood_after)),
            *("--max-duration", str(max_duration)),
        ]
        self._spawn_traffic("traffic generator", "opsconsole.lab.trafficd", argv)

    def _spawn_traffic(self, name: str, module: str, args: list[str]) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p
        )
        argv = [sys.executable, "-m", module, *args]
        record, popen = spawn(name, argv, output=self.layout.traffic_log, env=env)
        self._track("traffic", record, popen)
        return popen

    def start_scenario(
        self,
        name: str,
        *,
        scale: float = DEFAULT_SCALE,
        flood_after: float = 20.0,
        max_duration: float = MAX_DURATION,
        timeout: float = SCENARIO_READY_TIMEOUT,
    ) -> ScenarioRun:
        """(Re)start the lab's traffic as the labelled scenario ``name`` (see :mod:`.replay`).

        Returns once the scenario's past is in the access logs and its live part has begun:
        ordinary traffic for ``flood_after`` seconds, then the scenario's event.  The replay is
        the lab's ``traffic`` process (stopped by PID like every other).  LabError with exit
        status 2 for an unknown scenario or a bad value (nothing started), 1 if the replay fails.
        """
        validate(name, scale, flood_after)
        self.stop_traffic()
        shutil.rmtree(self.layout.scenario_dir, ignore_errors=True)
        args = [
            *("--lab", str(self.dir), "--scenario", name, "--seed", str(self.seed)),
            *("--scale", repr(scale), "--flood-after", repr(flood_after)),
            *("--max-duration", repr(max_duration)),
        ]
        popen = self._spawn_traffic("scenario replay", "opsconsole.lab.replayd", args)
        status = self._wait_scenario(popen, timeout)
        self.scenario = ScenarioRun(
            name,
            self.seed,
            scale,
            flood_after,
            live_start=float(status["live_start"]),
            attack_at=status["attack_at"],
            window_end=float(status["window_end"]),
            baseline_lines=int(status["baseline"]["lines"]),
            baseline_from=status["baseline"]["from"],
            labels=self.layout.scenario_labels,
        )
        self._save()
        return self.scenario

    def _wait_scenario(self, popen: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
        """The replay's status once it sends live; LabError if it fails, ends or stalls first."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.scenario_progress() or {}
            phase = status.get("phase")
            if phase in ("window", "after"):
                return status
            failed = phase == "failed" or popen.poll() is not None
            if failed or time.monotonic() > deadline:
                self.stop_traffic()
                why = status.get("error") or log_tail(self.layout.traffic_log, 3)
                what = "failed" if failed else f"did not go live within {timeout:.0f}s"
                raise LabError(
                    f"the scenario replay {what}"
                    + (f": {why}" if why else "")
                    + f" (see {self.layout.traffic_log})"
                )
            time.sleep(0.1)

    def scenario_progress(self) -> dict[str, Any] | None:
        """What the scenario replay last published (its ``status.json``), if anything."""
        try:
            data = json.loads(self.layout.scenario_status.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def stop_traffic(self) -> None:
        record = self._records.pop("traffic", None)
        if record is not None:
            stop_process(record, self._popens.pop("traffic", None))
        if record is not None or self.scenario is not None:
            self.scenario = None
            self._save()

    def detach(self) -> None:
        """Let the lab outlive the process that started it (``lab up``): it has no owner now, so
        it is never taken for a lab left behind; ``opsconsole lab down`` stops it."""
        self.owner = None
        self._save()

    def stop(self) -> None:
        """Stop every process this lab started (verified by PID and start time), then forget it.

        Logs, keys and config stay in the directory for a post-mortem.
        """
        for key in registry.stop_order(list(self._records)):
            stop_process(self._records[key], self._popens.pop(key, None))
        if _state_names(self.layout, self._records):
            self.layout.state_file.unlink(missing_ok=True)
        registry.forget(self.dir, self.owner, self._records)

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state -----------------------------------------------------------------------------

    def processes(self) -> dict[str, ProcRecord]:
        """What the lab started, keyed "web1/sshd", "web1/nginx", …, "traffic"."""
        return dict(self._records)

    def status(self) -> dict[str, Any]:
        """Each process with its PID and whether it is alive; ``running`` when all of them are."""
        procs = {k: {"pid": r.pid, "alive": r.alive()} for k, r in sorted(self._records.items())}
        return {
            "dir": str(self.dir),
            "config": str(self.config_path),
            "running": bool(procs) and all(p["alive"] for p in procs.values()),
            "processes": procs,
            "servers": {s.name: {"ssh_port": s.ssh_port} for s in self.servers.values()},
            "services": {
                s.name: {"servers": list(s.servers), "url": self.url(s.name)}
                for s in self.services.values()
            },
            "scenario": None if self.scenario is None else self._scenario_status(),
        }

    def _scenario_status(self) -> dict[str, Any]:
        assert self.scenario is not None
        progress = self.scenario_progress() or {}
        keys = ("phase", "sent", "answered", "dropped", "behind", "updated")
        return {**self.scenario.to_json(), "progress": {k: progress.get(k) for k in keys}}

    def _save(self) -> None:
        state = {
            "version": STATE_VERSION,
            "dir": str(self.dir),
            "user": self.user,
            "seed": self.seed,
            "nginx": self.nginx,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "servers": {
                s.name: {"ssh_port": s.ssh_port, "root": str(s.root)} for s in self.servers.values()
            },
            "services": {
                s.name: {
                    "servers": list(s.servers),
                    "http_ports": s.http_ports,
                    "log_format": s.log_format,
                }
                for s in self.services.values()
            },
            "processes": {k: r.to_json() for k, r in self._records.items()},
            "owner": None if self.owner is None else self.owner.to_json(),
            "scenario": None if self.scenario is None else self.scenario.to_json(),
        }
        tmp = self.layout.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.layout.state_file)
        registry.record(self.dir, self.owner, self._records)

    @classmethod
    def load(cls, dir: Path | str) -> Lab:
        """Re-open the lab running in ``dir`` (for ``lab status`` and ``lab down``).

        When ``lab.json`` is gone or unreadable (the directory was deleted under a running lab)
        but the registry still records live processes of a lab there, the lab is re-opened from
        the registry: enough to stop it by PID, though it knows no servers or services any more.
        """
        layout = Layout(Path(dir).resolve())
        try:
            state = json.loads(layout.state_file.read_text())
        except (OSError, ValueError) as e:
            remains = _from_registry(cls, layout)
            if remains is not None:
                return remains
            if isinstance(e, FileNotFoundError | NotADirectoryError):
                raise LabError(f"no lab is running in {layout.dir}") from None
            raise LabError(f"cannot read {layout.state_file}: {e}") from None
        try:
            lab = cls(layout, user=state["user"], seed=state["seed"], nginx=state["nginx"])
            lab._records = {
                k: ProcRecord.from_json(k, v) for k, v in state.get("processes", {}).items()
            }
            if not all(registry.plausible(r) for r in lab._records.values()):
                raise ValueError("a process record with an impossible PID or start time")
            owner = state.get("owner")
            lab.owner = None if owner is None else ProcRecord.from_json("owner", owner)
            for name, s in state.get("servers", {}).items():
                pids = [lab._records.get(f"{name}/{p}") for p in ("sshd", "nginx")]
                lab.servers[name] = LabServer(
                    name, s["ssh_port"], Path(s["root"]), *(r.pid if r else 0 for r in pids)
                )
            for name, s in state.get("services", {}).items():
                lab.services[name] = LabService(
                    name, tuple(s["servers"]), dict(s["http_ports"]), s["log_format"]
                )
            scenario = state.get("scenario")
            lab.scenario = None if scenario is None else ScenarioRun.from_json(scenario)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise LabError(f"{layout.state_file} is not a lab state file ({e})") from None
        return lab


def _from_registry(cls: type[Lab], layout: Layout) -> Lab | None:
    """What is left of a lab whose lab.json is gone: its live processes, as registered."""
    entry = registry.find(layout.dir)
    if entry is None or not entry.alive():
        return None
    lab = cls(layout, user=getpass.getuser(), seed=0, nginx="")
    lab.owner = entry.owner
    lab._records = dict(entry.processes)
    return lab


def _state_names(layout: Layout, records: dict[str, ProcRecord]) -> bool:
    """True if the state file is this lab's (and not that of a newer lab in the same directory)."""
    try:
        state = json.loads(layout.state_file.read_text())
        pids = {k: v["pid"] for k, v in state.get("processes", {}).items()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return True
    return all(pids.get(k) == r.pid for k, r in records.items() if k in pids)


_OWN_FILES = ("servers", "ssh", "home", "scenario", "config.toml", "traffic.log", "lab.json")


def _prepare_dir(layout: Layout) -> None:
    """Refuse a directory with a running lab or foreign files; clear a stopped lab's files."""
    d = layout.dir
    try:  # also a lab whose lab.json was deleted under it: the registry still knows its PIDs
        alive = [k for k, r in Lab.load(d).processes().items() if r.alive()]
    except LabError:
        alive = []  # no lab there, or an unreadable state file that names no process to check
    if alive:
        raise LabError(
            f"a lab is already running in {d} ({', '.join(alive)}): "
            f"stop it with `opsconsole lab down --dir {shlex.quote(str(d))}`"
        )
    if (
        not layout.state_file.exists()
        and d.is_dir()
        and any(d.iterdir())
        and not layout.marker.exists()
    ):
        raise LabError(f"{d} is not empty and holds no opsconsole lab: choose another --dir")
    d.mkdir(parents=True, exist_ok=True)
    for name in _OWN_FILES:
        p = d / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    layout.marker.write_text("This directory is an opsconsole rehearsal lab (opsconsole lab up).\n")
