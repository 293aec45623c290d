"""The audit timeline: every control change on the fleet, newest first.

Shows this console's local trail at once, then every server's ``<service>.audit.jsonl`` merged
with it (the changes other operators made from their consoles, the servers' own commit-confirmed
reverts and recoveries), read again every ten seconds and whenever the local trail grows.  One
row per event and server with its result and reason (nginx's message when it refused); a server
whose trail cannot be read is named in the subtitle, and the rest is still shown.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from ...controls.audit import result_status
from ...controls.timeline import merge_events
from ...text import shown
from ..messages import CoreFailed, TimelineRead
from ..source import TIMELINE_BYTES

if TYPE_CHECKING:
    from ...controls import Timeline
    from ..app import OpsConsoleApp

COLUMNS = ("time", "operator", "service", "server", "action", "versions", "result", "reason")

REMOTE_EVERY = 10.0
"""Seconds between two reads of the servers' trails while the screen is open."""


class AuditScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="audit.back"),
        Binding("r", "reread", "Re-read servers", id="audit.reread"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown: list[dict[str, Any]] = []
        self._local: list[dict[str, Any]] = []
        self._remote: Timeline | None = None
        self._remote_error: str | None = None
        self._reading = False
        self._read_at = 0.0

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
        local = app.source.local_events()
        grown = local != self._local
        self._local = local
        if grown or time.monotonic() - self._read_at >= REMOTE_EVERY:
            self._read_servers()
        self._show()

    def _read_servers(self) -> None:
        if self._reading:
            return
        self._reading = True
        self._read_at = time.monotonic()
        app = cast("OpsConsoleApp", self.app)
        app.run_core(
            app.source.timeline(max_bytes=TIMELINE_BYTES),
            target=self,
            done=TimelineRead,
            name="audit",
            group="audit",
        )

    def on_timeline_read(self, message: TimelineRead) -> None:
        self._reading = False
        self._remote, self._remote_error = message.timeline, None
        self._show()

    def on_core_failed(self, message: CoreFailed) -> None:
        self._reading = False
        self._remote_error = message.text
        self._show()

    def _show(self) -> None:
        app = cast("OpsConsoleApp", self.app)
        if self._remote is not None:
            # The last read of the servers, merged with the local trail as it is now.
            servers = [ev for ev in self._remote.events if ev.get("source") != "local"]
            events = merge_events(self._local, servers)
        else:
            events = list(self._local)
        events.reverse()
        note = self._note(len(events))
        self.sub_title = app.decorate(note)
        if events == self._shown:
            return
        self._shown = events
        p = app.palette
        table = self.query_one(DataTable)
        table.clear()
        for ev in events:
            result = str(ev.get("result") or "")
            bv, av = ev.get("before_version"), ev.get("after_version")

            def cell(key: str, ev: dict[str, Any] = ev) -> Text:
                return Text(shown(str(ev.get(key) or ""), 200))

            table.add_row(
                cell("time"),
                cell("operator"),
                cell("service"),
                cell("server"),
                cell("action"),
                Text(f"{bv} → {av}" if bv is not None or av is not None else ""),
                Text(shown(result), p[result_status(result)]),
                Text(shown(str(ev.get("reason") or ""), 200), p["down"]),
            )

    def _note(self, count: int) -> str:
        if self._remote_error is not None:
            return f"{count} events · servers' trails not read: {self._remote_error}"
        if self._remote is None:
            return f"{count} events from this console · reading the servers' trails…"
        if self._remote.errors:
            unread = "; ".join(f"{k}: {shown(v)}" for k, v in sorted(self._remote.errors.items()))
            return f"{count} events · not read: {unread}"
        return f"{count} events from every server and this console"

    def action_reread(self) -> None:
        self._read_servers()

    def action_back(self) -> None:
        self.app.pop_screen()
