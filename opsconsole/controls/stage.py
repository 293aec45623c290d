"""Where a site stands in its recovery (the recovery board): one stage in plain words.

A site's stage is derived from its controls and from what it answers, nothing else:

- ``closed``: maintenance on, nobody allowed through (everyone gets the 503 page);
- ``staff only``: maintenance on with an allow list (the staff test the site);
- ``down``: not serving (no answer, a timeout, a 5xx) and no maintenance;
- ``protected``: serving, with rules in force (blocks, filters, a rate limit);
- ``open``: serving, no controls;
- ``unknown``: no maintenance, and nothing says whether it serves (no URL to probe, no log).

:data:`ORDER` is the recovery order: sorting by it puts the sites still down first.  ``since``
is when the stage began as far as the controls tell (maintenance switched on, the oldest rule in
force, the last change), or, for ``down`` and ``unknown``, when this machine first saw it so
(:class:`StageMemory`).  Standard library and ``.state`` only.
"""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .state import ControlState, parse_utc, utc_text


class Stage(enum.StrEnum):
    DOWN = "down"
    CLOSED = "closed"
    STAFF_ONLY = "staff only"
    PROTECTED = "protected"
    OPEN = "open"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """Sort key: the sites furthest from recovered first."""
        return ORDER.index(self)


_VALUES = frozenset(s.value for s in Stage)
ORDER = (Stage.DOWN, Stage.CLOSED, Stage.STAFF_ONLY, Stage.PROTECTED, Stage.OPEN, Stage.UNKNOWN)

SERVING_5XX_MAX = 0.5
"""Without a probe, a site whose recent log answers more than this share of 5xx is not serving."""


@dataclass(frozen=True)
class SiteStage:
    """One site's stage, with what a recovery board shows beside it."""

    stage: Stage
    since: str | None = None
    """UTC time the stage began (None: not known, e.g. a site that never had controls)."""
    reason: str = ""
    """Why, in a few words (``HTTP 502``, ``3 blocks, 1 filter``, ``allowed: 10.0.0.0/8``)."""
    refused_share: float | None = None
    """The share of the site's recent requests its rules in force refused (None: not read)."""
    awaiting_confirmation: str | None = None
    """UTC deadline of a change that awaits ``confirm`` (else None)."""

    def to_dict(self) -> dict[str, Any]:
        """The stage keys of ``check --json`` (per service) and ``controls --json``."""
        return {
            "stage": self.stage.value,
            "stage_since": self.since,
            "stage_reason": self.reason or None,
            "refused_share": None if self.refused_share is None else round(self.refused_share, 4),
            "awaiting_confirmation": self.awaiting_confirmation,
        }

    def summary(self) -> str:
        """One line for people: ``protected since 14:02Z (3 blocks) — refusing 82 %``."""
        text = self.stage.value
        if self.since:
            text += f" since {self.since}"
        if self.reason:
            text += f" ({self.reason})"
        if self.refused_share is not None and self.stage is not Stage.OPEN:
            text += f" — refusing {self.refused_share * 100:.0f} % of its traffic"
        if self.awaiting_confirmation:
            text += f" — a change awaits confirmation until {self.awaiting_confirmation}"
        return text


def refused_codes(state: ControlState) -> frozenset[int]:
    """The statuses by which the controls of ``state`` refuse a request (403/444 for blocks and
    filters, 429 for the rate limit, 503 for maintenance)."""
    codes: set[int] = set()
    if state.blocks or state.filters:
        codes |= {403, 444}
    if state.rate_limit.rate:
        codes.add(429)
    if state.maintenance.on:
        codes.add(503)
    return frozenset(codes)


def rules_in_force(state: ControlState) -> str:
    """The rules of ``state`` in a few words, "" when there are none."""
    parts = []
    if state.blocks:
        parts.append(f"{len(state.blocks)} block{'s' if len(state.blocks) != 1 else ''}")
    if state.filters:
        parts.append(f"{len(state.filters)} filter{'s' if len(state.filters) != 1 else ''}")
    if state.rate_limit.rate:
        parts.append(f"rate limit {state.rate_limit.rate}")
    return ", ".join(parts)


def serving_from_log(status_counts: Mapping[int, int]) -> bool | None:
    """Whether the recent log says the site serves (None: no requests logged)."""
    total = sum(status_counts.values())
    if not total:
        return None
    errors = sum(n for s, n in status_counts.items() if 500 <= s < 600 and s != 503)
    return errors / total <= SERVING_5XX_MAX


