"""`opsconsole demo` as a newcomer runs it: in a real terminal (tmux), read off the screen.

Runs the demo in a private tmux server at 160x48, reads the screen with ``capture-pane`` until
every demo site shows a non-zero request rate, quits with the quit key and checks that every
process the lab had started (PIDs from its ``lab.json``) is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from opsconsole.cli import main
from opsconsole.lab import Lab, LabError

REPO = Path(__file__).resolve().parents[1]
SITES = ("www", "shop", "forums", "git", "repo")
MARKS = "●◐✕"


def tmux(sock: str, *args: str) -> str:
    out = subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True, timeout=10)
    return out.stdout


def rates(screen: str) -> dict[str, float]:
    """req/s of each site row of the fleet table."""
    found: dict[str, float] = {}
    for line in screen.splitlines():
        words = line.split()
        if not words or words[0] not in SITES:
            continue
        # Before req/s come the stage and its age ("open <1m") and, on a wide screen, the
        # servers ("web1●"): req/s is the first token that is a number.
        for w in words[1:]:
            if any(m in w for m in MARKS):
                continue
            try:
                found[words[0]] = float(w.rstrip("kM"))
                break
            except ValueError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.mark.lab
def test_the_demo_shows_every_site_live_and_quitting_stops_the_whole_lab(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: apt-get install tmux")
    sock = f"opsconsole-test-{os.getpid()}"
    lab_dir = tmp_path / "lab"
    env = {
        "PYTHONPATH": str(REPO),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "TERM": "xterm-256color",
    }
    demo = shlex.join([sys.executable, "-m", "opsconsole", "demo", "--dir", str(lab_dir)])
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = f"env {assignments} {demo}; echo DEMO-EXIT=$?; sleep 60"
    tmux(sock, "new-session", "-d", "-x", "160", "-y", "48", command)
    screen = ""
    try:
        deadline = time.monotonic() + 60
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            screen = tmux(sock, "capture-pane", "-p")
            seen = rates(screen)
            if all(seen.get(site, 0) > 0 for site in SITES):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"not every site showed traffic in 60s: {seen}\n{screen}")
        state = json.loads((lab_dir / "lab.json").read_text())
        pids = {name: p["pid"] for name, p in state["processes"].items()}
        assert {"web1/sshd", "web1/nginx", "web2/sshd", "web2/nginx", "traffic"} <= set(pids)
        assert all(alive(pid) for pid in pids.values())

        tmux(sock, "send-keys", "q")
        deadline = time.monotonic() + 30
        while "DEMO-EXIT=" not in screen and time.monotonic() < deadline:
            time.sleep(0.5)
            screen = tmux(sock, "capture-pane", "-p")
        assert "DEMO-EXIT=0" in screen, screen
        assert "lab stopped" in screen
        assert [name for name, pid in pids.items() if alive(pid)] == []
        assert not (lab_dir / "lab.json").exists()
    finally:
        tmux(sock, "kill-server")
        with contextlib.suppress(LabError):
            Lab.load(lab_dir).stop()  # only if the demo left its lab running


def test_without_nginx_the_demo_says_what_to_install_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("opsconsole.lab.lab.find_nginx", lambda: None)
    assert main(["demo", "--dir", str(tmp_path / "lab")]) == 2
    err = capsys.readouterr().err
    assert "nginx is not installed: apt-get install nginx" in err
    assert "Traceback" not in err
    assert not (tmp_path / "lab").exists()
