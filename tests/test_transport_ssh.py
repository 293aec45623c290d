"""The SSH transport and the connection pool, against real OpenSSH sshd processes on loopback.

These tests need sshd configurations the shared lab does not have (a tiny ``MaxStartups``, a port
chosen before the server exists, wrong keys), so each starts its own sshd following LAB-NOTES and
stops it by PID.  Nothing here is mocked: every handshake, refusal and retry is a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import psutil
import pytest

from opsconsole.config import ServerConfig
from opsconsole.transport import (
    AuthenticationError,
    Backoff,
    ConnectionPool,
    HostKeyError,
    LinkState,
    ServerStatus,
    SessionLimitError,
    SSHTransport,
    TransportError,
    UnreachableError,
    connect_ssh,
)

SSHD = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin") or "/usr/sbin/sshd"
pytestmark = pytest.mark.usefixtures("needs_sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateSshd:
    """One real sshd for one test: its own host key, client key, known_hosts and config."""

    def __init__(self, dir: Path, *, port: int | None = None, **options: str) -> None:
        self.dir = dir
        self.port = port or free_port()
        self.options = {"MaxStartups": "100:30:200", "MaxSessions": "50", **options}
        self.user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
        dir.mkdir(parents=True, exist_ok=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key.write_private_key(dir / "host_key")
        os.chmod(dir / "host_key", 0o600)
        self.client_key = dir / "client_key"
        client = asyncssh.generate_private_key("ssh-ed25519")
        client.write_private_key(self.client_key)
        os.chmod(self.client_key, 0o600)
        (dir / "authorized_keys").write_bytes(client.export_public_key())
        self.known_hosts = dir / "known_hosts"
        public = self.host_key.export_public_key().decode().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(public)}\n")
        (dir / "home").mkdir(exist_ok=True)
        self.log = dir / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def fingerprint(self) -> str:
        fingerprint: str = self.host_key.get_fingerprint("sha256")
        return fingerprint

    def server(self, name: str = "web1", **changes: object) -> ServerConfig:
        fields: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "known_hosts": str(self.known_hosts),
            "client_keys": (str(self.client_key),),
        }
        fields.update(changes)
        return ServerConfig(name=name, **fields)  # type: ignore[arg-type]

    def start(self) -> PrivateSshd:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        lines = [
            f"ListenAddress 127.0.0.1:{self.port}",
            f"HostKey {self.dir / 'host_key'}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            f"SetEnv HOME={self.dir / 'home'}",
            *(f"{k} {v}" for k, v in self.options.items()),
        ]
        config = self.dir / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stderr=self.log.open("ab")
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.02)
        raise AssertionError(f"sshd did not start: {self.log.read_text()}")

    def session_pids(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener)."""
        assert self.proc is not None
        return [p.pid for p in psutil.Process(self.proc.pid).children()]

    def stop(self) -> None:
        if self.proc is None:
            return
        sessions = self.session_pids() if self.proc.poll() is None else []
        self.proc.terminate()
        self.proc.wait(5)
        for pid in sessions:  # connections outlive the listener: end them too, by PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
        self.proc = None


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[PrivateSshd]:
    server = PrivateSshd(tmp_path / "sshd").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def transport(sshd: PrivateSshd) -> AsyncIterator[SSHTransport]:
    t = await connect_ssh(sshd.server(), ssh_config=[])
    try:
        yield t
    finally:
        await t.close()


def fast() -> Backoff:
    return Backoff(initial=0.1, maximum=0.5)


# -- the transport ----------------------------------------------------------------------------


async def test_commands_run_with_their_arguments_exactly_as_given(transport: SSHTransport) -> None:
    tricky = ["a b", "$HOME", "'quoted'", '"dq"', "semi;colon", "back`tick`", "*", ""]
    result = await transport.run(["printf", "%s|", *tricky])
    assert result.ok
    assert result.stdout.decode() == "|".join(tricky) + "|"

    fed = await transport.run(["wc", "-c"], input=b"x" * 100_000)
    assert fed.stdout.strip() == b"100000"

    failed = await transport.run(["ls", "/no/such/dir"])
    assert failed.exit_status == 2 and b"No such file" in failed.stderr

    configured = await transport.run_configured("echo one; echo two >&2; exit 3")
    assert (configured.exit_status, configured.stdout, configured.stderr) == (3, b"one\n", b"two\n")


