"""How the console behaves for an operator: keys, refusals, errors in place, themes, scale.

These drive the real app over the fixed fake source of the snapshot tests (the UI's behaviour
is under test here, not the fleet's; the lab tests cover the real thing).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from test_ui_snapshots import SERVICES, FakeSource, fake_snapshot
from textual.binding import Binding
from textual.widgets import Input, Static

from opsconsole.errors import OperationError
from opsconsole.session import Intent, Preview
from opsconsole.ui.app import OpsConsoleApp
from opsconsole.ui.commands import ActionsProvider
from opsconsole.ui.screens.action import ActionModal
from opsconsole.ui.screens.fleet import FleetScreen
from opsconsole.ui.screens.help import all_bindings
from opsconsole.ui.screens.limit import LimitModal
from opsconsole.ui.screens.service import ServiceScreen
from opsconsole.ui.widgets.tables import FleetTable

REPO = Path(__file__).resolve().parents[1]


def test_every_binding_has_a_unique_id_so_it_can_be_remapped() -> None:
    ids = [b.id for _, b in all_bindings()]
    assert all(ids), [b for _, b in all_bindings() if not b.id]
    assert len(ids) == len(set(ids))


async def test_read_only_mode_refuses_every_action_and_says_so() -> None:
    source = FakeSource(read_only=True)
    app = OpsConsoleApp(source)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert "READ-ONLY" in str(app.screen.sub_title)
        for key in ("m", "l", "c", "u"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, FleetScreen), key
        await pilot.press("enter")
        await pilot.press("b")
        await pilot.pause()
        assert isinstance(app.screen, ServiceScreen)
        assert source.applied == []
        assert any("read-only" in n.message for n in app._notifications)


class FailingSource(FakeSource):
    async def preview(self, service: str, intent: Intent, **_: Any) -> Preview:
        raise OperationError(
            "www: cannot reach web2: no connection within 15s (connection refused)"
        )


async def test_a_failing_core_call_is_shown_in_the_dialog_and_the_app_keeps_running() -> None:
    app = OpsConsoleApp(FailingSource())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("enter", "b")
        await pilot.pause()
        await pilot.press("enter")  # the block form's preview
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ActionModal)
        deadline = time.monotonic() + 5
        while modal.phase == "preview" and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert modal.phase == "failed"
        text = str(modal.query_one("#action-diff").render())
        assert "cannot reach web2" in text and "Traceback" not in text
        await pilot.press("y")  # nothing to apply after a failed preview
        await pilot.press("escape")
        assert isinstance(app.screen, ServiceScreen)
        assert app.is_running


async def test_the_fleet_table_sorts_and_keeps_the_selected_service(tmp_path: Path) -> None:
    app = OpsConsoleApp(FakeSource())
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        assert [table.get_row_at(i)[0].plain for i in range(table.row_count)] == sorted(SERVICES)
        table.move_cursor(row=table.get_row_index("shop"))
        await pilot.press("s")  # by stage: the sites furthest from recovered first
        order = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert order == ["shop", "www", "forums", "repo"]  # closed, protected, open, open
        assert table.selected() == "shop"
        await pilot.press("s")  # by req/s, busiest first
        order = [table.get_row_at(i)[0].plain for i in range(table.row_count)]
        assert order == sorted(SERVICES, key=lambda s: -fake_snapshot(s, 1).rps)
        assert table.selected() == "shop"


async def test_choosing_a_theme_saves_it_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text((REPO / "config.toml").read_text().replace("example = true\n", ""))
    app = OpsConsoleApp(FakeSource(), config_path=config)
    async with app.run_test() as pilot:
        app.theme = "opsconsole-high-contrast"
        await pilot.pause()
        await pilot.pause()
    assert 'theme = "opsconsole-high-contrast"' in config.read_text()
    assert (tmp_path / "config.toml.bak").exists()


async def test_the_command_palette_offers_the_screen_actions_and_every_service() -> None:
    app = OpsConsoleApp(FakeSource())
    async with app.run_test() as pilot:
        await pilot.pause()
        provider = ActionsProvider(app.screen)
        titles = [title for title, _, _ in provider._commands()]
        for binding in FleetScreen.BINDINGS:
            assert isinstance(binding, Binding)
            assert any(t.startswith(binding.description) for t in titles), binding
        for service in SERVICES:
            assert f"Open service {service}" in titles


class ManyServices(FakeSource):
    def services(self) -> list[str]:
        return [f"site{i:02d}" for i in range(50)]

    def snapshot(self, service: str, top_n: int = 10) -> Any:
        snap = fake_snapshot("www", top_n)
        return type(snap)(**{**snap.__dict__, "service": service})

    def feeds(self, service: str) -> Any:
        return super().feeds("www")

    def known_stage(self, service: str) -> Any:
        return super().known_stage("www")


async def test_fifty_services_refresh_well_within_a_second() -> None:
    app = OpsConsoleApp(ManyServices(), watch_controls=False)
    async with app.run_test(size=(160, 60)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        assert screen.query_one(FleetTable).row_count == 50
        started = time.perf_counter()
        for _ in range(5):
            screen.tick()
        per_tick = (time.perf_counter() - started) / 5
        # The console refreshes once a second: a refresh must fit in it even on a loaded
        # machine (the suite runs two workers on two cores); 0.25 s flaked at 0.29 s there.
        assert per_tick < 0.5, f"{per_tick * 1000:.0f} ms per refresh"


async def test_a_block_is_removed_from_the_controls_list_through_the_preview() -> None:
    app = OpsConsoleApp(FakeSource())
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        table.move_cursor(row=table.get_row_index("www"))
        await pilot.press("enter", "x")
        await pilot.pause()
        # www: rate limit, one filter, then the two blocks
        await pilot.press("down", "down", "d")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, ActionModal)
        assert modal.title_text() == "www: unblock 198.18.7.0/24"


async def test_a_keymap_beside_the_config_remaps_a_binding_by_its_id(tmp_path: Path) -> None:
    from opsconsole.ui.screens.help import HelpScreen

    config = tmp_path / "config.toml"
    config.write_text((REPO / "config.toml").read_text().replace("example = true\n", ""))
    (tmp_path / "keymap.toml").write_text('"app.help" = "f1"\n')
    app = OpsConsoleApp(FakeSource(), config_path=config)
    async with app.run_test() as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)


async def test_the_rate_limit_form_explains_bad_input_and_sends_nothing() -> None:
    source = FakeSource()
    app = OpsConsoleApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LimitModal)
        for rate, message in [("10r/s; }", "is not a rate"), ("0r/s", "out of range")]:
            rate_input = app.screen.query_one("#limit-rate", Input)
            rate_input.value = rate
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, LimitModal), rate
            assert message in str(app.screen.query_one("#limit-error", Static).render())
        app.screen.query_one("#limit-rate", Input).value = "5r/s"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ActionModal)  # a valid form goes to the preview
        await pilot.press("escape")
        await pilot.pause()
        assert source.applied == []


async def test_at_80x24_the_urgent_columns_and_quit_and_help_stay_in_view() -> None:
    from textual.widgets._footer import FooterKey

    app = OpsConsoleApp(FakeSource())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        screen.tick()  # the controls have been read: the badges widen their column
        await pilot.pause()
        table = screen.query_one(FleetTable)
        shown = [str(c.key.value) for c in table.columns.values()]
        for key in ("service", "rps", "404", "health", "controls"):
            assert key in shown, shown
        assert "trend" not in shown  # the narrow, less urgent columns gave way first
        assert table.virtual_size.width <= table.size.width  # nothing scrolls sideways
        keys = {k.key: k for k in screen.query(FooterKey)}
        for key in ("q", "question_mark"):
            region = keys[key].region
            assert region.width > 0 and region.right <= 80, (key, region)
        strip = str(screen.query_one("#server-strip").render())
        assert "web1 connected" in strip
