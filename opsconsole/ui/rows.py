"""One fleet-table row per service: plain data computed from snapshots, and its cells.

:func:`build_row` turns what the source knows about a service (traffic snapshot, per-server link
and log-feed states, health, control state) into a :class:`ServiceRow`; :meth:`ServiceRow.cells`
renders it with the theme's :class:`~.palette.Palette`.  Pure functions: the fleet screen calls
them every second, the tests call them directly.  :func:`badges` and :func:`countdown` are shared
with the service screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.text import Text

from ..controls.stage import SiteStage, Stage
from ..controls.state import parse_utc
from ..durations import format_duration
from ..fleet import BEHIND_SHOWN, ServerFeed, server_state
from ..health import FleetHealth, Status
from ..session import ControlsEvent
from ..session.live import SuggestEvent
from ..stats.snapshot import Snapshot
from ..transport import ServerStatus
from .charts import human, sparkline
from .palette import Palette

TREND_SECONDS = 300
"""The fleet table's sparkline covers the last five minutes."""

COLUMNS: tuple[tuple[str, str], ...] = (
    ("service", "Service"),
    ("stage", "Stage"),
    ("servers", "Servers"),
    ("rps", "req/s"),
    ("trend", "last 5 min"),
    ("404", "404"),
    ("5xx", "5xx"),
    ("health", "Health"),
    ("controls", "Controls"),
    ("refused", "Refused"),
    ("excess", "Excess"),
    ("2xx", "2xx"),
    ("4xx", "4xx"),
    ("ips", "IPs"),
    ("topip", "top IP"),
    ("topnet", "top /24"),
)
"""The fleet table's columns, in table order."""
KEEP_ORDER = (
    "service", "stage", "rps", "404", "health", "controls", "refused", "excess", "5xx", "servers",
    "trend", "ips",
    "topnet",
    "2xx", "4xx", "topip",
)  # fmt: skip
"""The order in which columns are kept as the table narrows: the most urgent never leaves."""

SORTS: tuple[tuple[str, str, bool], ...] = (
    ("service", "name", False),
    ("stage", "stage (down first)", False),
    ("rps", "req/s", True),
    ("404", "404 ratio", True),
    ("5xx", "5xx share", True),
    ("ips", "unique IPs", True),
    ("topnet", "top subnet share", True),
    ("excess", "excess", True),
    ("health", "health", True),
)
"""(column, what the footer says, descending) in the order the sort key cycles through them."""


