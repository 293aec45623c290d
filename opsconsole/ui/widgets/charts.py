"""Chart widgets: a rate chart and a status-mix chart drawn at whatever size they are given.

The service screen hands them a sequence of numbers each second; drawing is the pure functions
of :mod:`opsconsole.ui.charts`, coloured with the app's palette.  Only the widget repaints, so
updates never flicker.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from ..charts import bar_chart, mix_chart
from ..palette import Palette


def _palette(widget: Widget) -> Palette:
    palette = getattr(widget.app, "palette", None)
    return palette if isinstance(palette, Palette) else Palette.plain()


class RateChart(Widget):
    """Requests per second as columns; the border title says over which span."""

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.values: Sequence[float] = ()

    def update(self, values: Sequence[float]) -> None:
        if tuple(values) != tuple(self.values):
            self.values = tuple(values)
            self.refresh()

    def render(self) -> Text:
        size = self.content_size
        return bar_chart(self.values, size.width, max(1, size.height), _palette(self))


class MixChart(Widget):
    """The share of 2xx-3xx / 4xx / 5xx answers per time column (100 % stacked)."""

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.classes_per_second: Sequence[Sequence[int]] = ()

    def update(self, classes: Sequence[Sequence[int]]) -> None:
        if tuple(classes) != tuple(self.classes_per_second):
            self.classes_per_second = tuple(classes)
            self.refresh()

    def render(self) -> Text:
        size = self.content_size
        return mix_chart(self.classes_per_second, size.width, max(1, size.height), _palette(self))
