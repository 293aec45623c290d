"""The console against the real rehearsal lab: an operator blocks the top attacking subnet.

Starts its own lab (real sshd and nginx on loopback, browsing then a flood), drives the real app
with Pilot — service screen, top subnets, ``b``, the preview, ``y`` — and checks the outcome where
it matters: the block is in the service's state file on every server, and nginx now answers that
subnet with 403.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from opsconsole.config import load_config
from opsconsole.controls import state_from_json
from opsconsole.lab import Lab, send
from opsconsole.lab.population import Flood
from opsconsole.session import LiveSession
from opsconsole.ui.app import OpsConsoleApp
from opsconsole.ui.screens.action import ActionModal
from opsconsole.ui.screens.forms import BlockForm
from opsconsole.ui.screens.service import ServiceScreen
from opsconsole.ui.widgets.tables import TopTable

pytestmark = pytest.mark.lab


@pytest.fixture
def flooded_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with Lab.start(tmp_path / "lab", traffic=True, flood_after=3.0) as lab:
        yield lab


async def wait_for(pilot: Pilot[int], what: str, ok: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await pilot.pause(0.25)


async def test_blocking_the_top_attacking_subnet_from_the_service_screen_gets_it_403(
    flooded_lab: Lab, tmp_path: Path
) -> None:
    lab = flooded_lab
    heavy = set(Flood(lab.seed, list(lab.services)).heavy_subnets())
    source = LiveSession(
        load_config(str(lab.config_path)), audit_trail_path=tmp_path / "audit.jsonl"
    )
    app = OpsConsoleApp(source)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, "traffic on www", lambda: source.snapshot("www").requests > 0, 30)
        app.open_service("www")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ServiceScreen)
        table = screen.query_one("#top-subnet", TopTable)
        await wait_for(
            pilot,
            "a flood subnet at the top of www's subnets",
            lambda: bool(table.entries) and table.entries[0].key in heavy,
            90,
        )
        # The flood comes from a large pool of addresses: new ones arrive every second.
        assert (source.snapshot("www").new_ips_per_s or 0) > 0
        assert " new IPs/s" in str(screen.query_one("#service-info").render())
        await pilot.press("p")  # pause the live refresh so the row stays put
        target = table.entries[0].key
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("b")  # the block form asks for a reason and a TTL, as the CLI does
        form = app.screen
        assert isinstance(form, BlockForm)
        form.query_one("#form-reason", Input).value = "flood drill"
        form.query_one("#form-ttl", Input).value = "2h"
        await pilot.press("enter")
        modal = app.screen
        assert isinstance(modal, ActionModal)
        await wait_for(pilot, "the preview", lambda: modal.phase != "preview", 30)
        assert modal.phase == "ready", modal.query_one("#action-diff").render()
        assert target in modal.title_text()
        await pilot.press("y")
        await wait_for(pilot, "the apply", lambda: modal.phase in ("done", "failed"), 60)
        assert modal.phase == "done", modal.stages
        assert all(text.startswith("done") for text, _ in modal.stages.values()), modal.stages
        # The dialog says what the site answers now (the console's own address is not blocked).
        assert modal.site_now is not None and modal.site_now[1].startswith("HTTP 200 in ")
        assert "site now: HTTP 200" in str(modal.query_one("#action-progress").render())
        await pilot.press("escape")
        await pilot.press("q")

    for server in lab.services["www"].servers:
        state = state_from_json((lab.control_dir(server) / "www.state.json").read_text())
        block = next(b for b in state.blocks if b.target == target)
        assert block.reason == "flood drill" and block.expires_at is not None, block
        client = target.split("/")[0].rsplit(".", 1)[0] + ".77" if "." in target else None
        if client is None:  # an IPv6 /48
            client = target.split("/")[0].rstrip(":") + ":1::77"
        assert send(lab.url("www", server), client_ip=client, path="/") == [403]
    events = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    action = f"block {target} for 2h"
    done = {e["server"] for e in events if e["action"] == action and e["result"] == "ok"}
    assert done == set(lab.services["www"].servers)
