"""The apply pipeline: an edit, rendered, checked and applied on every server of a service.

Front ends call :func:`apply_change` with an edit (:mod:`.edits`: block, filter, limit,
maintenance…) and one :class:`~opsconsole.transport.base.Transport` per server; ``confirm`` and
``rollback`` are in :mod:`.settle`, reading the state in :mod:`.remote`.  Servers run in parallel
and each gets a :class:`~.report.ServerResult`.  Per server (the shell half is in
:mod:`.serverside`):

1. read the state (with its SHA-256), the running nginx masters and any pending markers;
2. apply the edit to that server's state, drop expired blocks, render (:mod:`.render`);
3. send the files as a tar stream to the server-side program, which takes the ``flock``, refuses if
   the state changed since step 1 (compare-and-swap on the file's hash), switches all files at once,
   runs ``nginx_test``, reloads and waits for new worker processes, arms the commit-confirmed timer,
   and appends the server's audit line — reverting the files and reporting nginx's message on any
   failure;
4. append the event to the local audit trail.

Commands are argument vectors; the configured ``nginx_test``/``nginx_reload`` strings are passed as
data and run by ``sh -c`` on the server.  Never imports a front end.
"""

from __future__ import annotations

import asyncio
import difflib
import gzip
import hashlib
import math
import secrets
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Config, ServerConfig, ServiceConfig
from ..errors import OperationError, UsageError
from ..health.http import probe_url
from ..text import unprefixed
from ..transport.base import Transport, TransportError
from . import audit, serverside, validate
from .edits import Edit
from .progress import OnProgress, Stage, emit
from .remote import ServerRead, choose_master, read_server, run_step, service_of, step_result
from .render import (
    check_control_dir,
    maintenance_page,
    render,
    render_http,
    render_server,
)
from .report import ApplyReport, Outcome, ServerResult
from .state import ControlState, drop_expired, risk, state_to_json, utc_text

DEFAULT_CONFIRM = 120.0
"""Commit-confirmed window (seconds) used when a risky change is applied without an explicit one."""
MAX_CONFIRM = 86400.0


