"""The incident report's logic (issue 10): the per-minute timeline from log lines, the estimate of
a sampled long log, degraded and recovered periods, each action's traffic before and after, and
the three renderings (Markdown, self-contained HTML, JSON) — and the command's refusals of bad
input, run on a service of this machine (``host = "local"``: no SSH)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsconsole.cli import main
from opsconsole.controls.report import ControlsReport, ServerControls
from opsconsole.controls.state import Block, ControlState
from opsconsole.detect import Analysis, Rule, Suggestion
from opsconsole.report import (
    LogTraffic,
    Minute,
    Report,
    ServerRead,
    ServiceFacts,
    build_report,
    render_html,
    render_markdown,
)
from opsconsole.report.incident import degraded_periods, group_actions
from opsconsole.report.reading import chunk_offsets

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_764_680_400  # 2025-12-02 13:00:00 UTC, a whole minute


def line(t: float, ip: str = "198.51.100.1", status: int = 200, path: str = "/") -> bytes:
    stamp = datetime.fromtimestamp(t, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{ip} - - [{stamp}] "GET {path} HTTP/1.1" {status} 10 "-" "curl/8"\n'.encode()


def traffic_of(lines: list[bytes], start: int = T0, end: int = T0 + 600) -> LogTraffic:
    traffic = LogTraffic("combined", start, end)
    traffic.log.add_chunk(b"".join(lines), "web1")
    return traffic


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_each_minute_counts_requests_status_classes_refusals_503s_and_new_ips() -> None:
    lines = [line(T0 + 1, "10.0.0.1"), line(T0 + 2, "10.0.0.2", 404), line(T0 + 59, "10.0.0.1")]
    lines += [line(T0 + 61, "10.0.0.1", 403), line(T0 + 62, "10.0.0.3", 444)]
    lines += [line(T0 + 63, "10.0.0.4", 429), line(T0 + 64, "10.0.0.5", 503)]
    minutes = traffic_of(lines).minutes(T0, T0 + 179)
    assert [m.start for m in minutes] == [T0, T0 + 60, T0 + 120]
    first, second, third = minutes
    assert (first.requests, first.classes, first.refused) == (3, (0, 2, 0, 1, 0), 0)
    assert (first.unique_ips, first.new_ips) == (2, 2)
    assert (second.requests, second.refused, second.unavailable) == (4, 3, 1)
    assert second.classes == (0, 0, 0, 3, 1)
    assert (second.unique_ips, second.new_ips) == (4, 3)  # 10.0.0.1 was seen the minute before
    assert third.requests == 0 and third.unique_ips == 0


def synthetic_log(minutes: int) -> tuple[bytes, list[int]]:
    """A log whose rate climbs from 60 to ~2000 requests a minute and back; the true counts."""
    out, counts = [], []
    for m in range(minutes):
        n = 60 + int(1940 * (1 - abs(m - minutes / 2) / (minutes / 2)))
        counts.append(n)
        for i in range(n):
            status = 403 if i % 4 == 0 else 200
            out.append(line(T0 + 60 * m + 60 * i / n, f"10.{m}.{i % 250}.{i % 7}", status))
    return b"".join(out), counts


def test_a_long_log_read_in_spaced_chunks_estimates_every_minute_and_says_so() -> None:
    data, truth = synthetic_log(30)
    offsets, length = chunk_offsets(0, len(data), len(data) // 5, 30)
    assert len(offsets) >= 60 and len(offsets) * length < len(data) / 4  # most is not read
    traffic = LogTraffic("combined", T0, T0 + 1799)
    traffic.add_sample("web1", [(o, data[o : o + length]) for o in offsets])
    assert traffic.gaps  # what was skipped is estimated, not dropped
    minutes = traffic.minutes(T0, T0 + 1799)
    assert abs(sum(m.requests for m in minutes) - sum(truth)) < 0.05 * sum(truth)
    for m, n in zip(minutes, truth, strict=True):
        assert abs(m.requests - n) <= 0.25 * n + 20, (m.start, m.requests, n)
        assert abs(m.refused - n / 4) <= 0.3 * n / 4 + 10
    assert sum(m.unique_ips for m in minutes) < sum(truth)  # a lower bound: the lines read


def test_a_log_that_fits_the_budget_is_read_in_contiguous_chunks_and_counted_exactly() -> None:
    data, truth = synthetic_log(6)
    offsets, length = chunk_offsets(0, len(data), len(data) + 1, 6)
    traffic = LogTraffic("combined", T0, T0 + 359)
    small = 1000  # chunk borders fall inside lines: they are joined, not lost
    chunks = [(o, data[o : o + small]) for o in range(0, len(data), small)]
    traffic.add_sample("web1", chunks)
    assert offsets == [0] and length == len(data)
    assert not traffic.gaps
    assert [m.requests for m in traffic.minutes(T0, T0 + 359)] == truth


def minute(start: int, requests: int, errors: int = 0, refused: int = 0) -> Minute:
    classes = (0, requests - errors - refused, 0, refused, errors)
    return Minute(start, requests, classes, refused, errors, 1, 0)


def test_degraded_starts_at_the_first_bad_minute_and_recovers_after_two_healthy_ones() -> None:
    shape = [(100, 0, 0), (100, 30, 0), (100, 0, 0), (100, 0, 50), (100, 0, 0), (100, 0, 0)]
    shape += [(100, 90, 0)]
    minutes = [minute(T0 + 60 * i, *s) for i, s in enumerate(shape)]
    first, second = degraded_periods(minutes)
    # one healthy minute between two bad ones does not end the period
    assert (first.start, first.end, first.minutes) == (T0 + 60, T0 + 240, 2)
    assert first.why == ("5xx", "refused") and first.peak_refused_share == 0.5
    assert (second.start, second.end) == (T0 + 360, None)  # not recovered by the end


def test_a_minute_with_few_requests_judges_nothing_and_a_quiet_period_is_not_degraded() -> None:
    minutes = [minute(T0, 5, errors=5), minute(T0 + 60, 100), minute(T0 + 120, 200, errors=2)]
    assert degraded_periods(minutes) == []


def events(action: str, t: int, *servers: str, result: str = "ok") -> list[dict[str, object]]:
    return [
        {"time": iso(t), "operator": "alice", "service": "www", "server": s, "action": action,
         "result": result}
        for s in servers
    ]  # fmt: skip


def test_an_action_on_two_servers_is_one_action_with_the_traffic_before_and_after() -> None:
    t = T0 + 300
    lines = [line(T0 + 10 + i, "10.0.0.9") for i in range(280)]  # before: everything passes
    lines += [line(t + i, "10.0.0.9", 403) for i in range(100)]  # after: refused…
    lines += [line(t + 100 + i, "10.0.0.1") for i in range(50)]  # …and what it let through
    traffic = traffic_of(lines)
    evs = events("block 10.0.0.9", t, "web1", "web2") + events("limit off", t + 10, "web1")
    evs += [dict(evs[0], service="shop")]  # another service's event is not this one's
    block, limit = group_actions(evs, "www", traffic)
    assert block.results == {"web1": "ok", "web2": "ok"} and block.ok
    assert (block.before.requests, block.before.refused, block.before.seconds) == (280, 0, 290)
    assert (block.after.requests, block.after.refused, block.after.passed) == (150, 100, 50)
    assert block.after.refused_share == pytest.approx(100 / 150)
    assert limit.action == "limit off"


def analysis_recommending(command: str) -> Analysis:
    rule = Rule("block", targets=("198.18.0.0/15",))
    s1 = Suggestion("s1", "block", rule, 0.9, 0.001, 1, 0.8, True, "…", (), command)
    s2 = Suggestion("s2", "block", rule, 0.1, 0.2, 9, 0.1, False, "…", (), "not this one")
    return Analysis("www", 600, 1800, "ok", suggestions=(s1, s2))


def sample_report(
    events_: list[dict[str, object]], lines: list[bytes], analysis: Analysis | None = None
) -> Report:
    state = ControlState(version=3, blocks=(Block("10.0.0.0/24", "flood | <b>x</b>", "alice"),))
    controls = ControlsReport("www", {"web1": ServerControls("web1", state)})
    traffic = traffic_of(lines)
    traffic.servers["web1"] = ServerRead("web1", size=100, read=100)
    facts = [ServiceFacts("www", traffic, controls, analysis)]
    return build_report(facts, events_, since=600, start=T0, end=T0 + 600)


def test_markdown_and_html_tell_the_same_facts_and_escape_what_operators_typed() -> None:
    lines = [line(T0 + i, "10.0.0.9", 503 if i > 100 else 200) for i in range(200)]
    command = "opsconsole block www 198.18.0.0/15 --reason 'flood'"
    report = sample_report(
        events("block <script>|x", T0 + 150, "web1"), lines, analysis_recommending(command)
    )
    md = render_markdown(report)
    assert "## www" in md and "### Actions" in md
    assert re.search("[▁▂▃▄▅▆▇█]{3,}", md)  # the sparkline of the traffic
    assert "block \\<script\\>\\|x" in md  # a typed | cannot break the table, nor < open HTML
    assert "degraded" in md and "5xx up to" in md
    assert "flood \\| \\<b\\>x\\</b\\>" in md  # the controls in force, escaped
    assert "the last 10m against the 30m before" in md and f"  {command}\n" in md
    assert "not this one" not in md  # only the recommended set
    html = render_html(report)
    assert "<svg" in html and "<script" not in html and "&lt;script&gt;" in html
    assert not re.search(r"(src|href)\s*=|https?://|@import|url\(", html)  # nothing to fetch


def test_a_day_reads_as_24_rows_and_a_sparkline_of_72_characters() -> None:
    lines = [line(T0 + 600 * i, f"10.0.{i % 9}.1", 404 if i % 2 else 200) for i in range(144)]
    traffic = traffic_of(lines, end=T0 + 86399)
    facts = [ServiceFacts("www", traffic, None, None)]
    md = render_markdown(build_report(facts, [], since=86400, start=T0, end=T0 + 86399))
    rows = [r for r in md.splitlines() if re.match(r"\| \d\d:\d\d \|", r)]
    assert len(rows) == 24 and rows[1].startswith("| 14:00 | 6 |")  # 6 requests an hour
    assert "One row per 1h: unique IPs is the most in one of its minutes" in md
    (spark,) = [r for r in md.splitlines() if r.startswith("requests (peak")]
    assert len(spark.split()[-1]) == 72  # 20 minutes a character


def test_a_period_without_log_lines_or_events_says_so() -> None:
    report = sample_report([], [])
    md = render_markdown(report)
    assert "No request was logged in the period." in md
    assert "No control action was recorded in the period" in md
    out = report.to_dict()
    assert out["services"]["www"]["timeline"] == [] and out["services"]["www"]["actions"] == []


def test_report_json_carries_the_timeline_periods_actions_and_controls() -> None:
    lines = [line(T0 + i, "10.0.0.9", 403 if i >= 60 else 200) for i in range(120)]
    out = sample_report(events("block 10.0.0.9", T0 + 60, "web1"), lines).to_dict()
    www = out["services"]["www"]
    assert www["timeline"][0] == {
        "minute": iso(T0), "requests": 60, "status": {"1xx": 0, "2xx": 60, "3xx": 0, "4xx": 0,
        "5xx": 0}, "refused": 0, "503": 0, "unique_ips": 1, "new_ips": 1,
    }  # fmt: skip
    assert www["timeline"][1]["refused"] == 60
    assert www["degraded"][0]["from"] == iso(T0 + 60) and www["degraded"][0]["why"] == ["refused"]
    action = www["actions"][0]
    assert action["before"]["requests"] == 60 and action["after"]["refused"] == 60
    assert action["after"]["refused_share"] == 1.0
    assert www["controls"]["servers"]["web1"]["blocks"][0]["target"] == "10.0.0.0/24"
    assert www["estimated"] is False and www["servers"]["web1"]["sampled"] is False
    assert json.loads(json.dumps(out)) == out


# --- the command, on a service of this machine ------------------------------------------------


def local_config(tmp_path: Path, log: bytes | None) -> Path:
    access = tmp_path / "www.log"
    if log is not None:
        access.write_bytes(log)
    config = tmp_path / "config.toml"
    config.write_text(
        '[servers.here]\nhost = "local"\n[services.www]\nservers = ["here"]\n'
        f'access_log = "{access}"\ncontrol_dir = "{tmp_path}/control"\n'
        'nginx_test = "true -t"\nnginx_reload = "true"\n'
    )
    return config


def report_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", "--config", str(config), "report", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--since", "0s"], "--since"),
        (["--since", "8d"], "expected 1m to 7d"),
        (["--since", "yesterday"], "not a duration"),
        (["--service", "nope"], "no such service"),
        (["--html", "/nonexistent-dir/r.html"], "no such directory"),
        (["--html", "/"], "is a directory"),
        (["--html", "/proc/version"], "cannot write"),
    ],
)
def test_bad_input_is_refused_with_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    try:
        status = main(["--config", str(local_config(tmp_path, b"")), "report", *args])
    except SystemExit as e:  # argparse's own refusals
        status = int(e.code or 0)
    out, err = capsys.readouterr()
    assert status == 2, err
    assert says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert out == ""


def test_the_command_refuses_bad_input_before_reading_anything(tmp_path: Path) -> None:
    result = report_cli(local_config(tmp_path, None), "--since", "1y")
    assert result.returncode == 2
    assert result.stderr.startswith("opsconsole: --since: '1y' is not a duration")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_log_without_requests_in_the_period_is_reported_as_such(tmp_path: Path) -> None:
    old = line(time.time() - 7200)  # before the period
    result = report_cli(local_config(tmp_path, old), "--since", "30m")
    assert result.returncode == 0, result.stderr
    assert "No request was logged in the period." in result.stdout
    assert "No control action was recorded" in result.stdout


def test_no_readable_log_exits_1_and_says_which_server_and_why(tmp_path: Path) -> None:
    result = report_cli(local_config(tmp_path, None), "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert "www.log" in out["unread"]["here"] and "here" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_says_what_the_report_holds_and_its_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["report", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--since", "--service", "--html", "--json", "1m to 7d", "self-contained",
                  "estimates", "audit trails", "Exit status: 0", "1 no server's log"):  # fmt: skip
        assert words in text, words


def test_progress_goes_to_stderr_only_on_a_terminal_and_is_cleared(tmp_path: Path) -> None:
    config = local_config(tmp_path, line(time.time() - 30))
    argv = [sys.executable, "-m", "opsconsole", "--config", str(config), "report", "--json"]
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=follower, cwd=ROOT)  # fmt: skip
    os.close(follower)
    err = b""
    while chunk := _read(leader):
        err += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    assert b"www: reading the logs" in err and err.endswith(b"\r\x1b[K")  # the line is cleared
    assert json.loads(out)["services"]["www"]["requests"] == 1  # stdout stays clean JSON
    piped = report_cli(config, "--json")
    assert piped.returncode == 0  # not a terminal: no progress
    assert "reading the logs" not in piped.stderr and "\x1b[K" not in piped.stderr


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed its side
        return b""
