"""Host metrics over a transport: psutil and /proc readers, the shell fallback, nginx liveness.

The probe runs exactly as on a server (``python3 -`` with the program on stdin) through a
LocalTransport.  nginx instances, listeners and client sockets are started by the tests on
loopback and stopped by PID at the end.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from opsconsole.config import HealthConfig, ServerConfig, ServiceConfig
from opsconsole.health import hostprobe
from opsconsole.health.host import (
    HostProbeError,
    nginx_target,
    probe_params,
    probe_program,
    read_host,
)
from opsconsole.health.report import HostMetrics, Status
from opsconsole.health.verdict import judge_server
from opsconsole.transport.base import RunResult
from opsconsole.transport.local import LocalTransport

NGINX = "/usr/sbin/nginx"
WEB1 = ServerConfig(name="web1", host="local")


class RenamingTransport(LocalTransport):
    """A LocalTransport on which some commands do not exist (``{"sh": None}``) or are others."""

    def __init__(self, renames: dict[str, str | None]) -> None:
        super().__init__("web1")
        self.renames = renames

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        if argv[0] in self.renames:
            new = self.renames[argv[0]]
            if new is None:
                return RunResult(127, b"", f"sh: 1: {argv[0]}: not found".encode())
            argv = [new, *argv[1:]]
        return await super().run(argv, input=input, timeout=timeout)


async def read(params: dict[str, Any], transport: LocalTransport | None = None) -> HostMetrics:
    return await read_host(
        transport or LocalTransport("web1"), WEB1, {"cpu_sample": 0.05, **params}, timeout=10
    )


# ---- the program itself -------------------------------------------------------------------


def test_the_probe_program_is_python36_standard_library_text() -> None:
    source = probe_program().decode()
    tree = ast.parse(source, feature_version=(3, 6))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert imported <= set(sys.stdlib_module_names) | {"psutil"}
    assert "__future__" not in imported  # `from __future__ import annotations` is 3.7+
    assert "opsconsole" not in source.split('"""', 2)[2]  # nothing of ours on the server


def test_proc_addresses_are_decoded_for_ipv4_and_ipv6() -> None:
    assert hostprobe.hex_address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert hostprobe.hex_address("B80D0120000000000000000001000000:0050") == ("2001:db8::1", 80)
    # An IPv4 client of an IPv6 socket is reported as the IPv4 address.
    assert hostprobe.hex_address("0000000000000000FFFF00000701A8C0:01BB") == ("192.168.1.7", 443)


def test_nginx_prefix_and_conf_are_taken_from_the_nginx_test_command() -> None:
    assert nginx_target("/usr/sbin/nginx -p /srv/lab/web1/nginx -c nginx.conf -t") == {
        "prefix": "/srv/lab/web1/nginx",
        "conf": "nginx.conf",
    }
    assert nginx_target("sudo -p PROMPT nginx -t") == {"prefix": None, "conf": None}
    assert nginx_target("nginx -c/etc/nginx/alt.conf -t") == {
        "prefix": None,
        "conf": "/etc/nginx/alt.conf",
    }


def test_probe_params_name_each_servers_own_nginx_and_log_file_systems() -> None:
    service = ServiceConfig(
        name="shop",
        servers=("web1", "web2"),
        access_log="/var/log/{server}/shop.log",
        nginx_test="nginx -p /srv/{server}/nginx -c nginx.conf -t",
    )
    params = probe_params(WEB1, [service])
    assert params["nginx"] == [{"prefix": "/srv/web1/nginx", "conf": "nginx.conf"}]
    assert params["disks"] == ["/", "/var/log/web1"]


# ---- metrics, both readers ----------------------------------------------------------------


@pytest.mark.parametrize("use_psutil", [True, False], ids=["psutil", "proc"])
async def test_the_probe_reads_every_metric(use_psutil: bool) -> None:
    m = await read({"use_psutil": use_psutil, "disks": ["/", "/tmp"]})
    assert m.source == ("psutil" if use_psutil else "proc")
    assert m.errors == {}
    assert m.load is not None and all(x >= 0 for x in m.load)
    assert m.cpu_count == os.cpu_count()
    assert m.cpu_percent is not None and 0 <= m.cpu_percent <= 100
    expected_memory = psutil.virtual_memory().percent
    assert m.memory_percent is not None and abs(m.memory_percent - expected_memory) < 5
    assert m.disk_percent is not None
    assert abs(m.disk_percent - psutil.disk_usage("/").percent) < 1
    assert m.tcp is not None and {"ESTABLISHED", "SYN_RECV", "TIME_WAIT"} <= set(m.tcp)


async def test_a_server_whose_python_has_no_psutil_is_read_from_proc(tmp_path: Path) -> None:
    bare = tmp_path / "python3-without-psutil"
    bare.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    bare.chmod(0o755)
    server = ServerConfig(name="web1", host="local", python=str(bare))
    m = await read_host(LocalTransport("web1"), server, {"cpu_sample": 0.05}, timeout=10)
    assert m.source == "proc"
    assert m.errors == {}
    assert m.memory_percent is not None and m.tcp is not None


