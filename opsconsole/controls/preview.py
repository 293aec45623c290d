"""What ``confirm`` and ``rollback`` would do, without doing it (their ``--dry-run``).

Called by the CLI (and usable by the TUI) before :func:`.settle.confirm_change` /
:func:`.settle.rollback_change`.  ``confirm`` would keep the change awaiting confirmation;
``rollback`` would switch back to the previous generation of files (``.<service>.prev``, see the
layout in :mod:`.serverside`), whose state is read and diffed against the live one.  Reads only.
Never imports a front end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from ..config import Config, ServerConfig, ServiceConfig
from ..errors import OperationError, UsageError
from ..text import unprefixed
from ..transport.base import Transport, TransportError
from .apply import rendered_diff
from .progress import OnProgress, Stage, emit
from .remote import read_server, service_of
from .render import check_control_dir
from .report import ApplyReport, Outcome, ServerResult
from .settle import Settle
from .state import ControlState, state_from_json, utc_text

_PREVIOUS = (
    'cd -- "$1" 2>/dev/null || exit 0; [ -d ".$2.prev/" ] || exit 0; echo "OPSC prev"; '
    'cat -- ".$2.prev/state.json" 2>/dev/null; exit 0'
)


async def previous_state(
    transport: Transport, svc: ServiceConfig, server: str
) -> ControlState | None:
    """The state ``rollback`` would restore on ``server``; None when there is nothing to restore."""
    cdir = check_control_dir(svc.control_dir_on(server))
    argv = ["sh", "-c", _PREVIOUS, "opsc-prev", cdir, svc.name]
    res = await transport.run(argv, timeout=60, privileged=True)
    if not res.ok:
        raise OperationError(f"cannot read the previous controls: {res.error_text()}")
    _head, sep, body = res.stdout.partition(b"OPSC prev\n")
    if not sep:
        return None
    try:
        return state_from_json(body) if body.strip() else ControlState()
    except UsageError as e:
        raise OperationError(f"the previous state file is invalid: {e}") from None


async def _one(
    mode: Settle,
    transport: Transport,
    svc: ServiceConfig,
    server: ServerConfig,
    on_progress: OnProgress | None,
) -> ServerResult:
    name = server.name
    try:
        emit(on_progress, name, Stage.READING)
        read = await read_server(transport, svc, server)
        cur = read.state
        deadline = None
        if read.confirm and len(read.confirm) > 2 and read.confirm[2].isdigit():
            deadline = utc_text(datetime.fromtimestamp(int(read.confirm[2]), UTC))
        if mode is Settle.CONFIRM:
            if read.confirm is None:
                return ServerResult(
                    name, Outcome.NOTHING, f"no change awaits confirmation on {svc.name}"
                )
            return ServerResult(
                name,
                Outcome.DRY_RUN,
                before_version=cur.version,
                after_version=cur.version,
                confirm_deadline=deadline,
            )
        prev = await previous_state(transport, svc, name)
        if prev is None:
            return ServerResult(name, Outcome.NOTHING, f"nothing to roll back on {svc.name}")
        cdir = check_control_dir(svc.control_dir_on(name))
        return ServerResult(
            name,
            Outcome.DRY_RUN,
            before_version=cur.version,
            after_version=prev.version,
            confirm_deadline=deadline,
            diff=rendered_diff(cur, prev, svc.name, cdir),
        )
    except (OperationError, UsageError, TransportError) as e:
        return ServerResult(name, Outcome.FAILED, unprefixed(str(e), name))


async def preview_settle(
    config: Config,
    service: str,
    transports: Mapping[str, Transport],
    mode: Settle,
    *,
    on_progress: OnProgress | None = None,
) -> ApplyReport:
    """A dry-run report of ``confirm`` or ``rollback`` on every server of ``service``."""
    mode = Settle(mode)
    svc = service_of(config, service, transports)
    results = await asyncio.gather(
        *(_one(mode, transports[n], svc, config.servers[n], on_progress) for n in svc.servers)
    )
    return ApplyReport(service, mode.value, True, {r.server: r for r in results})
