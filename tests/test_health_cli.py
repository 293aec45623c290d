"""``opsconsole check``: exit statuses, JSON on stdout, an 80-column table, progress on a tty."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

from opsconsole.cli.check import render_table
from opsconsole.health.report import (
    FleetHealth,
    HostMetrics,
    HttpResult,
    NginxInstance,
    ServerHealth,
    ServiceHealth,
    Status,
)

ROOT = Path(__file__).resolve().parent.parent


def opsconsole(
    *args: str, stderr: int | None = subprocess.PIPE, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        timeout=timeout,
    )


def unreachable_fleet(tmp_path: Path) -> Path:
    with socket.socket() as s:  # a loopback port with no listener: SSH is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "config.toml"
    config.write_text(
        '[health]\ntimeout = "2s"\n'
        f'[servers.web9]\nhost = "127.0.0.1"\nport = {port}\nknown_hosts = "{tmp_path}/kh"\n'
    )
    return config


def test_a_config_error_exits_2_and_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[servers.web1]\nhost = "h"\nprot = 22\n')
    result = opsconsole("--config", str(config), "check")
    assert result.returncode == 2
    assert "servers.web1.prot: unknown key" in result.stderr
    assert result.stdout == ""


def test_an_unreachable_server_exits_1_with_the_reason_in_json(tmp_path: Path) -> None:
    result = opsconsole("--config", str(unreachable_fleet(tmp_path)), "check", "--json")
    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["healthy"] is False
    web9 = data["servers"]["web9"]
    assert (web9["ssh"], web9["status"]) == ("error", "down")
    assert web9["error"]
    assert result.stderr == ""  # no progress line: stderr is not a terminal


def test_the_table_goes_to_stdout_and_the_verdict_to_stderr(tmp_path: Path) -> None:
    result = opsconsole("--config", str(unreachable_fleet(tmp_path)), "check")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["SERVER", "STATUS", "NGINX"]
    assert lines[1].split()[:2] == ["web9", "down"]
    assert lines[2].strip().startswith("ssh: ")
    assert result.stderr.strip() == "opsconsole: not healthy: web9 down"


def test_progress_is_shown_on_a_terminal(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        result = opsconsole("--config", str(unreachable_fleet(tmp_path)), "check", stderr=follower)
        os.close(follower)
        follower = -1
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the pty is closed once the child is gone
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert result.returncode == 1
    assert b"checking 1/1: web9 done" in seen
    assert "checking" not in result.stdout


def test_the_table_fits_80_columns_whatever_the_values() -> None:
    long_ip = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
    metrics = HostMetrics(
        source="proc",
        load=(123.45, 1, 1),
        cpu_count=64,
        cpu_percent=100.0,
        memory_percent=99.9,
        disks={"/": 100.0},
        tcp={"ESTABLISHED": 1234567, "SYN_RECV": 99999, "TIME_WAIT": 0},
        top_connections=((long_ip, 123456),),
        nginx=(NginxInstance("/srv/x", None, False, None, "no master"),),
    )
    fleet = FleetHealth(
        servers={
            "a-very-long-server-name": ServerHealth(
                "a-very-long-server-name",
                Status.DOWN,
                ("nginx stopped " + "x" * 200,),
                None,
                None,
                metrics,
            ),
            "web2": ServerHealth("web2", Status.DOWN, ("ssh: " + "refused " * 30,), "refused"),
        },
        services={
            "shop": ServiceHealth(
                "shop",
                "https://shop.example.org/" + "a" * 100,
                Status.WARN,
                ("slow: 4000 ms > 1000 ms",),
                HttpResult("https://shop.example.org/", 200, 4000.0, 12),
            ),
            "forum": ServiceHealth("forum", None, Status.UNKNOWN, ("no url configured",)),
        },
    )
    table = render_table(fleet)
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert "down" in table and "stopped" in table and "4000 ms" in table and "12d" in table
