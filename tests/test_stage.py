"""The recovery board's stage of a site: plain words from its controls and its answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_ui_snapshots import NOW, FakeSource, fake_snapshot

from opsconsole.controls import ControlsReport, ServerControls
from opsconsole.controls.stage import (
    Stage,
    StageMemory,
    maintenance_since,
    serving_from_log,
    site_stage,
)
from opsconsole.controls.state import Block, ControlState, Maintenance, RateLimit
from opsconsole.session.board import live_stage
from opsconsole.ui.rows import build_row

BLOCKS = (
    Block("198.51.100.0/24", added_at="2026-11-24T14:10:00Z"),
    Block("203.0.113.9", added_at="2026-11-24T14:30:00Z"),
)


def test_each_stage_in_plain_words_from_controls_and_answer() -> None:
    closed = ControlState(updated_at="2026-11-24T14:00:00Z", maintenance=Maintenance(on=True))
    assert site_stage(closed, False).stage is Stage.CLOSED  # its 503 page is not "down"
    staff = ControlState(maintenance=Maintenance(on=True, allow=("10.0.0.0/8",)))
    s = site_stage(staff, True)
    assert s.stage is Stage.STAFF_ONLY and "10.0.0.0/8" in s.reason
    down = site_stage(ControlState(blocks=BLOCKS), False, answer="HTTP 502")
    assert down.stage is Stage.DOWN and down.reason == "HTTP 502"
    protected = site_stage(ControlState(blocks=BLOCKS), True, refused_share=0.82)
    assert protected.stage is Stage.PROTECTED
    assert protected.since == "2026-11-24T14:10:00Z"  # the oldest rule still in force
    assert "refusing 82 %" in protected.summary() and "2 blocks" in protected.summary()
    assert site_stage(ControlState(), True).stage is Stage.OPEN
    assert site_stage(None, True).stage is Stage.OPEN
    assert site_stage(ControlState(), None).stage is Stage.UNKNOWN
    limited = ControlState(rate_limit=RateLimit("5r/s", 10), updated_at="2026-11-24T14:20:00Z")
    assert site_stage(limited, True).since == "2026-11-24T14:20:00Z"
    pending = site_stage(
        ControlState(blocks=BLOCKS), True, awaiting_confirmation="2026-11-24T15:01:45Z"
    )
    assert pending.to_dict()["awaiting_confirmation"] == "2026-11-24T15:01:45Z"
    assert "awaits confirmation" in pending.summary()


def test_maintenance_is_dated_by_the_event_that_switched_it_on() -> None:
    def ev(when: str, before: bool, after: bool, result: str = "ok") -> dict[str, Any]:
        diff = {"maintenance": {"before": {"on": before}, "after": {"on": after}}}
        return {"time": when, "diff": diff, "result": result}

    events = [
        ev("2026-11-24T13:00:00Z", False, True),
        ev("2026-11-24T13:30:00Z", True, False),
        {"time": "2026-11-24T13:40:00Z", "diff": {"blocks": {}}, "result": "ok"},
        ev("2026-11-24T13:50:00Z", False, True, "test-failed"),  # nginx refused it
        ev("2026-11-24T14:00:00Z", False, True),
        ev("2026-11-24T14:05:00Z", True, True),  # the allow list changed: still on since 14:00
    ]
    assert maintenance_since(events) == "2026-11-24T14:00:00Z"
    assert maintenance_since([]) is None


def test_without_a_probe_the_log_says_whether_the_site_serves() -> None:
    assert serving_from_log({200: 90, 404: 10}) is True
    assert serving_from_log({502: 80, 200: 20}) is False
    assert serving_from_log({503: 95, 200: 5}) is True  # maintenance's page, not a failure
    assert serving_from_log({}) is None


def test_the_board_remembers_since_when_a_site_is_down_across_commands(tmp_path: Path) -> None:
    path = tmp_path / "stages.json"
    first = StageMemory(path)
    shown = first.date("www", site_stage(ControlState(), False), now=1_700_000_000)
    assert shown.since == "2023-11-14T22:13:20Z"
    first.save()
    assert path.stat().st_mode & 0o777 == 0o600
    later = StageMemory(path)
    again = later.date("www", site_stage(ControlState(), False), now=1_700_000_600)
    assert again.since == "2023-11-14T22:13:20Z" and later.previous["www"] is None
    back = later.date("www", site_stage(ControlState(), True), now=1_700_000_900)
    assert later.previous["www"] is Stage.DOWN and back.stage is Stage.OPEN
    path.write_text("not json")
    assert StageMemory(path).seen == {}  # a damaged memory is forgotten, not an error
    path.write_text(json.dumps({"www": {"stage": "bogus"}}))
    memory = StageMemory(path)
    memory.date("www", site_stage(ControlState(), True))
    assert memory.previous["www"] is None


def _report(state: ControlState) -> ControlsReport:
    return ControlsReport("www", {"web1": ServerControls("web1", state)})


def test_sorting_the_fleet_by_stage_puts_the_sites_still_down_first() -> None:
    source = FakeSource()
    health = source.health()  # the fake probes no URL: the live status mix tells
    sites = {
        "www": (ControlState(blocks=BLOCKS), {"200": 200, "403": 600, "404": 200}),
        "shop": (ControlState(maintenance=Maintenance(on=True)), {"503": 900, "200": 100}),
        "forums": (ControlState(), {"200": 1000}),
        "repo": (ControlState(), {"502": 700, "200": 300}),
    }
    rows = []
    for i, (name, (state, mix)) in enumerate(sites.items()):
        stage = live_stage(mix, health.services.get(name), _report(state))
        rows.append(build_row(fake_snapshot(name, i), source.feeds(name), source.links(), health,
                              None, NOW, None, stage))  # fmt: skip
    by = {r.name: r for r in rows}
    assert {n: r.stage.stage for n, r in by.items() if r.stage} == {
        "www": Stage.PROTECTED, "shop": Stage.CLOSED, "forums": Stage.OPEN, "repo": Stage.DOWN,
    }  # fmt: skip
    assert by["www"].stage is not None and by["www"].stage.refused_share == 0.6
    assert by["shop"].stage is not None and by["shop"].stage.refused_share == 0.9
    ordered = sorted(rows, key=lambda r: r.sort_value("stage"))  # type: ignore[arg-type,return-value]
    assert [r.name for r in ordered] == ["repo", "shop", "www", "forums"]
    assert live_stage({"200": 5}, None, None) is None  # controls not read yet: no stage
    unread = build_row(fake_snapshot("www", 0), source.feeds("www"), source.links(), health,
                       None, NOW)  # fmt: skip
    assert unread.stage is None
    assert unread.sort_value("stage") > ordered[-1].sort_value("stage")  # type: ignore[operator]
