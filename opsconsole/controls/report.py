"""Results of control operations, per server and per service, as the front ends show them.

Returned by :mod:`.apply` (``apply_change``, ``confirm_change``, ``rollback_change``,
``read_controls``); the CLI prints :meth:`ApplyReport.to_dict` as JSON and exits with
:attr:`ApplyReport.exit_status` (0 done, 1 failed on a server).  Standard library and ``.state``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..errors import OperationError
from ..health.report import Status
from .state import ControlState, state_to_dict


class Outcome(enum.StrEnum):
    """What an intent did on one server (the ``status`` of the acting commands' JSON)."""

    OK = "ok"
    UNCHANGED = "unchanged"
    """Nothing to do: the controls were already so."""
    DRY_RUN = "dry-run"
    """Would change (a preview)."""
    CONFIRMED = "confirmed"
    ROLLED_BACK = "rolled-back"
    NOTHING = "nothing"
    """Nothing to confirm, or nothing to roll back."""
    FAILED = "failed"

    @property
    def ok(self) -> bool:
        return self is not Outcome.FAILED


@dataclass(frozen=True)
class ServerResult:
    """What happened on one server."""

    server: str
    status: Outcome
    reason: str = ""
    """Why it failed, in the server's own words where there are some (nginx's message)."""
    rolled_back: bool = False
    """True when new files had been put in place and were reverted."""
    before_version: int | None = None
    after_version: int | None = None
    confirm_deadline: str | None = None
    """UTC time by which ``confirm`` must arrive, or the server reverts by itself."""
    diff: str = ""
    """Unified diff of the rendered files (dry run)."""
    recovered: bool = False
    """An earlier apply on this server had been interrupted and was rolled back first."""
    test_ms: int | None = None
    reload_ms: int | None = None
    total_ms: int | None = None
    action: str = ""
    """The intent as it reads on this server's state (``maintenance on (keeps allow …)``)."""
    notes: tuple[str, ...] = ()
    """What the operator should know though nothing failed (``not blocked: 10.9.9.0/24``)."""
    risk: str | None = None
    """Why this change is commit-confirmed by default (``maintenance off``), or None."""
    maintenance: bool | None = None
    """Whether the server's controls put the site in maintenance after the change (None:
    not known, e.g. after a rollback)."""

    @property
    def ok(self) -> bool:
        return self.status.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ok": self.ok,
            "reason": self.reason or None,
            "rolled_back": self.rolled_back,
            "before_version": self.before_version,
            "after_version": self.after_version,
            "confirm_deadline": self.confirm_deadline,
            "recovered": self.recovered,
            "diff": self.diff or None,
            "timings_ms": {"test": self.test_ms, "reload": self.reload_ms, "total": self.total_ms},
        }


def probe_status(probe: dict[str, Any], *, maintenance: bool = False) -> Status:
    """What the site's answer after a change says: DOWN without an answer or on a 5xx, WARN on
    a 4xx, MAINTENANCE for the 503 of a site put in maintenance (``maintenance``), else OK."""
    status = probe.get("http_status")
    if probe.get("error") is not None or not isinstance(status, int):
        return Status.DOWN
    if status == 503 and maintenance:
        return Status.MAINTENANCE
    return Status.OK if status < 400 else Status.WARN if status < 500 else Status.DOWN


def probe_text(probe: dict[str, Any]) -> str:
    """The site's answer after a change, for people: ``HTTP 503 in 4.1 ms (URL)`` or why there
    was none."""
    status, error = probe.get("http_status"), probe.get("error")
    if error is not None:
        answer = str(error)
    elif status is None:
        answer = "no answer"
    else:
        answer = f"HTTP {status} in {probe.get('latency_ms')} ms"
    return f"{answer} ({probe.get('url')})"


