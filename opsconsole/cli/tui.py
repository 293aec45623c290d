"""``opsconsole`` without a command: the TUI on the configured fleet (DESIGN §7).

Loads the config (a bad one is reported by the CLI with exit status 2 before anything starts),
builds the app over a :class:`~opsconsole.ui.source.LiveSource` and runs it.  Python logging goes to
a file while the TUI owns the terminal (``$XDG_STATE_HOME/opsconsole/console.log``), so no library
warning is ever printed over the screen.  Also used by ``opsconsole demo``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import load_config

if TYPE_CHECKING:
    from ..ui.app import OpsConsoleApp


def log_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "opsconsole" / "console.log"


def _log_to_file() -> None:
    path = log_path()
    root = logging.getLogger()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("opsconsole").setLevel(logging.INFO)


def build_app(
    config_path: str | None,
    *,
    subtitle: str | Callable[[], str] = "",
    audit_path: Path | None = None,
) -> OpsConsoleApp:
    """The app on the fleet of the config found from ``config_path`` (ConfigError if bad)."""
    config = load_config(config_path)
    from ..session import LiveSession
    from ..ui.app import OpsConsoleApp

    return OpsConsoleApp(
        LiveSession(config, audit_trail_path=audit_path),
        config_path=config.path,
        subtitle=subtitle,
    )


def run_app(app: OpsConsoleApp) -> int:
    _log_to_file()
    result = app.run()
    return result if isinstance(result, int) else (app.return_code or 0)


def run_tui(config_path: str | None) -> int:
    return run_app(build_app(config_path))
