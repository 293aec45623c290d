"""The aggregating mode (DESIGN §4) over a real fleet: the agent runs under the lab's sshd as
``python3 -`` (nothing installed), and its summaries give the numbers raw mode gives on the
same lines — exactly while no second outgrows the cut-off, within the sketches' stated error
when a flood does.  A server without python3 stays raw and says so; ``auto`` hands a server to
the agent while the raw stream falls behind and back once it could keep up, without losing or
double-counting a line; the agent survives being killed and a log rotation; ``suggest`` reads
through it.  Real sshd, nginx, python3 on the "server"."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_pipeline_lab import through_kills_and_a_rotation

from opsconsole.config import load_config
from opsconsole.fleet import Fleet, ServicePipeline, server_state
from opsconsole.health.report import Status
from opsconsole.lab import Lab
from opsconsole.lab.scenarios import combined_line, generate
from opsconsole.session import Session, core
from opsconsole.stats.snapshot import Snapshot

pytestmark = pytest.mark.lab

STAMP = "%d/%b/%Y:%H:%M:%S +0000"


async def wait_until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def agents(lab: Lab, server: str) -> list[psutil.Process]:
    """The agent processes (``python3 - PARAMS``) under ``server``'s sshd."""
    found = []
    for proc in psutil.Process(lab.servers[server].sshd_pid).children(recursive=True):
        try:
            argv = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if len(argv) == 3 and argv[1] == "-" and argv[2].startswith('{"mode":"follow"'):
            found.append(proc)
    return found


def pipelines(fleet: Fleet, service: str) -> tuple[ServicePipeline, ServicePipeline]:
    """Two pipelines of ``service`` on the same logs: one raw, one aggregating."""
    svc = fleet.config.service(service)
    raw = ServicePipeline(fleet, dataclasses.replace(svc, mode="raw"), 600)
    agg = ServicePipeline(fleet, dataclasses.replace(svc, mode="aggregate"), 600)
    return raw, agg


def odd_lines(now: float) -> bytes:
    """What real logs hold besides clean lines: IPv6 and IPv4-mapped clients, bytes that are
    not UTF-8, binary garbage, blank lines, a month that does not exist."""
    t = time.strftime(STAMP, time.gmtime(now)).encode()
    return b"".join(
        [
            b'2001:db8:7::1 - - [%s] "GET /v6 HTTP/1.1" 200 5 "-" "curl/8"\n' % t,
            b'2001:db8:7::2 - - [%s] "GET /v6 HTTP/1.1" 404 5 "-" "curl/8"\n' % t,
            b'::ffff:198.51.100.9 - - [%s] "GET / HTTP/1.1" 200 5 "-" "m"\n' % t,
            b'203.0.113.5 - - [%s] "GET /caf\xe9 HTTP/1.1" 404 5 "-" "\xff\xfe agent"\n' % t,
            b"\x00\x01\x02 binary garbage \xff\n",
            b"\n",
            b'203.0.113.6 - - [01/Foo/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "x"\n',
        ]
    )


