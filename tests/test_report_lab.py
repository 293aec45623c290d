"""``opsconsole report`` against a real fleet (issue 10): real sshd, real nginx, real changes.

One rehearsal lab for the module (its own: a test here blocks a network on ``www``); each test
uses its own service so that none sees another's traffic.  Requests are sent over HTTP with the
client address in ``X-Forwarded-For`` (the lab's realip trusts loopback), a block is applied with
the CLI as an operator would, and the report is checked against what was sent and against the
access logs themselves, read here with a regex of their own (not with the code under test).
"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w
from test_cli_controls_lab import Operator, _stop_timers

from opsconsole.config import load_config
from opsconsole.lab import Lab, send
from opsconsole.report import render_markdown
from opsconsole.session import Session

pytestmark = pytest.mark.lab
LINE = re.compile(rb'^(\S+) \S+ \S+ \[([^\]]+)\] "[^"]*" (\d{3}) ')


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab.start(tmp_path_factory.mktemp("report-lab"), traffic=False) as running:
        try:
            yield running
        finally:
            _stop_timers(running)


def logged(lab: Lab, service: str) -> list[tuple[int, str, int]]:
    """(time, client, status) of every line in the service's logs on all its servers."""
    out = []
    for server in lab.services[service].servers:
        for raw in lab.access_log(service, server).read_bytes().splitlines():
            m = LINE.match(raw)
            assert m, raw
            when = datetime.strptime(m[2].decode(), "%d/%b/%Y:%H:%M:%S %z").timestamp()
            out.append((int(when), m[1].decode(), int(m[3])))
    return out


def epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def test_a_block_shows_in_the_report_with_what_it_refused_and_what_it_let_through(
    lab: Lab, tmp_path: Path
) -> None:
    alice, bob = Operator(lab), Operator(lab, "bob")  # two consoles, each with its own trail
    web1, web2 = lab.url("www", "web1"), lab.url("www", "web2")
    assert set(send(web1, 30, client_ip="203.0.113.9")) == {200}
    assert set(send(web2, 20, client_ip="198.51.100.7", path="/nope")) == {404}
    # Logs and the audit trail tell time to the second: start the block in the next second, or
    # requests of the block's own second count as after it (CI saw 30 before, not 50).
    time.sleep(1.02 - time.time() % 1)
    bob.ok("block", "www", "203.0.113.0/24", "--reason", "flood", "--yes")
    assert set(send(web1, 25, client_ip="203.0.113.9")) == {403}
    assert set(send(web2, 10, client_ip="198.51.100.7")) == {200}

    html = tmp_path / "incident.html"
    out = json.loads(alice.ok("report", "--service", "www", "--since", "1h", "--json"))
    www = out["services"]["www"]
    truth = logged(lab, "www")
    ours = [r for r in truth if r[1] in ("203.0.113.9", "198.51.100.7")]
    assert len(ours) == 85  # what was sent; the rest are the site probes after the change
    # the timeline: every minute as the logs have it, the refusals where they were
    per_minute = {m["minute"]: m for m in www["timeline"]}
    for t in {t - t % 60 for t, _, _ in truth}:
        m = per_minute[datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
        assert m["requests"] == sum(1 for u, _, _ in truth if u - u % 60 == t)
    assert sum(m["requests"] for m in www["timeline"]) == len(truth)
    assert sum(m["refused"] for m in www["timeline"]) == 25
    assert sum(m["status"]["4xx"] for m in www["timeline"]) == 45
    assert max(m["unique_ips"] for m in www["timeline"]) >= 2
    # the action, once for both servers, with the traffic before and after it
    (action,) = [a for a in www["actions"] if a["action"] == "block 203.0.113.0/24"]
    assert action["operator"] == "bob"  # from the servers' trails: alice's console never saw it
    assert action["servers"] == {"web1": "ok", "web2": "ok"}
    t = epoch(action["time"])
    before = [r for r in truth if t - 300 <= r[0] < t]
    after = [r for r in truth if r[0] >= t]
    assert action["before"]["requests"] == len(before) >= 50 and action["before"]["refused"] == 0
    assert action["after"]["requests"] == len(after) and action["after"]["refused"] == 25
    assert action["after"]["passed"] == len(after) - 25 >= 10
    assert action["after"]["refused_share"] > 0.5
    # the rules in force now, from every server
    assert www["controls"]["servers"]["web2"]["blocks"][0]["target"] == "203.0.113.0/24"
    assert www["stage"] == "protected" and www["stage_reason"] == "1 block"  # serving, guarded
    assert www["estimated"] is False and out["unread"] == {}

    text = alice.ok("report", "--service", "www", "--since", "1h", "--html", str(html))
    assert "## www" in text and "block 203.0.113.0/24" in text and "web1 ok, web2 ok" in text
    assert "refused 0.0 % (0)" in text and "(25)" in text  # before and after, in words
    assert "- block 203.0.113.0/24 — flood" in text  # in force now
    assert "Stage now: **protected** — protected since " in text
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3
    assert "block 203.0.113.0/24" in page
    assert not re.search(r"https?://|\b(src|href)\s*=|@import|url\(", page)  # self-contained


def test_an_unreachable_server_is_named_and_the_others_are_reported(
    lab: Lab, tmp_path: Path
) -> None:
    data = tomllib.loads(lab.config_path.read_text())
    data["servers"]["dead"] = {**data["servers"]["web2"], "port": 1}
    data["services"]["forums"]["servers"] = ["web2", "dead"]
    data["services"]["gone"] = {**data["services"]["forums"], "servers": ["dead"]}
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(data))
    op = Operator(lab, "carol")
    op.config = config
    assert set(send(lab.url("forums", "web2"), 7, client_ip="192.0.2.44")) == {200}

    result = op.run("report", "--service", "forums", "--since", "30m", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    forums = out["services"]["forums"]
    assert forums["servers"]["web2"]["read"] and not forums["servers"]["dead"]["read"]
    assert forums["requests"] >= 7 and "dead" in out["unread"]
    assert "dead" in result.stderr and "Traceback" not in result.stderr
    text = op.run("report", "--service", "forums", "--since", "30m")
    assert "**Not read**" in text.stdout and "- dead:" in text.stdout
    assert "web2 read whole" in text.stdout

    nothing = op.run("report", "--service", "gone", "--since", "30m")
    assert nothing.returncode == 1  # no server could be read
    assert "dead" in nothing.stdout and "Traceback" not in nothing.stderr


def traffic_lines(minutes: int, per_minute: int, end: int) -> tuple[str, list[int]]:
    """``minutes`` of combined log lines up to ``end``, the rate climbing from ``per_minute``
    and falling back, one request in five refused; and the true count of each minute."""
    counts, lines = [], []
    for m in range(minutes):
        n = per_minute + 8 * per_minute * min(m, minutes - m) // minutes
        counts.append(n)
        for i in range(n):
            t = datetime.fromtimestamp(end - 60 * (minutes - m) + 60 * i / n, UTC)
            status = 403 if i % 5 == 0 else 200
            lines.append(
                f'10.{m}.{i % 200}.{i % 3} - - [{t:%d/%b/%Y:%H:%M:%S +0000}] "GET /p/{i} '
                f'HTTP/1.1" {status} 512 "-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"\n'
            )
    return "".join(lines), counts


async def test_a_log_too_long_to_read_whole_is_sampled_and_its_numbers_said_to_be_estimates(
    lab: Lab, tmp_path: Path
) -> None:
    # a service on both servers whose log is long on web1 and short on web2
    data = tomllib.loads(lab.config_path.read_text())
    data["services"]["mixed"] = {
        **data["services"]["www"], "access_log": str(tmp_path / "mixed-{server}.log")
    }  # fmt: skip
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(data))
    end = int(time.time()) // 60 * 60 - 60
    long, truth = traffic_lines(40, 300, end)
    short, few = traffic_lines(10, 2, end)
    (tmp_path / "mixed-web1.log").write_text(long)
    (tmp_path / "mixed-web2.log").write_text(short)
    truth[-10:] = [a + b for a, b in zip(truth[-10:], few, strict=True)]

    session = Session(load_config(str(config)))
    try:
        report = await session.report(["mixed"], since=3600, read_limit=2 << 20)
    finally:
        await session.close()
    (mixed,) = report.services
    web1, web2 = mixed.servers["web1"], mixed.servers["web2"]
    assert web1.sampled and web1.error is None and web1.read < web1.size / 2
    assert not web2.sampled and web2.read == web2.size == len(short)  # short: read whole
    assert mixed.estimated and mixed.to_dict()["estimated_fields"]
    busy = [m for m in mixed.minutes if m.requests]
    assert abs(sum(m.requests for m in busy) - sum(truth)) < 0.05 * sum(truth)
    for m, n in zip(busy[-len(truth) :], truth, strict=True):
        assert abs(m.requests - n) <= 0.25 * n, (m.start, m.requests, n)
        assert abs(m.refused - n / 5) <= 0.3 * n / 5 + 5
    text = render_markdown(report)
    assert "Estimates:" in text and "web1 sampled" in text and "web2 read whole" in text


