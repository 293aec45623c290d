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


WIDGET_KEYS: tuple[tuple[str, str, str], ...] = (
    ("everywhere", "ctrl+p", "command palette: every action, every service, the theme"),
    ("everywhere", "ctrl+q", "quit at once"),
    ("tables", "↑ ↓ pgup pgdn home end", "move the selection"),
    ("service", "tab / shift+tab", "next / previous table"),
    ("service", "enter (on a suggested rule)", "apply it: previewed, then y"),
    ("forms", "tab, enter", "next field; enter previews the change"),
)
"""Keys that widgets handle themselves (not screen bindings), so the help lists them too."""


def all_bindings() -> list[tuple[str, Binding]]:
    from ..app import OpsConsoleApp
    from .action import ActionModal
    from .audit import AuditScreen
    from .controls import ControlsModal
    from .fleet import FleetScreen
    from .forms import FormModal
    from .limit import LimitModal
    from .quit import QuitModal
    from .service import ServiceScreen
    from .suggestion import SuggestionModal

    out = []
    for where, cls in (
        ("everywhere", OpsConsoleApp),
        ("fleet", FleetScreen),
        ("service", ServiceScreen),
        ("action dialog", ActionModal),
        ("rate-limit form", LimitModal),
        ("block, filter, maintenance forms", FormModal),
        ("quit question", QuitModal),
        ("controls list", ControlsModal),
        ("suggested rule", SuggestionModal),
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
            table.add_row(
                Text(where), Text(shown, "bold"), Text(b.description or b.action), Text(b.id or "")
            )
        for where, keys, does in WIDGET_KEYS:
            table.add_row(Text(where), Text(keys, "bold"), Text(does), Text(""))
        table.focus()

    def action_back(self) -> None:
        self.app.pop_screen()