def countdown(deadline: str, now: float) -> str:
    """``m:ss`` left until a UTC deadline (``2026-11-24T15:00:00Z``), or ``due``."""
    try:
        when = datetime.strptime(deadline, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return "?"
    left = int(when - now)
    if left <= 0:
        return "due"
    return f"{left // 60}:{left % 60:02d}"


def badges(event: ControlsEvent | None, now: float) -> list[tuple[str, str]]:
    """(text, kind) for the active controls of a service, as the row and the service screen show."""
    report = event.report if event is not None else None
    if report is None:
        return [("controls ?", "warn")] if event is not None and event.error else [("…", "muted")]
    known = [s for s in report.servers.values() if s.state is not None]
    out: list[tuple[str, str]] = []
    if known:
        st = known[0].state
        assert st is not None
        if st.maintenance.on:
            out.append(("MAINT", "maintenance"))
        if st.blocks:
            out.append((f"{len(st.blocks)} blk", "blocked"))
        if st.filters:
            out.append((f"{len(st.filters)} flt", "blocked"))
        if st.rate_limit.rate:
            out.append((f"≤{st.rate_limit.rate}", "warn"))
    deadlines = sorted(s.confirm_deadline for s in report.servers.values() if s.confirm_deadline)
    if deadlines:
        out.append((f"confirm {countdown(deadlines[0], now)}", "warn"))
    if event is not None and event.reverted_at is not None:
        out.append(("reverted (unconfirmed)", "warn"))
    if any(s.pending for s in report.servers.values()):
        out.append(("interrupted", "down"))
    unread = [s.server for s in report.servers.values() if s.state is None]
    if unread:
        out.append((f"? {','.join(unread)}", "warn"))
    elif not report.consistent:
        out.append(("≠ servers", "down"))
    return out


@dataclass(frozen=True)
class ServiceRow:
    name: str
    servers: tuple[tuple[str, Status, str], ...]
    """(server, verdict, detail) for each server of the service."""
    rps: float
    trend: tuple[int, ...]
    share_2xx: float
    share_4xx: float
    share_5xx: float
    ratio_404: float
    unique_ips: int
    top_ip: str
    top_ip_share: float
    top_subnet: str
    top_subnet_share: float
    health: Status
    health_detail: str
    controls: tuple[tuple[str, str], ...]
    excess: float | None = None
    """The share of the traffic that is excess, from the last analysis (None: not known)."""
    rules: int = 0
    """Rules the last analysis recommends."""
    stage: SiteStage | None = None
    """Where the site stands in its recovery (None: its controls are not read yet)."""
    now: float = 0.0
    behind: float = 0.0
    """Seconds the counts of its most lagging server are behind the log (0: caught up)."""

    def sort_value(self, column: str) -> object:
        values: dict[str, object] = {
            "service": self.name,
            "rps": self.rps,
            "404": self.ratio_404,
            "5xx": self.share_5xx,
            "ips": self.unique_ips,
            "topnet": self.top_subnet_share,
            "health": self.health.rank,
            "excess": self.excess if self.excess is not None else -1.0,
            "stage": (self.stage.stage.rank, self.name) if self.stage else (99, self.name),
            "refused": self.stage.refused_share or 0.0 if self.stage else 0.0,
        }
        return values.get(column, self.name)

    def cells(self, p: Palette) -> list[Text]:
        servers = Text()
        for i, (name, kind, _) in enumerate(self.servers):
            if i:
                servers.append(" ")
            if len(self.servers) > 3:
                continue
            servers.append(name)
            servers.append(_MARK.get(kind, "◐"), p[kind])
        if len(self.servers) > 3:
            up = sum(1 for _, k, _ in self.servers if k is Status.OK)
            overall = "ok" if up == len(self.servers) else "warn" if up else "down"
            servers = Text(f"{up}/{len(self.servers)} up", p[overall])
        if self.behind >= BEHIND_SHOWN:  # the console cannot keep up: the numbers are late
            servers.append(f" behind {self.behind:.0f}s", p["warn"])

        def pct(x: float, warn: float | None = None, down: float | None = None) -> Text:
            text = f"{x * 100:.0f}%" if x >= 0.01 or x == 0 else "<1%"
            style = (
                p["down"]
                if down is not None and x >= down
                else p["warn"]
                if warn is not None and x >= warn
                else p["muted"]
                if x == 0
                else ""
            )
            return Text(text, style, justify="right")

        controls = Text()
        for i, (label, badge) in enumerate(self.controls):
            if i:
                controls.append(" ")
            controls.append(label, p[badge])
        cells = {
            "service": Text(self.name, "bold"),
            "servers": servers,
            "rps": Text(human(self.rps), justify="right"),
            "trend": Text(sparkline(self.trend, 16), p["chart"]),
            "2xx": pct(self.share_2xx),
            "4xx": pct(self.share_4xx, 0.25, 0.5),
            "5xx": pct(self.share_5xx, 0.02, 0.1),
            "404": pct(self.ratio_404, 0.25, 0.5),
            "ips": Text(human(self.unique_ips), justify="right"),
            "topip": pct(self.top_ip_share, 0.1, 0.3),
            "topnet": pct(self.top_subnet_share, 0.2, 0.4),
            "health": Text(self.health.value, p[self.health]),
            "controls": controls,
            "stage": self._stage(p),
            "refused": (
                pct(self.stage.refused_share)
                if self.stage is not None and self.stage.refused_share is not None
                else Text("…" if self.stage is None else "—", p["muted"], justify="right")
            ),
            "excess": self._excess(p),
        }
        return [cells[key] for key, _ in COLUMNS]

    def _stage(self, p: Palette) -> Text:
        """``protected 12m``: the stage, and for how long (as far as known)."""
        if self.stage is None:
            return Text("…", p["muted"])
        st = self.stage
        text = Text(st.stage.value, p[_STAGE_STYLE[st.stage]])
        age = stage_age(st, self.now)
        if age:
            text.append(f" {age}", p["muted"])
        return text

    def _excess(self, p: Palette) -> Text:
        """``92% ★3``: the excess, and how many rules are suggested for it."""
        if self.excess is None:
            return Text("…", p["muted"], justify="right")
        if self.excess <= 0 and not self.rules:
            return Text("—", p["muted"], justify="right")
        text = Text(f"{self.excess * 100:.0f}%", p["warn"] if self.excess >= 0.25 else "")
        if self.rules:
            text.append(f" ★{self.rules}", p["ok"])
        text.justify = "right"
        return text


_MARK = {Status.OK: "●", Status.DOWN: "✕", Status.MAINTENANCE: "◌"}
_STAGE_STYLE = {
    Stage.DOWN: "down", Stage.CLOSED: "maintenance", Stage.STAFF_ONLY: "maintenance",
    Stage.PROTECTED: "warn", Stage.OPEN: "ok", Stage.UNKNOWN: "muted",
}  # fmt: skip


def stage_age(stage: SiteStage, now: float) -> str:
    """How long the site has been in its stage, compactly (``12m``, ``3h``), or ""."""
    if not stage.since:
        return ""
    try:
        began = parse_utc(stage.since).timestamp()
    except ValueError:
        return ""
    left = max(0.0, now - began)
    if left < 60:
        return "<1m"
    text = format_duration(left - left % 60 if left < 3600 else left - left % 3600)
    return text


def build_row(
    snap: Snapshot,
    feeds: Mapping[str, ServerFeed],
    links: Mapping[str, ServerStatus],
    health: FleetHealth,
    controls: ControlsEvent | None,
    now: float,
    suggestions: SuggestEvent | None = None,
    stage: SiteStage | None = None,
) -> ServiceRow:
    total = sum(snap.status.values())
    n404 = snap.status.get("404", 0)
    svc_health = health.services.get(snap.service)
    kinds = [server_state(links.get(s), feeds.get(s)) for s in feeds]
    statuses = [svc_health.status if svc_health else Status.UNKNOWN]
    statuses += [health.servers[s].status for s in feeds if s in health.servers]
    worst = Status.worst(statuses, Status.UNKNOWN)
    reasons = list(svc_health.reasons if svc_health else ())
    for s in feeds:
        if s in health.servers:
            reasons += [f"{s}: {r}" for r in health.servers[s].reasons]
    requests = snap.requests or 0
    return ServiceRow(
        name=snap.service,
        servers=tuple((s, k, d) for s, (k, d) in zip(feeds, kinds, strict=True)),
        rps=snap.rps,
        trend=tuple(snap.per_second[-TREND_SECONDS:]),
        share_2xx=snap.share(2),
        share_4xx=snap.share(4),
        share_5xx=snap.share(5),
        ratio_404=n404 / total if total else 0.0,
        unique_ips=snap.unique_ips,
        top_ip=snap.top_ips[0].key if snap.top_ips else "",
        top_ip_share=snap.top_ips[0].requests / requests if snap.top_ips and requests else 0.0,
        top_subnet=snap.top_subnets[0].key if snap.top_subnets else "",
        top_subnet_share=(
            snap.top_subnets[0].requests / requests if snap.top_subnets and requests else 0.0
        ),
        health=worst,
        health_detail="; ".join(reasons),
        controls=tuple(badges(controls, now)),
        excess=suggestions.excess_share if suggestions is not None else None,
        rules=suggestions.recommended if suggestions is not None else 0,
        stage=stage,
        now=now,
        behind=max((f.behind for f in feeds.values() if f.lagging), default=0.0),
    )
