"""The rehearsal lab is a real fleet: real sshd and nginx, strict SSH, realip, logs, clean stop.

Integration tests (marker ``lab``) against the session fixture of conftest.py, plus labs of their
own where a test stops or floods one.  The flood and browsing planners are checked without any
network at the end.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import asyncssh
import psutil
import pytest

from opsconsole.config import load_config
from opsconsole.lab import Lab, LabError, send
from opsconsole.lab.model import SITES
from opsconsole.lab.population import Browsing, Flood

REPO_ROOT = Path(__file__).resolve().parents[1]

LEGIT_NETS = [
    ipaddress.ip_network(n) for n in ("203.0.113.0/24", "192.0.2.0/24", "2001:db8:1::/48")
]
FLOOD_NETS = [ipaddress.ip_network(n) for n in ("198.18.0.0/15", "2001:db8:ff00::/40")]


def in_any(ip: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in nets)


def log_lines(lab: Lab) -> list[str]:
    lines: list[str] = []
    for service in lab.services.values():
        for server in service.servers:
            lines += lab.access_log(service.name, server).read_text().splitlines()
    return lines


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def pids_of(lab: Lab) -> list[psutil.Process]:
    """Every process of the lab, with the nginx workers and sshd children of this moment."""
    procs = []
    for record in lab.processes().values():
        proc = record.process()
        assert proc is not None, f"{record.name} is not running"
        procs += [proc, *proc.children(recursive=True)]
    return procs


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


pytestmark = pytest.mark.lab


# -- SSH ------------------------------------------------------------------------------------


async def test_each_server_is_reached_over_ssh_with_only_the_labs_key_and_known_hosts(
    lab: Lab,
) -> None:
    for name, server in lab.servers.items():
        async with asyncssh.connect(
            "127.0.0.1",
            port=server.ssh_port,
            username=lab.user,
            known_hosts=str(lab.known_hosts),
            client_keys=[str(lab.client_key)],
            agent_path=None,
        ) as conn:
            result = await conn.run(f"echo hello from {name}; echo $HOME", check=True)
        assert result.stdout == f"hello from {name}\n{lab.dir / 'home'}\n"


async def test_a_host_key_that_is_not_in_known_hosts_is_refused(lab: Lab, tmp_path: Path) -> None:
    web1, web2 = lab.servers["web1"], lab.servers["web2"]
    # web2's key recorded for web1's port: exactly what a man in the middle would present.
    web2_key = lab.known_hosts.read_text().split(f"[127.0.0.1]:{web2.ssh_port} ")[1].strip()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{web1.ssh_port} {web2_key}\n")
    for known_hosts in (wrong, tmp_path / "empty"):
        known_hosts.touch()
        with pytest.raises(asyncssh.HostKeyNotVerifiable):
            await asyncssh.connect(
                "127.0.0.1",
                port=web1.ssh_port,
                username=lab.user,
                known_hosts=str(known_hosts),
                client_keys=[str(lab.client_key)],
                agent_path=None,
            )


# -- HTTP and logs --------------------------------------------------------------------------


def test_every_site_answers_200_on_its_pages_and_404_elsewhere_on_each_of_its_servers(
    lab: Lab,
) -> None:
    for service in lab.services.values():
        for server in service.servers:
            url = lab.url(service.name, server)
            assert send(url, path="/") == [200], (service.name, server)
            assert send(url, path="/static/app.css") == [200]
            assert send(url, path="/about") == [200]
            assert send(url, path=f"/{secrets.token_hex(8)}") == [404]


def test_a_forwarded_ipv6_client_is_logged_with_its_own_address_in_the_sites_log(
    lab: Lab,
) -> None:
    path = f"/probe-{secrets.token_hex(6)}"
    assert send(lab.url("forums"), client_ip="2001:db8::7", path=path) == [404]

    line = next(
        line
        for line in lab.access_log("forums", "web2").read_text().splitlines()
        if f"GET {path} " in line
    )
    assert line.startswith("2001:db8::7 - - [")
    assert '" 404 ' in line
    others = [
        lab.access_log(s.name, server)
        for s in lab.services.values()
        for server in s.servers
        if s.name != "forums"
    ]
    assert not any(path in log.read_text() for log in others)


def test_the_repo_site_logs_in_its_own_format_the_one_written_to_the_config(lab: Lab) -> None:
    path = f"/probe-{secrets.token_hex(6)}"
    send(lab.url("repo"), client_ip="198.18.7.7", path=path, user_agent="probe/1.0")
    line = next(ln for ln in lab.access_log("repo", "web1").read_text().splitlines() if path in ln)
    assert line.startswith("198.18.7.7 - - [")
    assert re.search(r'"probe/1\.0" \d+\.\d{3} "127\.0\.0\.1"$', line), line
    config = load_config(str(lab.config_path))
    assert config.service("repo").log_format == lab.services["repo"].log_format
    assert "$request_time" in config.service("repo").log_format


def test_the_config_describes_the_lab_and_its_nginx_test_command_passes(lab: Lab) -> None:
    config = load_config(str(lab.config_path))
    assert set(config.servers) == {"web1", "web2"}
    assert set(config.services) == {"www", "shop", "forums", "git", "repo"}
    for name, lab_server in lab.servers.items():
        server_config = config.servers[name]
        assert server_config.host == "127.0.0.1"
        assert (server_config.port, server_config.user) == (lab_server.ssh_port, lab.user)
        assert server_config.known_hosts == str(lab.known_hosts)
    for name, service in lab.services.items():
        sc = config.service(name)
        assert sc.servers == service.servers
        assert sc.url == lab.url(name)
        for server in service.servers:
            assert sc.access_log_on(server) == str(lab.access_log(name, server))
            assert sc.control_dir_on(server) == str(lab.control_dir(server))
            assert str(lab.nginx_prefix(server)) in sc.nginx_test_on(server)
            test = subprocess.run(
                ["sh", "-c", sc.nginx_test_on(server)], capture_output=True, text=True
            )
            assert test.returncode == 0, test.stderr


def test_control_snippets_in_the_control_dir_change_what_nginx_answers(lab: Lab) -> None:
    control = lab.control_dir("web1")
    http_conf, server_conf = control / "shop.http.conf", control / "shop.server.conf"
    url = lab.url("shop", "web1")
    config = load_config(str(lab.config_path)).service("shop")
    reload = ["sh", "-c", config.nginx_reload_on("web1")]
    try:
        http_conf.write_text("geo $shop_lab_probe { default 0; 203.0.113.99 1; }\n")
        server_conf.write_text("if ($shop_lab_probe) { return 403; }\n")
        subprocess.run(reload, check=True, capture_output=True)
        assert wait_for(lambda: send(url, client_ip="203.0.113.99") == [403])
        assert send(url, client_ip="203.0.113.98") == [200]
    finally:
        http_conf.write_text("")
        server_conf.write_text("")
        subprocess.run(reload, check=True, capture_output=True)
    assert wait_for(lambda: send(url, client_ip="203.0.113.99") == [200])


# -- life cycle -----------------------------------------------------------------------------


def test_status_lists_every_process_alive_also_when_reopened_from_the_state_file(lab: Lab) -> None:
    status = Lab.load(lab.dir).status()
    assert status["running"] is True
    assert set(status["processes"]) == {"web1/sshd", "web1/nginx", "web2/sshd", "web2/nginx"}
    assert status["processes"]["web1/sshd"] == {"pid": lab.servers["web1"].sshd_pid, "alive": True}
    assert status == lab.status()


def test_a_second_lab_in_a_running_labs_directory_is_refused(lab: Lab) -> None:
    with pytest.raises(LabError, match="already running"):
        Lab.start(lab.dir, traffic=False)
    assert lab.status()["running"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m opsconsole ARGS`` in a fresh process, as an operator would run it."""
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=timeout,
    )


