"""A labelled scenario in the live lab: its past in the logs at once, its window sent live.

Integration tests (marker ``lab``): each starts its own lab in ``tmp_path`` and stops it.  They
check what an operator rehearsing with ``opsconsole lab up --scenario`` relies on: ``suggest``
finds a baseline in the logs as soon as the lab is up, the live requests arrive with the statuses
of their labels, the operator's controls really refuse them, the labels are the ground truth of
every line, and ``lab down`` leaves nothing running.  Waits are generous waits-until; nothing is
timed.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil
import pytest
from test_lab import cli as lab_cli
from test_lab import wait_for

from opsconsole.cli import main
from opsconsole.cli.demo import demo_note
from opsconsole.lab import Lab
from opsconsole.lab.registry import registry_dir
from opsconsole.lab.replay import sites_from_state
from opsconsole.lab.scenarios import SCENARIOS, LabeledRequest, generate
from opsconsole.lab.sender import Job, Outcome, Sender
from opsconsole.lab.served import Served

pytestmark = pytest.mark.lab

SMALL = 0.05
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
LINE = re.compile(rb'^(\S+) - \S+ \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+) ')

cli = functools.partial(lab_cli, timeout=120)  # `lab up` writes the scenario's past first

Key = tuple[str, str, str, str, str]
"""(server, service, client, request, status) of a log line or a label."""


def epoch(time_local: bytes) -> float:
    """``01/Dec/2026:23:50:04 +0000`` as epoch seconds."""
    day, month, rest = time_local.decode().split("/", 2)
    year, hh, mm, ss_zone = rest.split(":", 3)
    ss, zone = ss_zone.split(" ")
    offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * 60 * (-1 if zone[0] == "-" else 1)
    tm = (int(year), MONTHS.index(month) + 1, int(day), int(hh), int(mm), int(ss), 0, 0, 0)
    return calendar.timegm(tm) - offset


def log_lines(lab_dir: Path) -> dict[Key, list[float]]:
    """Every access-log line of the lab: its key, and the times it was logged at."""
    state = json.loads((lab_dir / "lab.json").read_text())
    found: dict[Key, list[float]] = defaultdict(list)
    for service, svc in state["services"].items():
        for server in svc["servers"]:
            log = lab_dir / "servers" / server / "logs" / f"{service}.access.log"
            for line in log.read_bytes().splitlines():
                m = LINE.match(line)
                assert m, line
                client, when, request, status = (m.group(i) for i in (1, 2, 3, 4))
                key = (server, service, client.decode(), request.decode(), status.decode())
                found[key].append(epoch(when))
    return found


def labels(lab_dir: Path) -> list[dict[str, str]]:
    rows = (lab_dir / "scenario" / "labels.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    return [dict(zip(header, row.split("\t"), strict=True)) for row in rows[1:]]


def key(row: dict[str, str], status: str | None = None) -> Key:
    return (
        row["server"],
        row["service"],
        row["client"],
        row["request"],
        status or row["status"],
    )


def test_lab_up_with_a_scenario_writes_its_past_sends_its_window_live_and_lab_down_stops_it(
    tmp_path: Path,
) -> None:
    lab_dir = tmp_path / "lab"
    config = str(lab_dir / "config.toml")
    up = cli(
        *("lab", "up", "--dir", str(lab_dir), "--scenario", "botnet-ua"),
        *("--scale", str(SMALL), "--flood-after", "3"),
    )
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout == f"{config}\n"
        assert "scenario botnet-ua" in up.stderr
        assert str(lab_dir / "scenario" / "labels.tsv") in up.stderr
        state = json.loads((lab_dir / "lab.json").read_text())
        pids = {name: p["pid"] for name, p in state["processes"].items()}
        assert "traffic" in pids
        run = state["scenario"]
        assert (run["name"], run["scale"], run["flood_after"]) == ("botnet-ua", SMALL, 3.0)
        assert run["attack_at"] == pytest.approx(run["live_start"] + 3.0)

        # The past is in the logs at once: the last 30 minutes (and the event's lead-in), each
        # line as the labels say, on the servers of its site.  (The live part has begun too:
        # the second the past ends in is left out.)
        logged = log_lines(lab_dir)
        past = [r for r in labels(lab_dir) if r["part"] == "baseline"]
        assert len(past) == run["baseline_lines"] > 1000
        cut = int(run["live_start"])
        assert all(float(r["time"]) < run["live_start"] for r in past)
        assert Counter(key(r) for r in past if float(r["time"]) < cut) == Counter(
            {k: n for k, ts in logged.items() if (n := sum(t < cut for t in ts))}
        ), "before the live part, the logs hold exactly the labelled past"
        times = [t for ts in logged.values() for t in ts]
        assert run["live_start"] - 1800 - 600 <= min(times) <= run["live_start"] - 1700
        state_servers = {s: tuple(v["servers"]) for s, v in state["services"].items()}
        by_site: dict[str, set[str]] = defaultdict(set)
        for r in past:
            by_site[r["service"]].add(r["server"])
        assert {s: tuple(sorted(v)) for s, v in by_site.items()} == state_servers
        assert all(r["status"] == r["answered"] for r in past)

        status = json.loads(cli("lab", "status", "--json", "--dir", str(lab_dir)).stdout)
        assert status["running"] is True
        assert status["scenario"]["name"] == "botnet-ua"

        # Live: the window's requests reach nginx and are logged with their labels' statuses,
        # the attack's too.
        def live_logged() -> list[dict[str, str]]:
            rows = [r for r in labels(lab_dir) if r["part"] == "window"]
            now = log_lines(lab_dir)
            return [r for r in rows if now.get(key(r), [])]

        assert wait_for(lambda: any(r["attack"] == "1" for r in live_logged()), 45), (
            lab_dir / "traffic.log"
        ).read_text()
        live = live_logged()
        assert all(r["answered"] == r["status"] for r in live)
        assert {r["status"] for r in live} >= {"200"}
        now = log_lines(lab_dir)
        for r in live:  # each sent at its time (generously: this machine is shared)
            assert any(float(r["time"]) - 1 <= t <= float(r["time"]) + 30 for t in now[key(r)])

        # The operator refuses everything on www: the replay's requests there now get 403.
        block = cli(
            *("filter", "www", "--path", "^/", "--reason", "rehearsal", "--yes"),
            *("--config", config),
        )
        assert block.returncode == 0, block.stderr

        def refused() -> list[dict[str, str]]:
            return [
                r
                for r in labels(lab_dir)
                if r["part"] == "window" and r["service"] == "www" and r["answered"] == "403"
            ]

        assert wait_for(lambda: bool(refused()), 45), (lab_dir / "traffic.log").read_text()
        row = refused()[0]
        assert row["status"] != "403"  # the label keeps what the site would have answered
        assert wait_for(lambda: bool(log_lines(lab_dir).get(key(row, "403"))), 10)
    finally:
        down = cli("lab", "down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert cli("lab", "status", "--dir", str(lab_dir)).returncode == 1


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_an_unknown_scenario_is_refused_with_the_list_of_scenarios_and_nothing_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab_dir = tmp_path / "lab"
    before = sorted(registry_dir().glob("*.json")) if registry_dir().exists() else []
    result = cli("lab", "up", "--dir", str(lab_dir), "--scenario", "slowloris")
    demo = subprocess.CompletedProcess(
        ["demo"], main(["demo", "--dir", str(lab_dir), "--scenario", "slowloris"]), "", ""
    )
    demo.stdout, demo.stderr = capsys.readouterr()
    for run in (result, demo):
        assert run.returncode == 2, run.stderr
        assert run.stdout == ""
        message = run.stderr.strip()
        assert len(message.splitlines()) == 1 and "Traceback" not in message
        assert "slowloris" in message
        assert all(name in message for name in SCENARIOS)
    assert not lab_dir.exists()
    after = sorted(registry_dir().glob("*.json")) if registry_dir().exists() else []
    assert after == before


@pytest.mark.parametrize(
    "args",
    [
        ["--scenario", "quiet", "--scale", "0"],
        ["--scenario", "quiet", "--scale", "3"],
        ["--scenario", "quiet", "--no-traffic"],
        ["--scenario", "quiet", "--flood-rps", "50"],
        ["--scenario", "quiet", "--flood-after", "4000"],
        ["--scale", "0.5"],
    ],
)
def test_bad_scenario_options_are_refused_before_anything_starts(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "up", "--dir", str(tmp_path / "lab"), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "lab").exists()


def test_a_request_sent_live_is_logged_exactly_as_its_past_twin_was_written(
    tmp_path: Path,
) -> None:
    """The past written into the logs is indistinguishable from what nginx logs: every kind of
    request of every scenario, sent live, gives the line :class:`Served` writes (but for the
    time and ``$request_time``), in ``combined`` and in the repo site's own format."""
    sample: list[LabeledRequest] = []
    for name in SCENARIOS:
        kinds: dict[tuple[str, int, str, bool], list[LabeledRequest]] = defaultdict(list)
        for r in generate(name, seed=2, scale=0.02, start=time.time() - 2400):
            kinds[r.service, r.status, r.method, "MSIE " in r.user_agent].append(r)
        sample += [r for group in kinds.values() for r in group[:: max(1, len(group) // 3)]]
    assert {r.status for r in sample} >= {200, 304, 400, 404}
    with Lab.start(tmp_path / "lab", traffic=False) as lab:
        sites = sites_from_state(json.loads(lab.layout.state_file.read_text()))
        served = Served(lab.layout, {name: site.log_format for name, site in sites.items()})
        ports = {(n, srv): port for n, site in sites.items() for srv, port in site.ports.items()}
        done: list[tuple[Job, Outcome]] = []
        lock = threading.Lock()

        def record(job: Job, outcome: Outcome, sent_at: float) -> None:
            with lock:
                done.append((job, outcome))

        sender = Sender(ports, served, record, workers=2)
        for r in sample:
            assert sender.submit(Job(r, sites[r.service].server_for(r.client_ip), 0.0, "window"))
        assert wait_for(lambda: len(done) == len(sample), 60)
        sender.close()
        assert [(j.req, o) for j, o in done if o != j.req.status] == []
        for service, site in sites.items():
            for server in site.servers:
                log = lab.access_log(service, server).read_bytes()
                logged = {_timeless(line) for line in log.splitlines()}
                wrote = [
                    _timeless(served.line(j.req, server, time.time()))
                    for j, _ in done
                    if (j.req.service, j.server) == (service, server)
                ]
                assert [w for w in wrote if w not in logged] == [], (service, server)


def _timeless(line: bytes) -> bytes:
    line = re.sub(rb"\[[^\]]+\]", b"[]", line, count=1)
    return re.sub(rb' \d+\.\d{3} ("[^"]*")$', rb" 0.000 \1", line.rstrip(b"\n"))


def test_the_demo_header_says_when_the_flood_comes_and_since_when_it_runs() -> None:
    lab_dir = Path("/tmp/lab")
    flood_at = time.time() + 20
    assert demo_note(lab_dir, flood_at, flood_at - 12.2) == f"demo lab in {lab_dir} · flood in 12s"
    since = time.strftime("%H:%M:%S", time.localtime(flood_at))
    assert demo_note(lab_dir, flood_at, flood_at + 5).endswith(f"flood since {since}")
    assert demo_note(lab_dir, flood_at, flood_at + 5, event="flash crowd").endswith(
        f"flash crowd since {since}"
    )
    assert demo_note(lab_dir, None, flood_at).endswith("no attack in this scenario")