def _earliest(stamps: Iterable[str]) -> str | None:
    parsed = []
    for s in stamps:
        try:
            parsed.append((parse_utc(s), s))
        except ValueError:
            continue
    return min(parsed)[1] if parsed else None


def site_stage(
    state: ControlState | None,
    serving: bool | None,
    *,
    answer: str = "",
    refused_share: float | None = None,
    awaiting_confirmation: str | None = None,
    maintenance_since: str | None = None,
) -> SiteStage:
    """The stage of one site.

    ``state``: its controls (None: unreadable — the stage then rests on its answer alone);
    ``serving``: whether it answers properly (True), fails (False) or nobody knows (None);
    ``answer``: its answer in a few words, the reason of ``down``; ``maintenance_since``: when
    maintenance was switched on, where the audit trail tells (else the last change's time)."""
    state = state or ControlState()
    updated = state.updated_at or None
    m = state.maintenance
    rules = rules_in_force(state)
    if m.on:
        since = maintenance_since or updated
        if m.allow:
            allowed = ", ".join(m.allow[:3]) + (" …" if len(m.allow) > 3 else "")
            stage, reason = Stage.STAFF_ONLY, f"allowed: {allowed}"
        else:
            stage, reason = Stage.CLOSED, "maintenance page for everyone"
    elif serving is False:
        stage, since, reason = Stage.DOWN, None, answer or "not answering"
    elif serving is None:
        stage, since, reason = Stage.UNKNOWN, None, answer or "nothing says whether it serves"
    elif rules:
        added = [b.added_at for b in state.blocks] + [f.added_at for f in state.filters]
        oldest = _earliest(added) if not state.rate_limit.rate else None
        stage, since, reason = Stage.PROTECTED, oldest or updated, rules
    else:
        stage, since, reason = Stage.OPEN, updated, ""
    return SiteStage(stage, since, reason, refused_share, awaiting_confirmation)


def maintenance_since(events: Iterable[Mapping[str, Any]]) -> str | None:
    """When maintenance was last switched on, from a service's audit events (oldest first)."""
    found = None
    for ev in events:
        diff = ev.get("diff")
        change = diff.get("maintenance") if isinstance(diff, dict) else None
        if not isinstance(change, dict):
            continue
        before, after = change.get("before"), change.get("after")
        was = isinstance(before, dict) and bool(before.get("on"))
        now = isinstance(after, dict) and bool(after.get("on"))
        if now and not was and ev.get("result", "ok") == "ok":
            found = str(ev.get("time") or "") or None
    return found


class StageMemory:
    """When this machine first saw each site in its current stage, kept across commands
    (``$XDG_STATE_HOME/opsconsole/stages.json``), so that ``down since …`` survives one
    ``check`` to the next.  A stage the controls date (maintenance, rules) keeps their time."""

    def __init__(self, path: Path | None) -> None:
        """``path``: where the memory is kept (None: in this process only, as the console does,
        which sees every change as it happens)."""
        self.path = path
        self.seen: dict[str, dict[str, str]] = {}
        self.previous: dict[str, Stage | None] = {}
        """Per service, the stage it left at the last :meth:`date` (None: it did not change)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path is not None else {}
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            for k, v in data.items():
                if isinstance(v, dict) and isinstance(v.get("stage"), str):
                    self.seen[str(k)] = {"stage": v["stage"], "since": str(v.get("since") or "")}

    def date(self, service: str, stage: SiteStage, now: float | None = None) -> SiteStage:
        """``stage`` with its ``since`` filled from memory where the controls gave none; the
        memory moves on when the stage changed (:attr:`previous` says from what)."""
        value = stage.stage.value
        known = self.seen.get(service)
        self.previous[service] = None
        if known is None or known["stage"] != value:
            if known is not None and known["stage"] in _VALUES:
                self.previous[service] = Stage(known["stage"])
            when = utc_text(datetime.fromtimestamp(time.time() if now is None else now, UTC))
            self.seen[service] = {"stage": value, "since": stage.since or when}
        if stage.since:
            return stage
        return replace(stage, since=self.seen[service]["since"] or None)

    def save(self) -> None:
        """Write the memory (0600, atomically); a failure to write is not an error."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.seen, f, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            pass


def default_memory() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "opsconsole" / "stages.json"


__all__ = [
    "ORDER",
    "SiteStage",
    "Stage",
    "StageMemory",
    "default_memory",
    "maintenance_since",
    "refused_codes",
    "rules_in_force",
    "serving_from_log",
    "site_stage",
]