async def test_a_stream_delivers_output_as_it_is_written(transport: SSHTransport) -> None:
    stream = await transport.open_stream(["sh", "-c", "echo first; sleep 0.3; echo second"])
    first = await asyncio.wait_for(stream.read(), 5)
    assert first == b"first\n"
    rest = b""
    while chunk := await asyncio.wait_for(stream.read(), 5):
        rest += chunk
    assert rest == b"second\n"
    await stream.close()
    assert stream.exit_status == 0


async def test_a_command_that_runs_too_long_is_abandoned_with_a_clear_error(
    transport: SSHTransport,
) -> None:
    with pytest.raises(TransportError, match=r"web1: sleep timed out after 0s"):
        await transport.run(["sleep", "5"], timeout=0.3)
    assert (await transport.run(["true"])).ok  # the connection is still usable


async def test_privileged_commands_use_sudo_only_when_the_server_is_configured_for_it(
    sshd: PrivateSshd,
) -> None:
    plain = await connect_ssh(sshd.server(sudo=False), ssh_config=[])
    with_sudo = await connect_ssh(sshd.server(sudo=True), ssh_config=[])
    try:
        assert (await plain.run(["echo", "x"], privileged=True)).stdout == b"x\n"
        # `exec sudo -n -- echo x` on the server: proven by ps showing the sudo parent, or by
        # sudo's own refusal where sudo is absent or asks for a password.
        probe = await with_sudo.run(["sh", "-c", "ps -o comm= -p $PPID"], privileged=True)
        sudo_exists = (await plain.run(["sh", "-c", "command -v sudo"])).ok
        if sudo_exists:
            assert probe.stdout.strip() == b"sudo" or b"sudo" in probe.stderr
        else:
            assert probe.exit_status == 127 and b"sudo" in probe.stderr
    finally:
        await plain.close()
        await with_sudo.close()


async def test_one_session_too_many_is_reported_as_a_session_limit(tmp_path: Path) -> None:
    server = PrivateSshd(tmp_path / "s", MaxSessions="2").start()
    try:
        t = await connect_ssh(server.server(), ssh_config=[])
        streams = [await t.open_stream(["sleep", "30"]) for _ in range(2)]
        with pytest.raises(SessionLimitError, match="MaxSessions"):
            await t.run(["true"])
        for s in streams:
            await s.close()
        await t.close()
    finally:
        server.stop()


async def test_an_alias_from_the_operators_ssh_config_is_resolved(sshd: PrivateSshd) -> None:
    config = sshd.dir / "ssh_config"
    config.write_text(
        f"Host web1-alias\n    HostName 127.0.0.1\n    Port {sshd.port}\n"
        f"    User {sshd.user}\n    IdentityFile {sshd.client_key}\n"
    )
    server = ServerConfig(name="web1", host="web1-alias", known_hosts=str(sshd.known_hosts))
    transport = await connect_ssh(server, ssh_config=[str(config)])
    try:
        assert (await transport.run(["echo", "via alias"])).stdout == b"via alias\n"
    finally:
        await transport.close()


