"""One suggested rule and its effect on the live window, before it is applied.

Opened by ``e`` on the service screen's suggestions panel: what the rule is, the share of the
excess and of the window it stops, the baseline (normal) clients it would have hit and the
clients the site wants it would stop, by name, sample requests it stops, and the command that
applies it from a shell.  Enter applies it through the normal preview → confirm path; Esc
closes.  Every log string is shown through :func:`opsconsole.text.shown`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...text import shown

if TYPE_CHECKING:
    from ...detect.analysis import Suggestion
    from ..app import OpsConsoleApp


def effect_text(s: Suggestion, window_requests: int) -> Text:
    text = Text()
    text.append(f"{s.id}  {shown(s.rule.describe(), 400)}\n", "bold")
    text.append(f"\n{shown(s.explanation, 600)}\n\n")
    text.append(
        f"On the live window: stops {s.stopped} of its {window_requests} requests "
        f"({s.window_share * 100:.1f} %), {s.attack_share * 100:.0f} % of the excess.\n"
    )
    if s.collateral:
        text.append(
            f"Normal traffic: it would have stopped {s.collateral * 100:.2f} % of baseline "
            f"requests, from {s.collateral_clients} client"
            f"{'s' if s.collateral_clients != 1 else ''}.\n",
            "bold",
        )
    else:
        text.append("Normal traffic: no baseline request matches it.\n")
    if s.wanted_hits:
        text.append("Clients the site wants that it would stop: ", "bold")
        text.append(shown(", ".join(s.wanted_hits), 400) + "\n")
    if s.samples:
        text.append("\nRequests it stops, for example:\n")
        for line in s.samples:
            text.append(f"  {shown(line, 200)}\n")
    text.append("\nFrom a shell:\n")
    text.append(f"  {shown(s.command, 2000)}\n")
    return text


class SuggestionModal(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter,a", "apply", "Apply (previewed)", id="suggestion.apply"),
        Binding("escape,q", "close", "Close", id="suggestion.close"),
    ]

    def __init__(self, service: str, suggestion: Suggestion, window_requests: int) -> None:
        super().__init__()
        self.service = service
        self.suggestion = suggestion
        self.window_requests = window_requests

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"Suggested rule for {self.service}", id="suggestion-title")
            with VerticalScroll():
                yield Static(effect_text(self.suggestion, self.window_requests))
            yield Static("enter apply it (previewed first, then y) · esc close")

    def action_apply(self) -> None:
        app = cast("OpsConsoleApp", self.app)
        self.dismiss()
        app.apply_suggestion(self.service, self.suggestion)

    def action_close(self) -> None:
        self.dismiss()
