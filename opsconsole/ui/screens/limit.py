"""The rate-limit form: rate, burst and key, validated by the core before any preview.

Opened by ``l`` on the fleet and service screens; on a valid form it hands the edit to the app's
preview-and-confirm flow.  Invalid input is explained under the form, and nothing is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ...controls import edits
from ...errors import UsageError

if TYPE_CHECKING:
    from ..app import OpsConsoleApp


class LimitModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel", id="limit.cancel"),
    ]

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"Rate limit on {self.service}", id="limit-title")
            yield Label("rate (e.g. 10r/s, 600r/m, or off)")
            yield Input(placeholder="10r/s", id="limit-rate")
            yield Label("burst (requests allowed above the rate)")
            yield Input("20", id="limit-burst", type="integer")
            yield Label("per")
            yield Select(
                [("client IP", "ip"), ("subnet (/24, /48)", "subnet")],
                value="ip",
                allow_blank=False,
                id="limit-key",
            )
            yield Static(id="limit-error")
            with Horizontal(id="limit-buttons"):
                yield Button("Preview", variant="primary", id="limit-ok")
                yield Button("Cancel", id="limit-cancel")

    def on_mount(self) -> None:
        self.query_one("#limit-rate", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "limit-ok":
            self._submit()
        else:
            self.dismiss()

    def _submit(self) -> None:
        rate = self.query_one("#limit-rate", Input).value.strip() or "off"
        burst = self.query_one("#limit-burst", Input).value.strip() or "0"
        key = str(self.query_one("#limit-key", Select).value)
        try:
            edit = edits.limit(rate, burst=burst, key=key)
        except UsageError as e:
            self.query_one("#limit-error", Static).update(str(e))
            return
        self.dismiss()
        cast("OpsConsoleApp", self.app).start_action(self.service, edit)

    def action_close(self) -> None:
        self.dismiss()
