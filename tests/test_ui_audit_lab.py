"""The console's audit screen shows what another operator changed, read from the servers.

Bob changes www from his own console (the real CLI, his own local trail); Alice's console, on
the same real lab, has never seen that change locally. Her audit screen must show Bob's change
on both servers, read from their ``www.audit.jsonl`` over SSH, next to her own; and a server
that cannot be reached must be named while the others are still shown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from opsconsole.config import load_config
from opsconsole.lab import Lab
from opsconsole.session import LiveSession
from opsconsole.ui.app import OpsConsoleApp
from opsconsole.ui.screens.audit import AuditScreen

pytestmark = pytest.mark.lab


def rows(screen: AuditScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_the_audit_screen_shows_another_operators_change_from_the_servers(
    tmp_path: Path,
) -> None:
    with Lab.start(tmp_path / "lab", traffic=False) as lab:
        bob = tmp_path / "bob.toml"
        bob.write_text('[console]\noperator = "bob"\n' + lab.config_path.read_text())
        env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "bob-state"))
        done = subprocess.run(
            [sys.executable, "-m", "opsconsole", "--config", str(bob), "maintenance", "www", "on",
             "--yes"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

        alice = tmp_path / "alice.toml"
        # Alice also knows a server that does not answer: it is named, the rest is shown.
        alice.write_text(
            '[console]\noperator = "alice"\n'
            + lab.config_path.read_text()
            + '\n[servers.web9]\nhost = "127.0.0.1"\nport = 9\n'
            + f'known_hosts = "{tmp_path}/kh"\n'
            + '[services.old]\nservers = ["web9"]\naccess_log = "/var/log/nginx/old.log"\n'
        )
        source = LiveSession(
            load_config(str(alice)), audit_trail_path=tmp_path / "alice-audit.jsonl"
        )
        app = OpsConsoleApp(source)
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("A")
            screen = app.screen
            assert isinstance(screen, AuditScreen)
            deadline = time.monotonic() + 30
            while not any(r[1] == "bob" for r in rows(screen)):
                assert time.monotonic() < deadline, (screen.sub_title, rows(screen))
                await pilot.pause(0.25)
            await pilot.pause(1.0)
            bobs = [r for r in rows(screen) if r[1] == "bob"]
            assert sorted((r[2], r[3], r[4], r[6]) for r in bobs) == [
                ("www", "web1", "maintenance on, allow nobody", "ok"),
                ("www", "web2", "maintenance on, allow nobody", "ok"),
            ]
            assert "not read: web9: host key of 127.0.0.1 port 9 refused" in str(screen.sub_title)
            await pilot.press("q")
