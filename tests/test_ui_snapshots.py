"""What the console looks like: every screen in every shipped theme, as SVG snapshots.

The data is fixed (an in-process fake source, allowed here and only here) and so is the clock, so
a snapshot changes only when the rendering does.  Update after an intended change with
``pytest tests/test_ui_snapshots.py --snapshot-update`` and look at the SVGs in the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from opsconsole.config import Config, parse_config
from opsconsole.controls import (
    ApplyReport,
    ControlsReport,
    Edit,
    ServerControls,
    ServerResult,
    Timeline,
)
from opsconsole.controls.report import Outcome
from opsconsole.controls.stage import SiteStage
from opsconsole.controls.state import Block, ControlState, Filter, Maintenance, RateLimit
from opsconsole.controls.timeline import merge_events
from opsconsole.detect.analysis import Analysis, Suggestion
from opsconsole.detect.effects import Effects, RuleEffect
from opsconsole.detect.rules import Condition, Rule
from opsconsole.fleet import FeedState, ServerFeed
from opsconsole.health import FleetHealth, ServerHealth, ServiceHealth, Status
from opsconsole.session import ControlsEvent, Intent, OnProgress, Preview
from opsconsole.session.board import live_stage
from opsconsole.session.live import SuggestEvent
from opsconsole.stats.snapshot import Snapshot, TopEntry
from opsconsole.transport import LinkState, ServerStatus
from opsconsole.ui.app import OpsConsoleApp
from opsconsole.ui.themes import shipped_themes

NOW = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC).timestamp()
SERVICES = {"www": ["web1", "web2"], "shop": ["web1"], "forums": ["web2"], "repo": ["web1"]}
THEMES = [t.name for t in shipped_themes()]


def fake_config(read_only: bool = False, theme: str = "opsconsole-dark") -> Config:
    data = {
        "console": {"theme": theme, "operator": "alice@console", "read_only": read_only},
        "servers": {
            name: {"host": f"{name}.example.org", "user": "ops"} for name in ("web1", "web2")
        },
        "services": {
            name: {"servers": servers, "access_log": f"/var/log/nginx/{name}.log"}
            for name, servers in SERVICES.items()
        },
    }
    return parse_config(data, Path("/etc/opsconsole/config.toml"))


def _flood_curve(i: int, base: int, flood: int) -> int:
    """Quiet browsing, then a flood ramping up over the last five minutes (deterministic)."""
    wave = (i * 7919) % 5
    return int(base + wave + (flood * min(1.0, (i - 600) / 120) if i > 600 else 0))


def fake_snapshot(service: str, top_n: int) -> Snapshot:
    weight = {"www": 4, "shop": 3, "forums": 2, "repo": 1}[service]
    per_second = tuple(int(_flood_curve(i, 2 * weight, 30 * weight)) for i in range(900))
    classes = tuple(
        (0, max(1, n // 6), n // 12, n - max(1, n // 6) - n // 12, 1 if i % 97 == 0 else 0)
        for i, n in enumerate(per_second)
    )
    requests = sum(per_second[-60:])
    subnets = ("198.18.7.0/24", "198.19.200.0/24", "2001:db8:ff42::/48", "203.0.113.0/24")
    return Snapshot(
        service=service,
        time_from=NOW - 60,
        time_to=NOW,
        requests=requests,
        unparsed=0,
        rps=float(per_second[-1]),
        unique_ips=4000 * weight + 17,
        status={"200": requests // 6, "304": requests // 12, "404": requests * 3 // 4, "503": 3},
        top_ips=tuple(
            TopEntry(f"198.18.7.{10 + i}", 40 * weight - 3 * i) for i in range(min(top_n, 6))
        ),
        top_subnets=tuple(
            TopEntry(s, requests // (3 + 2 * i)) for i, s in enumerate(subnets[:top_n])
        ),
        top_paths=tuple(
            TopEntry(f"/wp-{i}{'x' * i}.php", 30 * weight - 2 * i) for i in range(min(top_n, 5))
        ),
        top_user_agents=tuple(
            TopEntry(ua, n * weight)
            for ua, n in (("python-requests/2.31.0", 90), ("Go-http-client/1.1", 60), ("", 5))
        )[:top_n],
        servers={s: requests // len(SERVICES[service]) for s in SERVICES[service]},
        per_second=per_second,
        classes=classes,
    )


def _state(service: str) -> ControlState:
    if service == "shop":
        return ControlState(version=3, maintenance=Maintenance(on=True))
    if service == "www":
        return ControlState(
            version=7,
            blocks=(Block("198.18.7.0/24", "flood"), Block("198.19.200.0/24", "flood")),
            filters=(Filter("f1", "path", "^/wp-", reason="scanner"),),
            rate_limit=RateLimit("10r/s", 20, "ip"),
        )
    return ControlState(version=1)


def fake_controls(service: str) -> ControlsReport:
    deadline = "2026-11-24T15:01:45Z" if service == "www" else None
    return ControlsReport(
        service,
        {s: ServerControls(s, _state(service), None, False, deadline) for s in SERVICES[service]},
    )


def fake_suggestions(service: str) -> SuggestEvent:
    """A fixed analysis: www under a flood with two rules recommended, the others quiet."""
    if service != "www":
        why = ("the window's traffic (3.1 req/s, +4 % on the baseline's 3.0 req/s) holds nothing "
               "beyond the baseline's range that real visitors would not explain")  # fmt: skip
        quiet = Analysis(service, 600, 1800, "no-anomaly", why)
        return SuggestEvent(service, quiet, at=NOW - 12)
    shape = Rule("filter", conditions=(Condition("path", "^/[0-9a-f]{7,18}$"),))
    block = Rule("block", targets=("198.18.0.0/16", "198.19.0.0/16", "2001:db8:ff00::/40"))
    ua = Rule("filter", conditions=(Condition("user_agent", "^python-requests/"),
                                    Condition("referer", "^$")))  # fmt: skip
    sample = '198.18.7.9 [14:58:02] "GET /3fa9c0d1e2" 404 "-" "Mozilla/5.0 (X11; Linux)"'
    suggestions = (
        Suggestion("s1", "filter", shape, 0.62, 0.0, 0, 0.57, True,
                   "Stops 62 % of the excess: paths shaped ^/[0-9a-f]{7,18}$ (12912 of them, "
                   "none in the baseline). No baseline request matches it.", (sample,),
                   "opsconsole filter www --path '^/[0-9a-f]{7,18}$' --reason 'suggested'",
                   stopped=12997, reason="suggested 14:59 UTC: stops 62 % of the excess"),
        Suggestion("s2", "block", block, 0.38, 0.0, 0, 0.35, True,
                   "Stops 38 % of the excess: 3 networks holding 13025 attacking addresses.",
                   (sample,), "opsconsole block www 198.18.0.0/16 198.19.0.0/16 "
                   "2001:db8:ff00::/40 --reason 'suggested'", stopped=7967,
                   reason="suggested 14:59 UTC: stops 38 % of the excess"),
        Suggestion("s3", "filter", ua, 0.12, 0.0021, 3, 0.11, False,
                   "Stops 12 % of the excess: the user agent family python-requests, and no "
                   "referer.", (sample,), "opsconsole filter www --user-agent "
                   "'^python-requests/' --referer '^$'", wanted_hits=("Googlebot: 2 requests",),
                   stopped=2500),
    )  # fmt: skip
    analysis = Analysis("www", 600, 1800, "ok", None, 22764, 5400, 20964, suggestions,
                        recall=0.99, collateral=0.0)  # fmt: skip
    effects = Effects(60.0, 2268, (RuleEffect("blocks", 2103, 34.8, 0.92, "3 blocks"),))
    return SuggestEvent("www", analysis, effects, at=NOW - 12)


class FakeSource:
    """Fixed data in the shape of :class:`opsconsole.session.LiveSession` (only for snapshot
    determinism: every behaviour is proven against the real lab elsewhere)."""

    def __init__(self, read_only: bool = False, theme: str = "opsconsole-dark") -> None:
        self.config = fake_config(read_only, theme)
        self.applied: list[str] = []
        self.listeners: list[Callable[[ControlsEvent], None]] = []

    @property
    def read_only(self) -> bool:
        return self.config.console.read_only

    @property
    def operator(self) -> str:
        return self.config.console.operator

    async def start(self, *, watch_controls: bool = True) -> None:
        if watch_controls:
            for service in SERVICES:
                await self.refresh_controls(service)

    def on_controls(self, listener: Callable[[ControlsEvent], None]) -> None:
        self.listeners.append(listener)

    async def refresh_controls(self, service: str) -> ControlsEvent:
        event = ControlsEvent(service, fake_controls(service))
        for listener in self.listeners:
            listener(event)
        return event

    def known_controls(self, service: str) -> ControlsEvent | None:
        return ControlsEvent(service, fake_controls(service))

    def known_suggestions(self, service: str) -> SuggestEvent | None:
        return fake_suggestions(service)

    def notify_errors(self) -> list[str]:
        return []

    def known_stage(self, service: str) -> SiteStage | None:
        report = self.known_controls(service)
        health = self.health().services.get(service)
        return live_stage(self.snapshot(service).status, health, report.report if report else None)

    def watch_suggestions(self, service: str, on: bool = True) -> None:
        pass

    def refresh_suggestions(self, service: str) -> None:
        pass

    async def stop(self) -> None:
        pass

    def services(self) -> list[str]:
        return list(SERVICES)

    def snapshot(self, service: str, top_n: int = 10) -> Snapshot:
        return fake_snapshot(service, top_n)

    def feeds(self, service: str) -> dict[str, ServerFeed]:
        feeds = {s: ServerFeed(FeedState.FOLLOWING) for s in SERVICES[service]}
        if service == "forums":
            feeds["web2"] = ServerFeed(FeedState.FAILED, "no such file: /var/log/nginx/forums.log")
        return feeds

    def links(self) -> dict[str, ServerStatus]:
        return {
            "web1": ServerStatus("web1", LinkState.CONNECTED),
            "web2": ServerStatus("web2", LinkState.RETRYING, "connection refused"),
        }

    def health(self) -> FleetHealth:
        return FleetHealth(
            {
                "web1": ServerHealth("web1", Status.OK, checked_at=NOW),
                "web2": ServerHealth(
                    "web2", Status.DOWN, ("ssh: connection refused",), "refused", checked_at=NOW
                ),
            },
            {
                name: ServiceHealth(
                    name,
                    f"https://{name}.example.org/",
                    Status.WARN if name == "www" else Status.OK,
                    ("slow: 1830 ms > 1000 ms",) if name == "www" else (),
                )
                for name in SERVICES
            },
        )

    def refresh_health(self) -> None:
        pass

    def local_events(self, services: Iterable[str] | None = None) -> list[dict[str, Any]]:
        events = [
            {
                "time": "2026-11-24T14:58:10Z",
                "operator": "alice@console",
                "service": "www",
                "server": server,
                "action": "block 198.18.7.0/24",
                "before_version": 6,
                "after_version": 7,
                "result": "ok",
                "reason": None,
            }
            for server in ("web1", "web2")
        ]
        events.append(
            {
                "time": "2026-11-24T14:59:30Z",
                "operator": "alice@console",
                "service": "shop",
                "server": "web1",
                "action": "filter path regex '^/a(' -> 403",
                "before_version": 3,
                "after_version": 3,
                "result": "failed",
                "reason": "nginx -t refused the new configuration: pcre2_compile() failed",
            }
        )
        wanted = None if services is None else set(services)
        return [e for e in events if wanted is None or str(e["service"]) in wanted]

    async def timeline(
        self, services: Iterable[str] | None = None, *, max_bytes: int | None = None
    ) -> Timeline:
        """The local trail merged with a server's record of another operator's change."""
        other = {
            "time": "2026-11-24T14:50:02Z",
            "operator": "bob@laptop",
            "service": "forums",
            "server": "web2",
            "action": "maintenance on",
            "before_version": 1,
            "after_version": 2,
            "result": "ok",
        }
        return Timeline(merge_events(self.local_events(), [other]))

    async def preview(
        self,
        service: str,
        intent: Intent,
        *,
        confirm_within: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> Preview:
        assert isinstance(intent, Edit)
        cdir = "/etc/nginx/opsconsole"
        diff = (
            f"--- {cdir}/{service}.http.conf\n+++ {cdir}/{service}.http.conf (new)\n"
            "@@ -1,3 +1,4 @@\n geo $www_blocked {\n     default 0;\n+    198.18.7.0/24 1;\n }\n"
        )
        report = ApplyReport(
            service,
            intent.action,
            True,
            {
                s: ServerResult(s, Outcome.DRY_RUN, before_version=7, after_version=8, diff=diff)
                for s in SERVICES[service]
            },
        )
        return Preview(service, intent, report, confirm_within)

    async def apply(self, preview: Preview, **_: Any) -> ApplyReport:
        self.applied.append(preview.action)
        return ApplyReport(preview.service, preview.action, False, {})


def make_app(theme: str = "opsconsole-dark", read_only: bool = False) -> OpsConsoleApp:
    return OpsConsoleApp(FakeSource(read_only, theme), clock=lambda: NOW)


async def _settle(pilot: Pilot[Any]) -> None:
    """Let one-shot workers (preview, control reads) finish; the controls poll loops forever."""
    await pilot.pause()
    once = [w for w in pilot.app.workers if w.group != "controls-poll"]
    if once:  # an empty list would mean "every worker"
        await pilot.app.workers.wait_for_complete(once)
    await pilot.pause()


async def _fleet(pilot: Pilot[Any]) -> None:
    await _settle(pilot)
    pilot.app.screen.tick()  # type: ignore[attr-defined]
    await pilot.pause()


async def _service(pilot: Pilot[Any]) -> None:
    await _fleet(pilot)
    await pilot.press("enter")
    await _settle(pilot)


async def _action(pilot: Pilot[Any]) -> None:
    await _service(pilot)
    await pilot.press("b")  # the block form, pre-filled
    await _settle(pilot)
    await pilot.press("enter")  # its preview
    await _settle(pilot)


async def _controls(pilot: Pilot[Any]) -> None:
    await _service(pilot)
    await pilot.press("x")
    await _settle(pilot)


async def _suggestion(pilot: Pilot[Any]) -> None:
    await _fleet(pilot)
    await pilot.press("down", "down", "down", "enter")  # www (the last row), under attack
    await _settle(pilot)
    await pilot.press("e")  # the first suggested rule's effect on the live window
    await _settle(pilot)


async def _audit(pilot: Pilot[Any]) -> None:
    await _fleet(pilot)
    await pilot.press("A")
    await _settle(pilot)


async def _help(pilot: Pilot[Any]) -> None:
    await _fleet(pilot)
    await pilot.press("question_mark")
    await _settle(pilot)


SCREENS: dict[str, Callable[[Pilot[Any]], Awaitable[None]]] = {
    "fleet": _fleet,
    "service": _service,
    "action": _action,
    "controls": _controls,
    "suggestion": _suggestion,
    "audit": _audit,
    "help": _help,
}


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_each_screen_in_each_shipped_theme(snap_compare: Any, screen: str, theme: str) -> None:
    assert snap_compare(make_app(theme), run_before=SCREENS[screen], terminal_size=(160, 48))


@pytest.mark.parametrize("screen", ["fleet", "service", "action"])
def test_the_console_fits_an_80x24_terminal(snap_compare: Any, screen: str) -> None:
    assert snap_compare(make_app(), run_before=SCREENS[screen], terminal_size=(80, 24))


def test_read_only_mode_is_marked_on_screen(snap_compare: Any) -> None:
    assert snap_compare(make_app(read_only=True), run_before=_fleet, terminal_size=(120, 30))
