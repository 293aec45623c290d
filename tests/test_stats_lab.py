"""`opsconsole stats` against the real lab: sshd, nginx, tail — numbers a user can trust."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w

from opsconsole.lab import Lab, send

pytestmark = pytest.mark.lab


def stats(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", "--config", str(config), "stats", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_service_on_two_servers_adds_up_and_breaks_down_per_server(lab: Lab) -> None:
    before = json.loads(stats(lab.config_path, "www", "--since", "all", "--json").stdout)
    send(lab.url("www", "web1"), n=7, client_ip="198.51.100.77", path="/")
    send(lab.url("www", "web2"), n=5, client_ip="2001:db8:77::1", path="/nope")
    proc = stats(lab.config_path, "www", "--since", "all", "--json")
    assert proc.returncode == 0, proc.stderr
    after = json.loads(proc.stdout)
    assert after["requests"] - before["requests"] == 12
    web1 = after["servers"]["web1"]["requests"] - before["servers"]["web1"]["requests"]
    web2 = after["servers"]["web2"]["requests"] - before["servers"]["web2"]["requests"]
    assert (web1, web2) == (7, 5)
    ips = {e["ip"]: e["requests"] for e in after["top_ips"]}
    assert ips["198.51.100.77"] >= 7 and ips["2001:db8:77::1"] >= 5
    subnets = {e["subnet"] for e in after["top_subnets"]}
    assert {"198.51.100.0/24", "2001:db8:77::/48"} <= subnets
    assert all(s["connected"] for s in after["servers"].values())


def broken_config(lab: Lab, tmp_path: Path) -> Path:
    """The lab's config plus a server with an unknown host key, one that does not answer, and a
    service whose log is missing on one server."""
    data = tomllib.loads(lab.config_path.read_text())
    good = data["servers"]["web1"]
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    data["servers"]["badkey"] = {**good, "known_hosts": str(empty)}
    data["servers"]["dead"] = {**good, "port": 1}
    www = data["services"]["www"]
    data["services"]["mixed"] = {**www, "servers": ["web1", "badkey", "dead"]}
    data["services"]["nolog"] = {**www, "access_log": str(tmp_path / "{server}" / "missing.log")}
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def test_unreachable_and_untrusted_servers_are_reported_while_the_rest_is_counted(
    lab: Lab, tmp_path: Path
) -> None:
    config = broken_config(lab, tmp_path)
    send(lab.url("www", "web1"), n=3, client_ip="198.51.100.78")
    proc = stats(config, "mixed", "--since", "all", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["servers"]["web1"]["connected"] and out["servers"]["web1"]["requests"] >= 3
    assert not out["servers"]["badkey"]["connected"] and not out["servers"]["dead"]["connected"]
    assert "badkey" in proc.stderr and "host key" in proc.stderr.lower()
    assert "SHA256:" in proc.stderr  # the fingerprint the server presented, never accepted
    assert "dead" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_log_is_a_clear_per_server_error(lab: Lab, tmp_path: Path) -> None:
    proc = stats(broken_config(lab, tmp_path), "nolog", "--since", "all", "--json")
    assert proc.returncode == 1  # no server could be read
    assert "missing.log" in proc.stderr and "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert out["requests"] == 0 and not any(s["connected"] for s in out["servers"].values())


async def generate(url: str, rate: int, seconds: float) -> int:
    """Send `rate` requests per second, evenly spaced, for `seconds`; return how many were sent."""
    sent = 0
    start = time.monotonic()
    in_flight: set[asyncio.Future[httpx.Response]] = set()
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        while (elapsed := time.monotonic() - start) < seconds:
            target = start + sent / rate
            if target > time.monotonic():
                await asyncio.sleep(target - time.monotonic())
            request = asyncio.ensure_future(
                client.get(url, headers={"X-Forwarded-For": "203.0.113.50"})
            )
            in_flight.add(request)
            request.add_done_callback(in_flight.discard)
            sent += 1
        await asyncio.gather(*in_flight)
    assert elapsed >= seconds
    return sent


def test_follow_rps_matches_a_traffic_generator_within_5_percent(lab: Lab) -> None:
    rate, seconds = 40, 12
    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--config",
            str(lab.config_path),
            "stats",
            "shop",
            "--follow",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # let it connect and backfill
        sent = asyncio.run(generate(lab.url("shop"), rate, seconds))
        time.sleep(1.5)
    finally:
        follow.terminate()
        out, err = follow.communicate(timeout=30)
    assert sent >= rate * seconds * 0.98
    reports = [json.loads(line) for line in out.splitlines()]
    assert len(reports) >= seconds, err
    rps = [r["rps"] for r in reports]
    # The steady part: drop the first 3 reports after traffic started and the last 2.
    busy = [x for x in rps if x > 0]
    steady = busy[2:-2]
    assert len(steady) >= seconds - 5, rps
    mean = sum(steady) / len(steady)
    assert abs(mean - rate) <= 0.05 * rate, (mean, rps)
    assert all(r["servers"]["web1"]["connected"] for r in reports[-3:])
