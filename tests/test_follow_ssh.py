"""The log follower through a real sshd: killed tails, dropped connections, rotations, real nginx.

Uses the rehearsal lab of conftest.py (a real OpenSSH sshd on loopback, strict host keys) and, for
the nginx test, a one-server lab of its own, so rotating its log disturbs no other test.  Remote
processes are found among the lab sshd's descendants and killed by PID, never by name.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from test_follow_local import (  # noqa: F401  (stop_followers: the autouse fixture)
    Collector,
    Writer,
    exactly_once,
    lines,
    rotate,
    stop_followers,
)

from opsconsole.config import load_config
from opsconsole.lab import Lab, send
from opsconsole.logs.follow import FollowPhase, LogFollower
from opsconsole.logs.history import LogFileError, file_size, read_range
from opsconsole.transport import Backoff, ConnectionPool, Transport

pytestmark = pytest.mark.lab


@pytest.fixture
async def pool(lab: Lab) -> AsyncIterator[ConnectionPool]:
    servers = load_config(str(lab.config_path)).servers
    p = ConnectionPool(servers, ssh_config=[], backoff=lambda: Backoff(0.1, 0.5))
    yield p
    await p.close()


def remote_tails(lab: Lab, path: Path) -> list[psutil.Process]:
    """The server-side ``tail`` processes reading ``path`` under web1's sshd."""
    found = []
    for proc in psutil.Process(lab.servers["web1"].sshd_pid).children(recursive=True):
        try:
            argv = proc.cmdline()
        except psutil.NoSuchProcess:  # ended since it was listed (a session closing)
            continue
        if argv and argv[0] == "tail" and os.path.realpath(argv[-1]) == str(path):
            found.append(proc)
    return found


def session_of(lab: Lab, proc: psutil.Process) -> psutil.Process:
    """The per-connection sshd process that ``proc`` runs under."""
    listener = lab.servers["web1"].sshd_pid
    while proc.ppid() != listener:
        proc = psutil.Process(proc.ppid())
    return proc


def follower(get: object, path: Path, **kw: object) -> Collector:
    kw.setdefault("poll_interval", 0.2)
    kw.setdefault("drain_idle", 0.5)
    kw.setdefault("backoff", lambda: Backoff(0.2, 1.0))
    return Collector(LogFollower(get, str(path), **kw))  # type: ignore[arg-type]


