"""Talking to one server about a service's controls: run a step of the server-side program,
read the state it holds, find the nginx master that serves the site, interpret a step's outcome.

Used by :mod:`.apply` and :mod:`.settle`; front ends call :func:`read_controls` for
``controls SERVICE``.  Commands are argument vectors built by :mod:`.serverside` (``sudo -n``
where the server's config asks for it, by the transport).  Never imports a front end.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import shlex
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..config import Config, ServerConfig, ServiceConfig
from ..errors import OperationError, UsageError
from ..text import unprefixed
from ..transport.base import RunResult, Transport, TransportError
from . import serverside
from .render import check_control_dir
from .report import ControlsReport, Outcome, ServerControls, ServerResult, Unposted
from .state import ControlState, state_from_json, utc_text

NO_STATE = ControlState()
"""What a server without a state file holds: one object for all of them, so an apply to ten
fresh servers works out its edit, checks and files once (see ``apply._Last``)."""

TIMEOUT = 180.0
"""Upper bound of one server-side step: lock wait + nginx -t + reload on a large config."""


@dataclass(frozen=True)
class ServerRead:
    """What step 1 learned about one server."""

    state: ControlState
    sha: str
    """SHA-256 of the state file as read, or ``none``: the compare-and-swap token."""
    masters: tuple[tuple[int, str], ...]
    pidfile_pid: int | None
    pending: bool
    confirm: tuple[str, ...] | None
    """(token, old generation, deadline epoch, version, timer pid) of a change awaiting confirm."""
    unposted: tuple[Unposted, ...] = ()
    """Reverts its commit-confirmed timers made that nobody announced yet."""


async def run_step(transport: Transport, argv: list[str], data: bytes | None = None) -> RunResult:
    """Run one step; ``privileged``: under ``sudo -n`` where the server is configured for it."""
    return await transport.run(
        argv, input=data if data is not None else b"", timeout=TIMEOUT, privileged=True
    )


async def read_server(
    transport: Transport, service: ServiceConfig, server: ServerConfig, pid_file: str | None = None
) -> ServerRead:
    """Step 1.  Raises OperationError (unreadable or invalid state) or TransportError."""
    cdir = check_control_dir(service.control_dir_on(server.name))
    argv = serverside.command(
        "read", cdir, service.name, server.name, pid_file or "", str(INLINE_MAX)
    )
    res = await run_step(transport, argv)
    if not res.ok:
        raise OperationError(f"cannot read the controls of {service.name}: {res.error_text()}")
    head, sep, body = res.stdout.partition(b"OPSC state\n")
    masters: list[tuple[int, str]] = []
    pidfile_pid = None
    pending = False
    unposted: list[Unposted] = []
    confirm = None
    big_sha = None
    for line in head.decode("utf-8", "replace").splitlines():
        words = line.split(" ", 2)
        if words[:2] == ["OPSC", "master"] and len(words) == 3:
            pid, _, cmdline = words[2].partition(" ")
            if pid.isdigit():
                masters.append((int(pid), cmdline.strip()))
        elif words[:2] == ["OPSC", "pidfile"]:
            text = words[2].strip() if len(words) == 3 else ""
            pidfile_pid = int(text) if text.isdigit() else None
        elif line == "OPSC pending":
            pending = True
        elif words[:2] == ["OPSC", "unposted"] and len(words) == 3:
            unposted += _unposted(server.name, words[2])
        elif words[:2] == ["OPSC", "confirm"] and len(words) == 3:
            confirm = tuple(words[2].split())
        elif words[:2] == ["OPSC", "sha"] and len(words) == 3 and _SHA.fullmatch(words[2]):
            big_sha = words[2]
    if big_sha is not None:
        state, sha = await _big_state(transport, service, server, big_sha)
    elif not sep or not body:
        state, sha = NO_STATE, "none"
    else:
        state, sha = _parsed(body, service, server)
    return ServerRead(state, sha, tuple(masters), pidfile_pid, pending, confirm, tuple(unposted))


def _parsed(body: bytes, service: ServiceConfig, server: ServerConfig) -> tuple[ControlState, str]:
    try:
        state = state_from_json(body)
    except UsageError as e:
        raise OperationError(
            f"the state file of {service.name} on {server.name} is invalid ({e}); fix or remove it"
        ) from None
    return state, hashlib.sha256(body).hexdigest()


INLINE_MAX = 1 << 20
"""A state file larger than this (about 8,000 blocks) is not sent with every ``read``: the
server sends its SHA-256, and the file itself is fetched (gzipped) once per distinct SHA-256,
from one server; ten servers holding the same 500,000 blocks send 65 MB once, not ten times."""

_SHA = re.compile(r"[0-9a-f]{64}")
_KNOWN: dict[str, ControlState] = {}
"""The last large states fetched (at most ``KNOWN_MAX``, the latest last), by SHA-256: content-
addressed, they never go stale."""
KNOWN_MAX = 2
"""Large states kept: a fleet in step and one server that moved on (each can be 150 MB)."""
_FETCHING: dict[str, asyncio.Future[tuple[ControlState, str]]] = {}
"""Large states being fetched now, by the SHA-256 their server announced."""


async def _big_state(
    transport: Transport, service: ServiceConfig, server: ServerConfig, sha: str
) -> tuple[ControlState, str]:
    """The state whose file has SHA-256 ``sha`` on ``server``, fetched only if no other server
    is fetching it or has just done so; and the SHA-256 of what was read (the file may have
    changed since its server announced ``sha``: then it is what was read)."""
    known = _KNOWN.pop(sha, None)
    if known is not None:
        _KNOWN[sha] = known  # the latest used goes last
        return known, sha
    other = _FETCHING.get(sha)
    if other is not None:
        await asyncio.wait([other])
        if not other.cancelled() and other.result()[1] == sha:
            return other.result()
    mine: asyncio.Future[tuple[ControlState, str]] = asyncio.get_running_loop().create_future()
    _FETCHING.setdefault(sha, mine)
    try:
        cdir = check_control_dir(service.control_dir_on(server.name))
        res = await run_step(transport, serverside.command("body", cdir, service.name, server.name))
        if not res.ok:
            raise OperationError(f"cannot read the controls of {service.name}: {res.error_text()}")
        try:
            body = gzip.decompress(res.stdout)
        except (OSError, EOFError, zlib.error) as e:
            raise OperationError(
                f"the state file of {service.name} on {server.name} arrived damaged ({e})"
            ) from None
        got = _parsed(body, service, server)
    except BaseException:
        mine.cancel()
        raise
    finally:
        if _FETCHING.get(sha) is mine:
            del _FETCHING[sha]
    mine.set_result(got)
    _KNOWN.pop(got[1], None)
    _KNOWN[got[1]] = got[0]
    while len(_KNOWN) > KNOWN_MAX:
        del _KNOWN[next(iter(_KNOWN))]
    return got


def _unposted(server: str, text: str) -> list[Unposted]:
    """``NAME TIME BEFORE AFTER STATE-JSON`` as the server's ``read`` shows one revert."""
    words = text.split(" ", 4)
    if len(words) < 4 or not words[2].isdigit() or not words[3].isdigit():
        return []
    try:
        state = state_from_json(words[4].encode()) if len(words) == 5 else ControlState()
    except UsageError:
        state = ControlState()  # announced without what it did
    return [Unposted(server, words[0], words[1], int(words[2]), int(words[3]), state)]


