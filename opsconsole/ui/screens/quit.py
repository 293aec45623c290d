"""Asked before quitting while a change awaits confirmation: quitting does not confirm it.

Pushed by the app's quit action (``q``, Ctrl-C) only when some service has a commit-confirmed
change pending; dismissed with True to quit, False to stay.  Every other quit is immediate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from ..rows import countdown

if TYPE_CHECKING:
    from ..app import OpsConsoleApp


class QuitModal(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Quit", id="quit.yes"),
        Binding("n,escape", "answer(False)", "Stay", id="quit.no"),
        Binding("ctrl+c", "answer(True)", "Quit", show=False, priority=True, id="quit.again"),
    ]

    def __init__(self, pending: dict[str, str]) -> None:
        super().__init__()
        self.pending = pending

    def compose(self) -> ComposeResult:
        app = cast("OpsConsoleApp", self.app)
        lines = Text("A change awaits confirmation:\n", "bold")
        for service, deadline in sorted(self.pending.items()):
            lines.append(f"  {service}: {countdown(deadline, app.clock())} left\n")
        lines.append(
            "Quitting does not confirm it: unless someone runs `opsconsole confirm SERVICE` in "
            "time, the servers revert it by themselves.\n\n"
        )
        lines.append("y quit anyway · n/Esc stay")
        with Vertical(id="dialog"):
            yield Static(lines, id="quit-text")

    def action_answer(self, quit: bool) -> None:
        self.dismiss(quit)
