"""What an attacker writes into the log is shown literally, in the console and on the command line.

Paths, user agents and referers are chosen by whoever sends the request.  A lab of its own
(real sshd, nginx, tail) gets requests whose path and user agent look like Textual/Rich markup
(``[@click=app.quit]``, ``[bold]``) through nginx, plus log lines with raw control bytes (a
terminal escape sequence, as a log written without nginx's escaping would hold them).  The
console's tables and the CLI's output must show all of it as text: no markup interpreted, no
control character reaching the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.text import Text

from opsconsole.config import load_config
from opsconsole.lab import Lab, send
from opsconsole.session import LiveSession
from opsconsole.ui.app import OpsConsoleApp
from opsconsole.ui.screens.service import ServiceScreen
from opsconsole.ui.widgets.tables import TopTable

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parent.parent
MARKUP_PATH = "/[@click=app.quit]x[bold]"
MARKUP_AGENT = "[@click=app.quit][reverse]agent"
ESCAPE_AGENT = "evil\x1b[31mred\x1b]0;title\x07"


@pytest.fixture
def hostile_lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab.start(tmp_path / "lab", traffic=False) as lab:
        url = lab.url("www", "web1")
        send(url, 3, client_ip="198.51.100.7", path=MARKUP_PATH)
        send(url, 2, client_ip="198.51.100.8", user_agent=MARKUP_AGENT)
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
        raw = f'198.51.100.9 - - [{stamp}] "GET /plain HTTP/1.1" 200 5 "-" "{ESCAPE_AGENT}"\n' * 4
        with open(lab.access_log("www", "web1"), "a", encoding="utf-8") as log:
            log.write(raw)
        yield lab


def test_the_cli_prints_log_strings_literally_and_escapes_control_characters(
    hostile_lab: Lab,
) -> None:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    argv = [sys.executable, "-m", "opsconsole", "--config", str(hostile_lab.config_path)]
    result = subprocess.run(
        [*argv, "stats", "www", "--since", "all"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert MARKUP_PATH in out and MARKUP_AGENT in out
    assert "evil\\x1b[31mred\\x1b]0;title\\x07" in out
    assert "\x1b" not in out and "\x07" not in out  # nothing a terminal would act on


async def test_the_console_shows_log_strings_literally(hostile_lab: Lab, tmp_path: Path) -> None:
    session = LiveSession(
        load_config(str(hostile_lab.config_path)), audit_trail_path=tmp_path / "audit.jsonl"
    )
    app = OpsConsoleApp(session)
    async with app.run_test(size=(200, 50)) as pilot:
        deadline = time.monotonic() + 60
        while not any(e.key == MARKUP_PATH for e in session.snapshot("www", 20).top_paths):
            assert time.monotonic() < deadline, session.snapshot("www", 20).top_paths
            await pilot.pause(0.25)
        app.open_service("www")
        await pilot.pause(1.5)
        screen = app.screen
        assert isinstance(screen, ServiceScreen)

        def cells(table_id: str) -> list[str]:
            table = screen.query_one(table_id, TopTable)
            out = []
            for i in range(table.row_count):
                cell = table.get_row_at(i)[0]
                assert isinstance(cell, Text)
                out.append(cell.plain)
            return out

        assert any(MARKUP_PATH in c for c in cells("#top-path")), cells("#top-path")
        agents = cells("#top-user_agent")
        assert any(c.startswith("[@click=app.quit][reverse]") for c in agents), agents
        assert any(c.startswith("evil\\x1b[31mred") for c in agents), agents
        assert not any("\x1b" in c for c in agents)
        # Clicking or rendering the markup did nothing: the console is still on the screen.
        assert app.is_running and isinstance(app.screen, ServiceScreen)
        await pilot.press("escape", "q")
