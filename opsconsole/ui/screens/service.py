"""The service screen: one site in depth, and its controls one key away.

Rate charts (last minute, last 15 minutes), the status mix over time, the status codes and the
top IPs / subnets / paths / user agents over the sliding window, refreshed every second from the
service's snapshot (``p`` pauses, to read or pick a row in peace).  On the selected row of a top
table, ``b`` blocks the IP or subnet, or filters the path or user agent; ``l`` sets a rate limit,
``m`` toggles maintenance, ``c`` / ``u`` confirm or roll back, ``x`` lists the active controls to
remove one.  Below, the suggestions panel (:mod:`..widgets.suggestions`) holds the session's
analysis of what separates the attack, refreshed while the screen is open: ``e`` shows the
selected rule's effect on the live window, Enter on it applies it, ``s`` analyses now.  Every
change goes through the preview-and-confirm modal (:mod:`.action`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ...fleet import server_state
from ...session import Settle
from ...stats.snapshot import Snapshot, StatusClass
from ...text import shown
from ..palette import Palette
from ..rows import badges
from ..widgets.charts import MixChart, RateChart
from ..widgets.servers import ServerStrip, server_lines
from ..widgets.suggestions import SuggestionTable
from ..widgets.tables import TopTable

if TYPE_CHECKING:
    from ..app import OpsConsoleApp

TOP_N = 20


class ServiceScreen(Screen[None]):
    # Textual declares these as instance variables: a ClassVar annotation would not type-check.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (30, "-short"), (36, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        # Quit and help first: the footer lists keys in this order, and at 80 columns the
        # last ones are cut.
        Binding("q", "app.quit", "Quit", id="service.quit"),
        Binding("question_mark", "app.help", "Help", key_display="?", id="service.help"),
        Binding("escape", "back", "Fleet", id="service.back"),
        Binding("b", "block", "Block/filter row", id="service.block"),
        Binding("enter", "block", "Block/filter row", show=False, id="service.select"),
        Binding("l", "limit", "Limit", id="service.limit"),
        Binding("m", "maintenance", "Maint.", id="service.maintenance"),
        Binding("c", "confirm", "Confirm", id="service.confirm"),
        Binding("u", "rollback", "Rollback", id="service.rollback"),
        Binding("x", "controls", "Controls", id="service.controls"),
        Binding("p", "pause", "Pause", id="service.pause"),
        Binding("e", "effect", "Effect", id="service.effect"),
        Binding("s", "suggest", "Suggest now", id="service.suggest"),
        Binding("tab", "app.focus_next", "Next table", show=False, id="service.next"),
    ]

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.paused = False

    @property
    def console(self) -> OpsConsoleApp:
        return cast("OpsConsoleApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(id="service-info")
        with Horizontal(id="charts"):
            yield RateChart("req/s · last minute", id="rate-1m")
            yield RateChart("req/s · last 15 min", id="rate-15m")
            yield MixChart("status mix · 15 min", id="mix")
            yield Static(id="codes")
        with Grid(id="tops"):
            yield TopTable("subnet", "top subnets", id="top-subnet")
            yield TopTable("ip", "top IPs", id="top-ip")
            yield TopTable("path", "top paths", id="top-path")
            yield TopTable("user_agent", "top user agents", id="top-user_agent")
        yield SuggestionTable(id="suggestions")
        yield ServerStrip(id="server-strip")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.console.source.watch_suggestions(self.service, True)
        self.title = f"Service {self.service}"
        self.tick()
        self.set_interval(1.0, self.tick, name="service-refresh")
        self.query_one("#top-subnet", TopTable).focus()

    def on_unmount(self) -> None:
        self.console.source.watch_suggestions(self.service, False)

    def tick(self) -> None:
        if self.paused:
            return
        app = self.console
        snap = app.source.snapshot(self.service, top_n=TOP_N)
        self.show(snap)

    def show(self, snap: Snapshot) -> None:
        app = self.console
        p = app.palette
        links = app.source.links()
        health = app.source.health()
        feeds = app.source.feeds(self.service)
        info = Text()
        info.append(f"{self.service}  ", "bold")
        span = f"the last {snap.span:.0f}s" if snap.span else "the window"
        info.append(f"{snap.rps:.0f} req/s now  ·  {snap.requests} requests in {span}  ·  ")
        info.append(f"{snap.unique_ips} IPs")
        if snap.estimated:
            info.append(" (estimated)", p["muted"])
        if snap.new_ips_per_s is not None:
            info.append(f"  ·  {snap.new_ips_per_s:.0f} new IPs/s")
        svc_health = health.services.get(self.service)
        if svc_health is not None:
            info.append("  ·  health ")
            info.append(svc_health.status.value, p[svc_health.status])
            if svc_health.reasons:
                info.append(f" ({shown('; '.join(svc_health.reasons))})", p[svc_health.status])
        info.append("\n")
        for server, feed in feeds.items():
            status, detail = server_state(links.get(server), feed)
            info.append(f"{server} ", p[status])
            info.append(f"{shown(detail)}  ")
        for label, kind in badges(app.controls.get(self.service), app.clock()):
            info.append(f" {label} ", p[kind])
        self.query_one("#service-info", Static).update(info)
        self.query_one("#rate-1m", RateChart).update(snap.per_second[-60:])
        self.query_one("#rate-15m", RateChart).update(snap.per_second)
        self.query_one("#mix", MixChart).update(snap.classes)
        self.query_one("#codes", Static).update(_codes(snap, app.palette))
        total = snap.requests
        for kind, entries in (
            ("subnet", snap.top_subnets),
            ("ip", snap.top_ips),
            ("path", snap.top_paths),
            ("user_agent", snap.top_user_agents),
        ):
            self.query_one(f"#top-{kind}", TopTable).show(entries, total)
        strip = server_lines(links, health, p, only=list(feeds))
        self.query_one(ServerStrip).show(strip)
        self.query_one(SuggestionTable).show(
            app.source.known_suggestions(self.service), p, app.clock()
        )
        self.sub_title = app.decorate("live")

    # -- actions ----------------------------------------------------------------------------

    def _table(self) -> TopTable:
        focused = self.focused
        if isinstance(focused, TopTable):
            return focused
        return self.query_one("#top-subnet", TopTable)

    def action_block(self) -> None:
        """``b`` / Enter: block the selected IP or subnet, or filter the selected path or user
        agent — through a form that asks for the reason (and a TTL for blocks)."""
        from .forms import BlockForm, FilterForm

        table = self._table()
        entry = table.selected()
        if entry is None:
            self.notify(f"no row selected in {table.border_title}", severity="warning")
            return
        if self.console.refuse_if_read_only():
            return
        if table.kind in ("ip", "subnet"):
            self.app.push_screen(BlockForm(self.service, entry.key))
        else:
            self.app.push_screen(FilterForm(self.service, table.kind, entry.key))

    def action_limit(self) -> None:
        from .limit import LimitModal

        if not self.console.refuse_if_read_only():
            self.app.push_screen(LimitModal(self.service))

    def action_maintenance(self) -> None:
        from .forms import maintenance_form

        maintenance_form(self.console, self.service)()

    def action_confirm(self) -> None:
        self.console.settle(self.service, Settle.CONFIRM)

    def action_rollback(self) -> None:
        self.console.settle(self.service, Settle.ROLLBACK)

    def action_controls(self) -> None:
        from .controls import ControlsModal

        self.app.push_screen(ControlsModal(self.service))

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.sub_title = self.console.decorate("paused (p to resume)" if self.paused else "live")
        if not self.paused:
            self.tick()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_effect(self) -> None:
        """``e``: the selected suggestion's effect on the live window, before applying it."""
        from .suggestion import SuggestionModal

        table = self.query_one(SuggestionTable)
        chosen = table.selected()
        if chosen is None:
            event = table.event
            if event is not None and event.analysis is not None:  # why there is none, in full
                a = event.analysis
                self.notify(shown(a.reason or "nothing to separate", 600), title=a.status,
                            timeout=20)  # fmt: skip
            elif event is not None and event.error:
                self.notify(shown(event.error, 600), title="cannot analyse", severity="warning")
            else:
                self.notify("the first analysis is still running", severity="warning")
            return
        analysis = table.event.analysis if table.event is not None else None
        window = analysis.window_requests + analysis.already_stopped if analysis else 0
        self.app.push_screen(SuggestionModal(self.service, chosen, window))

    def action_suggest(self) -> None:
        """``s``: analyse now, and go to the suggestions."""
        self.console.source.refresh_suggestions(self.service)
        self.query_one(SuggestionTable).focus()
        self.notify(f"analysing {self.service}…", timeout=2)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if isinstance(event.data_table, SuggestionTable):
            chosen = event.data_table.selected()
            if chosen is not None and not self.console.refuse_if_read_only():
                self.console.apply_suggestion(self.service, chosen)
            return
        self.action_block()


def _codes(snap: Snapshot, palette: Palette) -> Text:
    total = sum(snap.status.values())
    text = Text("status codes (window)\n", "bold")
    for code, n in sorted(snap.status.items(), key=lambda kv: -kv[1])[:8]:
        cls = StatusClass.of(code)
        share = n / total * 100 if total else 0.0
        text.append(f"{code:>4} ", palette[cls.severity if cls is not None else "muted"])
        text.append(f"{n:>8}  {share:5.1f}%\n")
    return text