async def take_unposted(
    transport: Transport, service: ServiceConfig, server: ServerConfig, names: Sequence[str]
) -> None:
    """Remove the reverts ``names`` of ``service`` on ``server``: they have been announced.
    Raises OperationError or TransportError."""
    cdir = check_control_dir(service.control_dir_on(server.name))
    argv = serverside.command("take", cdir, service.name, server.name, *names)
    res = await run_step(transport, argv)
    if not res.ok:
        raise OperationError(f"cannot clear the reverts of {service.name}: {res.error_text()}")


async def claim(
    transport: Transport, service: ServiceConfig, server: ServerConfig, key: str
) -> bool:
    """Whether this caller is the first to claim ``key`` (hex) for ``service`` on ``server``:
    of the consoles and commands on every machine that see one event, one announces it.
    Claims are forgotten after a day or two.  Raises OperationError or TransportError."""
    if not key or key.strip("0123456789abcdef"):
        raise UsageError(f"a claim key is hex digits, not {key!r}")
    cdir = check_control_dir(service.control_dir_on(server.name))
    argv = serverside.command("claim", cdir, service.name, server.name, key)
    res = await run_step(transport, argv)
    if not res.ok:
        raise OperationError(f"cannot claim on {server.name}: {res.error_text()}")
    return b"OPSC claimed" in res.stdout


def _nginx_location(words: list[str]) -> tuple[str | None, str | None]:
    """The ``-p`` prefix and ``-c`` file named in an nginx command line."""
    found: dict[str, str] = {}
    for i, w in enumerate(words):
        for flag in ("-p", "-c"):
            if w == flag and i + 1 < len(words):
                found[flag] = words[i + 1]
            elif w.startswith(flag) and len(w) > 2 and w[1] == flag[1]:
                found[flag] = w[2:]
    prefix = found.get("-p")
    return (prefix.rstrip("/") or "/" if prefix else None), found.get("-c")


