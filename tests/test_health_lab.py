"""``opsconsole check`` against the real rehearsal lab (sshd + nginx on loopback), as a subprocess.

The shared session ``lab`` stays healthy: tests that break something start their own Lab, and
tests that need a different view of the shared lab write a copy of its config.  Sockets opened
here are closed at the end of each test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import tomli_w

from opsconsole.lab import Lab

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parent.parent


def check(config: Path, *extra: str) -> tuple[int, Any, str]:
    """Run ``opsconsole --config CONFIG check --json``: (exit status, parsed JSON, stderr)."""
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--config", str(config), "check", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    data = json.loads(result.stdout) if "--json" in extra else result.stdout
    return result.returncode, data, result.stderr


def config_copy(lab: Lab, tmp_path: Path, **health: Any) -> tuple[Path, dict[str, Any]]:
    """A copy of the lab's config with ``[health]`` settings; the test may edit and rewrite it.

    Load, memory and disk are host-wide, and how fast a site answers depends on what else the
    machine runs: on a shared test machine they say nothing about the lab, so the copy relaxes
    those thresholds unless the test sets them.
    """
    data = tomllib.loads(lab.config_path.read_text())
    limits = {
        "load_warn_per_cpu": 1000.0, "memory_warn_percent": 100, "disk_warn_percent": 100,
        "latency_warn_ms": 60_000.0,
    }  # fmt: skip
    data["health"] = {**data.get("health", {}), **limits, **health}
    path = tmp_path / "config.toml"
    path.write_text(tomli_w.dumps(data))
    return path, data


def test_a_healthy_lab_checks_0(lab: Lab, tmp_path: Path) -> None:
    status, data, stderr = check(lab.config_path, "--json")
    reasons = [r for s in data["servers"].values() for r in s["reasons"]]
    # The lab's own config, as is: only this machine's load, memory or disk may spoil it.
    assert status == 0 or all(r.startswith(("load ", "memory ", "disk ")) for r in reasons), reasons
    for name, server in data["servers"].items():
        assert (server["ssh"], server["nginx"]) == ("ok", "running")
        assert [n["pid"] for n in server["nginx_instances"]] == [lab.servers[name].nginx_pid]
    for name, service in data["services"].items():
        assert (service["http_status"], service["healthy"]) == (200, True), name

    config, _ = config_copy(lab, tmp_path)
    status, data, stderr = check(config, "--json")
    assert status == 0, stderr
    assert data["healthy"] is True
    assert all(s["status"] == "ok" for s in data["servers"].values())


def test_a_stopped_nginx_is_named_with_the_sites_it_took_down(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    own = Lab.start(tmp_path_factory.mktemp("lab-nginx-killed"), traffic=False)
    try:
        victim = "web2"
        os.kill(own.servers[victim].nginx_pid, signal.SIGTERM)
        port = own.services["forums"].http_ports[victim]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(0.1)
            except OSError:
                break
        config, _ = config_copy(own, tmp_path_factory.mktemp("cfg"))
        status, data, _ = check(config, "--json")
        assert status == 1
        assert data["healthy"] is False
        web2 = data["servers"][victim]
        assert (web2["ssh"], web2["nginx"], web2["status"]) == ("ok", "stopped", "down")
        assert web2["reasons"] == [f"nginx stopped (prefix {own.nginx_prefix(victim)})"]
        assert data["servers"]["web1"]["nginx"] == "running"  # same host, its own nginx is fine
        # Sites whose URL is on web2 are down; the others still answer.
        on_victim = {s.http_ports[victim] for s in own.services.values() if victim in s.http_ports}
        down = {n for n, s in data["services"].items() if urlsplit(s["url"]).port in on_victim}
        assert down and "www" not in down  # www's URL is on web1
        for name, service in data["services"].items():
            assert service["healthy"] is (name not in down), name
            if name in down:
                assert service["error"].startswith("connection refused"), service

        status, table, stderr = check(config)
        assert status == 1
        assert any(line.split()[:3] == [victim, "down", "stopped"] for line in table.splitlines())
        assert all(f"{name} down" in stderr for name in [victim, *down])
    finally:
        own.stop()


def test_a_wrong_host_key_fails_that_server_only(lab: Lab, tmp_path: Path) -> None:
    config, data = config_copy(lab, tmp_path)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    data["servers"]["web1"]["known_hosts"] = str(empty)
    config.write_text(tomli_w.dumps(data))
    status, result, _ = check(config, "--json")
    assert status == 1
    web1, web2 = result["servers"]["web1"], result["servers"]["web2"]
    assert (web1["ssh"], web1["status"]) == ("error", "down")
    assert "host key" in web1["error"]
    assert (web2["ssh"], web2["nginx"], web2["status"]) == ("ok", "running", "ok")
    assert all(s["healthy"] for s in result["services"].values())  # the sites were checked


def test_a_server_without_python_is_read_with_the_shell_over_ssh(lab: Lab, tmp_path: Path) -> None:
    config, data = config_copy(lab, tmp_path)
    data["servers"]["web2"]["python"] = "python3-not-installed"
    config.write_text(tomli_w.dumps(data))
    status, result, stderr = check(config, "--json")
    reasons = {n: s["reasons"] for n, s in result["servers"].items()}
    assert status == 0, (stderr, reasons, {n: s["reasons"] for n, s in result["services"].items()})
    web2 = result["servers"]["web2"]
    assert (web2["source"], web2["nginx"], web2["status"]) == ("shell", "running", "ok")
    assert web2["notes"] == ["python3-not-installed not found on web2: read /proc with sh instead"]
    assert web2["memory_percent"] is not None and web2["tcp"]["ESTABLISHED"] >= 1


@pytest.fixture
def held_connections(lab: Lab) -> Iterator[tuple[int, int]]:
    """40 idle connections from 127.0.0.99 to web1's www nginx, and 30 half-open ones.

    nginx accepts every connection at once, so raw connections that send nothing sit in
    ESTABLISHED on the server, never in SYN_RECV.  SYN_RECV needs the final ACK of the handshake
    to be left unanswered, which on loopback only TCP_DEFER_ACCEPT gives (nginx's ``listen …
    deferred``; a full accept queue just drops SYNs).  The lab's nginx does not use it, so the
    half-open ones go to a listener of this test on the same host (every lab server is this
    host).  Yields (established, half_open).
    """
    port = lab.services["www"].http_ports["web1"]
    sockets: list[socket.socket] = []
    try:
        for _ in range(40):
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.99", 0))
            s.connect(("127.0.0.1", port))
        listener = socket.socket()
        sockets.append(listener)
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 60)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        for _ in range(30):
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.98", 0))
            s.setblocking(False)
            s.connect_ex(listener.getsockname())
        time.sleep(0.3)
        yield 40, 30
    finally:
        for s in sockets:
            s.close()


def test_a_burst_of_held_connections_shows_in_states_and_top_clients(
    lab: Lab, tmp_path: Path, held_connections: tuple[int, int]
) -> None:
    established, half_open = held_connections
    config, _ = config_copy(lab, tmp_path, syn_recv_warn=half_open)
    status, data, _ = check(config, "--json")
    assert status == 1  # SYN_RECV reached the threshold
    web1 = data["servers"]["web1"]
    assert web1["tcp"]["SYN_RECV"] >= half_open
    assert web1["tcp"]["ESTABLISHED"] >= established
    top = {t["ip"]: t["connections"] for t in web1["top_connections"]}
    assert top.get("127.0.0.99", 0) >= established
    assert top.get("127.0.0.98", 0) >= half_open
    # Busiest first.  (The lab's servers share this machine's TCP table: 127.0.0.1 may hold
    # more, with whatever else runs here.)
    counts = [t["connections"] for t in web1["top_connections"]]
    assert counts == sorted(counts, reverse=True)
    others = [t["ip"] for t in web1["top_connections"] if t["ip"] != "127.0.0.1"]
    assert others[0] == "127.0.0.99"
    assert web1["status"] == "warn"
    assert f"SYN_RECV {web1['tcp']['SYN_RECV']} >= {half_open}" in web1["reasons"]
    assert data["services"]["www"]["healthy"] is True  # slowed, not down