def test_maintenance_answers_show_as_a_degraded_period_with_its_503s(lab: Lab) -> None:
    alice = Operator(lab)
    site = lab.url("git", "web2")
    assert set(send(site, 12, client_ip="192.0.2.60")) == {200}
    alice.ok("maintenance", "git", "on", "--allow", "none", "--yes")
    assert set(send(site, 30, client_ip="192.0.2.61")) == {503}
    out = json.loads(alice.ok("report", "--service", "git", "--since", "15m", "--json"))
    git = out["services"]["git"]
    unavailable = sum(1 for _, _, status in logged(lab, "git") if status == 503)
    assert unavailable >= 30  # what was sent, and the site's probe after the change
    assert sum(m["503"] for m in git["timeline"]) == unavailable
    assert sum(m["status"]["5xx"] for m in git["timeline"]) == unavailable
    (period,) = git["degraded"]
    assert period["503"] >= 20 and "5xx" in period["why"] and period["peak_5xx_share"] > 0.4
    assert period["to"] is None  # still in maintenance at the end of the log
    (action,) = git["actions"]
    assert action["action"].startswith("maintenance on")
    assert action["after"]["503"] == unavailable and action["before"]["503"] == 0
    assert git["controls"]["servers"]["web2"]["maintenance"]["on"] is True
    assert git["stage"] == "closed"  # where it stands now: the maintenance page for everyone


def test_a_site_logging_in_its_own_format_is_reported_the_same(lab: Lab) -> None:
    site = lab.url("repo", "web1")
    assert set(send(site, 6, client_ip="2001:db8:5::1")) == {200}
    assert set(send(site, 3, client_ip="2001:db8:5::2", path="/missing")) == {404}
    out = json.loads(Operator(lab).ok("report", "--service", "repo", "--since", "15m", "--json"))
    repo = out["services"]["repo"]
    assert repo["requests"] == 9 and repo["servers"]["web1"]["read"]
    assert sum(m["status"]["4xx"] for m in repo["timeline"]) == 3
    assert max(m["unique_ips"] for m in repo["timeline"]) >= 1
    assert sum(m["new_ips"] for m in repo["timeline"]) == 2


async def test_a_period_that_began_before_the_log_rotated_is_read_from_both_files(
    lab: Lab, tmp_path: Path
) -> None:
    data = tomllib.loads(lab.config_path.read_text())
    data["services"]["rotated"] = {
        **data["services"]["www"], "access_log": str(tmp_path / "rotated-{server}.log")
    }  # fmt: skip
    config = tmp_path / "config.toml"
    config.write_text(tomli_w.dumps(data))
    end = int(time.time()) // 60 * 60 - 60
    lines, truth = traffic_lines(30, 20, end)
    cut = len(lines.splitlines(keepends=True)) * 2 // 3  # logrotate ran two thirds in
    older, newer = lines.splitlines(keepends=True)[:cut], lines.splitlines(keepends=True)[cut:]
    (tmp_path / "rotated-web1.log.1").write_text("".join(older))
    (tmp_path / "rotated-web1.log").write_text("".join(newer))
    (tmp_path / "rotated-web2.log").write_text("")  # web2 logged nothing

    session = Session(load_config(str(config)))
    try:
        report = await session.report(["rotated"], since=3600)
    finally:
        await session.close()
    (rotated,) = report.services
    web1 = rotated.servers["web1"]
    assert web1.error is None and not web1.sampled and not rotated.estimated
    assert web1.files == (str(tmp_path / "rotated-web1.log.1"), str(tmp_path / "rotated-web1.log"))
    assert [m.requests for m in rotated.minutes if m.requests] == truth  # every minute, exact
    assert sum(m.refused for m in rotated.minutes) == sum(n // 5 + (n % 5 > 0) for n in truth)
    assert " from " in render_markdown(report)
