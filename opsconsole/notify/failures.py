"""Webhook deliveries that failed, kept in a small local state file for ``opsconsole check``.

:class:`~.notifier.Notifier` appends a line to ``$XDG_STATE_HOME/opsconsole/notify.jsonl`` (next
to the local audit trail; created 0600) when it gives up on a webhook, and a line when a webhook
that had failed takes a message again.  Consoles of this machine also :func:`claim` there the
messages that only one of them may post (a server's own revert, which they all see).
:func:`recent_failures` is what ``check`` and the console show: per webhook, its last failure
unless a delivery succeeded since.  Webhooks are named as :func:`opsconsole.config.shown_url`
shows them, never by their secret URL.  A line::

    {"time": "2026-11-24T15:00:00Z", "webhook": "https://hooks.slack.com/…", "ok": false,
     "error": "HTTP 500 Internal Server Error", "what": "block 203.0.113.0/24 on www",
     "attempts": 4}

The file is cut to its last ``KEEP`` lines when it grows beyond ``MAX_BYTES``.  Standard library
and :mod:`opsconsole.controls.audit` (where the trail lives) only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..controls.audit import default_trail
from ..controls.state import parse_utc, utc_text

MAX_BYTES = 256 * 1024
KEEP = 500
RECENT = timedelta(days=7)
"""A failure older than this (and not followed by a success) is no longer shown."""


@dataclass(frozen=True)
class DeliveryFailure:
    """A message one webhook did not take."""

    webhook: str
    """The webhook as it may be shown (``https://hooks.slack.com/…``)."""
    error: str
    """Why, in one sentence (``HTTP 500 …``, ``connection refused by …``)."""
    what: str
    """The message it missed (``block 203.0.113.0/24 on www``)."""
    attempts: int
    time: str
    """UTC time it was given up on."""

    def line(self) -> str:
        """For people (the CLI's stderr, ``check``): one line."""
        return (
            f"webhook {self.webhook} was not told of {self.what}: {self.error} "
            f"(after {self.attempts} {'try' if self.attempts == 1 else 'tries'}, {self.time})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_path() -> Path:
    """``$XDG_STATE_HOME/opsconsole/notify.jsonl``, beside the local audit trail."""
    return state_path(default_trail())


def state_path(audit_trail: Path) -> Path:
    """The state file that goes with a local audit trail."""
    return audit_trail.with_name("notify.jsonl")


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with contextlib.suppress(OSError):
        if path.stat().st_size > MAX_BYTES:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-KEEP:]
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
            os.replace(tmp, path)


def claim(path: Path, key: str) -> bool:
    """True for the first caller on this machine to claim ``key`` (under ``flock``), False for
    every later one: of the consoles that see the same event, one posts it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8", errors="replace") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        mark = json.dumps({"claim": key}, ensure_ascii=False)[1:-1]
        if any(mark in line for line in f):
            return False
        f.write(json.dumps({"time": utc_text(datetime.now(UTC)), "claim": key}) + "\n")
        return True


def record_failure(path: Path, failure: DeliveryFailure) -> None:
    _append(path, {**failure.to_dict(), "ok": False})


def record_success(path: Path, webhook: str) -> None:
    """A delivery to ``webhook`` worked: written only when it has a failure on record, so the
    file stays small while the webhooks work."""
    if any(f.webhook == webhook for f in recent_failures(path)):
        _append(path, {"time": utc_text(datetime.now(UTC)), "webhook": webhook, "ok": True})


def recent_failures(
    path: Path | None = None, *, now: datetime | None = None
) -> list[DeliveryFailure]:
    """Per webhook, its last failed delivery of the past ``RECENT`` unless one succeeded since,
    oldest first (``path``: default :func:`default_path`).  What ``check`` and the console show;
    an unreadable line is skipped, a missing file means none."""
    path = path or default_path()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return []
    last: dict[str, DeliveryFailure | None] = {}
    for line in text.splitlines():
        try:
            r = json.loads(line)
            if r.get("ok") is True:
                last[str(r["webhook"])] = None
                continue
            f = DeliveryFailure(
                webhook=str(r["webhook"]),
                error=str(r["error"]),
                what=str(r["what"]),
                attempts=int(r["attempts"]),
                time=str(r["time"]),
            )
            parse_utc(f.time)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        last.pop(f.webhook, None)  # insertion order: the newest last
        last[f.webhook] = f
    since = (now or datetime.now(UTC)) - RECENT
    return [f for f in last.values() if f is not None and parse_utc(f.time) >= since]
