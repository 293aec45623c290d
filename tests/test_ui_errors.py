"""Bad input is shown in place, never as a traceback: a server that does not answer and a log
that does not exist, through the real core (no fake, no lab needed)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from textual.pilot import Pilot

from opsconsole.config import parse_config
from opsconsole.session import LiveSession
from opsconsole.ui.app import OpsConsoleApp
from opsconsole.ui.screens.action import ActionModal
from opsconsole.ui.screens.fleet import FleetScreen
from opsconsole.ui.widgets.tables import FleetTable


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(pilot: Pilot[int], ok: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not ok() and time.monotonic() < deadline:  # type: ignore[operator]
        await pilot.pause(0.2)


async def test_an_unreachable_server_and_a_missing_log_show_in_their_rows(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = parse_config(
        {
            "console": {"operator": "tester"},
            "health": {"interval": "1s", "timeout": "1s"},
            "servers": {
                "here": {"host": "local"},
                "gone": {"host": "127.0.0.1", "port": closed_port(), "known_hosts": str(known)},
            },
            "services": {
                "nolog": {"servers": ["here"], "access_log": str(tmp_path / "missing.log")},
                "dead": {"servers": ["gone"], "access_log": "/var/log/nginx/dead.log"},
            },
        },
        tmp_path / "config.toml",
    )
    source = LiveSession(config, audit_trail_path=tmp_path / "audit.jsonl", connect_timeout=1.0)
    app = OpsConsoleApp(source)
    async with app.run_test(size=(160, 30)) as pilot:
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        table = screen.query_one(FleetTable)

        def row_text(name: str) -> str:
            return " ".join(c.plain for c in table.get_row(name))

        def strip() -> str:
            return str(screen.query_one("#server-strip").render())

        await until(pilot, lambda: "refused" in strip().lower())
        assert "gone◐" in row_text("dead")  # retrying with backoff: a warning, not the end
        assert "retrying" in strip() and "gone" in strip()  # in 4s, or now (the next attempt)
        assert "gone: cannot reach" not in strip()  # the name once, beside the reason
        table.move_cursor(row=table.get_row_index("nolog"))

        def detail() -> str:
            return str(screen.query_one("#fleet-detail").render())

        await until(pilot, lambda: "missing.log" in detail())
        assert "missing.log" in detail()
        assert "here✕" in row_text("nolog")

        table.move_cursor(row=table.get_row_index("dead"))
        await pilot.press("m")  # the maintenance form, then its preview
        await pilot.pause()
        await pilot.press("enter")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await until(pilot, lambda: modal.phase != "preview")
        assert modal.phase == "failed"
        message = str(modal.query_one("#action-diff").render())
        assert "gone: cannot preview: " in message, message
        assert "refused" in message and "Traceback" not in message
        await pilot.press("escape", "q")
    assert app.return_code == 0
