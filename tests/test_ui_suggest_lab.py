"""The console's suggestions on a real fleet: see the rule, its effect, apply it with Enter.

A labelled flood and the half hour before it are written into ``www``'s logs on both lab servers
(real sshd and nginx); the real app runs on a :class:`~opsconsole.session.LiveSession`.  The
fleet row shows how much of www's traffic is excess and that rules are suggested; the service
screen's panel lists them; ``e`` shows the first one's effect on the live window; Enter applies
it through the preview → ``y`` path; then every server holds the rule, nginx refuses what it
matches (403), and the panel says what the rules in force stop now.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_suggest_lab import replay, write_scenario
from textual.pilot import Pilot

from opsconsole.config import load_config
from opsconsole.controls import state_from_json
from opsconsole.lab import Lab
from opsconsole.session import LiveSession
from opsconsole.ui.app import OpsConsoleApp
from opsconsole.ui.rows import COLUMNS, build_row
from opsconsole.ui.screens.action import ActionModal
from opsconsole.ui.screens.service import ServiceScreen
from opsconsole.ui.screens.suggestion import SuggestionModal
from opsconsole.ui.widgets.suggestions import SuggestionTable

pytestmark = pytest.mark.lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with Lab.start(tmp_path / "lab", traffic=False) as running:
        yield running


async def wait_for(pilot: Pilot[int], what: str, ok: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await pilot.pause(0.25)


async def test_a_suggested_rule_is_shown_measured_and_applied_from_the_console(
    lab: Lab, tmp_path: Path
) -> None:
    window = write_scenario(lab, "botnet-ua", 41)
    source = LiveSession(load_config(str(lab.config_path)), audit_trail_path=tmp_path / "a.jsonl")
    app = OpsConsoleApp(source)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, "an analysis of www",
                       lambda: source.known_suggestions("www") is not None, 60)  # fmt: skip
        event = source.known_suggestions("www")
        assert event is not None and event.analysis is not None, event
        assert event.analysis.status == "ok", event.analysis.reason
        row = build_row(
            source.snapshot("www"), source.feeds("www"), source.links(), source.health(),
            app.controls.get("www"), time.time(), event,
        )  # fmt: skip
        excess = row.cells(app.palette)[[key for key, _ in COLUMNS].index("excess")]
        assert "★" in excess.plain and "%" in excess.plain  # the fleet row: excess and rules
        app.open_service("www")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ServiceScreen)
        panel = screen.query_one(SuggestionTable)
        await wait_for(pilot, "suggested rules in the panel", lambda: panel.by_id, 30)
        first = panel.selected()
        assert first is not None and first.recommended
        await pilot.press("e")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, SuggestionModal) and modal.suggestion.id == first.id
        shown = " ".join(str(w.render()) for w in modal.query("Static"))
        assert "On the live window: stops" in shown and first.command in shown
        await pilot.press("escape")
        await pilot.pause()
        panel.focus()
        await pilot.press("enter")  # apply: the preview first
        await wait_for(pilot, "the preview", lambda: isinstance(app.screen, ActionModal), 10)
        action = app.screen
        assert isinstance(action, ActionModal)
        await wait_for(pilot, "the preview to be ready", lambda: action.phase != "preview", 30)
        assert action.phase == "ready", action.query_one("#action-diff").render()
        await pilot.press("y")
        await wait_for(pilot, "the apply", lambda: action.phase in ("done", "failed"), 60)
        assert action.phase == "done", action.stages
        await pilot.press("escape")
        # The next analysis sets the rule's traffic aside and says what it stops now.
        source.refresh_suggestions("www")
        await wait_for(pilot, "the rules in force in the next analysis", lambda: (
            (e := source.known_suggestions("www")) is not None and e.analysis is not None
            and e.analysis.active_rules), 60)  # fmt: skip
        await pilot.press("q")
    # Every server holds the rule, and nginx refuses what it matches.
    for server in lab.services["www"].servers:
        state = state_from_json((lab.control_dir(server) / "www.state.json").read_text())
        held = state.blocks if first.kind == "block" else state.filters
        assert held and all(x.reason == first.reason for x in held), state
    sample = [r for r in window if r.attack and r.status != 400][:40]
    codes = replay(lab, sample)
    assert sum(c == 403 for c in codes) >= 0.9 * len(sample), codes