def test_lab_up_prints_only_the_config_path_and_refuses_a_second_lab_there(
    tmp_path: Path,
) -> None:
    lab_dir = tmp_path / "lab"
    up = cli("lab", "up", "--no-traffic", "--dir", str(lab_dir))
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout == f"{lab_dir / 'config.toml'}\n"
        assert load_config(up.stdout.strip()).services["www"].servers == ("web1", "web2")
        assert cli("lab", "status", "--dir", str(lab_dir)).returncode == 0

        again = cli("lab", "up", "--dir", str(lab_dir))
        assert again.returncode == 1
        assert again.stdout == ""
        assert "already running" in again.stderr.splitlines()[-1]
        assert "Traceback" not in again.stderr
    finally:
        down = cli("lab", "down", "--dir", str(lab_dir))
    assert down.returncode == 0, down.stderr
    assert cli("lab", "status", "--dir", str(lab_dir)).returncode == 1


async def test_lab_down_on_the_command_line_leaves_no_process_of_the_lab_alive(
    tmp_path: Path,
) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=True, flood_after=None)
    try:
        # An open SSH session: its server-side processes must go too.
        async with (
            asyncssh.connect(**lab.connect_options("web1"), agent_path=None) as conn,
            conn.create_process("exec cat"),
        ):
            await asyncio.sleep(0.3)
            procs = pids_of(lab)
            assert len(procs) >= 9  # 2 sshd + session, 2 nginx + workers, generator, cat
            down = await asyncio.to_thread(cli, "lab", "down", "--dir", str(lab.dir))
        assert down.returncode == 0, down.stderr
        assert down.stdout == ""
        assert still_running(procs) == []
        assert not (lab.dir / "lab.json").exists()
        status = cli("lab", "status", "--json", "--dir", str(lab.dir))
        assert status.returncode == 1
        assert json.loads(status.stdout)["running"] is False
    finally:
        lab.stop()  # reaps what this process started; nothing is left to signal


