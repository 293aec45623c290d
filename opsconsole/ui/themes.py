"""Themes are data: TOML files turned into Textual :class:`~textual.theme.Theme` objects.

Called by :class:`opsconsole.ui.app.OpsConsoleApp` at start.  The shipped themes are package data
(``opsconsole/themes/*.toml``, installed with the package); a user's own go in
``$XDG_CONFIG_HOME/opsconsole/themes/``.  A theme file has ``name``, ``dark``, optional
``luminosity_spread`` and ``text_alpha``, a ``[colors]`` table of Textual's base colours and a
``[variables]`` table of opsconsole's own (:data:`APP_VARIABLES`).  Unknown keys and colours Textual
cannot parse are refused with the file and key, like the config.

The stylesheet refers only to these variables, never to a colour: a theme is the one place a
colour is written.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

from ..errors import ConfigError

APP_VARIABLES = (
    "status-ok",
    "status-warn",
    "status-down",
    "status-maintenance",
    "status-blocked",
)
"""opsconsole's own theme variables: a site's state (ok / warn / down) and its controls."""

COLOR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "success",
    "warning",
    "error",
)
_TOP_KEYS = {"name", "dark", "luminosity_spread", "text_alpha", "colors", "variables"}


def _color(file: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(file, key, f"expected a colour, got {value!r}")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ConfigError(
            file, key, f"expected a colour such as '#4C9BE8', got {value!r}"
        ) from None
    return value


def parse_theme(data: dict[str, Any], file: str) -> Theme:
    """Validate one theme document; ConfigError naming the file and key otherwise."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(file, sorted(unknown)[0], f"unknown key (expected {sorted(_TOP_KEYS)})")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(file, "name", "expected the theme's name")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ConfigError(file, "dark", "expected true or false")
    colors = data.get("colors", {})
    variables = data.get("variables", {})
    if not isinstance(colors, dict) or not isinstance(variables, dict):
        raise ConfigError(file, "colors", "expected [colors] and [variables] tables")
    for key in colors:
        if key not in COLOR_KEYS:
            raise ConfigError(file, f"colors.{key}", f"unknown colour (expected {COLOR_KEYS})")
    for key in variables:
        if key not in APP_VARIABLES:
            raise ConfigError(file, f"variables.{key}", f"unknown variable ({APP_VARIABLES})")
    if "primary" not in colors:
        raise ConfigError(file, "colors.primary", "missing: every theme needs a primary colour")
    spread = data.get("luminosity_spread", 0.15)
    alpha = data.get("text_alpha", 0.95)
    for key, value in (("luminosity_spread", spread), ("text_alpha", alpha)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(file, key, f"expected a number from 0 to 1, got {value!r}")
    checked: dict[str, Any] = {k: _color(file, f"colors.{k}", v) for k, v in colors.items()}
    return Theme(
        name=name,
        dark=dark,
        luminosity_spread=float(spread),
        text_alpha=float(alpha),
        variables={k: _color(file, f"variables.{k}", v) for k, v in variables.items()},
        **checked,
    )


def load_theme_file(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot be read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"is not valid TOML: {e}") from None
    return parse_theme(data, str(path))


def user_theme_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "opsconsole" / "themes"


def shipped_themes() -> list[Theme]:
    """The themes installed with the package, sorted by name."""
    folder = resources.files("opsconsole").joinpath("themes")
    themes = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            themes.append(parse_theme(data, f"opsconsole/themes/{entry.name}"))
    return themes


def user_themes(folder: Path | None = None) -> Iterator[Theme | ConfigError]:
    """The user's theme files; a broken one is yielded as its error (shown, never fatal)."""
    where = folder or user_theme_dir()
    if not where.is_dir():
        return
    for path in sorted(where.glob("*.toml")):
        try:
            yield load_theme_file(path)
        except ConfigError as e:
            yield e
