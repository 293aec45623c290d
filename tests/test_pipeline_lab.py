"""End to end: nginx writes, the live pipeline counts — through a killed remote tail and a
log rotation — and its totals equal the lines nginx wrote.  Real sshd, nginx, tail."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from opsconsole.config import load_config
from opsconsole.fleet import Fleet, server_state
from opsconsole.health.report import Status
from opsconsole.lab import Lab, send

pytestmark = pytest.mark.lab


def remote_tails(lab: Lab, log: Path) -> list[psutil.Process]:
    """The `tail` processes reading `log` under web1's sshd (found by PID ancestry)."""
    found = []
    for proc in psutil.Process(lab.servers["web1"].sshd_pid).children(recursive=True):
        try:
            argv = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if argv and argv[0] == "tail" and os.path.realpath(argv[-1]) == str(log):
            found.append(proc)
    return found


async def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def through_kills_and_a_rotation(
    lab: Lab, log: Path, url: str, readers: Callable[[], list[psutil.Process]]
) -> None:
    """nginx writes all along while the server-side ``readers`` are killed twice and the log is
    rotated between the kills (rename, then USR1 to reopen)."""
    stop = threading.Event()

    def traffic() -> None:  # nginx writes all along
        i = 0
        while not stop.is_set():
            send(url, 5, client_ip=f"198.18.{i % 200}.{i % 250 + 1}", path=f"/p{i}")
            i += 1

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        await asyncio.sleep(2)
        for proc in readers():  # the server-side process dies
            proc.kill()
        await asyncio.sleep(2)
        log.rename(f"{log}.1")  # logrotate: rename, nginx still writes the old file...
        await asyncio.sleep(1)
        os.kill(lab.servers["web1"].nginx_pid, signal.SIGUSR1)  # ...until it reopens
        await asyncio.sleep(2)
        for proc in readers():
            proc.kill()
        await asyncio.sleep(2)
    finally:
        stop.set()
        await asyncio.to_thread(sender.join)


async def test_the_pipeline_counts_every_line_nginx_wrote_through_failures(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    fleet = Fleet(load_config(str(lab.config_path)))
    pipeline = fleet.pipeline("shop", window=600)
    try:
        log = lab.access_log("shop", "web1")
        url = lab.url("shop")
        pipeline.start()
        await wait_until(lambda: pipeline.feeds["web1"].connected and remote_tails(lab, log))

        await through_kills_and_a_rotation(lab, log, url, lambda: remote_tails(lab, log))

        written = sum(len(p.read_bytes().splitlines()) for p in (Path(f"{log}.1"), log))
        assert written > 100
        await wait_until(lambda: pipeline.window.requests >= written, timeout=30)
        await asyncio.sleep(2)  # nothing more may arrive: no line counted twice
        assert pipeline.window.requests == written
        assert pipeline.window.unparsed == 0
        snap = pipeline.snapshot()
        assert snap.servers == {"web1": written}
    finally:
        await pipeline.stop()
        await fleet.close()
        lab.stop()


async def test_a_console_that_cannot_keep_up_says_how_far_behind_its_log_it_is(
    tmp_path: Path,
) -> None:
    """The counting is slowed down (each chunk takes 0.2 s, as on an overloaded console) while
    the log grows by 2 MB a second: the server's feed says "behind by N s", by the server's
    own clock, and so does ``stats --follow --json``'s object; once counting is fast again it
    catches up to every line and says 0."""
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    fleet = Fleet(load_config(str(lab.config_path)))
    pipeline = fleet.pipeline("shop", window=600)
    log = lab.access_log("shop", "web1")
    slow = threading.Event()
    slow.set()
    count = pipeline.window.add_chunk

    def overloaded(chunk: bytes, server: str = "") -> None:
        if slow.is_set():
            time.sleep(0.2)
        count(chunk, server)

    pipeline.window.add_chunk = overloaded  # type: ignore[method-assign]
    try:
        pipeline.start(publish=False)
        await wait_until(lambda: pipeline.feeds["web1"].connected)
        written = 0
        worst = 0.0
        with log.open("ab") as f:
            for i in range(10):
                stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
                line = f'198.18.0.{i + 1} - - [{stamp}] "GET /x HTTP/1.1" 404 9 "-" "t"\n'
                f.write(line.encode() * 40_000)  # ~2.5 MB of this second's lines
                f.flush()
                written += 40_000
                await asyncio.sleep(1.0)
                await pipeline.refresh()
                worst = max(worst, pipeline.feeds["web1"].behind)
        feed = pipeline.feeds["web1"]
        await pipeline.refresh()
        assert feed.behind >= 5 and worst >= 5, (feed.behind, worst)
        assert feed.lagging
        status, detail = server_state(fleet.pool.status("web1"), feed)
        assert status is Status.WARN and detail.startswith(f"behind by {feed.behind:.0f}s")
        out = pipeline.snapshot().to_json(pipeline.connected(), None, pipeline.behind())
        assert out["behind_s"] >= 5 and out["servers"]["web1"]["behind_s"] >= 5
        assert pipeline.window.requests < written  # it really is behind

        slow.clear()  # the console keeps up again
        await wait_until(lambda: pipeline.window.requests >= written, timeout=60)
        await asyncio.sleep(1.5)  # a look at the file after the last line was counted
        await pipeline.refresh()
        assert pipeline.window.requests == written
        assert feed.behind == 0 and not feed.lagging
        assert server_state(fleet.pool.status("web1"), feed) == (Status.OK, "following the log")
    finally:
        await pipeline.stop()
        await fleet.close()
        lab.stop()