def same_numbers(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """The fields of two snapshots that differ (time aside)."""
    fields = (
        "requests", "unparsed", "unique_ips", "status", "servers", "per_second", "classes",
        "estimated", "top_ips", "top_subnets", "top_paths", "top_user_agents", "new_ips_per_s",
    )  # fmt: skip
    diff = {f: (getattr(a, f), getattr(b, f)) for f in fields if getattr(a, f) != getattr(b, f)}
    if sorted(a.unparsed_samples) != sorted(b.unparsed_samples):
        diff["unparsed_samples"] = (a.unparsed_samples, b.unparsed_samples)
    return diff


async def snapshots(raw: ServicePipeline, agg: ServicePipeline) -> tuple[Snapshot, Snapshot]:
    while True:  # both in the same second (rates and the window are by the clock)
        a, b = await raw.refresh(), await agg.refresh()
        if a.time_to == b.time_to:
            return a, b


async def test_the_agents_summaries_give_the_numbers_raw_mode_gives(tmp_path: Path) -> None:
    """A labelled scenario (30 minutes of browsing, then a flood) in two servers' logs with
    what real logs hold besides: both modes show the same numbers, field for field."""
    lab = Lab.start(tmp_path / "lab", traffic=False)
    fleet = Fleet(load_config(str(lab.config_path)))
    raw, agg = pipelines(fleet, "www")
    try:
        now = time.time()
        made = generate("botnet-ua", seed=5, scale=0.05, start=now - 2410, services=["www"])
        reqs = sorted(made, key=lambda r: r.time)  # as nginx writes them
        for i, server in enumerate(("web1", "web2")):
            with lab.access_log("www", server).open("ab") as f:
                f.write(b"".join(combined_line(r) for r in reqs[i::2]) + odd_lines(now - 30))
        raw.start(publish=False)
        agg.start(publish=False)
        await wait_until(
            lambda: all(f.connected for f in (*raw.feeds.values(), *agg.feeds.values()))
        )
        in_window = sum(1 for r in reqs if r.time > now - 600) + 2 * 4
        await wait_until(
            lambda: agg.window.requests >= in_window and raw.window.requests >= in_window
        )
        # And the live part: lines appended while both follow.
        for i in range(20):
            t = time.strftime(STAMP, time.gmtime()).encode()
            line = b'198.18.%d.%d - - [%s] "GET /live/%d HTTP/1.1" 404 9 "-" "bot"\n'
            with lab.access_log("www", ("web1", "web2")[i % 2]).open("ab") as f:
                f.write(b"".join(line % (i, j, t, j) for j in range(10)))
            await asyncio.sleep(0.05)
        total = in_window + 20 * 10
        await wait_until(lambda: agg.window.requests >= total and raw.window.requests >= total)
        await asyncio.sleep(1.5)
        a, b = await snapshots(raw, agg)
        expected = sum(1 for r in reqs if a.time_from < int(r.time) <= a.time_to) + 2 * 4 + 200
        assert a.requests == expected and a.unparsed == 2 * 2  # garbage, month "Foo": per server
        for p in (raw, agg):  # two per server
            assert p.window.nets.counts[b"2001:db8:7::/48"] == 4
            assert p.window.top["agent"].counts[b"\xff\xfe agent"] == 2
        assert same_numbers(a, b) == {}
        assert {s: f.mode for s, f in agg.feeds.items()} == {
            "web1": "aggregate",
            "web2": "aggregate",
        }
        assert {s: f.mode for s, f in raw.feeds.items()} == {"web1": "raw", "web2": "raw"}
        status, detail = server_state(fleet.pool.status("web1"), agg.feeds["web1"])
        assert (status, detail) == (Status.OK, "aggregating on the server")
        out = b.to_json(agg.connected(), None, agg.behind(), agg.modes())
        assert (
            out["servers"]["web1"]["mode"] == "aggregate"
            and "mode_note" not in out["servers"]["web1"]
        )
    finally:
        await raw.stop()
        await agg.stop()
        await fleet.close()
        lab.stop()


async def test_a_flood_of_distinct_clients_is_within_the_sketches_error(tmp_path: Path) -> None:
    """Seconds of 6,000 distinct clients each, more than a second keeps: both modes cut the
    tail, so the unique-IP count is a sketch's estimate, labelled so, within its stated error
    (1/sqrt(1024), about 3 %, here checked at 3 sigma) of the truth; requests and status codes
    stay exact, and the heavy hitter is the same with the same count."""
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    fleet = Fleet(load_config(str(lab.config_path)))
    raw, agg = pipelines(fleet, "shop")
    rng = random.Random(7)
    try:
        raw.start(publish=False)
        agg.start(publish=False)
        await wait_until(lambda: raw.feeds["web1"].connected and agg.feeds["web1"].connected)
        clients: set[str] = set()
        written = 0
        for _ in range(4):
            t = time.strftime(STAMP, time.gmtime()).encode()
            lines = []
            for j in range(6000):
                ip = ".".join(str(rng.randrange(1, 224 if k == 0 else 255)) for k in range(4))
                clients.add(ip)
                lines.append(
                    b'%s - - [%s] "GET /%d HTTP/1.1" 404 9 "-" "x"\n' % (ip.encode(), t, j)
                )
            lines += [b'198.51.100.7 - - [%s] "GET / HTTP/1.1" 200 9 "-" "heavy"\n' % t] * 500
            with lab.access_log("shop", "web1").open("ab") as f:
                f.write(b"".join(lines))
            written += len(lines)
            await asyncio.sleep(1.0)
        await wait_until(lambda: raw.window.requests >= written and agg.window.requests >= written)
        await asyncio.sleep(1.5)
        a, b = await snapshots(raw, agg)
        assert a.requests == b.requests == written
        assert a.status == b.status and a.per_second == b.per_second
        assert a.top_ips[0] == b.top_ips[0] and a.top_ips[0].key == "198.51.100.7"
        assert a.top_ips[0].requests == b.top_ips[0].requests == 2000
        for snap in (a, b):
            assert snap.estimated.get("unique_ips"), snap.estimated
            assert abs(snap.unique_ips - len(clients)) <= 3 * len(clients) / 32, (
                snap.unique_ips,
                len(clients),
            )
    finally:
        await raw.stop()
        await agg.stop()
        await fleet.close()
        lab.stop()


async def test_a_server_without_python3_stays_raw_and_says_so(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=False)
    cfg = lab.config_path.read_text()
    data = load_config(str(lab.config_path))
    web2 = dataclasses.replace(data.servers["web2"], python="python3-not-installed")
    config = dataclasses.replace(data, servers={**data.servers, "web2": web2})
    fleet = Fleet(config)
    svc = dataclasses.replace(config.service("www"), mode="aggregate")
    pipeline = ServicePipeline(fleet, svc, 600)
    try:
        pipeline.start(publish=False)
        await wait_until(lambda: all(f.connected for f in pipeline.feeds.values()))
        await wait_until(lambda: pipeline.feeds["web2"].note != "")
        t = time.strftime(STAMP, time.gmtime()).encode()
        for server in ("web1", "web2"):
            with lab.access_log("www", server).open("ab") as f:
                f.write(b'198.18.0.1 - - [%s] "GET / HTTP/1.1" 404 9 "-" "x"\n' % t * 300)
        await wait_until(lambda: pipeline.window.requests >= 600)
        await asyncio.sleep(1.0)
        snap = await pipeline.refresh()
        assert snap.servers == {"web1": 300, "web2": 300}
        feeds = pipeline.feeds
        assert (feeds["web1"].mode, feeds["web2"].mode) == ("aggregate", "raw")
        note = "raw: python3-not-installed not found on web2"
        assert feeds["web2"].note == note
        assert server_state(fleet.pool.status("web2"), feeds["web2"]) == (
            Status.OK,
            f"following the log ({note})",
        )
        out = snap.to_json(pipeline.connected(), None, pipeline.behind(), pipeline.modes())
        assert (
            out["servers"]["web2"]["mode"] == "raw" and out["servers"]["web2"]["mode_note"] == note
        )
    finally:
        await pipeline.stop()
        await fleet.close()
        lab.stop()
    assert lab.config_path.read_text() == cfg  # the operator's config is never written


async def test_the_agent_counts_every_line_nginx_wrote_through_kills_and_a_rotation(
    tmp_path: Path,
) -> None:
    """As raw mode's own test: nginx writes all along, the agent is killed twice on the
    server and the log is rotated; the counts equal the lines nginx wrote, none twice."""
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    fleet = Fleet(load_config(str(lab.config_path)))
    svc = dataclasses.replace(fleet.config.service("shop"), mode="aggregate")
    pipeline = ServicePipeline(fleet, svc, 600)
    try:
        log = lab.access_log("shop", "web1")
        url = lab.url("shop")
        pipeline.start()
        await wait_until(lambda: pipeline.feeds["web1"].connected and agents(lab, "web1"))
        await through_kills_and_a_rotation(lab, log, url, lambda: agents(lab, "web1"))
        written = sum(len(p.read_bytes().splitlines()) for p in (Path(f"{log}.1"), log))
        assert written > 100
        await wait_until(lambda: pipeline.window.requests >= written, timeout=30)
        await asyncio.sleep(2)
        assert pipeline.window.requests == written
        assert pipeline.window.unparsed == 0
        assert pipeline.feeds["web1"].mode == "aggregate"
        await pipeline.stop()
        await wait_until(lambda: not agents(lab, "web1"), timeout=5)  # it ends with the console
    finally:
        await pipeline.stop()
        await fleet.close()
        lab.stop()


async def test_auto_hands_a_lagging_server_to_the_agent_and_back(tmp_path: Path) -> None:
    """``mode = "auto"``: counting raw lines is slowed (0.2 s a chunk, an overloaded console)
    while the log grows by 2.5 MB a second; the server is handed to the agent, which catches
    up, and says why.  Once the flood is over it goes back to raw.  Every line written counts
    once across both switches."""
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    fleet = Fleet(load_config(str(lab.config_path)))
    svc = dataclasses.replace(fleet.config.service("shop"), mode="auto")
    pipeline = ServicePipeline(fleet, svc, 600)
    pipeline.auto_back_after = 4.0
    log = lab.access_log("shop", "web1")
    count = pipeline.window.add_chunk

    def overloaded(chunk: bytes, server: str = "") -> None:
        time.sleep(0.2)
        count(chunk, server)

    pipeline.window.add_chunk = overloaded  # type: ignore[method-assign]
    feed = pipeline.feeds["web1"]
    modes: list[str] = []
    try:
        pipeline.start()
        await wait_until(lambda: feed.connected)
        written = 0
        with log.open("ab") as f:
            for i in range(12):
                t = time.strftime(STAMP, time.gmtime()).encode()
                f.write(
                    b'198.18.0.%d - - [%s] "GET /x HTTP/1.1" 404 9 "-" "t"\n' % (i + 1, t) * 40_000
                )
                f.flush()
                written += 40_000
                await asyncio.sleep(1.0)
                modes.append(feed.mode)
        assert "aggregate" in modes, modes
        assert feed.note.startswith("auto: the raw stream fell") or feed.mode == "raw"
        await wait_until(lambda: pipeline.window.requests >= written, timeout=60)
        await wait_until(lambda: feed.mode == "raw", timeout=30)  # quiet again: back to raw
        assert feed.note == ""
        t = time.strftime(STAMP, time.gmtime()).encode()
        with log.open("ab") as f:
            f.write(b'198.18.9.9 - - [%s] "GET /after HTTP/1.1" 200 9 "-" "t"\n' % t * 10)
        written += 10
        await wait_until(lambda: pipeline.window.requests >= written, timeout=30)
        await asyncio.sleep(2)
        assert pipeline.window.requests == written
        assert server_state(fleet.pool.status("web1"), feed) == (Status.OK, "following the log")
    finally:
        await pipeline.stop()
        await fleet.close()
        lab.stop()


class FrozenClock:
    """The ``time`` module as the session sees it, with its clock stopped at ``now``: two runs
    of ``suggest`` a few seconds apart analyse the same window."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


async def test_suggest_reads_through_the_agent_and_says_what_raw_mode_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same labelled flood read by ``suggest`` raw and through the agent (which parses on
    the server and ships the rows): the same analysis, figure for figure.  Nothing is logged
    within 30 s of where the window and the baseline begin, so the two runs, a few seconds
    apart, read the same requests."""
    lab = Lab.start(tmp_path / "lab", traffic=False)
    try:
        now = time.time()
        made = generate("botnet-ua", seed=9, scale=0.1, start=now - 2400, services=["www"])
        edges = (now - 600, now - 2400)
        reqs = sorted(
            (r for r in made if r.time < now - 30 and all(abs(r.time - e) > 30 for e in edges)),
            key=lambda r: r.time,
        )
        for i, server in enumerate(("web1", "web2")):
            with lab.access_log("www", server).open("ab") as f:
                f.write(b"".join(combined_line(r) for r in reqs[i::2]))
        config = load_config(str(lab.config_path))
        monkeypatch.setattr(core, "time", FrozenClock(time.time()))
        results = {}
        for mode in ("raw", "aggregate"):
            svc = dataclasses.replace(config.service("www"), mode=mode)
            cfg = dataclasses.replace(config, services={**config.services, "www": svc})
            session = Session(cfg)
            try:
                analysis, _, feeds = await session.suggest("www")
            finally:
                await session.close()
            assert all(f.error is None for f in feeds.values())
            assert {f.mode for f in feeds.values()} == {mode}
            out = analysis.to_dict()
            out.pop("seconds")  # how long it took
            # The time of day in each rule's reason: the runs may straddle a minute.
            text = re.sub(r"suggested \d\d:\d\d UTC", "suggested HH:MM UTC", json.dumps(out))
            results[mode] = json.loads(text)
        assert results["raw"]["suggestions"], results["raw"]
        # The sample requests shown with a rule are the first few it matches in the order the
        # servers' batches arrived, which two reads of two servers need not share: as many.
        for result in results.values():
            for s in result["suggestions"]:
                s["samples"] = len(s["samples"])
        pairs = zip(results["raw"]["suggestions"], results["aggregate"]["suggestions"], strict=True)
        for a, b in pairs:
            assert {k: (v, b.get(k)) for k, v in a.items() if v != b.get(k)} == {}
        assert results["aggregate"] == results["raw"]
    finally:
        lab.stop()
