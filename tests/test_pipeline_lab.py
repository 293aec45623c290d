"""End to end: nginx writes, the live pipeline counts — through a killed remote tail and a
log rotation — and its totals equal the lines nginx wrote.  Real sshd, nginx, tail."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from opsconsole.config import load_config
from opsconsole.fleet import Fleet
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


async def test_the_pipeline_counts_every_line_nginx_wrote_through_failures(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=False, servers=("web1",))
    fleet = Fleet(load_config(str(lab.config_path)))
    pipeline = fleet.pipeline("shop", window=600)
    try:
        log = lab.access_log("shop", "web1")
        url = lab.url("shop")
        pipeline.start()
        await wait_until(lambda: pipeline.feeds["web1"].connected and remote_tails(lab, log))

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
            for proc in remote_tails(lab, log):  # the server-side process dies
                proc.kill()
            await asyncio.sleep(2)
            log.rename(f"{log}.1")  # logrotate: rename, nginx still writes the old file...
            await asyncio.sleep(1)
            os.kill(lab.servers["web1"].nginx_pid, signal.SIGUSR1)  # ...until it reopens
            await asyncio.sleep(2)
            for proc in remote_tails(lab, log):
                proc.kill()
            await asyncio.sleep(2)
        finally:
            stop.set()
            await asyncio.to_thread(sender.join)

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