async def test_a_port_that_never_speaks_ssh_times_out_clearly(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    with socket.socket() as silent:  # accepts TCP, never sends a banner
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        server = ServerConfig(
            name="web1", host="127.0.0.1", port=port, known_hosts=str(known_hosts)
        )
        with pytest.raises(UnreachableError, match=rf"no SSH answer from 127.0.0.1 port {port}"):
            await connect_ssh(server, connect_timeout=0.5, ssh_config=[])


# -- refusals -------------------------------------------------------------------------------


def accepted_logins(server: PrivateSshd) -> int:
    return server.log.read_text().count("Accepted publickey")


async def test_an_unknown_host_key_is_refused_with_its_fingerprint(sshd: PrivateSshd) -> None:
    sshd.known_hosts.write_text("")
    with pytest.raises(HostKeyError) as caught:
        await connect_ssh(sshd.server(), ssh_config=[])
    message = str(caught.value)
    assert f"127.0.0.1 port {sshd.port}" in message
    assert sshd.fingerprint in message and "not in" in message
    assert caught.value.fingerprint == sshd.fingerprint
    assert accepted_logins(sshd) == 0  # never authenticated, let alone ran anything


async def test_a_changed_host_key_is_refused_and_called_a_mismatch(sshd: PrivateSshd) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    sshd.known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(impostor.split()[:2])}\n")
    with pytest.raises(HostKeyError) as caught:
        await connect_ssh(sshd.server(), ssh_config=[])
    assert "does NOT match" in str(caught.value) and sshd.fingerprint in str(caught.value)
    assert accepted_logins(sshd) == 0


async def test_a_missing_known_hosts_file_is_not_replaced_by_another(sshd: PrivateSshd) -> None:
    missing = sshd.dir / "nowhere" / "known_hosts"
    with pytest.raises(HostKeyError, match=f"{missing} does not exist") as caught:
        await connect_ssh(sshd.server(known_hosts=str(missing)), ssh_config=[])
    assert sshd.fingerprint in str(caught.value)


async def test_a_refused_client_key_names_the_user_and_the_host(sshd: PrivateSshd) -> None:
    other = sshd.dir / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(other)
    with pytest.raises(AuthenticationError) as caught:
        await connect_ssh(sshd.server(client_keys=(str(other),)), ssh_config=[])
    assert f"refused to log in user {sshd.user!r}" in str(caught.value)
    assert f"127.0.0.1 port {sshd.port}" in str(caught.value)


async def test_a_host_key_refusal_fails_the_server_at_once_without_retrying(
    sshd: PrivateSshd,
) -> None:
    sshd.known_hosts.write_text("")
    seen: list[ServerStatus] = []
    pool = ConnectionPool({"web1": sshd.server()}, ssh_config=[], on_status=seen.append)
    try:
        with pytest.raises(HostKeyError):
            await pool.get("web1")
        with pytest.raises(HostKeyError):
            await pool.get("web1")  # remembered, not tried again
        assert [s.state for s in seen] == [LinkState.CONNECTING, LinkState.FAILED]
        assert pool.status("web1").describe().startswith("failed: host key of 127.0.0.1")
        public = sshd.host_key.export_public_key().decode().split()[:2]
        sshd.known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(public)}\n")  # fixed…
        pool.reset("web1")  # …and the operator asks for another try
        assert (await (await pool.get("web1")).run(["true"])).ok
    finally:
        await pool.close()


# -- the pool -------------------------------------------------------------------------------


async def test_an_unreachable_server_is_retried_with_backoff_until_it_comes_up(
    tmp_path: Path,
) -> None:
    server = PrivateSshd(tmp_path / "late")  # keys and port chosen, not started yet
    seen: list[ServerStatus] = []
    pool = ConnectionPool(
        {"web1": server.server()},
        ssh_config=[],
        backoff=lambda: Backoff(initial=0.2, maximum=10.0),
        on_status=seen.append,
    )
    try:
        getting = asyncio.create_task(pool.get("web1"))
        await asyncio.sleep(1.5)
        retries = [s for s in seen if s.state is LinkState.RETRYING]
        assert len(retries) >= 2 and not getting.done()
        assert f"cannot reach 127.0.0.1 port {server.port}" in retries[0].detail
        assert "Connection refused" in retries[0].detail
        assert retries[0].retry_at is not None and "retrying in" in retries[0].describe()
        # the delays double (0.2, 0.4, 0.8 s …), each spread by ±20 %: they grow (the time of
        # each refused attempt adds to every gap, so on a busy machine the ratio is below 2)
        times = [s.retry_at for s in retries if s.retry_at is not None]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(later > earlier for earlier, later in itertools.pairwise(gaps))
        server.start()
        transport = await asyncio.wait_for(getting, 10)
        assert pool.status("web1").state is LinkState.CONNECTED
        assert (await transport.run(["echo", "up"])).stdout == b"up\n"
    finally:
        await pool.close()
        server.stop()


