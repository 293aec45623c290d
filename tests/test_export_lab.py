"""``opsconsole export`` end to end: a real Prometheus (Debian's ``prometheus``) scrapes it on
loopback, and the series are queried back through Prometheus's HTTP API.  Real sshd and nginx."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from opsconsole.lab import Lab, send
from opsconsole.lab.procs import free_ports

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = shutil.which("prometheus")


def start(argv: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log.open("wb"), stderr=subprocess.STDOUT, **kw
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """By its PID: SIGTERM, then SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def query(port: int, promql: str) -> dict[str, float]:
    """The instant vector of ``promql`` as {label values joined by ',': value}."""
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}"
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return {
        ",".join(v for k, v in sorted(s["metric"].items()) if k != "__name__"): float(s["value"][1])
        for s in body["data"]["result"]
    }


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as e:  # not listening yet
            last = e
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


@pytest.mark.skipif(
    PROMETHEUS is None and not os.environ.get("CI"),
    reason="needs Debian's prometheus (.ci/run installs it; in CI its absence fails)",
)
def test_prometheus_scrapes_the_fleets_series_from_opsconsole_export(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPSCONSOLE_CONFIG=str(lab.config_path))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        blocked = subprocess.run(
            [sys.executable, "-m", "opsconsole", "block", "shop", "198.51.100.7", "--yes"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert blocked.returncode == 0, blocked.stderr
        url = lab.url("shop")
        assert set(send(url, 20, client_ip="198.51.100.7")) == {403}
        ok = [send(url, 1, client_ip=f"203.0.113.{i + 1}")[0] for i in range(30)]
        missing = send(url, 10, client_ip="203.0.113.99", path="/no-such-page")
        assert set(ok) == {200} and set(missing) == {404}

        export_port, prom_port = free_ports(2)
        exporter = start(
            [sys.executable, "-m", "opsconsole", "export", "--listen", f"127.0.0.1:{export_port}"],
            tmp_path / "export.log",
            env=env,
        )
        procs.append(exporter)
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: opsconsole\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{export_port}']}}]\n"
        )
        assert PROMETHEUS is not None
        prometheus = start(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            tmp_path / "prometheus.log",
            cwd=tmp_path,
        )
        procs.append(prometheus)

        log = lab.access_log("shop", "web1")

        def counted() -> dict[str, float]:
            """Prometheus's counts by class, once they equal the log's (the health probe's
            requests, 200s every few seconds, are in both)."""
            in_log = {c: 0.0 for c in ("1xx", "2xx", "3xx", "4xx", "5xx")}
            for line in log.read_text().splitlines():
                status = line.split('"')[2].split()[0]
                in_log[f"{status[0]}xx"] += 1
            r = query(prom_port, 'sum by (class) (opsconsole_requests_total{service="shop"})')
            return r if r == in_log else {}

        by_class = wait_for("the request counts in Prometheus", counted)
        assert by_class["4xx"] == 30 and by_class["2xx"] >= 30  # 20 refused, 10 not found
        per_server = query(prom_port, 'opsconsole_requests_total{service="shop",class="4xx"}')
        assert per_server == {f"4xx,127.0.0.1:{export_port},opsconsole,web1,shop": 30}
        refused = wait_for(
            "what the block refused",
            lambda: query(prom_port, 'opsconsole_refused_requests{service="shop"}'),
        )
        assert list(refused.values()) == [20] and "blocks" in next(iter(refused))
        stage = wait_for(
            "the recovery stage", lambda: query(prom_port, 'opsconsole_stage{service="shop"}')
        )
        assert [k.split(",")[-1] for k in stage] == ["protected"]  # a block in force, serving
        assert list(query(prom_port, 'opsconsole_follow_up{service="shop"}').values()) == [1]
        assert list(query(prom_port, 'opsconsole_follow_lag_seconds{service="shop"}').values()) == [
            0
        ]
        assert list(query(prom_port, 'opsconsole_server_up{server="web1"}').values()) == [1]
        healthy = wait_for(
            "the site's probe",
            lambda: query(prom_port, 'opsconsole_service_healthy{service="shop"}'),
        )
        assert list(healthy.values()) == [1]
        assert query(prom_port, "process_resident_memory_bytes")  # the console's own footprint
        assert exporter.poll() is None  # still serving
        text = (tmp_path / "export.log").read_text()
        assert f"http://127.0.0.1:{export_port}/metrics" in text and "Traceback" not in text
    finally:
        for proc in reversed(procs):
            stop(proc)
        lab.stop()
    assert exporter.returncode == 0  # SIGTERM from the test... see stop(): a clean exit


async def test_the_console_serves_the_same_series_when_its_config_says_export(
    tmp_path: Path,
) -> None:
    """``[console] export`` in the config: the console's own session serves /metrics; a second
    console given the same port says why it cannot (its server strip) and runs on."""
    import asyncio
    import dataclasses

    import httpx

    from opsconsole.config import load_config
    from opsconsole.session import LiveSession

    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    (port,) = free_ports(1)
    config = load_config(str(lab.config_path))
    config = dataclasses.replace(
        config, console=dataclasses.replace(config.console, export=("127.0.0.1", port))
    )
    first, second = LiveSession(config), LiveSession(config)
    try:
        await first.start(suggest=False)
        assert first.exporter is not None and first.export_error is None
        line = 'opsconsole_follow_up{server="web1",service="shop"} 1.0'
        async with httpx.AsyncClient(trust_env=False) as client:
            for _ in range(60):
                body = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                if line in body:
                    break
                await asyncio.sleep(0.5)
        assert line in body
        await second.start(suggest=False)
        assert second.exporter is None
        assert second.notify_errors() == [
            f"cannot serve metrics on 127.0.0.1:{port}: Address already in use"
        ]
        feed = second.pipelines["shop"].feeds["web1"]
        for _ in range(60):  # the rest runs: its logs are followed all the same
            if feed.connected:
                break
            await asyncio.sleep(0.5)
        assert feed.connected
    finally:
        await second.stop()
        await first.stop()
        lab.stop()
    with pytest.raises(OSError):  # stopped: nothing listens there any more
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