def choose_master(read: ServerRead, nginx_test: str, where: str) -> int:
    """The master PID of the nginx that serves this service: from the pid file when one was given,
    the only master running, or the one started with the same ``-p``/``-c`` as ``nginx_test``."""
    pids = {pid for pid, _ in read.masters}
    if read.pidfile_pid is not None:
        if read.pidfile_pid not in pids:
            raise OperationError(f"{where}: the nginx pid file names no running nginx master")
        return read.pidfile_pid
    if not read.masters:
        raise OperationError(f"{where}: nginx is not running (no nginx master process)")
    if len(read.masters) == 1:
        return read.masters[0][0]
    try:
        want = _nginx_location(shlex.split(nginx_test))
    except ValueError:
        want = (None, None)
    same = [
        pid
        for pid, cmd in read.masters
        if want != (None, None) and _nginx_location(cmd.split()) == want
    ]
    if len(same) == 1:
        return same[0]
    raise OperationError(
        f"{where}: {len(read.masters)} nginx masters are running and nginx_test does not say "
        "which serves this site (give its -p/-c, or a pid file)"
    )


def opsc_lines(stdout: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("OPSC "):
            word, _, rest = line[5:].partition(" ")
            out[word] = rest
    return out


def service_of(
    config: Config,
    service: str,
    transports: Mapping[str, Transport],
    servers: Sequence[str] | None = None,
) -> ServiceConfig:
    """The service, restricted to ``servers`` (an apply bound to a preview acts only where the
    preview showed a change); every one of them must have a transport."""
    svc = config.service(service)
    if servers is not None:
        unknown = [s for s in servers if s not in svc.servers]
        if unknown:
            raise UsageError(f"{', '.join(unknown)}: not a server of service {service}")
        svc = replace(svc, servers=tuple(s for s in svc.servers if s in servers))
    missing = [s for s in svc.servers if s not in transports]
    if missing:
        raise UsageError(f"no connection to {', '.join(missing)} for service {service}")
    return svc


def _stale_reason(stdout: bytes, service: str, server: str) -> str:
    text = stdout.decode("utf-8", "replace").split("OPSC stale\n", 1)[-1].strip().rstrip(",")
    try:
        info: dict[str, Any] = json.loads("{" + text + "}") if text else {}
    except ValueError:
        info = {}
    who = info.get("updated_by") or "another console"
    when = info.get("updated_at") or "an unknown time"
    return (
        f"the controls of {service} on {server} were changed by {who} at {when} (now version "
        f"{info.get('version', '?')}) while this change was prepared: re-read and try again"
    )


_EXIT_REASONS = {
    73: "nothing to roll back",
    74: "a commit-confirmed change awaits confirmation",
    75: "the control lock is busy",
    79: "control directory problem",
}


def step_result(res: RunResult, service: str, server: str, bv: int, av: int) -> ServerResult:
    info = opsc_lines(res.stdout)
    recovered = "recovered" in info
    if res.exit_status == 0 and "ok" in info:
        timings = dict(w.split("=", 1) for w in info["ok"].split() if "=" in w)
        deadline = info.get("confirm-by")
        return ServerResult(
            server,
            Outcome.OK,
            before_version=bv,
            after_version=av,
            recovered=recovered,
            confirm_deadline=utc_text(datetime.fromtimestamp(int(deadline), UTC))
            if deadline and deadline.isdigit()
            else None,
            test_ms=int(timings.get("test_ms", "0")),
            reload_ms=int(timings.get("reload_ms", "0")),
        )
    if res.exit_status == 73:  # no earlier generation of files: a no-op, not a failure
        why = res.error_text() if res.stderr else f"nothing to roll back for {service}"
        return ServerResult(server, Outcome.NOTHING, why, recovered=recovered)
    if res.exit_status == 76:
        reason = _stale_reason(res.stdout, service, server)
    elif res.exit_status == 77:
        reason = f"nginx -t refused the new configuration: {res.error_text()}"
    elif res.exit_status == 78:
        reason = f"reload failed: {res.error_text()}"
    else:
        base = _EXIT_REASONS.get(res.exit_status, f"exit status {res.exit_status}")
        reason = res.error_text() if (res.stderr or res.stdout) else base
    return ServerResult(
        server,
        Outcome.FAILED,
        reason,
        rolled_back=res.exit_status in (77, 78),
        before_version=bv,
        after_version=bv,
        recovered=recovered,
    )


async def read_controls(
    config: Config, service: str, transports: Mapping[str, Transport]
) -> ControlsReport:
    """The control state of ``service`` on each of its servers (``controls SERVICE``)."""
    svc = service_of(config, service, transports)

    async def one(name: str) -> ServerControls:
        try:
            r = await read_server(transports[name], svc, config.servers[name])
        except (OperationError, UsageError, TransportError) as e:
            return ServerControls(name, None, unprefixed(str(e), name))
        deadline = None
        if r.confirm and len(r.confirm) > 2 and r.confirm[2].isdigit():
            deadline = utc_text(datetime.fromtimestamp(int(r.confirm[2]), UTC))
        return ServerControls(name, r.state, None, r.pending, deadline, r.unposted)

    states = await asyncio.gather(*(one(n) for n in svc.servers))
    return ControlsReport(service, {s.server: s for s in states})
