"""Settling a commit-confirmed change: ``confirm`` keeps it, ``rollback`` reverts at once.

Front ends call :func:`confirm_change` and :func:`rollback_change`; both run one step of the
server-side program (:mod:`.serverside`) on every server of the service, in parallel, under the
same lock as an apply, and write an audit event on the server and locally.  ``rollback`` without a
pending change reverts the last applied change (once).  Never imports a front end.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..config import Config, ServerConfig, ServiceConfig
from ..errors import OperationError, UsageError
from ..text import unprefixed
from ..transport.base import Transport, TransportError
from . import audit, serverside, validate
from .progress import OnProgress, Stage, emit
from .remote import choose_master, opsc_lines, read_server, run_step, service_of, step_result
from .render import check_control_dir
from .report import ApplyReport, Outcome, ServerResult


class Settle(enum.StrEnum):
    """What to do with a commit-confirmed change."""

    CONFIRM = "confirm"
    """Keep it: the servers disarm their revert timers (nginx's behaviour does not change)."""
    ROLLBACK = "rollback"
    """Revert at once: the change awaiting confirmation, else the last applied change."""

    @property
    def stage(self) -> Stage:
        return Stage.CONFIRMING if self is Settle.CONFIRM else Stage.ROLLING_BACK


async def _settle_on_server(
    mode: Settle,
    transport: Transport,
    svc: ServiceConfig,
    server: ServerConfig,
    operator: str,
    now: datetime,
    pid_file: str | None,
    expected_version: int | None = None,
    on_progress: OnProgress | None = None,
) -> tuple[ServerResult, dict[str, Any]]:
    name = server.name
    ev = audit.event(
        when=now, operator=operator, service=svc.name, server=name, action=mode.value, diff=None
    )
    try:
        cdir = check_control_dir(svc.control_dir_on(name))
        emit(on_progress, name, Stage.READING)
        read = await read_server(transport, svc, server, pid_file)
        current = read.state
        if expected_version is not None and current.version != expected_version:
            raise OperationError(
                f"the controls of {svc.name} on {name} were changed by "
                f"{current.updated_by or 'another console'} at {current.updated_at or '?'} (now "
                f"version {current.version}, expected {expected_version}): re-read and try again"
            )
        try:
            master = choose_master(read, svc.nginx_test_on(name), name)
        except OperationError:
            if mode is Settle.ROLLBACK:
                raise
            master = 0
        argv = serverside.command(
            mode.value,
            cdir,
            svc.name,
            name,
            str(master),
            svc.nginx_test_on(name),
            svc.nginx_reload_on(name),
        )
        emit(on_progress, name, mode.stage)
        res = await run_step(transport, argv, audit.server_prefix(ev).encode())
    except (OperationError, UsageError, TransportError) as e:
        result = ServerResult(name, Outcome.FAILED, unprefixed(str(e), name))
    else:
        info = opsc_lines(res.stdout)
        if res.exit_status == 0 and "nothing" in info:
            result = ServerResult(
                name, Outcome.NOTHING, f"no change awaits confirmation on {svc.name}"
            )
        elif res.exit_status == 0 and "confirmed" in info:
            v = int(info["confirmed"]) if info["confirmed"].isdigit() else None
            result = ServerResult(name, Outcome.CONFIRMED, before_version=v, after_version=v)
        elif res.exit_status == 0 and "reverted" in info:
            bv, _, av = info["reverted"].partition(" ")
            result = ServerResult(
                name,
                Outcome.ROLLED_BACK,
                rolled_back=True,
                before_version=int(bv) if bv.isdigit() else None,
                after_version=int(av) if av.isdigit() else None,
            )
        else:
            result = step_result(res, svc.name, name, 0, 0)
            result = replace(result, before_version=None, after_version=None, rolled_back=False)
    emit(on_progress, name, Stage.DONE, result.status)
    ev.update(
        result=result.status,
        reason=result.reason or None,
        before_version=result.before_version,
        after_version=result.after_version,
    )
    return result, ev


async def settle_change(
    mode: Settle,
    config: Config,
    service: str,
    transports: Mapping[str, Transport],
    *,
    operator: str,
    audit_trail: Path | None = None,
    pid_files: Mapping[str, str] | None = None,
    expected_versions: Mapping[str, int | None] | None = None,
    on_progress: OnProgress | None = None,
    servers: Sequence[str] | None = None,
) -> ApplyReport:
    """Confirm or roll back on every server of ``service`` (or only ``servers``) in parallel.
    ``expected_versions`` (from a preview) refuses a server whose state changed since it was
    shown."""
    svc = service_of(config, service, transports, servers)
    operator = validate.operator(operator)
    now = datetime.now(UTC).replace(microsecond=0)
    results = await asyncio.gather(
        *(
            _settle_on_server(
                mode, transports[n], svc, config.servers[n], operator, now,
                (pid_files or {}).get(n), (expected_versions or {}).get(n), on_progress,
            )
            for n in svc.servers
        )
    )  # fmt: skip
    events = [ev for r, ev in results if r.status is not Outcome.NOTHING]
    if events:
        audit.append_local(audit_trail or audit.default_trail(), events)
    return ApplyReport(service, mode.value, False, {r.server: r for r, _ in results})


async def confirm_change(
    config: Config,
    service: str,
    transports: Mapping[str, Transport],
    *,
    operator: str,
    audit_trail: Path | None = None,
    pid_files: Mapping[str, str] | None = None,
) -> ApplyReport:
    """Keep the commit-confirmed change on every server (disarms the servers' timers)."""
    return await settle_change(
        Settle.CONFIRM,
        config,
        service,
        transports,
        operator=operator,
        audit_trail=audit_trail,
        pid_files=pid_files,
    )


async def rollback_change(
    config: Config,
    service: str,
    transports: Mapping[str, Transport],
    *,
    operator: str,
    audit_trail: Path | None = None,
    pid_files: Mapping[str, str] | None = None,
) -> ApplyReport:
    """Revert at once: the change awaiting confirmation, else the last applied change."""
    return await settle_change(
        Settle.ROLLBACK,
        config,
        service,
        transports,
        operator=operator,
        audit_trail=audit_trail,
        pid_files=pid_files,
    )
