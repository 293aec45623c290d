"""The audit timeline: every server's ``<service>.audit.jsonl`` and the local trail, merged.

Called by the CLI's ``audit`` command and the console's audit screen. A server's trail holds
every change made there by any console, the commit-confirmed timer's reverts and the recoveries
of interrupted applies; the local trail holds what this console did, including what never
reached a server (a refused stale apply, a server that could not be reached). An event present
in both (same time, operator, service, server and action) is shown once: the server's record,
with the local ``reason`` added. Standard library, the transport interface and this package.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config, ServiceConfig
from ..transport.base import Transport, TransportError
from .audit import read_trail
from .render import check_control_dir
from .state import parse_utc

MAX_TRAIL_BYTES = 32 << 20
"""Only the end of a server's trail is read (32 MB: many thousands of events)."""

_READ = 'f=$1; [ -e "$f" ] || exit 0; exec tail -c "$2" -- "$f"'

Key = tuple[str, str, str, str, str]

FIELDS = (
    "time",
    "operator",
    "service",
    "server",
    "action",
    "before_version",
    "after_version",
    "result",
    "reason",
    "diff",
)
"""Every merged event has these keys (None where the source did not say)."""


@dataclass
class Timeline:
    events: list[dict[str, Any]]
    errors: dict[str, str] = field(default_factory=dict)
    """``server`` (or ``server/service``) -> why its trail could not be read."""


def _parse_lines(data: bytes) -> list[dict[str, Any]]:
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


async def read_server_trail(
    transport: Transport, service: ServiceConfig, server: str, max_bytes: int = MAX_TRAIL_BYTES
) -> list[dict[str, Any]]:
    """The events in the last ``max_bytes`` of ``<control_dir>/<service>.audit.jsonl`` on
    ``server`` (empty if there is none)."""
    path = f"{check_control_dir(service.control_dir_on(server))}/{service.name}.audit.jsonl"
    argv = ["sh", "-c", _READ, "opsc-audit", path, str(max_bytes)]
    res = await transport.run(argv, timeout=60, privileged=True)
    if not res.ok:
        raise TransportError(f"cannot read {path}: {res.error_text()}")
    data = res.stdout
    if len(data) >= max_bytes:
        data = data.split(b"\n", 1)[-1]  # the first line was cut by tail -c
    return _parse_lines(data)


def _key(ev: Mapping[str, Any]) -> Key:
    return tuple(str(ev.get(k)) for k in ("time", "operator", "service", "server", "action"))  # type: ignore[return-value]


def _sort_key(ev: Mapping[str, Any]) -> tuple[str, str, str, str]:
    t = str(ev.get("time", ""))
    return (t, str(ev.get("server_time") or t), str(ev.get("service")), str(ev.get("server")))


def merge_events(
    local: Iterable[dict[str, Any]], remote: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One list in time order; each event gets ``source``: ``server``, ``local`` or ``both``."""
    pending: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for ev in local:
        pending[_key(ev)].append(ev)
    merged = []
    for ev in remote:
        ev = dict(ev)
        twins = pending.get(_key(ev))
        if twins:
            mine = twins.pop(0)
            for name in ("reason", "rolled_back"):
                if ev.get(name) is None and mine.get(name) is not None:
                    ev[name] = mine[name]
            ev["source"] = "both"
        else:
            ev["source"] = "server"
        merged.append(ev)
    for rest in pending.values():
        merged.extend(dict(ev, source="local") for ev in rest)
    for ev in merged:
        for name in FIELDS:
            ev.setdefault(name, None)
    merged.sort(key=_sort_key)
    return merged


def _since_ok(ev: Mapping[str, Any], since: datetime | None) -> bool:
    if since is None:
        return True
    try:
        return parse_utc(str(ev.get("time"))) >= since
    except ValueError:
        return False


def local_events(
    config: Config, services: Iterable[str], trail: Path, *, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The local trail's events of ``services`` on their configured servers, oldest first.

    The local trail is one file for every config this operator uses: another fleet may also
    have a "www", so an event counts only where this config places the service."""
    placed = {(name, n) for name in services for n in config.service(name).servers}
    return [
        ev
        for ev in read_trail(trail, since=since)
        if (ev.get("service"), ev.get("server")) in placed
    ]


async def collect_timeline(
    config: Config,
    transports: Mapping[str, Transport | TransportError],
    *,
    services: Iterable[str],
    since: datetime | None,
    trail: Path,
    remote: bool = True,
    max_bytes: int = MAX_TRAIL_BYTES,
) -> Timeline:
    """The merged timeline of ``services`` since ``since``.  ``transports`` maps each server to
    its connection, or to the error that prevented it (reported in ``Timeline.errors``);
    ``remote=False`` reads the local trail only; ``max_bytes``: how much of the end of each
    server's trail is read."""
    wanted = [config.service(s) for s in services]
    errors: dict[str, str] = {}

    async def one(svc: ServiceConfig, server: str) -> list[dict[str, Any]]:
        t = transports.get(server)
        if t is None or isinstance(t, TransportError):
            why = str(t) if t is not None else "not connected"
            errors[server] = why.removeprefix(f"{server}: ")  # the key names the server
            return []
        try:
            return await read_server_trail(t, svc, server, max_bytes)
        except TransportError as e:
            errors[f"{server}/{svc.name}"] = str(e)
            return []

    chunks = await asyncio.gather(*(one(s, n) for s in wanted for n in s.servers if remote))
    names = {s.name for s in wanted}
    found = [
        ev
        for chunk in chunks
        for ev in chunk
        if ev.get("service") in names and _since_ok(ev, since)
    ]
    local = local_events(config, names, trail, since=since)
    return Timeline(merge_events(local, found), errors)
