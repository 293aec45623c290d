"""Tables updated in place: the fleet table (one row per service) and the top-N tables.

Rows keep their keys between updates and only cells whose text changed are rewritten, so a
1-second refresh neither flickers nor moves the cursor off the row the operator chose.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from ...stats.snapshot import TopEntry
from ...text import shown
from ..palette import Palette
from ..rows import COLUMNS, KEEP_ORDER, ServiceRow


class FleetTable(DataTable[Text]):
    """One row per service; ``apply`` updates cells in place, adds and removes rows.

    Only the columns that fit the table's width are shown — the most urgent kept longest
    (:data:`~opsconsole.ui.rows.KEEP_ORDER`): at 80 columns an operator still sees service,
    req/s, 404, health and controls, and nothing scrolls sideways."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=1)
        self.rows_by_name: dict[str, ServiceRow] = {}
        self._cells: dict[str, list[Text]] = {}
        self._shown: list[str] = []
        self._last: tuple[Sequence[ServiceRow], Palette, str, bool] | None = None

    def _fitting(self, all_cells: list[list[Text]]) -> list[str]:
        """The columns (in table order) that fit the width, dropping the least urgent first."""
        width = self.size.width or self.app.size.width
        need = {
            key: max([len(label), *(cells[i].cell_len for cells in all_cells)]) + 2
            for i, (key, label) in enumerate(COLUMNS)
        }
        kept: list[str] = []
        used = 2  # the scrollbar gutter and borders
        for key in KEEP_ORDER:
            if used + need[key] <= width or not kept:
                kept.append(key)
                used += need[key]
        return [key for key, _ in COLUMNS if key in kept]

    def on_resize(self) -> None:
        if self._last is not None:
            self.apply(*self._last)

    def apply(self, rows: Sequence[ServiceRow], palette: Palette, sort: str, desc: bool) -> None:
        self._last = (rows, palette, sort, desc)
        every = {row.name: row.cells(palette) for row in rows}
        shown = self._fitting(list(every.values()))
        keep = None
        if shown != self._shown:
            keep = self.selected()
            self.clear(columns=True)
            self._cells = {}
            labels = dict(COLUMNS)
            for key in shown:
                self.add_column(labels[key], key=key)
            self._shown = shown
        index = [i for i, (key, _) in enumerate(COLUMNS) if key in shown]
        wanted = set(every)
        for name in list(self._cells):
            if name not in wanted:
                self.remove_row(name)
                del self._cells[name]
        for row in rows:
            cells = [every[row.name][i] for i in index]
            old = self._cells.get(row.name)
            if old is None:
                self.add_row(*cells, key=row.name)
            else:
                for col, new, before in zip(shown, cells, old, strict=True):
                    if new != before:
                        self.update_cell(row.name, col, new, update_width=True)
            self._cells[row.name] = cells
            self.rows_by_name[row.name] = row
        self.resort(sort, desc)
        if keep is not None and keep in self._cells:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def resort(self, column: str, desc: bool) -> None:
        selected = self.selected()
        rows = self.rows_by_name

        def key(name: Text) -> tuple[object, str]:
            return (rows[name.plain].sort_value(column), name.plain)

        self.sort("service", key=key, reverse=desc)
        if selected is not None and selected in self._cells:
            index = self.get_row_index(selected)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)

    def selected(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None


class TopTable(DataTable[Text]):
    """A top-N list (IPs, subnets, paths or user agents) with requests and share."""

    def __init__(self, kind: str, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, cell_padding=1)
        self.kind = kind
        self.border_title = title
        self.entries: list[TopEntry] = []
        self._cells: list[list[Text]] = []
        self._total = 0

    def on_mount(self) -> None:
        self.add_column(self.kind_label(), key="key")
        self.add_column("req", key="req")
        self.add_column("share", key="share")

    def kind_label(self) -> str:
        return {"ip": "IP", "subnet": "subnet", "path": "path", "user_agent": "user agent"}[
            self.kind
        ]

    def show(self, entries: Sequence[TopEntry], total: int) -> None:
        entries = list(entries)
        while self.row_count > len(entries):
            self.remove_row(f"r{self.row_count - 1}")
        del self._cells[len(entries) :]
        # Leave room for the count and share columns (and the borders) whatever the table's size.
        width = max(16, self.size.width - 22) if self.size.width else KEY_WIDTH
        for i, e in enumerate(entries):
            share = f"{e.requests / total * 100:.1f}%" if total else "-"
            cells = [
                Text(shown(e.key, min(width, KEY_WIDTH)) or "(empty)", no_wrap=True),
                Text(str(e.requests), justify="right"),
                Text(share, justify="right"),
            ]
            if i >= self.row_count:
                self.add_row(*cells, key=f"r{i}")
                self._cells.append(cells)
                continue
            for col, new, before in zip(
                ("key", "req", "share"), cells, self._cells[i], strict=True
            ):
                if new != before:
                    self.update_cell(f"r{i}", col, new, update_width=col == "key")
            self._cells[i] = cells
        self.entries = entries
        self._total = total

    def on_resize(self) -> None:
        # Keys are cut to the table's width: redo them when it changes (or is first known).
        if self.entries:
            self.show(self.entries, self._total)

    def selected(self) -> TopEntry | None:
        row = self.cursor_row
        if 0 <= row < len(self.entries):
            return self.entries[row]
        return None


KEY_WIDTH = 44
"""Longer keys (user agents, paths) are cut in the table; actions use the whole key."""