async def test_a_server_without_python_is_read_with_the_shell() -> None:
    m = await read({}, RenamingTransport({"python3": None}))
    assert m.source == "shell"
    assert m.notes == ("python3 not found on web1: read /proc with sh instead",)
    assert m.errors == {}
    assert m.load is not None and m.cpu_count == os.cpu_count()
    assert m.memory_percent is not None and m.disk_percent is not None
    assert m.tcp is not None and m.nginx is not None


async def test_an_interpreter_that_cannot_run_the_probe_falls_back_to_the_shell(
    tmp_path: Path,
) -> None:
    old = tmp_path / "python2"  # what `python` still is on some old servers
    old.write_text("#!/bin/sh\necho 'SyntaxError: invalid syntax' >&2\nexit 1\n")
    old.chmod(0o755)
    server = ServerConfig(name="web1", host="local", python=str(old))
    m = await read_host(LocalTransport("web1"), server, {"cpu_sample": 0.05}, timeout=10)
    assert m.source == "shell"
    assert m.notes == (
        f"the host probe failed on web1 ({old}: SyntaxError: invalid syntax): "
        "read /proc with sh instead",
    )


async def test_without_python_or_shell_the_reason_is_named_and_nothing_crashes() -> None:
    transport = RenamingTransport({"python3": None, "sh": None})
    with pytest.raises(HostProbeError) as caught:
        await read({}, transport)
    assert str(caught.value).startswith("python3 not found on web1: host metrics unavailable")
    verdict = judge_server("web1", HealthConfig(), error=str(caught.value))
    assert verdict.status is Status.WARN


async def test_an_unreadable_proc_is_a_per_metric_error() -> None:
    m = await read({"use_psutil": False, "proc": "/nonexistent-proc"})
    assert set(m.errors) == {"load", "cpu", "memory", "tcp", "nginx"}
    assert m.errors["memory"] == (
        "cannot read /nonexistent-proc/meminfo: No such file or directory"
    )
    assert m.disk_percent is not None  # what does not need /proc is still there
    verdict = judge_server("web1", HealthConfig(), metrics=m)
    assert verdict.status is Status.WARN
    assert "memory unavailable: cannot read /nonexistent-proc/meminfo" in verdict.reasons[2]


async def test_garbage_in_proc_files_is_a_per_metric_error(tmp_path: Path) -> None:
    for name, text in {
        "loadavg": "nonsense",
        "stat": "intr 1 2 3",
        "meminfo": "MemFree: 1 kB",
    }.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text("header\n 0: ZZZZ:0 0:0 01\n")
    m = await read({"use_psutil": False, "proc": str(tmp_path)})
    assert set(m.errors) == {"load", "cpu", "memory", "tcp"}
    assert m.errors["memory"] == "KeyError: 'MemTotal'"
    assert m.nginx is not None  # an empty process table: no nginx, and that is a fact


# ---- TCP states and top remote addresses --------------------------------------------------


@pytest.fixture
def half_open() -> Iterator[tuple[int, int]]:
    """20 connections from 127.0.0.77 left half-open (SYN_RECV) on a loopback port.

    A listener with TCP_DEFER_ACCEPT keeps a handshake's request socket in SYN_RECV until the
    client sends data, which these clients never do: on loopback that is the one reliable way to
    hold SYN_RECV sockets (a full accept queue just drops SYNs).  Yields (port, count).
    """
    listener = socket.socket()
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 30)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    clients = []
    try:
        for _ in range(20):
            c = socket.socket()
            clients.append(c)
            c.bind(("127.0.0.77", 0))
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
        time.sleep(0.2)
        yield port, len(clients)
    finally:
        for c in clients:
            c.close()
        listener.close()


@pytest.mark.parametrize("reader", ["psutil", "proc", "shell"])
async def test_half_open_connections_show_as_syn_recv_and_in_the_top_addresses(
    half_open: tuple[int, int], reader: str
) -> None:
    _, count = half_open
    transport = RenamingTransport({"python3": None} if reader == "shell" else {})
    m = await read({"use_psutil": reader == "psutil"}, transport)
    assert m.source == reader
    assert m.tcp is not None and m.tcp["SYN_RECV"] >= count
    assert m.top_connections is not None
    assert ("127.0.0.77", count) in m.top_connections
    verdict = judge_server("web1", HealthConfig(syn_recv_warn=count), metrics=m)
    assert f"SYN_RECV {m.tcp['SYN_RECV']} >= {count}" in verdict.reasons


# ---- nginx: this server's master, not any nginx --------------------------------------------