def _members(files: Mapping[str, str | bytes]) -> bytes:
    """``files`` as tar members (USTAR), without the end of the archive."""
    out = []
    for name, text in files.items():
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        out += [info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"), data]
        out.append(bytes(-len(data) % tarfile.BLOCKSIZE))
    return b"".join(out)


def _gzip(data: bytes) -> bytes:
    # Level 1: a 500,000-entry block list (75 MB of state and geo) becomes 3 MB in 0.2 s.
    return gzip.compress(data, compresslevel=1, mtime=0)


def _tarball(shared: bytes, files: Mapping[str, str]) -> bytes:
    """The gzipped tar stream the server unpacks: ``shared`` (members already gzipped, the same
    for every server) then ``files`` and the end of the archive; gzip reads members one after
    another as one stream."""
    return shared + _gzip(_members(files) + bytes(2 * tarfile.BLOCKSIZE))


def rendered_diff(before: ControlState, after: ControlState, service: str, cdir: str) -> str:
    """Unified diff of the three rendered files (what ``--dry-run`` prints)."""
    old, new = render(before, service, cdir).files(), render(after, service, cdir).files()
    out: list[str] = []
    for suffix in old:
        name = f"{cdir}/{service}.{suffix}"
        out.extend(
            difflib.unified_diff(
                old[suffix].splitlines(keepends=True),
                new[suffix].splitlines(keepends=True),
                fromfile=name,
                tofile=name + " (new)",
            )
        )
    return "".join(out)


async def _recover(
    transport: Transport,
    service: ServiceConfig,
    server: ServerConfig,
    read: ServerRead,
    pid_file: str | None,
    on_progress: OnProgress | None = None,
) -> ServerRead:
    """An earlier apply was interrupted: let the server roll it back, then read again."""
    name = server.name
    emit(on_progress, name, Stage.RECOVERING)
    argv = serverside.command(
        "recover",
        check_control_dir(service.control_dir_on(name)),
        service.name,
        name,
        str(choose_master(read, service.nginx_test_on(name), name)),
        service.nginx_test_on(name),
        service.nginx_reload_on(name),
    )
    res = await run_step(transport, argv)
    if not res.ok:
        raise OperationError(f"could not recover an interrupted apply: {res.error_text()}")
    return await read_server(transport, service, server, pid_file)


class _Last:
    """The last result of a pure function, kept by the identity of its arguments.

    The servers of a service normally hold the same state (one parsed object: see
    :func:`.state.state_from_json`), so the edit, the checks, the diff, the rendered files and
    the JSON of the new state are the same for every server: made once, not once per server
    (a 500,000-entry block list on ten servers).  Arguments are compared by identity (states
    are immutable and comparing two 500,000-block states costs as much as making them), text,
    numbers and times by value; they are kept alive, so an identity is never reused while it
    is remembered."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.args: tuple[object, ...] | None = None
        self.result: Any = None

    def __call__(self, *args: object) -> Any:
        last = self.args
        if last is not None and len(last) == len(args) and all(map(_same, last, args)):
            return self.result
        result = self.fn(*args)
        self.args, self.result = args, result
        return result

    def forget(self) -> None:
        """Drop what is kept (a 500,000-block state is not held after its apply)."""
        self.args = self.result = None


def _same(a: object, b: object) -> bool:
    return a is b or (type(a) is type(b) and type(a) in (str, int, datetime) and a == b)


_edited = _Last(
    lambda before, edit, operator, now: drop_expired(edit.apply(before, operator, now), now)
)
_next = _Last(
    lambda before, after, operator, now: replace(
        after, version=before.version + 1, updated_by=operator, updated_at=utc_text(now)
    )
)
_notes = _Last(lambda edit, before, service: edit.notes_on(before, service))
_risk = _Last(risk)
_diff = _Last(audit.state_diff)


def _big_files(after: ControlState, service: str) -> bytes:
    """The big files (the ``geo`` of the blocks, the state), gzipped: the same on every server,
    whatever its control directory.  ``state.sha`` saves the server hashing the state file; it
    comes after ``state.json``, so that the server, unpacking with its own clock, never finds
    the state file newer than it unless someone changed the file since."""
    state = state_to_json(after).encode()
    files: dict[str, str | bytes] = {
        "http.conf": render_http(after, service),
        "state.json": state,
        "state.sha": f"{hashlib.sha256(state).hexdigest()} {len(state)}\n",
    }
    return _gzip(_members(files))


_shared_files = _Last(_big_files)


def _files(after: ControlState, service: str, cdir: str, ev: dict[str, Any]) -> bytes:
    return _tarball(
        _shared_files(after, service),
        {
            "server.conf": render_server(after, service, cdir),
            "maintenance.html": maintenance_page(after.maintenance.message),
            "audit.json": audit.server_prefix(ev),
        },
    )


async def apply_on_server(
    transport: Transport,
    service: ServiceConfig,
    server: ServerConfig,
    edit: Edit,
    *,
    operator: str,
    now: datetime,
    dry_run: bool = False,
    confirm_within: float | None = None,
    expected_version: int | None = None,
    pid_file: str | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[ServerResult, dict[str, Any] | None]:
    """Steps 1-3 on one server: its result and the audit event to keep locally (None: no event).

    ``expected_version``: the version the operator saw (the preview); another version on the
    server means someone changed it since, and the change is refused."""
    started = time.monotonic()
    name = server.name
    cdir = check_control_dir(service.control_dir_on(name))
    ev = audit.event(
        when=now,
        operator=operator,
        service=service.name,
        server=name,
        action=edit.action,
        diff=None,
    )
    before_version: int | None = None
    action, notes, why_risky = edit.action, tuple[str, ...](), None
    recovered = sent = False
    try:
        emit(on_progress, name, Stage.READING)
        read = await read_server(transport, service, server, pid_file)
        recovered = read.pending
        if recovered:
            read = await _recover(transport, service, server, read, pid_file, on_progress)
        before = read.state
        before_version = before.version
        action, notes = edit.action_on(before), _notes(edit, before, service.name)
        ev["action"] = action
        if expected_version is not None and before.version != expected_version:
            raise OperationError(
                f"the controls of {service.name} on {name} were changed by "
                f"{before.updated_by or 'another console'} at {before.updated_at or '?'} (now "
                f"version {before.version}, expected {expected_version}): re-read and try again"
            )
        after = _edited(before, edit, operator, now)
        if after.content_equals(before):
            unchanged = ServerResult(
                name, Outcome.UNCHANGED, before_version=before.version, action=action, notes=notes
            )
            emit(on_progress, name, Stage.DONE, unchanged.status)
            return replace(unchanged, after_version=before.version, recovered=recovered), None
        after = _next(before, after, operator, now)
        why_risky = _risk(before, after)
        if dry_run:
            diff = rendered_diff(before, after, service.name, cdir)
            emit(on_progress, name, Stage.DONE, Outcome.DRY_RUN)
            return ServerResult(
                name,
                Outcome.DRY_RUN,
                before_version=before.version,
                after_version=after.version,
                diff=diff,
                action=action,
                notes=notes,
                risk=why_risky,
                maintenance=after.maintenance.on,
            ), None
        window = confirm_within
        if window is None:
            window = DEFAULT_CONFIRM if why_risky else 0.0
        master = choose_master(read, service.nginx_test_on(name), name)
        ev["diff"] = _diff(before, after)
        tarball = _files(after, service.name, cdir, ev)
        argv = serverside.command(
            "apply",
            cdir,
            service.name,
            name,
            secrets.token_hex(6),
            read.sha,
            str(master),
            service.nginx_test_on(name),
            service.nginx_reload_on(name),
            str(math.ceil(window)),
        )
        sent = True
        emit(on_progress, name, Stage.APPLYING)
        res = await run_step(transport, argv, tarball)
    except (OperationError, UsageError, TransportError) as e:
        reason = unprefixed(str(e), name)
        if sent and isinstance(e, TransportError):
            reason += (
                " (during the apply: the server either finished the change, or the next "
                f"operation rolls it back; `opsconsole controls {service.name}` shows which)"
            )
        result = ServerResult(name, Outcome.FAILED, reason, before_version=before_version)
    else:
        result = step_result(res, service.name, name, before.version, after.version)
    result = replace(
        result,
        total_ms=int((time.monotonic() - started) * 1000),
        recovered=result.recovered or recovered,
        action=action,
        notes=notes,
        risk=why_risky,
        maintenance=(
            (after if result.status is Outcome.OK else before).maintenance.on if sent else None
        ),
    )
    emit(on_progress, name, Stage.DONE, result.status)
    ev.update(
        before_version=result.before_version,
        after_version=result.after_version,
        result=result.status,
        reason=result.reason or None,
        rolled_back=result.rolled_back,
    )
    return result, ev


async def apply_change(
    config: Config,
    service: str,
    transports: Mapping[str, Transport],
    edit: Edit,
    *,
    operator: str,
    dry_run: bool = False,
    confirm_within: float | None = None,
    expected_version: int | None = None,
    expected_versions: Mapping[str, int | None] | None = None,
    audit_trail: Path | None = None,
    now: datetime | None = None,
    pid_files: Mapping[str, str] | None = None,
    on_progress: OnProgress | None = None,
    servers: Sequence[str] | None = None,
) -> ApplyReport:
    """Apply ``edit`` to ``service`` on all its servers (or only ``servers``) in parallel.

    ``confirm_within``: None applies the default policy (``DEFAULT_CONFIRM`` seconds for risky
    changes, see :func:`.state.risk`), 0 disables commit-confirmed, N > 0 seconds enables it.
    ``expected_version`` (every server) or ``expected_versions`` (per server, from a preview)
    refuses servers whose state moved past the version the operator saw.  ``dry_run`` renders
    and diffs, changes nothing, writes no audit event.  ``on_progress`` hears each server's
    stages.
    """
    svc = service_of(config, service, transports, servers)
    operator = validate.operator(operator)
    if confirm_within is not None and not 0 <= confirm_within <= MAX_CONFIRM:
        raise UsageError(f"confirm-within {confirm_within!r}: expected 0 to {MAX_CONFIRM:.0f} s")
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    try:
        results = await asyncio.gather(
            *(
                apply_on_server(
                    transports[name],
                    svc,
                    config.servers[name],
                    edit,
                    operator=operator,
                    now=when,
                    dry_run=dry_run,
                    confirm_within=confirm_within,
                    expected_version=(
                        expected_versions.get(name) if expected_versions is not None
                        else expected_version
                    ),
                    pid_file=(pid_files or {}).get(name),
                    on_progress=on_progress,
                )
                for name in svc.servers
            )
        )  # fmt: skip
    finally:
        for memo in (_edited, _notes, _next, _risk, _diff, _shared_files):
            memo.forget()
    events = [ev for _, ev in results if ev is not None]
    if events:
        audit.append_local(audit_trail or audit.default_trail(), events)
    actions = {r.action for r, _ in results if r.action}
    action = actions.pop() if len(actions) == 1 else edit.action
    report = ApplyReport(service, action, dry_run, {r.server: r for r, _ in results})
    if events and svc.url:
        report = replace(report, probe=await probe_site(config, svc.url))
    return report


async def probe_site(config: Config, url: str) -> dict[str, Any]:
    """What the site answers now: the operator sees at once whether the change helped or hurt."""
    r = await probe_url(
        url, timeout=config.health.timeout, follow_redirects=config.health.follow_redirects
    )
    latency = None if r.latency_ms is None else round(r.latency_ms, 1)
    return {"url": url, "http_status": r.http_status, "latency_ms": latency, "error": r.error}