@dataclass(frozen=True)
class ApplyReport:
    """One operation on every server of a service."""

    service: str
    action: str
    dry_run: bool = False
    results: dict[str, ServerResult] = field(default_factory=dict)
    probe: dict[str, Any] | None = None
    """The site's answer right after the change (DESIGN §5 step 5): url, http_status,
    latency_ms, error — None for a dry run, a service without URL, or when nothing changed."""

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    @property
    def changed_nothing(self) -> bool:
        """Every server was already so, or had nothing to confirm or roll back."""
        return bool(self.results) and all(
            r.status in (Outcome.UNCHANGED, Outcome.NOTHING) for r in self.results.values()
        )

    @property
    def would_change(self) -> list[str]:
        """A preview: the servers it would change."""
        return [r.server for r in self.results.values() if r.status is Outcome.DRY_RUN]

    @property
    def notes(self) -> list[str]:
        """The servers' notes, each once (``not blocked on www: 10.9.9.0/24``)."""
        return list(dict.fromkeys(n for r in self.results.values() for n in r.notes))

    @property
    def confirm_deadline(self) -> str | None:
        """The earliest deadline by which ``confirm`` must arrive, if the change awaits one."""
        deadlines = sorted(r.confirm_deadline for r in self.results.values() if r.confirm_deadline)
        return deadlines[0] if deadlines else None

    @property
    def risk(self) -> str | None:
        return next((r.risk for r in self.results.values() if r.risk), None)

    @property
    def maintenance(self) -> bool | None:
        """Whether the site is in maintenance after the change, where the servers said."""
        known = [r.maintenance for r in self.results.values() if r.maintenance is not None]
        return any(known) if known else None

    def site_status(self) -> Status | None:
        """What the site's answer after the change says (None: it was not probed)."""
        if self.probe is None:
            return None
        return probe_status(self.probe, maintenance=bool(self.maintenance))

    def summary(self) -> str:
        """One line for people: what happened overall."""
        if self.changed_nothing:
            notes = self.notes
            reasons = notes or list(dict.fromkeys(r.reason for r in self.results.values()))
            text = "; ".join(x for x in reasons if x) or f"already so on {self.service}"
            return f"{text} — nothing changed"
        failed = self.failures()
        if failed:
            return (
                f"{self.action} on {self.service} failed on "
                f"{', '.join(r.server for r in failed)} of {len(self.results)} servers"
            )
        if self.dry_run:
            return f"{self.action} on {self.service}: would change {', '.join(self.would_change)}"
        if self.confirm_deadline and self.action not in ("confirm", "rollback"):
            return f"{self.action} on {self.service}: applied — awaiting confirmation"
        return f"{self.action} on {self.service}: done"

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def failures(self) -> list[ServerResult]:
        return [r for r in self.results.values() if not r.ok]

    def raise_for_failures(self) -> None:
        """Raise OperationError (exit 1) naming each failed server and its reason."""
        bad = self.failures()
        if bad:
            lines = [
                f"{r.server}: {r.reason}" + (" (rolled back)" if r.rolled_back else "") for r in bad
            ]
            raise OperationError(f"{self.action} on {self.service} failed:\n" + "\n".join(lines))

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "action": self.action,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "servers": {name: r.to_dict() for name, r in self.results.items()},
            "probe": self.probe,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Unposted:
    """A revert a server's commit-confirmed timer made, not yet announced (the server keeps it
    until someone has)."""

    server: str
    name: str
    """Its name on the server (what :func:`.remote.take_unposted` removes)."""
    time: str
    """When the server reverted (its clock, UTC)."""
    before_version: int
    after_version: int
    reverted: ControlState
    """The state that was not confirmed in time (its ``updated_by`` made the change)."""


@dataclass(frozen=True)
class ServerControls:
    """The control state one server holds, or why it could not be read."""

    server: str
    state: ControlState | None
    error: str | None = None
    pending: bool = False
    """An interrupted apply is waiting to be rolled back by the next operation."""
    confirm_deadline: str | None = None
    """A commit-confirmed change awaits ``confirm`` until then."""
    unposted: tuple[Unposted, ...] = ()
    """Reverts its timers made that nobody announced yet."""


@dataclass(frozen=True)
class ControlsReport:
    """``controls SERVICE``: the state on every server and whether they agree."""

    service: str
    servers: dict[str, ServerControls]

    @property
    def consistent(self) -> bool:
        states = [s.state for s in self.servers.values()]
        if any(s is None for s in states):
            return False
        first = states[0]
        return all(first is not None and s is not None and s.content_equals(first) for s in states)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, s in self.servers.items():
            d: dict[str, Any] = state_to_dict(s.state) if s.state is not None else {}
            d["error"] = s.error
            d["pending"] = s.pending
            d["confirm_deadline"] = s.confirm_deadline
            out[name] = d
        return {"service": self.service, "consistent": self.consistent, "servers": out}
