"""A health round over a small fleet: one good server, one unreachable, good and bad sites.

web1 is this machine (LocalTransport) with a real nginx under a temporary prefix serving the
``www`` site on a loopback port; web2's connection fails.  Everything started here is stopped by
PID at the end.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.config import Config, parse_config
from opsconsole.health import Status, check_fleet, fleet_to_json
from opsconsole.health import check as check_module
from opsconsole.transport.base import Transport, TransportError
from opsconsole.transport.local import LocalTransport

NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A real nginx under ``tmp_path/nginx`` answering 200 on a loopback port: (prefix, port)."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    temps = " ".join(f"{n}_temp_path {prefix}/{n};" for n in ("client_body", "proxy", "fastcgi"))
    (prefix / "nginx.conf").write_text(
        f"daemon off; worker_processes 1; pid {prefix}/nginx.pid; error_log {prefix}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{ {temps} uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;\n"
        f"  access_log {prefix}/access.log;\n"
        f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }} }}\n"
    )
    popen = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", "nginx.conf", "-e", "error.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert popen.poll() is None and time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield prefix, port
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
        popen.wait(10)


def fleet_config(prefix: Path, port: int, **health: Any) -> Config:
    nginx = f"{NGINX} -p {prefix} -c nginx.conf"
    common = {"access_log": f"{prefix}/access.log", "nginx_test": f"{nginx} -t"}
    # This machine's own load (other test runs) must not decide a verdict under test: the load
    # threshold is only set where a test is about it.
    limits = {"timeout": "2s", "load_warn_per_cpu": 1000.0, **health}
    return parse_config(
        {
            "health": limits,
            "servers": {"web1": {"host": "local"}, "web2": {"host": "127.0.0.1", "port": 1}},
            "services": {
                "www": {"servers": ["web1"], "url": f"http://127.0.0.1:{port}/", **common},
                "shop": {"servers": ["web1"], "url": f"http://127.0.0.1:{free_port()}/", **common},
                "forum": {"servers": ["web1"], **common},
            },
        },
        Path("fleet.toml"),
    )


class Source:
    """Transports like the pool hands them out; web2's host key is not trusted.  Counts how
    many connections are being waited for at once (``peak``)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.waiting = self.peak = 0

    async def get(self, name: str) -> Transport:
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.waiting -= 1
        if name == "web2":
            raise TransportError("web2: host key for 127.0.0.1:1 is not in known_hosts")
        return LocalTransport(name)


CONTRACT_SERVER_KEYS = {
    "ssh",
    "error",
    "load",
    "cpu_percent",
    "memory_percent",
    "disk_percent",
    "nginx",
    "tcp",
    "top_connections",
}
CONTRACT_SERVICE_KEYS = {"url", "http_status", "latency_ms", "healthy", "error", "tls_days_left"}


async def test_one_round_reports_every_server_and_service(site: tuple[Path, int]) -> None:
    config = fleet_config(*site)
    seen: list[tuple[int, int, str]] = []
    fleet = await check_fleet(config, Source(), on_progress=lambda *a: seen.append(a))

    assert fleet.healthy is False
    web1, web2 = fleet.servers["web1"], fleet.servers["web2"]
    assert web1.status is Status.OK, web1.reasons
    assert web1.metrics is not None and web1.metrics.nginx_state == "running"
    assert web2.status is Status.DOWN
    assert web2.ssh_error == "web2: host key for 127.0.0.1:1 is not in known_hosts"

    assert fleet.services["www"].status is Status.OK
    assert fleet.services["shop"].status is Status.DOWN
    assert fleet.services["forum"].status is Status.UNKNOWN
    assert sorted(seen)[-1][:2] == (5, 5)
    assert {name for _, _, name in seen} == {"web1", "web2", "www", "shop", "forum"}


