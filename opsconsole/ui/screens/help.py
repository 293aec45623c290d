"""The help screen: every key of every screen, with the binding id to remap it.

Built from the screens' own ``BINDINGS`` and the app's keymap, so it cannot drift from what the
keys do.  ``keymap.toml`` beside the config remaps any id (see :mod:`opsconsole.ui.keymap`).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

INTRO = (
    "Ctrl+P opens the command palette: every action below, every service, and the theme "
    "(your choice is saved in config.toml). Remap a key by its id in keymap.toml beside "
    'config.toml, e.g.  "service.block" = "x".'
)


def all_bindings() -> list[tuple[str, Binding]]:
    from ..app import OpsConsoleApp
    from .action import ActionModal
    from .audit import AuditScreen
    from .controls import ControlsModal
    from .fleet import FleetScreen
    from .limit import LimitModal
    from .service import ServiceScreen

    out = []
    for where, cls in (
        ("everywhere", OpsConsoleApp),
        ("fleet", FleetScreen),
        ("service", ServiceScreen),
        ("action dialog", ActionModal),
        ("rate-limit form", LimitModal),
        ("controls list", ControlsModal),
        ("audit", AuditScreen),
        ("help", HelpScreen),
    ):
        for b in cls.BINDINGS:
            if isinstance(b, Binding):
                out.append((where, b))
    return out


class HelpScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "back", "Back", id="help.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static(INTRO, id="help-intro")
        yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Help"
        keymap = getattr(self.app, "_keymap", {})
        table = self.query_one(DataTable)
        for c in ("where", "keys", "does", "id"):
            table.add_column(c, key=c)
        for where, b in all_bindings():
            keys = keymap.get(b.id, b.key) if b.id else b.key
            shown = ", ".join(
                self.app.get_key_display(Binding(k.strip(), b.action)) for k in keys.split(",")
            )
            table.add_row(where, Text(shown, "bold"), b.description or b.action, b.id or "")
        table.focus()

    def action_back(self) -> None:
        self.app.pop_screen()
