"""The log follower on this machine: real files, real GNU ``tail``, real rotations.

Through :class:`LocalTransport` the follower runs exactly the commands it runs over SSH, so these
tests pin down the byte-exact behaviour (every line once, whatever happens to the file) quickly;
tests/test_follow_ssh.py repeats the essential cases through a real sshd.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.logs.follow import FollowPhase, FollowState, LogFollower
from opsconsole.logs.history import LogFileError, file_size, read_range
from opsconsole.transport import Backoff, LocalTransport, Transport

LOCAL = LocalTransport()


async def local() -> Transport:
    return LOCAL


def lines(prefix: str, count: int, start: int = 0) -> bytes:
    return b"".join(
        b"%s %06d GET /x HTTP/1.1\n" % (prefix.encode(), i) for i in range(start, count)
    )


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


class Collector:
    """Reads a follower's chunks in the background, as the app core does."""

    live: ClassVar[list[Collector]] = []

    def __init__(self, follower: LogFollower) -> None:
        Collector.live.append(self)
        self.follower = follower
        self.data = bytearray()
        self.states: list[FollowState] = []
        follower._on_state = self.states.append
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for chunk in self.follower.chunks():
            assert chunk.endswith(b"\n"), chunk[-80:]
            self.data += chunk

    def lines(self) -> list[bytes]:
        return bytes(self.data).splitlines(keepends=True)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.lines()) < count:
            assert not self.task.done(), self.task
            assert time.monotonic() < deadline, (len(self.lines()), count, self.states[-3:])
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # and nothing more arrives
        return self.lines()

    async def wait_state(self, phase: FollowPhase, timeout: float = 10.0) -> FollowState:
        deadline = time.monotonic() + timeout
        while self.follower.state.phase is not phase:
            assert time.monotonic() < deadline, self.states
            await asyncio.sleep(0.02)
        return self.follower.state

    async def stop(self) -> None:
        await self.follower.close()
        await asyncio.wait([self.task], timeout=5)
        assert self.task.done(), "chunks() did not end after close()"
        if not self.task.cancelled():
            self.task.result()  # an assertion that failed while reading


@pytest.fixture(autouse=True)
async def stop_followers() -> AsyncIterator[None]:
    """Whatever a test asserts, its followers (and their tail processes) are stopped."""
    yield
    while Collector.live:
        await Collector.live.pop().stop()


def follow(path: Path, **kw: object) -> Collector:
    kw.setdefault("poll_interval", 0.1)
    kw.setdefault("drain_idle", 0.5)
    return Collector(LogFollower(local, str(path), **kw))  # type: ignore[arg-type]


async def until_following(c: Collector) -> None:
    await c.wait_state(FollowPhase.FOLLOWING)
    await asyncio.sleep(0.2)  # tail has opened the file


def exactly_once(received: list[bytes], written: bytes) -> None:
    expected = written.splitlines(keepends=True)
    duplicates = [line for line, n in Counter(received).items() if n > 1]
    assert not duplicates, duplicates[:5]
    assert sorted(received) == sorted(expected)


# -- GNU tail itself --------------------------------------------------------------------------


async def test_tail_flushes_its_output_before_saying_file_truncated(tmp_path: Path) -> None:
    """The design rests on this: the message sits exactly between old and new bytes."""
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    stream = await LOCAL.open_stream(["sh", "-c", f"exec tail -c +1 -f -- {log} 2>&1"])
    received = bytearray()

    async def read() -> None:
        while data := await stream.read():
            received.extend(data)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.3)
    for generation in range(30):
        append(log, b"".join(b"gen%d-%d\n" % (generation, i) for i in range(3000)))
        await asyncio.sleep(0.05)
        os.truncate(log, 0)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await stream.close()
    await reader
    marker = f"tail: {log}: file truncated\n".encode()
    generations = bytes(received).split(marker)
    assert len(generations) == 31 and generations[-1] == b""
    for number, text in enumerate(generations[:-1]):
        assert text == b"".join(b"gen%d-%d\n" % (number, i) for i in range(3000))


# -- following --------------------------------------------------------------------------------