def test_the_generators_browsing_and_flood_reach_the_logs(tmp_path: Path) -> None:
    with Lab.start(tmp_path / "lab", traffic=False) as lab:
        lab.start_traffic(flood_after=0.0, legit_rps=10.0)
        assert wait_for(lambda: len(log_lines(lab)) > 150, timeout=20)
        lab.stop_traffic()
    lines = log_lines(lab)
    clients = [line.split(" ", 1)[0] for line in lines]
    statuses = [line.split('"')[2].split()[0] for line in lines]
    legit = [c for c in clients if in_any(c, LEGIT_NETS)]
    flood = [c for c in clients if in_any(c, FLOOD_NETS)]
    assert len(legit) + len(flood) == len(lines)  # nothing else talks to the lab
    assert legit and flood
    assert len(set(flood)) > 0.8 * len(flood)  # a flood of many addresses, few requests each
    assert {"200", "404"} <= set(statuses)
    assert "traffic: stopped" in lab.layout.traffic_log.read_text()


def test_the_generator_stops_by_itself_when_its_lab_is_gone(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=True, flood_after=None)
    state = lab.dir / "lab.json"
    try:
        generator = lab.processes()["traffic"]
        state.rename(tmp_path / "moved.json")
        assert wait_for(lambda: not generator.alive(), timeout=5)
        (tmp_path / "moved.json").rename(state)
    finally:
        lab.stop()
    assert not lab.status()["running"]


def test_a_missing_nginx_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("opsconsole.lab.lab.find_nginx", lambda: None)
    with pytest.raises(LabError, match=r"nginx is not installed: apt-get install nginx$") as e:
        Lab.start(traffic=False)
    assert e.value.exit_status == 2


# -- traffic planning (no network) ----------------------------------------------------------


def test_send_refuses_any_address_outside_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        send("http://192.0.2.1/")


def test_the_flood_is_deterministic_per_seed_and_spread_over_a_large_pool() -> None:
    services = [s.name for s in SITES]
    a, b, c = Flood(1, services), Flood(1, services), Flood(2, services)
    first = [a.next() for _ in range(20_000)]
    assert first[:100] == [b.next() for _ in range(100)]
    assert first[:100] != [c.next() for _ in range(100)]
    ips = [r.client_ip for r in first]
    assert all(in_any(ip, FLOOD_NETS) for ip in ips)
    assert len(set(ips)) > 12_000
    assert any(":" in ip for ip in ips)
    per_24: dict[str, int] = {}
    for ip in ips:
        if "." in ip:
            net = ip.rsplit(".", 1)[0] + ".0/24"
            per_24[net] = per_24.get(net, 0) + 1
    top = sorted(per_24, key=lambda n: per_24[n], reverse=True)[:6]
    assert set(top) == set(a.heavy_subnets()[:6])
    assert all(r.path.startswith(("/wp-login.php?x=", "/")) and not r.legit for r in first)


def test_browsing_asks_for_existing_pages_from_a_stable_pool_of_clients() -> None:
    pages = {s.name: s.pages for s in SITES}
    browsing = Browsing(1, pages)
    requests = [browsing.next(name) for _ in range(500) for name in pages]
    assert len({r.client_ip for r in requests}) <= 300
    assert all(in_any(r.client_ip, LEGIT_NETS) for r in requests)
    existing = sum(r.path in pages[r.service] for r in requests)
    assert existing > 0.9 * len(requests)
    assert any(r.conditional for r in requests)
