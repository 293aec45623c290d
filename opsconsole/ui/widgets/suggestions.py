"""The service screen's suggestions panel: what separates the attack, refreshed as it goes on.

One row per suggested rule of the session's last analysis (DESIGN §10) — ``★`` for the
recommended set — with the share of the excess it stops and the share of normal (baseline)
traffic it would have stopped; the title says how old the analysis is and how much of the
traffic is excess, the subtitle what the rules in force stop now.  When the analysis recommends
nothing, one row says why (``no-anomaly``, ``not-enough-data``).  Log strings reach the screen
only through :func:`opsconsole.text.shown`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

from ...text import shown
from ..palette import Palette

if TYPE_CHECKING:
    from ...detect.analysis import Suggestion
    from ...session.live import SuggestEvent


def age(seconds: float) -> str:
    return f"{seconds:.0f}s ago" if seconds < 90 else f"{seconds / 60:.0f} min ago"


class SuggestionTable(DataTable[Text]):
    """The suggested rules of one service; the row keys are the suggestions' ids."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=1)
        self.event: SuggestEvent | None = None
        self.by_id: dict[str, Suggestion] = {}
        self.border_title = "suggested rules · analysing…"

    def on_mount(self) -> None:
        for key, label in (("mark", ""), ("stops", "stops"), ("normal", "normal"),
                           ("rule", "rule (e: its effect · enter: apply)")):  # fmt: skip
            self.add_column(label, key=key)

    def selected(self) -> Suggestion | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.by_id.get(str(key)) if key is not None else None

    def show(self, event: SuggestEvent | None, palette: Palette, now: float) -> None:
        """Redraw for a new analysis; between analyses only the title's age moves."""
        self._title(event, palette, now)
        if event is self.event:
            return
        keep = self.selected()
        self.event = event
        self.clear()
        self.by_id = {}
        analysis = event.analysis if event is not None else None
        if analysis is None:
            if event is not None and event.error:
                failed = Text(shown(f"cannot analyse: {event.error}", 200), palette["warn"])
                self.add_row(Text("!"), Text("—"), Text("—"), failed)
            return
        if analysis.status != "ok" or not analysis.suggestions:
            why = f"{analysis.status}: {analysis.reason or 'nothing to separate'}"
            self.add_row(Text("·"), Text("—"), Text("—"),
                         Text(shown(why, 300), palette["muted"]))  # fmt: skip
            return
        for s in analysis.suggestions:
            self.by_id[s.id] = s
            mark = Text("★", palette["ok"]) if s.recommended else Text(" ")
            normal = f"{s.collateral * 100:.2f}%"
            if s.wanted_hits:
                normal += " !"
            self.add_row(
                mark,
                Text(f"{s.attack_share * 100:.0f}%", justify="right"),
                Text(normal, palette["warn"] if s.collateral or s.wanted_hits else palette["muted"],
                     justify="right"),
                Text(shown(f"{s.id} {s.rule.describe()}", 300)),
                key=s.id,
            )  # fmt: skip
        if keep is not None and keep.id in self.by_id:
            self.move_cursor(row=self.get_row_index(keep.id))

    def _title(self, event: SuggestEvent | None, palette: Palette, now: float) -> None:
        if event is None:
            self.border_title = "suggested rules · analysing…"
            self.border_subtitle = ""
            return
        parts = ["suggested rules", age(max(0.0, now - event.at))]
        share = event.excess_share
        if share is not None and share > 0:
            parts.append(f"{share * 100:.0f}% of the traffic is excess")
        self.border_title = " · ".join(parts)
        effects = event.effects
        if effects is not None and effects.rules:
            each = ", ".join(
                f"{shown(e.rule)} {e.rps:.0f}/s ({e.share * 100:.0f}%)" for e in effects.rules
            )
            self.border_subtitle = f"in force now: {each}"
        else:
            self.border_subtitle = ""