async def test_appended_lines_arrive_exactly_once_from_the_end_of_the_file(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(lines("old", 50))
    c = follow(log)
    await until_following(c)
    written = b""
    for batch in range(20):
        data = lines(f"b{batch}", 100)
        append(log, data)
        written += data
        await asyncio.sleep(0.01)
    exactly_once(await c.wait_for(2000), written)
    assert c.follower.offset == log.stat().st_size
    assert c.follower.inode == f"{log.stat().st_dev}:{log.stat().st_ino}"
    await c.stop()


async def test_a_start_offset_is_honoured(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(lines("a", 10))
    fourth = len(lines("a", 3))
    c = follow(log, start_offset=fourth)
    assert await c.wait_for(7) == lines("a", 10, 3).splitlines(keepends=True)
    await c.stop()
    c = follow(log, start_offset=0)
    assert await c.wait_for(10) == lines("a", 10).splitlines(keepends=True)
    await c.stop()


async def test_a_partial_line_is_held_back_until_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    c = follow(log)
    await until_following(c)
    append(log, b"first\nsecond half")
    await c.wait_for(1)
    assert bytes(c.data) == b"first\n"
    assert c.follower.offset == 6
    append(log, b" arrives\n")
    assert await c.wait_for(2) == [b"first\n", b"second half arrives\n"]
    await c.stop()


async def test_a_log_line_imitating_tail_is_counted_as_a_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    c = follow(log)
    await until_following(c)
    forged = f"tail: {log}: file truncated\ntail: inotify resources exhausted!\n".encode()
    append(log, lines("a", 5) + forged + lines("b", 5))
    exactly_once(await c.wait_for(12), lines("a", 5) + forged + lines("b", 5))
    await c.stop()


async def test_a_missing_file_is_waited_for_and_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    c = follow(log)
    state = await c.wait_state(FollowPhase.WAITING)
    assert state.describe() == f"waiting for file: {log}"
    log.write_bytes(lines("a", 20))
    exactly_once(await c.wait_for(20), lines("a", 20))
    await c.stop()


async def test_a_path_that_is_not_a_file_is_an_error_that_keeps_retrying(tmp_path: Path) -> None:
    # We run as root, so an unreadable file cannot be made; a directory is refused the same way.
    c = follow(tmp_path, error_backoff=lambda: Backoff(0.1, 0.2))
    state = await c.wait_state(FollowPhase.ERROR)
    assert state.describe().startswith(f"error: {tmp_path} is not a regular file (directory)")
    assert "(retrying in" in state.describe()
    await asyncio.sleep(0.5)
    assert not c.task.done()  # never raises out of chunks()
    await c.stop()
    assert c.follower.state.phase is FollowPhase.CLOSED


async def test_cancelling_the_reader_stops_the_follower_and_its_tail(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    c = follow(log)
    await until_following(c)
    tails = [p for p in psutil.Process().children(recursive=True) if argv_of(p)[:1] == ["tail"]]
    assert tails
    c.task.cancel()
    await asyncio.wait([c.task], timeout=5)
    assert c.task.cancelled()
    assert all(ended(p) for p in tails)


def ended(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)  # exited; asyncio reaps it
    except psutil.NoSuchProcess:
        return True


# -- rotation and truncation ---------------------------------------------------------------


class Writer(threading.Thread):
    """Appends numbered lines through one open descriptor, as nginx does, reopening on demand."""

    def __init__(self, path: Path, total: int, *, pace: float = 0.0, batch: int = 50) -> None:
        super().__init__(daemon=True)
        self.path, self.total, self.pace, self.batch = path, total, pace, batch
        self.written = 0
        self.reopen = threading.Event()
        self.hooks: dict[int, list[object]] = {}
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def at(self, count: int, action: object) -> None:
        self.hooks.setdefault(count, []).append(action)

    def run(self) -> None:
        while self.written < self.total:
            if self.reopen.is_set():  # nginx -s reopen
                self.reopen.clear()
                os.close(self.fd)
                self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            n = min(self.batch, self.total - self.written)
            os.write(self.fd, lines("w", self.written + n, self.written))
            self.written += n
            for action in self.hooks.pop(self.written, []):
                action()  # type: ignore[operator]
            if self.pace:
                time.sleep(self.pace)
        os.close(self.fd)


def rotate(path: Path, writer: Writer) -> None:
    """logrotate's rename rotation (PATH.1 → PATH.2, PATH → PATH.1, create PATH), then the
    server keeps writing to the old file for a moment before it reopens."""
    old = Path(f"{path}.1")
    if old.exists():
        old.rename(f"{path}.2")
    path.rename(old)
    path.touch()
    threading.Timer(0.15, writer.reopen.set).start()


async def test_a_renamed_log_is_followed_without_losing_a_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    c = follow(log)
    await until_following(c)
    writer = Writer(log, 3000, pace=0.005)
    writer.at(1000, lambda: rotate(log, writer))
    writer.start()
    await asyncio.to_thread(writer.join)
    exactly_once(await c.wait_for(3000), lines("w", 3000))
    assert c.follower.inode == f"{log.stat().st_dev}:{log.stat().st_ino}"
    assert c.follower.offset == log.stat().st_size
    await c.stop()


async def test_fifty_thousand_fast_lines_across_two_rotations_are_counted_exactly(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    log.touch()
    c = follow(log)
    await until_following(c)
    writer = Writer(log, 50_000, pace=0.001, batch=100)
    writer.at(15_000, lambda: rotate(log, writer))
    writer.at(32_000, lambda: rotate(log, writer))
    writer.start()
    await asyncio.to_thread(writer.join)
    exactly_once(await c.wait_for(50_000, timeout=60), lines("w", 50_000))
    await c.stop()


async def test_two_rotations_between_two_looks_are_both_read(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    c = follow(log, poll_interval=1.0)
    await until_following(c)
    writer = Writer(log, 6000)  # as fast as it goes: both rotations within one poll interval
    writer.at(2000, lambda: rotate(log, writer))
    writer.at(2000, lambda: time.sleep(0.3))  # let the server reopen…
    writer.at(4000, lambda: rotate(log, writer))  # …and rotate again before the next look
    writer.start()
    await asyncio.to_thread(writer.join)
    exactly_once(await c.wait_for(6000), lines("w", 6000))
    await c.stop()


async def test_copytruncate_counts_every_line_once(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    c = follow(log)
    await until_following(c)
    append(log, lines("a", 500))
    await c.wait_for(500)
    shutil.copyfile(log, f"{log}.1")  # logrotate copytruncate
    os.truncate(log, 0)
    append(log, lines("b", 300))
    await asyncio.sleep(0.5)
    append(log, lines("c", 100))
    exactly_once(await c.wait_for(900), lines("a", 500) + lines("b", 300) + lines("c", 100))
    assert c.follower.offset == log.stat().st_size
    await c.stop()


async def test_truncation_under_a_partial_line_drops_only_that_fragment(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    c = follow(log)
    await until_following(c)
    append(log, b"complete\nhalf a li")
    await c.wait_for(1)
    os.truncate(log, 0)
    await asyncio.sleep(0.3)
    append(log, b"after\n")
    assert await c.wait_for(2) == [b"complete\n", b"after\n"]
    await c.stop()


def argv_of(proc: psutil.Process) -> list[str]:
    """A process's command line; empty once it has ended (it may end as it is listed)."""
    try:
        return list(proc.cmdline())
    except psutil.NoSuchProcess:
        return []


def kill_own_tail(path: Path) -> int:
    """Kill (by PID) the ``tail`` this test process started for ``path``; return how many."""
    killed = 0
    for child in psutil.Process().children(recursive=True):
        argv = argv_of(child)
        if argv and argv[0] == "tail" and os.path.realpath(argv[-1]) == str(path):
            child.kill()
            killed += 1
    return killed


async def test_a_killed_tail_is_restarted_at_the_last_complete_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    c = follow(log, backoff=lambda: Backoff(0.1, 0.3))
    await until_following(c)
    writer = Writer(log, 4000, pace=0.002)
    kills: list[int] = []

    def kill_during_a_partial_line() -> None:
        append(log, b"partial line wait")
        time.sleep(0.3)  # the follower has read the fragment and holds it back
        kills.append(kill_own_tail(log))
        time.sleep(0.3)
        append(log, b"ing for its end\n")

    writer.at(1000, kill_during_a_partial_line)
    writer.at(2500, lambda: kills.append(kill_own_tail(log)))
    writer.start()
    await asyncio.to_thread(writer.join)
    written = lines("w", 1000) + b"partial line waiting for its end\n" + lines("w", 4000, 1000)
    exactly_once(await c.wait_for(4001), written)
    assert kills == [1, 1]
    assert [s.phase for s in c.states].count(FollowPhase.RECONNECTING) == 2
    assert c.follower.offset == log.stat().st_size
    await c.stop()


async def test_a_truncation_tail_does_not_report_is_caught_by_the_size_poll(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    c = follow(log, truncate_grace=0.3)
    await until_following(c)
    append(log, lines("a", 100))
    await c.wait_for(100)
    (tail,) = [p for p in psutil.Process().children(recursive=True) if argv_of(p)[:1] == ["tail"]]
    tail.suspend()  # a tail that never notices: only the follower's stat poll can
    os.truncate(log, 0)
    append(log, lines("b", 10))
    exactly_once(await c.wait_for(110), lines("a", 100) + lines("b", 10))
    append(log, lines("c", 10))
    exactly_once(await c.wait_for(120), lines("a", 100) + lines("b", 10) + lines("c", 10))
    assert ended(tail)  # the stopped tail was replaced, and ended by PID


async def test_close_interrupts_a_wait_for_the_connection(tmp_path: Path) -> None:
    async def never() -> Transport:
        await asyncio.Event().wait()  # a server the pool keeps retrying
        raise AssertionError

    c = Collector(LogFollower(never, str(tmp_path / "access.log")))
    await asyncio.sleep(0.2)
    await asyncio.wait_for(c.stop(), 2)
    assert c.follower.state.phase is FollowPhase.CLOSED


# -- ranged reads for history -------------------------------------------------------------


async def test_ranged_reads_yield_each_line_once_across_adjacent_ranges(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(lines("a", 1000) + b"being writ")
    file_id, size = await file_size(LOCAL, str(log))
    assert size == log.stat().st_size
    boundary = len(lines("a", 100))
    cuts = [0, 1, 17, boundary - 1, boundary, boundary + 1, 9000, 20_000, size]
    parts = []
    for start, end in itertools.pairwise(cuts):
        parts.append(b"".join([c async for c in read_range(LOCAL, str(log), start, end)]))
    assert b"".join(parts) == lines("a", 1000)
    rest = [c async for c in read_range(LOCAL, str(log), 20_000, None, file_id=file_id)]
    assert b"".join(rest) == lines("a", 1000)[lines("a", 1000).index(b"\n", 19_999) + 1 :]

    log.rename(f"{log}.1")
    log.write_bytes(lines("new", 5))
    with pytest.raises(LogFileError, match="replaced"):
        async for _ in read_range(LOCAL, str(log), 0, None, file_id=file_id):
            pass
    with pytest.raises(LogFileError, match="No such file"):
        await file_size(LOCAL, str(tmp_path / "missing.log"))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"") + b"\n"), max_size=30),
    st.binary(max_size=5).map(lambda b: b.replace(b"\n", b"")),
    st.lists(st.integers(0, 1000), max_size=6),
)
async def test_any_ranges_yield_every_complete_line_once(
    tmp_path_factory: pytest.TempPathFactory, body: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    log = tmp_path_factory.mktemp("ranges") / "access.log"
    log.write_bytes(b"".join(body) + tail)
    size = log.stat().st_size
    bounds = sorted({0, *(c % (size + 1) for c in cuts), size})
    got = b""
    for start, end in itertools.pairwise(bounds):
        got += b"".join([c async for c in read_range(LOCAL, str(log), start, end)])
    assert got == b"".join(body)


async def test_ranges_come_out_whole_however_the_reads_cut_the_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads of 7 bytes cut lines, the skipped first line and a line longer than several
    reads at every place: each range still yields exactly the complete lines starting in it."""
    import random

    from opsconsole.logs import history

    monkeypatch.setattr(history, "READ_SIZE", 7)
    rng = random.Random(3)
    log = tmp_path / "access.log"
    for _ in range(120):
        body = [b"x" * rng.choice([0, 1, 2, 5, 20, 40]) + b"\n" for _ in range(rng.randint(0, 12))]
        data = b"".join(body) + b"y" * rng.choice([0, 0, 3])
        log.write_bytes(data)
        start = rng.randint(0, len(data) + 1)
        end = rng.choice([None, rng.randint(0, len(data) + 2)])
        want, at = b"", 0
        for line in body:  # the complete lines that start in [start, end)
            if start <= at and (end is None or at < end):
                want += line
            at += len(line)
        got = b"".join([c async for c in read_range(LOCAL, str(log), start, end)])
        assert got == want, (data, start, end)
