"""The audit timeline: every change made from this console (and the CLI), newest first.

Reads the local audit trail through the source every two seconds; each event is one row per
server with its result and reason (nginx's message when it refused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

if TYPE_CHECKING:
    from ..app import OpsConsoleApp

COLUMNS = ("time", "operator", "service", "server", "action", "versions", "result", "reason")


class AuditScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="audit.back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Audit timeline"
        table = self.query_one(DataTable)
        for c in COLUMNS:
            table.add_column(c, key=c)
        self.tick()
        self.set_interval(2.0, self.tick, name="audit-refresh")
        table.focus()

    def tick(self) -> None:
        app = cast("OpsConsoleApp", self.app)
        events = list(reversed(app.source.audit()))
        if events == self._shown:
            return
        self._shown = events
        p = app.palette
        table = self.query_one(DataTable)
        table.clear()
        for ev in events:
            result = str(ev.get("result") or "")
            kind = "down" if result == "failed" else "ok" if result else "muted"
            bv, av = ev.get("before_version"), ev.get("after_version")
            table.add_row(
                str(ev.get("time", "")),
                str(ev.get("operator", "")),
                str(ev.get("service", "")),
                str(ev.get("server", "")),
                Text(str(ev.get("action", ""))),
                f"{bv} → {av}" if bv is not None or av is not None else "",
                Text(result, p[kind]),
                Text(str(ev.get("reason") or ""), p["down"]),
            )
        self.sub_title = app.decorate(f"{len(events)} events")

    def action_back(self) -> None:
        self.app.pop_screen()
