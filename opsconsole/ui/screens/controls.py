"""The active controls of a service, and undoing any one of them.

Opened by ``x`` on the service screen: maintenance, rate limit, every block (with its reason, who
added it and its expiry) and every filter, from the last control state read from the servers.
``d`` removes the selected one — through the same preview-and-confirm flow as every change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from ...controls import Edit, edits
from ...text import shown

if TYPE_CHECKING:
    from ..app import OpsConsoleApp


class ControlsModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d,delete", "remove", "Remove", id="controls.remove"),
        Binding("escape", "close", "Close", id="controls.close"),
    ]

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.undo: list[Edit] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"Active controls of {self.service}", id="controls-title")
            yield DataTable(id="controls-table", cursor_type="row", zebra_stripes=True)
            yield Static("d remove the selected control (previewed first) · Esc close")

    def on_mount(self) -> None:
        app = cast("OpsConsoleApp", self.app)
        table = self.query_one(DataTable)
        for c in ("control", "value", "reason", "added", "expires"):
            table.add_column(c, key=c)
        event = app.controls.get(self.service)
        report, error = (event.report, event.error) if event is not None else (None, None)
        states = [s.state for s in report.servers.values() if s.state] if report else []
        if not states:
            self.query_one("#controls-title", Static).update(
                f"Controls of {self.service}: not read yet{f' ({error})' if error else ''}"
            )
            return
        st = states[0]

        def row(*cells: str) -> None:
            table.add_row(*(Text(shown(c, 120)) for c in cells))

        if st.maintenance.on:
            allow = ", ".join(st.maintenance.allow) or "nobody"
            row("maintenance", f"on, allowed: {allow}", st.maintenance.message, "", "")
            self.undo.append(edits.maintenance(False))
        if st.rate_limit.rate:
            rl = st.rate_limit
            row("rate limit", f"{rl.rate} burst {rl.burst} per {rl.key}", "", "", "")
            self.undo.append(edits.limit(None))
        for f in st.filters:
            value = f"{f.describe()} → {f.action}"
            row(f"filter {f.id}", value, f.reason, f"{f.added_by} {f.added_at}", "")
            self.undo.append(edits.remove_filter(f.id))
        for b in st.blocks:
            row("block", b.target, b.reason, f"{b.added_by} {b.added_at}", b.expires_at or "never")
            self.undo.append(edits.unblock([b.target]))
        if not self.undo:
            self.query_one("#controls-title", Static).update(f"{self.service}: no active controls")
        table.focus()

    def action_remove(self) -> None:
        row = self.query_one(DataTable).cursor_row
        if 0 <= row < len(self.undo):
            edit = self.undo[row]
            self.dismiss()
            cast("OpsConsoleApp", self.app).start_action(self.service, edit)

    def action_close(self) -> None:
        self.dismiss()