async def test_twenty_servers_connect_with_bounded_handshakes(tmp_path: Path) -> None:
    # This sshd drops every unauthenticated connection beyond 4, like a busy real server.  sshd
    # counts a login as done a moment after the client sees it done, so the bound keeps a margin.
    server = PrivateSshd(tmp_path / "busy", MaxStartups="4").start()
    fleet = {f"web{i}": server.server(f"web{i}") for i in range(20)}
    try:
        seen: list[ServerStatus] = []
        pool = ConnectionPool(fleet, max_handshakes=2, ssh_config=[], on_status=seen.append)
        transports = await asyncio.wait_for(asyncio.gather(*(pool.get(n) for n in fleet)), 60)
        results = await asyncio.gather(*(t.run(["echo", t.name]) for t in transports))
        assert [r.stdout.decode().strip() for r in results] == list(fleet)
        assert pool.peak_handshakes == 2
        assert not [s for s in seen if s.state is LinkState.RETRYING]  # none dropped
        await pool.close()

        # Without the bound the same server drops some handshakes; the pool retries them.
        seen.clear()
        greedy = ConnectionPool(
            fleet, max_handshakes=20, backoff=fast, ssh_config=[], on_status=seen.append
        )
        await asyncio.wait_for(asyncio.gather(*(greedy.get(n) for n in fleet)), 60)
        assert all(s.state is LinkState.CONNECTED for s in greedy.statuses().values())
        assert greedy.peak_handshakes > 4
        assert [s for s in seen if s.state is LinkState.RETRYING]
        await greedy.close()
    finally:
        server.stop()


async def test_a_dropped_connection_is_reopened_and_get_returns_the_new_one(
    sshd: PrivateSshd,
) -> None:
    seen: list[ServerStatus] = []
    pool = ConnectionPool(
        {"web1": sshd.server()}, ssh_config=[], backoff=fast, on_status=seen.append
    )
    try:
        first = await pool.get("web1")
        assert (await first.run(["true"])).ok
        (session,) = sshd.session_pids()
        os.kill(session, 15)  # the server side of the connection dies
        deadline = time.monotonic() + 10
        while pool.status("web1").state is not LinkState.CONNECTED or len(seen) < 3:
            assert time.monotonic() < deadline, seen
            await asyncio.sleep(0.05)
        assert any(s.detail == "connection lost" for s in seen)
        second = await pool.get("web1")
        assert second is not first
        assert (await second.run(["echo", "back"])).stdout == b"back\n"
        with pytest.raises(TransportError):
            await first.run(["true"])
    finally:
        await pool.close()


async def test_local_servers_need_no_ssh(tmp_path: Path) -> None:
    pool = ConnectionPool({"here": ServerConfig(name="here", host="local")})
    transport = await pool.get("here")
    assert (await transport.run(["echo", "local"])).stdout == b"local\n"
    assert pool.statuses()["here"].state is LinkState.CONNECTED
    with pytest.raises(TransportError, match="no server 'elsewhere'"):
        await pool.get("elsewhere")
    await pool.close()
    with pytest.raises(TransportError, match="closed"):
        await pool.get("here")


async def test_an_unreachable_server_fails_after_max_attempts(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    server = ServerConfig(
        name="web1", host="127.0.0.1", port=free_port(), known_hosts=str(known_hosts)
    )
    pool = ConnectionPool(
        {"web1": server},
        backoff=fast,
        max_attempts=3,
        ssh_config=[],
    )
    with pytest.raises(UnreachableError, match="Connection refused"):
        await pool.get("web1")
    assert pool.status("web1").state is LinkState.FAILED
    await pool.close()