def start_nginx(prefix: Path, *, pid_file: bool = True) -> subprocess.Popen[bytes]:
    """An nginx master (and worker) under ``prefix``, in the foreground, listening nowhere."""
    temp = "\n".join(f"{n}_temp_path {prefix}/{n};" for n in ("client_body", "proxy", "fastcgi"))
    temp += f"\nuwsgi_temp_path {prefix}/uwsgi;\nscgi_temp_path {prefix}/scgi;"
    prefix.mkdir(parents=True)
    (prefix / "nginx.conf").write_text(
        "daemon off;\nworker_processes 1;\n"
        + (f"pid {prefix}/nginx.pid;\n" if pid_file else f"pid {prefix}/run/master.pid;\n")
        + f"error_log {prefix}/error.log;\nevents {{ worker_connections 16; }}\n"
        + f"http {{ access_log off;\n{temp}\n}}\n"
    )
    (prefix / "run").mkdir()  # before nginx starts: it writes its pid file there at once
    popen = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", "nginx.conf", "-e", "error.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_path = prefix / ("nginx.pid" if pid_file else "run/master.pid")
    deadline = time.monotonic() + 5
    while not pid_path.exists():
        if popen.poll() is not None or time.monotonic() > deadline:
            stop(popen)
            raise AssertionError(f"nginx did not start: {(prefix / 'error.log').read_text()}")
        time.sleep(0.05)
    if not pid_file:
        pid_path.unlink()  # only the command line can tell now
    return popen


@pytest.fixture
def two_nginx(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """web1's nginx (with a pid file) and web10's (without), like two lab servers on one host."""
    first = start_nginx(tmp_path / "web1" / "nginx")
    try:
        second = start_nginx(tmp_path / "web10" / "nginx", pid_file=False)
    except BaseException:
        stop(first)
        raise
    try:
        yield first, second
    finally:
        stop(first)
        stop(second)


def stop(popen: subprocess.Popen[bytes]) -> None:
    """Stop an nginx master by its PID (it stops its workers), killing it if it lingers."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(5)


@pytest.mark.parametrize("reader", ["psutil", "proc", "shell"])
async def test_stopping_one_servers_nginx_shows_only_that_one_down(
    tmp_path: Path,
    two_nginx: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]],
    reader: str,
) -> None:
    first, _ = two_nginx
    transport = RenamingTransport({"python3": None} if reader == "shell" else {})
    targets = [
        nginx_target(f"nginx -p {tmp_path}/web1/nginx -c nginx.conf -t"),
        nginx_target(f"nginx -p {tmp_path}/web10/nginx/ -c nginx.conf -t"),
    ]
    params = {"nginx": targets, "use_psutil": reader == "psutil"}

    before = await read(params, transport)
    assert before.nginx is not None
    assert [n.running for n in before.nginx] == [True, True]
    assert before.nginx_state == "running"
    if reader != "shell":
        assert before.nginx[0].how == f"pid file {tmp_path}/web1/nginx/nginx.pid"
    assert before.nginx[1].how == "master process"

    first.send_signal(signal.SIGTERM)
    while psutil.Process(first.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped
        time.sleep(0.05)
    after = await read(params, transport)
    assert after.nginx is not None
    assert [n.running for n in after.nginx] == [False, True]
    verdict = judge_server("web1", HealthConfig(), metrics=after)
    assert verdict.status is Status.DOWN
    assert verdict.reasons == (f"nginx stopped (prefix {tmp_path}/web1/nginx)",)


def test_a_psutil_too_old_for_a_call_falls_back_to_proc_for_that_metric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class OldPsutil:
        """psutil before 5.3: process_iter() takes no attribute list."""

        def __getattr__(self, name: str) -> Any:
            return getattr(psutil, name)

        def process_iter(self) -> Iterator[psutil.Process]:
            processes: Iterator[psutil.Process] = psutil.process_iter()
            return processes

    monkeypatch.setattr(hostprobe, "_import_psutil", OldPsutil)
    data = hostprobe.collect({"cpu_sample": 0.01, "nginx": [{"prefix": "/none", "conf": None}]})
    assert data["source"] == "psutil"
    assert data["errors"] == {}
    assert data["nginx"][0]["running"] is False  # answered by the /proc reader


def test_a_master_hidden_by_hidepid_is_found_by_its_pid_file() -> None:
    """An unprivileged login on a host mounted with hidepid sees no other user's process: a pid
    file naming a live process it may not signal is then the proof the master is up."""
    work = Path(tempfile.mkdtemp(prefix="hidepid-"))  # readable by "nobody", unlike tmp_path
    try:
        work.chmod(0o755)
        (work / "hostprobe.py").write_bytes(probe_program())
        (work / "nginx.pid").write_text(f"{os.getpid()}\n")  # a live process owned by root
        (work / "nginx.conf").write_text(f"pid {work}/nginx.pid;\n")
        code = (
            f"import sys, json; sys.path.insert(0, {str(work)!r}); import hostprobe as h; "
            f"print(json.dumps(h.nginx_status([{{'prefix': {str(work)!r}, "
            f"'conf': 'nginx.conf'}}], [])))"
        )
        out = subprocess.run(
            ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", code],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        shutil.rmtree(work)
    [found] = json.loads(out)
    assert (found["running"], found["pid"]) == (True, os.getpid())
    assert "hidden from this user" in found["how"]
