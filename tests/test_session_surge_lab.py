"""A flood that begins while the console runs reaches the fleet's Excess column in seconds.

The live session analyses each service in turn (once a minute when its screen is closed); a
service whose traffic jumps is analysed at once instead.  Real lab (sshd + nginx), ordinary
traffic of the last 40 minutes in www's logs, then a live flood of random 404s from many
addresses sent to nginx over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_suggest_lab import write_scenario

from opsconsole.config import load_config
from opsconsole.lab import Lab, send
from opsconsole.session import LiveSession
from opsconsole.session.live import SUGGEST_FLEET

pytestmark = pytest.mark.lab


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with Lab.start(tmp_path / "lab", traffic=False) as running:
        yield running


def flood(url: str, stop: threading.Event) -> None:
    """Random never-seen 404 paths, three requests per address, until ``stop``."""
    i = 0
    while not stop.is_set():
        ip = f"198.18.{i // 250 % 250}.{i % 250 + 1}"
        for k in range(3):
            send(url, client_ip=ip, path=f"/{i:x}{k}/q{i * 7919 % 100003:x}", timeout=5)
        i += 1


async def test_a_service_whose_traffic_surges_is_analysed_at_once(lab: Lab) -> None:
    write_scenario(lab, "quiet", 7)
    session = LiveSession(load_config(str(lab.config_path)))
    stop = threading.Event()
    senders = [
        threading.Thread(target=flood, args=(lab.url("www"), stop), daemon=True) for _ in range(4)
    ]
    await session.start(watch_controls=False)
    try:
        deadline = time.monotonic() + 60
        while session.known_suggestions("www") is None:
            assert time.monotonic() < deadline, "no first analysis of www within 60 s"
            await asyncio.sleep(0.25)
        first = session.known_suggestions("www")
        assert first is not None and first.analysis is not None, first
        assert first.analysis.status == "no-anomaly", first.analysis.reason
        began = time.monotonic()
        for t in senders:
            t.start()
        while True:
            event = session.known_suggestions("www")
            assert event is not None
            if event.at > first.at and event.analysis and event.analysis.status == "ok":
                break
            assert time.monotonic() - began < SUGGEST_FLEET / 2, (
                "the flood was not analysed before the service's next turn "
                f"(last: {event.analysis.status if event.analysis else event.error})"
            )
            await asyncio.sleep(0.25)
        assert event.excess_share is not None and event.excess_share > 0.3
        assert event.analysis.suggestions, "a flood of random 404s gets a rule"
    finally:
        stop.set()
        for t in senders:
            if t.is_alive():
                t.join(10)
        await session.stop()
