"""A running console removes a `--ttl` block from every server when it falls due (real lab)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole.config import load_config
from opsconsole.lab import Lab, send
from opsconsole.session import LiveSession

pytestmark = pytest.mark.lab


async def test_a_running_console_lifts_an_expired_block(tmp_path: Path) -> None:
    lab = Lab.start(tmp_path / "lab", traffic=False)
    try:
        block = subprocess.run(
            [sys.executable, "-m", "opsconsole", "--config", str(lab.config_path), "block", "www",
             "203.0.113.0/24", "--ttl", "3s", "--reason", "drill", "--yes"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert block.returncode == 0, block.stderr
        assert send(lab.url("www", "web2"), client_ip="203.0.113.9") == [403]

        source = LiveSession(
            load_config(str(lab.config_path)), audit_trail_path=tmp_path / "audit.jsonl"
        )
        trail = tmp_path / "audit.jsonl"

        def expired() -> list[dict[str, object]]:
            if not trail.exists():
                return []
            events = [json.loads(line) for line in trail.read_text().splitlines()]
            return [e for e in events if str(e.get("action", "")).startswith("expire")]

        expiry = asyncio.create_task(source._expire_loop(every=0.5))
        try:
            # The round is over when the console has recorded it: nginx may answer 200 on one
            # server before the other server's apply and the local trail are written.
            deadline = time.monotonic() + 30
            while not expired():
                assert time.monotonic() < deadline, "the block was not lifted"
                await asyncio.sleep(0.5)
        finally:
            expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiry
            await source.fleet.close()
        for server in ("web1", "web2"):
            assert send(lab.url("www", server), client_ip="203.0.113.9") == [200], server
            state = json.loads((lab.control_dir(server) / "www.state.json").read_text())
            assert state["blocks"] == []
    finally:
        lab.stop()
