"""Rich styles for the meaning of a cell (ok, warn, down, maintenance, blocked), from the theme.

Table cells and charts are Rich renderables, which cannot refer to CSS variables: the app builds a
:class:`Palette` from the active theme's variables (``$status-ok`` …, see
:mod:`opsconsole.ui.themes`) and rebuilds it when the theme changes, so no colour is ever written
in code.  Used by :mod:`.rows` and the widgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rich.style import Style
from textual.color import Color, ColorParseError

KINDS = ("ok", "warn", "down", "maintenance", "blocked", "muted", "unknown", "accent", "chart")
"""What a cell can mean; each maps to a style derived from the theme.  The verdicts of the core
(:class:`opsconsole.health.Status`: ok, unknown, maintenance, warn, down) are kinds themselves."""


def _style(value: str | None, *, bold: bool = False, dim: bool = False) -> Style:
    if not value:
        return Style(bold=bold, dim=dim)
    try:
        color = Color.parse(value)
    except ColorParseError:
        return Style(bold=bold, dim=dim)
    return Style(color=color.rich_color, bold=bold, dim=dim)


@dataclass(frozen=True)
class Palette:
    styles: Mapping[str, Style]

    def __getitem__(self, kind: str) -> Style:
        return self.styles.get(kind, Style())

    @classmethod
    def from_variables(cls, variables: Mapping[str, str]) -> Palette:
        """``variables``: the app's ``theme_variables`` (Textual's plus opsconsole's own)."""
        return cls(
            {
                "ok": _style(variables.get("status-ok")),
                "warn": _style(variables.get("status-warn"), bold=True),
                "down": _style(variables.get("status-down"), bold=True),
                "maintenance": _style(variables.get("status-maintenance"), bold=True),
                "blocked": _style(variables.get("status-blocked")),
                "muted": _style(variables.get("foreground-muted") or variables.get("foreground")),
                "unknown": _style(variables.get("foreground-muted") or variables.get("foreground")),
                "accent": _style(variables.get("accent")),
                "chart": _style(variables.get("primary")),
            }
        )

    @classmethod
    def plain(cls) -> Palette:
        return cls({})
