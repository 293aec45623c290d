"""`stats --since all --json` agrees with GoAccess, an independent parser, on the same file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opsconsole.lab import Lab

ROOT = Path(__file__).resolve().parents[1]


def goaccess_report(log: Path, out: Path) -> dict[str, Any]:
    subprocess.run(
        [
            "goaccess",
            str(log),
            "--log-format=COMBINED",
            "--no-global-config",
            "--no-progress",
            "--max-items=10000000",
            "-o",
            str(out),
        ],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def goaccess_status(report: dict[str, Any]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for group in report["status_codes"]["data"]:
        for item in group["items"]:
            codes[item["data"].split(" ", 1)[0]] = item["hits"]["count"]
    return codes


def assert_agrees(ours: dict[str, Any], report: dict[str, Any]) -> None:
    assert ours["requests"] == report["general"]["valid_requests"]
    assert ours["status"] == goaccess_status(report)
    hosts = {h["data"]: h["hits"]["count"] for h in report["hosts"]["data"]}
    ours_top = [(e["ip"], e["requests"]) for e in ours["top_ips"]]
    assert len(ours_top) == 10
    for ip, n in ours_top:  # each of our top 10 has GoAccess's count...
        assert hosts.get(ip) == n, ip
    theirs = sorted(hosts.values(), reverse=True)[:10]  # ...and they are GoAccess's top 10 counts
    assert [n for _, n in ours_top] == theirs


def run_stats(config: Path, service: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--config",
            str(config),
            "stats",
            service,
            "--since",
            "all",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_a_generated_flood_log_read_through_real_tail_agrees_with_goaccess(tmp_path: Path) -> None:
    log = tmp_path / "www.access.log"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "genlog.py"),
            str(log),
            "--lines",
            "60000",
            "--distinct-ips",
            "20000",
        ],
        check=True,
    )
    config = tmp_path / "config.toml"
    config.write_text(
        '[servers.here]\nhost = "local"\n\n'
        f'[services.www]\nservers = ["here"]\naccess_log = "{log}"\n'
    )
    ours = run_stats(config, "www")
    assert ours["servers"] == {"here": {"requests": 60000, "connected": True, "error": None}}
    assert_agrees(ours, goaccess_report(log, tmp_path / "report.json"))


@pytest.mark.lab
def test_an_nginx_written_log_read_over_ssh_agrees_with_goaccess(lab: Lab, tmp_path: Path) -> None:
    from opsconsole.lab.traffic import send

    url = lab.url("shop", "web1")
    for i in range(40):  # 40 clients with distinct volumes and a status mix
        ip = f"198.18.{i % 3}.{i + 1}" if i % 4 else f"2001:db8:{i:x}::{i + 1:x}"
        send(url, n=i + 1, client_ip=ip, path="/" if i % 2 else f"/missing-{i}")
    log = lab.access_log("shop", "web1")
    ours = run_stats(lab.config_path, "shop")
    assert_agrees(ours, goaccess_report(log, tmp_path / "report.json"))