async def wait_following(c: Collector, path: Path, lab: Lab) -> None:
    await c.wait_state(FollowPhase.FOLLOWING)
    deadline = time.monotonic() + 10
    while not remote_tails(lab, path):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_lines_and_a_rotation_over_ssh_are_counted_exactly(
    lab: Lab, pool: ConnectionPool, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    log.touch()
    c = follower(lambda: pool.get("web1"), log)
    await wait_following(c, log, lab)
    writer = Writer(log, 5000, pace=0.002)
    writer.at(2000, lambda: rotate(log, writer))
    writer.start()
    await asyncio.to_thread(writer.join)
    exactly_once(await c.wait_for(5000), lines("w", 5000))
    assert c.follower.offset == log.stat().st_size
    await c.stop()
    assert not remote_tails(lab, log)  # closing the channel ended the exec'd tail


async def test_a_killed_remote_tail_is_resumed_without_loss_or_duplicates(
    lab: Lab, pool: ConnectionPool, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    log.touch()
    c = follower(lambda: pool.get("web1"), log)
    await wait_following(c, log, lab)
    killed: list[int] = []

    def kill_remote_tail() -> None:
        deadline = time.monotonic() + 10
        while not (tails := remote_tails(lab, log)):  # the follower may still be reconnecting
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for proc in tails:
            proc.kill()
            killed.append(proc.pid)

    writer = Writer(log, 4000, pace=0.002)
    writer.at(1000, kill_remote_tail)
    writer.at(3000, kill_remote_tail)
    writer.start()
    await asyncio.to_thread(writer.join)
    exactly_once(await c.wait_for(4000), lines("w", 4000))
    assert len(killed) == 2
    assert [s.phase for s in c.states].count(FollowPhase.RECONNECTING) == 2
    await c.stop()


async def test_a_dropped_connection_with_a_rotation_meanwhile_loses_nothing(
    lab: Lab, pool: ConnectionPool, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    log.touch()
    gate = asyncio.Event()
    gate.set()

    async def get() -> Transport:
        await gate.wait()  # the test holds the follower off while the log is rotated
        return await pool.get("web1")

    c = follower(get, log)
    await wait_following(c, log, lab)
    writer = Writer(log, 3000)
    writer.start()
    await asyncio.to_thread(writer.join)
    await c.wait_for(3000)

    gate.clear()
    session = session_of(lab, remote_tails(lab, log)[0])
    session.send_signal(signal.SIGTERM)  # the connection drops
    await c.wait_state(FollowPhase.RECONNECTING)
    with open(log, "ab") as f:  # while disconnected: more lines, a rotation, lines in both files
        f.write(lines("w", 3500, 3000))
        log.rename(f"{log}.1")
        log.write_bytes(lines("w", 3800, 3500))
        f.write(lines("w", 4000, 3800))  # the server had not reopened yet
    gate.set()
    received = await c.wait_for(4000)
    exactly_once(received, lines("w", 4000))
    assert c.follower.inode == f"{log.stat().st_dev}:{log.stat().st_ino}"
    assert not c.follower.lost
    await c.stop()


async def test_nginx_keeps_every_request_across_rename_and_reopen(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    pool = ConnectionPool(load_config(str(lab.config_path)).servers, ssh_config=[])
    try:
        log = lab.access_log("shop", "web1")
        url = lab.url("shop")
        c = follower(lambda: pool.get("web1"), log)
        await wait_following(c, log, lab)
        await asyncio.to_thread(send, url, 200, path="/before")
        log.rename(f"{log}.1")  # logrotate: rename, then tell nginx to reopen
        await asyncio.to_thread(send, url, 150, path="/between")  # still into the renamed file
        await asyncio.sleep(0.5)
        os.kill(lab.servers["web1"].nginx_pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not log.exists():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.to_thread(send, url, 250, path="/after")
        received = await c.wait_for(600)
        paths = [line.split(b'"')[1].split()[1] for line in received]
        assert (paths.count(b"/before"), paths.count(b"/between"), paths.count(b"/after")) == (
            200,
            150,
            250,
        )
        assert len(received) == 600
        await c.stop()
    finally:
        await pool.close()
        lab.stop()


async def test_ranged_reads_over_ssh_partition_the_file(
    pool: ConnectionPool, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(lines("a", 3000) + b"half")
    transport = await pool.get("web1")
    file_id, size = await file_size(transport, str(log))
    assert size == log.stat().st_size
    cuts = [0, 10_000, 10_001, 50_000, size]
    got = b""
    for start, end in itertools.pairwise(cuts):
        got += b"".join([c async for c in read_range(transport, str(log), start, end)])
    assert got == lines("a", 3000)
    log.rename(f"{log}.1")
    log.write_bytes(b"other\n")
    with pytest.raises(LogFileError, match="replaced"):
        async for _ in read_range(transport, str(log), 0, None, file_id=file_id):
            pass


async def test_a_refused_host_key_is_an_error_state_not_a_crash(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    server = load_config(str(lab.config_path)).servers["web1"]
    pool = ConnectionPool({"web1": replace(server, known_hosts=str(empty))}, ssh_config=[])
    try:
        c = follower(lambda: pool.get("web1"), tmp_path / "access.log")
        state = await c.wait_state(FollowPhase.ERROR)
        assert "host key of 127.0.0.1" in state.detail and "SHA256:" in state.detail
        assert not c.task.done()
    finally:
        await pool.close()
