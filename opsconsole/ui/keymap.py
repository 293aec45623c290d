"""Remapping keys: an optional ``keymap.toml`` beside the config maps binding ids to keys.

Every binding of the console has an id (``app.quit``, ``service.block``…; the help screen lists
them), so an operator remaps without code, e.g.::

    # keymap.toml, next to config.toml
    "service.block" = "x"
    "app.quit" = "ctrl+q"

Read by :class:`opsconsole.ui.app.OpsConsoleApp` at start and handed to ``App.set_keymap``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..errors import ConfigError

FILE_NAME = "keymap.toml"


def load_keymap(config_path: Path) -> dict[str, str]:
    """The keymap beside ``config_path``; empty when there is none."""
    path = config_path.with_name(FILE_NAME)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(str(path), "", f"cannot be read as TOML: {e}") from None
    out = {}
    for binding_id, keys in data.items():
        if not isinstance(keys, str) or not keys.strip():
            raise ConfigError(
                str(path), binding_id, f"expected keys such as 'ctrl+x', got {keys!r}"
            )
        out[binding_id] = keys.strip()
    return out
