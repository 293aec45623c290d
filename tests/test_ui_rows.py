"""The fleet row and the charts are plain functions of the data: what an operator reads."""

from __future__ import annotations

from test_ui_snapshots import NOW, FakeSource, fake_controls, fake_snapshot

from opsconsole.controls import ControlsReport, ServerControls
from opsconsole.controls.state import ControlState, Maintenance
from opsconsole.session import ControlsEvent
from opsconsole.ui.charts import bar_chart, mix_chart, resample, sparkline
from opsconsole.ui.palette import Palette
from opsconsole.ui.rows import COLUMNS, badges, build_row, countdown


def test_a_pending_confirmation_counts_down_to_due() -> None:
    assert countdown("2026-11-24T15:01:45Z", NOW) == "1:45"
    assert countdown("2026-11-24T14:59:00Z", NOW) == "due"


def test_badges_name_every_active_control_and_a_disagreement_between_servers() -> None:
    labels = [text for text, _ in badges(ControlsEvent("www", fake_controls("www")), NOW)]
    assert labels == ["2 blk", "1 flt", "≤10r/s", "confirm 1:45"]
    split = ControlsReport(
        "www",
        {
            "web1": ServerControls("web1", ControlState(maintenance=Maintenance(on=True))),
            "web2": ServerControls("web2", ControlState()),
        },
    )
    assert [t for t, _ in badges(ControlsEvent("www", split), NOW)] == ["MAINT", "≠ servers"]
    unread = ControlsEvent("www", None, "cannot reach web2")
    assert badges(unread, NOW) == [("controls ?", "warn")]


def test_a_row_shows_the_flood_in_its_shares_and_the_servers_states() -> None:
    source = FakeSource()
    row = build_row(
        fake_snapshot("forums", 1),
        source.feeds("forums"),
        source.links(),
        source.health(),
        ControlsEvent("forums", fake_controls("forums")),
        NOW,
    )
    assert round(row.ratio_404, 2) == 0.75
    assert row.servers == (("web2", "warn", "retrying: connection refused"),)
    assert row.health == "down"  # web2's verdict counts for the site it serves
    assert row.top_subnet == "198.18.7.0/24" and round(row.top_subnet_share, 2) == 0.33


def test_charts_fit_the_space_they_are_given() -> None:
    values = list(range(900))
    assert len(resample(values, 50)) == 50
    assert len(sparkline(values, 16)) == 16
    assert sparkline([0, 0], 4) == "▁▁▁▁"  # no traffic at all: a flat baseline
    chart = bar_chart(values, 40, 5, Palette.plain())
    assert len(chart.plain.splitlines()) == 5
    assert all(len(line) == 40 for line in chart.plain.splitlines())
    mix = mix_chart([(0, 10, 0, 30, 0)] * 60, 20, 4, Palette.plain())
    assert len(mix.plain.splitlines()) == 4


def test_a_row_whose_counts_lag_behind_the_log_says_by_how_much() -> None:
    source = FakeSource()
    feeds = source.feeds("shop")

    def row_for(behind: float) -> tuple[str, str]:
        feeds["web1"].behind = behind
        row = build_row(fake_snapshot("shop", 1), feeds, source.links(), source.health(), None, NOW)
        cells = dict(zip((k for k, _ in COLUMNS), row.cells(Palette.plain()), strict=True))
        return cells["servers"].plain, row.servers[0][2]

    assert row_for(2.0) == ("web1●", "following the log")  # the log's own second and a chunk
    servers, detail = row_for(42.0)
    assert servers.endswith("behind 42s")
    assert detail == "behind by 42s (the console cannot keep up)"
