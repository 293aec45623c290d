"""The fleet screen (the default): one row per service, live, sortable, with its controls.

Every second it polls the source (snapshots, link and feed states, health) and the app's cache of
control states, builds rows with :func:`opsconsole.ui.rows.build_row` and updates the table in
place.  Actions on the selected service (maintenance, rate limit, confirm, rollback) go through
the app's preview-and-confirm flow; Enter opens the service screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from ...session import Settle
from ...text import shown
from ..rows import SORTS, build_row
from ..widgets.servers import ServerStrip, server_lines
from ..widgets.tables import FleetTable

if TYPE_CHECKING:
    from ..app import OpsConsoleApp


class FleetScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        # Quit and help first: the footer lists keys in this order, and at 80 columns the
        # last ones are cut.
        Binding("q", "app.quit", "Quit", id="fleet.quit"),
        Binding("question_mark", "app.help", "Help", key_display="?", id="fleet.help"),
        Binding("enter", "open", "Open", id="fleet.open"),
        Binding("s", "sort", "Sort", id="fleet.sort"),
        Binding("m", "maintenance", "Maint.", id="fleet.maintenance"),
        Binding("l", "limit", "Limit", id="fleet.limit"),
        Binding("c", "confirm", "Confirm", id="fleet.confirm"),
        Binding("u", "rollback", "Rollback", id="fleet.rollback"),
        Binding("r", "recheck", "Re-check", id="fleet.recheck"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort_index = 0

    @property
    def console(self) -> OpsConsoleApp:
        return cast("OpsConsoleApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield FleetTable(id="fleet-table")
        yield Static(id="fleet-detail")
        yield ServerStrip(id="server-strip")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Fleet"
        self.tick()
        self.set_interval(1.0, self.tick, name="fleet-refresh")
        table = self.query_one(FleetTable)
        table.move_cursor(row=0, animate=False)
        table.focus()

    def tick(self) -> None:
        app = self.console
        source = app.source
        links = source.links()
        health = source.health()
        now = app.clock()
        rows = [
            build_row(
                source.snapshot(name, top_n=1),
                source.feeds(name),
                links,
                health,
                app.controls.get(name),
                now,
                source.known_suggestions(name),
                source.known_stage(name),
            )
            for name in source.services()
        ]
        column, label, desc = SORTS[self.sort_index]
        table = self.query_one(FleetTable)
        table.apply(rows, app.palette, column, desc)
        self.sub_title = app.decorate(f"{len(rows)} services · sorted by {label}")
        strip = server_lines(links, health, app.palette, notes=source.notify_errors())
        self.query_one(ServerStrip).show(strip)
        self._show_detail()

    def _show_detail(self) -> None:
        table = self.query_one(FleetTable)
        name = table.selected()
        row = table.rows_by_name.get(name or "")
        detail = Text()
        if row is not None:
            p = self.console.palette
            detail.append(f"{row.name}: ", "bold")
            if row.stage is not None:
                detail.append(f"{shown(row.stage.summary())}  ")
            for server, kind, text in row.servers:
                detail.append(f"{server} ", p[kind])
                detail.append(f"{shown(text)}  ")
            if row.health_detail:
                detail.append(f"health: {shown(row.health_detail)}", p[row.health])
            event = self.console.controls.get(row.name)
            if event is not None and event.error:
                detail.append(f"  controls: {shown(event.error)}", p["warn"])
        self.query_one("#fleet-detail", Static).update(detail)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def selected(self) -> str | None:
        name = self.query_one(FleetTable).selected()
        if name is None:
            self.notify("no service selected", severity="warning")
        return name

    def action_open(self) -> None:
        name = self.selected()
        if name:
            self.console.open_service(name)

    def action_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.tick()

    def action_maintenance(self) -> None:
        from .forms import maintenance_form

        name = self.selected()
        if name:
            maintenance_form(self.console, name)()

    def action_limit(self) -> None:
        from .limit import LimitModal

        name = self.selected()
        if name and not self.console.refuse_if_read_only():
            self.app.push_screen(LimitModal(name))

    def action_confirm(self) -> None:
        name = self.selected()
        if name:
            self.console.settle(name, Settle.CONFIRM)

    def action_rollback(self) -> None:
        name = self.selected()
        if name:
            self.console.settle(name, Settle.ROLLBACK)

    def action_recheck(self) -> None:
        self.console.source.refresh_health()
        for name in self.console.source.services():
            self.console.refresh_controls(name)
        self.notify("re-checking health and controls…", timeout=2)
