"""Blocks that fall due: removed by any running console, not only by the next apply (DESIGN §5).

Every apply drops expired blocks already (:func:`.state.drop_expired`); a console that stays open
(the TUI) calls :func:`expire_due` periodically — at :func:`next_expiry` at the latest — so a
``--ttl`` block ends on time even when nobody changes anything.  It writes only when a block is
actually due, so calling it often costs one read per server.  Never imports a front end.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from ..config import Config
from ..transport.base import Transport
from . import edits
from .apply import apply_change
from .remote import read_controls
from .report import ApplyReport, ControlsReport
from .state import expired_blocks, parse_utc


def due_servers(report: ControlsReport, now: datetime) -> list[str]:
    """Servers of ``report`` holding at least one block whose expiry has passed."""
    return [
        name
        for name, s in report.servers.items()
        if s.state is not None and expired_blocks(s.state, now)
    ]


def next_expiry(report: ControlsReport) -> datetime | None:
    """The earliest expiry among the blocks of every server (None: no block expires)."""
    times = [
        parse_utc(b.expires_at)
        for s in report.servers.values()
        if s.state is not None
        for b in s.state.blocks
        if b.expires_at is not None
    ]
    return min(times, default=None)


async def expire_due(
    config: Config,
    service: str,
    transports: Mapping[str, Transport],
    operator: str,
    *,
    now: datetime | None = None,
    audit_trail: Path | None = None,
    pid_files: Mapping[str, str] | None = None,
) -> ApplyReport | None:
    """Remove the expired blocks of ``service``; None (and nothing written) when none is due.

    The removal is an ordinary apply (:func:`edits.expire`, never commit-confirmed): locked,
    compare-and-swap, ``nginx -t``, reload, audit ("expire blocks").  Servers with nothing due
    report ``unchanged``.  A read error on a server is left for the report of the next apply.
    """
    when = now or datetime.now(UTC)
    current = await read_controls(config, service, transports)
    if not due_servers(current, when):
        return None
    return await apply_change(
        config,
        service,
        transports,
        edits.expire(),
        operator=operator,
        confirm_within=0,
        audit_trail=audit_trail,
        now=when,
        pid_files=pid_files,
    )
