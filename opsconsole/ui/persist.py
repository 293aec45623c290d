"""Saving the operator's theme choice in ``config.toml`` without losing anything else in it.

Called by the app when the theme changes from the command palette.  The file is read with
``tomllib``; ``console.theme`` is changed; the new text is checked by the config loader before it
replaces the old file atomically, and the previous file is kept as ``config.toml.bak``.

Comments matter in a hand-written config, and ``tomli_w`` cannot keep them: when the file holds
exactly one ``theme = …`` line in its ``[console]`` table, only that line is rewritten (and the
result is proven equal, as data, to the intended document); otherwise the whole document is
written with ``tomli_w``.  No Textual here: this is file handling the UI asks for.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from ..config import parse_config
from ..errors import ConfigError

_TABLE = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
_THEME = re.compile(r"^(\s*theme\s*=\s*)(\"[^\"\\]*\"|'[^']*')(\s*(#.*)?)$")


def _edit_in_place(text: str, theme: str) -> str | None:
    """The text with only the ``[console]`` ``theme`` line changed, or None if not unambiguous."""
    lines = text.splitlines(keepends=True)
    table = ""
    hits = []
    console_at = None
    for i, line in enumerate(lines):
        m = _TABLE.match(line.rstrip("\r\n"))
        if m:
            table = m.group(1).strip()
            if table == "console":
                console_at = i
            continue
        if table == "console" and _THEME.match(line.rstrip("\r\n")):
            hits.append(i)
    value = tomli_w.dumps({"theme": theme}).strip().split("=", 1)[1].strip()
    if len(hits) == 1:
        i = hits[0]
        body = lines[i].rstrip("\r\n")
        end = lines[i][len(body) :]
        m = _THEME.match(body)
        assert m is not None
        lines[i] = f"{m.group(1)}{value}{m.group(3)}{end}"
        return "".join(lines)
    if not hits and console_at is not None:
        lines.insert(console_at + 1, f"theme = {value}\n")
        return "".join(lines)
    return None


def save_theme(path: Path, theme: str) -> Path:
    """Set ``console.theme`` in the config at ``path``; returns the backup's path.

    Raises ConfigError if the file cannot be read or written, or is not a valid config (nothing
    is written then).
    """
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
        data: dict[str, Any] = tomllib.loads(text)
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot be read: {e.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(str(path), "", f"is not valid TOML: {e}") from None
    console = data.setdefault("console", {})
    if not isinstance(console, dict):
        raise ConfigError(str(path), "console", "expected a table")
    console["theme"] = theme
    parse_config(data, path)  # never write a config the console would refuse
    new = _edit_in_place(text, theme)
    if new is None or tomllib.loads(new) != data:
        new = tomli_w.dumps(data)
    backup = path.with_name(path.name + ".bak")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(path, backup)
        tmp.write_text(new, encoding="utf-8")
        shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ConfigError(str(path), "console.theme", f"cannot be saved: {e}") from None
    return backup