async def test_the_json_has_the_documented_keys(site: tuple[Path, int]) -> None:
    data = fleet_to_json(await check_fleet(fleet_config(*site), Source()))
    assert data["healthy"] is False
    for server in data["servers"].values():
        assert set(server) >= CONTRACT_SERVER_KEYS
    for service in data["services"].values():
        assert set(service) >= CONTRACT_SERVICE_KEYS
    web1, web2 = data["servers"]["web1"], data["servers"]["web2"]
    assert (web1["ssh"], web1["error"], web1["nginx"], web1["status"]) == (
        "ok",
        None,
        "running",
        "ok",
    )
    assert len(web1["load"]) == 3
    assert {"ESTABLISHED", "SYN_RECV", "TIME_WAIT"} <= set(web1["tcp"])
    assert all(set(t) == {"ip", "connections"} for t in web1["top_connections"])
    assert (web2["ssh"], web2["nginx"], web2["status"]) == ("error", None, "down")
    assert "not in known_hosts" in web2["error"]
    www, shop, forum = (data["services"][n] for n in ("www", "shop", "forum"))
    assert (www["http_status"], www["healthy"], www["error"]) == (200, True, None)
    assert shop["healthy"] is False and shop["error"].startswith("connection refused by")
    assert (forum["healthy"], forum["error"]) == (None, "no url configured")


async def test_a_stopped_nginx_makes_its_server_and_site_down(site: tuple[Path, int]) -> None:
    prefix, port = site
    pid = int((prefix / "nginx.pid").read_text())
    config = fleet_config(prefix, port)
    subprocess.run(["kill", "-TERM", str(pid)], check=True)  # as an operator would
    deadline = time.monotonic() + 5
    while (prefix / "nginx.pid").exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    fleet = await check_fleet(config, Source())
    assert fleet.servers["web1"].status is Status.DOWN
    assert fleet.servers["web1"].reasons == (f"nginx stopped (prefix {prefix})",)
    assert fleet.services["www"].status is Status.DOWN


async def test_servers_and_sites_are_checked_in_parallel(site: tuple[Path, int]) -> None:
    source = Source(delay=0.5)
    await check_fleet(fleet_config(*site), source)
    assert source.peak == 2  # both servers were being connected at the same time
    # The same check run one at a time is seen as such: the test can tell the two apart.
    one_by_one = Source(delay=0.5)
    await check_fleet(fleet_config(*site), one_by_one, max_parallel=1)
    assert one_by_one.peak == 1


async def test_a_connection_that_never_comes_is_reported_after_the_budget(
    site: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_module, "connect_budget", lambda config: 0.2)
    fleet = await check_fleet(fleet_config(*site), Source(delay=30))
    assert fleet.servers["web1"].ssh_error == "no connection within 0.2s"
    assert fleet.services["www"].status is Status.OK  # the sites were still probed


async def test_a_bug_in_one_server_costs_one_line_not_the_round(site: tuple[Path, int]) -> None:
    class Broken(Source):
        async def get(self, name: str) -> Transport:
            if name == "web1":
                raise RuntimeError("boom")
            return await super().get(name)

    fleet = await check_fleet(fleet_config(*site), Broken())
    assert fleet.servers["web1"].error == "internal error: RuntimeError: boom"
    assert fleet.servers["web2"].status is Status.DOWN
    assert fleet.services["www"].status is Status.OK


async def test_thresholds_turn_a_reading_into_a_warning(site: tuple[Path, int]) -> None:
    config = fleet_config(*site, memory_warn_percent=0.001, disk_warn_percent=0.001)
    fleet = await check_fleet(config, Source())
    web1 = fleet.servers["web1"]
    assert web1.status is Status.WARN
    assert any(r.startswith("memory ") and r.endswith("> 0.001%") for r in web1.reasons)
    assert any(r.startswith("disk / ") for r in web1.reasons)


def test_a_certificate_nearer_expiry_than_tls_warn_days_is_a_warning() -> None:
    from opsconsole.config import HealthConfig
    from opsconsole.health.report import HttpResult
    from opsconsole.health.verdict import judge_service

    probe = HttpResult(
        "https://shop.example.org/", http_status=200, latency_ms=20, tls_days_left=20
    )
    assert judge_service("shop", probe.url, HealthConfig(), probe).status is Status.OK
    strict = judge_service("shop", probe.url, HealthConfig(tls_warn_days=30), probe)
    assert strict.status is Status.WARN
    assert strict.reasons == ("TLS certificate expires in 20 days",)
