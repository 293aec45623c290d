"""Host metrics of one server, read over its existing connection.

Role: :func:`read_host` sends the probe program (:mod:`.hostprobe`, its own source text) to
``python3 -`` through a :class:`~opsconsole.transport.base.Transport` and turns the JSON it prints
into :class:`~.report.HostMetrics`.  When the server has no usable interpreter it falls back to
the POSIX-shell reader (:mod:`.hostshell`); when that fails too, it raises :class:`HostProbeError`
with a message such as "python3 not found on web1: host metrics unavailable".  Nothing is ever
installed on the server.  :func:`probe_params` tells the probe which nginx belongs to the server
(from the services' ``nginx_test`` commands: ``-p PREFIX`` / ``-c CONF``) and which file systems
matter (``/`` and the access logs' directories).  Called by :mod:`.check` and :mod:`.monitor`.

Imports: the standard library, :mod:`opsconsole.config`, :mod:`opsconsole.transport.base` and the
other modules of this package.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import shlex
from collections.abc import Iterable
from typing import Any

from ..config import ServerConfig, ServiceConfig
from ..transport.base import RunResult, Transport
from . import hostshell
from .report import HostMetrics, NginxInstance

CPU_SAMPLE = 0.2
"""Seconds between the two CPU counters readings the CPU percentage is computed from."""


class HostProbeError(Exception):
    """No host metric at all could be read (the message says why, naming the server)."""


@functools.cache
def probe_program() -> bytes:
    """The text sent to ``python3 -``: this package's hostprobe.py, byte for byte."""
    return importlib.resources.files(__package__).joinpath("hostprobe.py").read_bytes()


def nginx_target(command: str) -> dict[str, str | None]:
    """``-p PREFIX`` and ``-c CONF`` of the nginx in a command such as ``nginx -p /x -c n.conf -t``.

    Only words after the nginx executable count (``sudo -p PROMPT nginx -t`` has no prefix).
    """
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    start = next(
        (i for i, w in enumerate(words) if os.path.basename(w).startswith("nginx")), len(words)
    )
    found: dict[str, str | None] = {"prefix": None, "conf": None}
    args = words[start + 1 :]
    for i, w in enumerate(args):
        for flag, key in (("-p", "prefix"), ("-c", "conf")):
            if w == flag and i + 1 < len(args):
                found[key] = args[i + 1]
            elif w.startswith(flag) and len(w) > 2 and not w.startswith("--"):
                found[key] = w[2:]
    return found


def probe_params(
    server: ServerConfig,
    services: Iterable[ServiceConfig],
    *,
    top: int = 10,
    cpu_sample: float = CPU_SAMPLE,
) -> dict[str, Any]:
    """The probe's parameters for ``server``: its nginx instances and file systems."""
    targets: list[dict[str, str | None]] = []
    disks = ["/"]
    for service in services:
        if server.name not in service.servers:
            continue
        target = nginx_target(service.nginx_test_on(server.name))
        if target not in targets:
            targets.append(target)
        log_dir = os.path.dirname(service.access_log_on(server.name)) or "/"
        if log_dir not in disks:
            disks.append(log_dir)
    return {
        "nginx": targets or [{"prefix": None, "conf": None}],
        "disks": disks,
        "top": top,
        "cpu_sample": cpu_sample,
    }


def metrics_from_probe(data: dict[str, Any], notes: Iterable[str] = ()) -> HostMetrics:
    """HostMetrics from the dictionary the probe (or the shell reader) produced."""
    load = data.get("load")
    top = data.get("top_connections")
    nginx = data.get("nginx")
    return HostMetrics(
        source=str(data.get("source", "?")),
        load=(float(load[0]), float(load[1]), float(load[2])) if load else None,
        cpu_count=data.get("cpu_count"),
        cpu_percent=data.get("cpu_percent"),
        memory_percent=data.get("memory_percent"),
        disks=dict(data.get("disks") or {}),
        tcp=data.get("tcp"),
        top_connections=(
            tuple((str(t["ip"]), int(t["connections"])) for t in top) if top is not None else None
        ),
        nginx=(
            tuple(
                NginxInstance(n["prefix"], n["conf"], bool(n["running"]), n["pid"], n["how"])
                for n in nginx
            )
            if nginx is not None
            else None
        ),
        nginx_processes=data.get("nginx_processes"),
        errors=dict(data.get("errors") or {}),
        notes=tuple(notes),
        python=data.get("python"),
    )


def _probe_output(result: RunResult) -> dict[str, Any] | None:
    if not result.ok:
        return None
    try:
        data = json.loads(result.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return data if isinstance(data, dict) and "probe_version" in data else None


def _why_python_failed(server: ServerConfig, result: RunResult) -> str:
    # 127 and 126 are what a shell (remote or local) returns for a missing or unusable command.
    if result.exit_status == 127:
        return f"{server.python} not found on {server.name}"
    if result.exit_status == 126:
        return f"{server.python} cannot be run on {server.name}"
    text = result.error_text()
    last = text.splitlines()[-1] if text else f"exit status {result.exit_status}"
    return f"the host probe failed on {server.name} ({server.python}: {last})"


async def read_host(
    transport: Transport, server: ServerConfig, params: dict[str, Any], *, timeout: float
) -> HostMetrics:
    """Read the server's metrics.  Raises TransportError (link) or HostProbeError (no reading)."""
    budget = timeout + float(params.get("cpu_sample", CPU_SAMPLE))
    argv = [server.python, "-", json.dumps(params, separators=(",", ":"))]
    result = await transport.run(argv, input=probe_program(), timeout=budget)
    data = _probe_output(result)
    if data is not None:
        return metrics_from_probe(data)

    why = _why_python_failed(server, result)
    disks = [str(d) for d in params.get("disks") or ["/"]]
    fallback = await transport.run(
        ["sh", "-s", "--", *disks], input=hostshell.SCRIPT.encode(), timeout=budget + 1
    )
    text = fallback.stdout.decode("utf-8", "replace")
    if "@@end" not in text:
        raise HostProbeError(
            f"{why}: host metrics unavailable (the sh fallback failed too: {fallback.error_text()})"
        )
    return metrics_from_probe(
        hostshell.parse(text, params), notes=[f"{why}: read /proc with sh instead"]
    )
