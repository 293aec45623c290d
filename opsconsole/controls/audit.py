"""The audit timeline of control changes (DESIGN §5 step 7): events, diffs, the local trail.

Every apply, confirm and rollback writes one event per server: on the server
(``<control_dir>/<service>.audit.jsonl``, appended by :mod:`.serverside` under the lock, which
adds the server's versions and result) and in the console's local trail (appended here by
:mod:`.apply`).  The CLI's ``audit`` and ``report`` commands read the local trail with
:func:`read_trail`.  Standard library and ``.state`` only.

An event is one JSON object per line::

    {"time", "operator", "service", "server", "action", "diff", "before_version",
     "after_version", "result", "reason"?}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..health.report import Status
from .state import (
    ControlState,
    block_dict,
    filter_dict,
    parse_utc,
    state_to_dict,
    utc_text,
)

MAX_LISTED = 50
"""Longer lists of added/removed entries are cut to this many, with the full count beside them."""


def result_status(result: object) -> Status:
    """What an event's ``result`` says: DOWN for a failure in the console's or the server's
    words (``failed``, ``test-failed``, ``reload-failed``), WARN for a recovery, UNKNOWN without
    one, OK otherwise."""
    text = str(result or "")
    if not text:
        return Status.UNKNOWN
    if text == "failed" or text.endswith("-failed"):
        return Status.DOWN
    return Status.WARN if text == "recovered" else Status.OK


def default_trail() -> Path:
    """``$XDG_STATE_HOME/opsconsole/audit.jsonl`` (default ``~/.local/state/...``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "opsconsole" / "audit.jsonl"


def _listed(items: list[Any]) -> dict[str, Any]:
    return {"count": len(items), "items": items[:MAX_LISTED]}


def state_diff(before: ControlState, after: ControlState) -> dict[str, Any]:
    """What changed, by kind; unchanged kinds are left out."""
    out: dict[str, Any] = {}
    old_blocks = {x.target: x for x in before.blocks}
    new_blocks = {x.target: x for x in after.blocks}
    added = [b for t, b in new_blocks.items() if old_blocks.get(t) != b]
    removed = [t for t in old_blocks if t not in new_blocks]
    if added or removed:
        shown = {"count": len(added), "items": [block_dict(b) for b in added[:MAX_LISTED]]}
        out["blocks"] = {"added": shown, "removed": _listed(removed)}
    old_filters = {x.id: x for x in before.filters}
    new_filters = {x.id: x for x in after.filters}
    f_added = [filter_dict(f) for i, f in new_filters.items() if old_filters.get(i) != f]
    f_removed = [i for i in old_filters if i not in new_filters]
    if f_added or f_removed:
        out["filters"] = {"added": f_added, "removed": f_removed}
    b = state_to_dict(replace(before, blocks=(), filters=()))
    a = state_to_dict(replace(after, blocks=(), filters=()))
    for name in ("maintenance", "rate_limit"):
        if b[name] != a[name]:
            out[name] = {"before": b[name], "after": a[name]}
    return out


def event(
    *,
    when: datetime,
    operator: str,
    service: str,
    server: str,
    action: str,
    diff: dict[str, Any] | None,
) -> dict[str, Any]:
    """The fields the console knows before the server answers (no versions, no result)."""
    return {
        "time": utc_text(when),
        "operator": operator,
        "service": service,
        "server": server,
        "action": action,
        "diff": diff,
    }


def server_prefix(ev: dict[str, Any]) -> str:
    """The event as ASCII JSON without its closing brace: the server appends versions and result."""
    text = json.dumps(ev, ensure_ascii=True)
    assert text.endswith("}") and "\n" not in text
    return text[:-1]


def append_local(path: Path, events: Iterable[dict[str, Any]]) -> None:
    """Append events to the local trail (created 0600 with its directory)."""
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
    if not lines:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(lines)


def read_trail(
    path: Path, *, service: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Events of the local trail, oldest first; unreadable lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        if service is not None and ev.get("service") != service:
            continue
        if since is not None:
            try:
                if parse_utc(str(ev.get("time"))) < since:
                    continue
            except ValueError:
                continue
        out.append(ev)
    return out
