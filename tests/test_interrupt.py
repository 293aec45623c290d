"""Ctrl-C, whenever it comes: never a traceback, and ``stats --follow`` stops on the first one.

Real commands against the session's lab with traffic (real sshd, nginx, tail), interrupted with
SIGINT at random moments — while Python is still importing, while connecting, while reading —
and then checked: the process ended by itself within a few seconds, printed no traceback, and
left no ``tail`` of the lab's logs running on the servers.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from opsconsole.lab import Lab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parent.parent


def start(lab: Lab, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--config", str(lab.config_path), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def interrupted(proc: subprocess.Popen[str], after: float) -> tuple[int, str, str]:
    """SIGINT ``after`` seconds in; (exit status, stdout, stderr) once it ended by itself."""
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running 15 s after Ctrl-C ({after:.2f}s in):\n{err}") from None
    return proc.returncode, out, err


def traceback_from_opsconsole(err: str) -> bool:
    """A traceback through opsconsole's code.  (Before the first line of opsconsole runs, the
    interpreter's own start-up — site, runpy, some tens of milliseconds — answers a Ctrl-C with
    Python's traceback; no program can change that.)"""
    return "Traceback" in err and "/opsconsole/" in err


def lab_tails(lab: Lab) -> list[str]:
    """``tail`` processes reading one of the lab's logs (what a console left behind)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if cmd.startswith("tail ") and str(lab.dir) in cmd:
            found.append(cmd)
    return found


def wait_no_tails(lab: Lab) -> list[str]:
    deadline = time.monotonic() + 10
    while (left := lab_tails(lab)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_ctrl_c_at_any_moment_of_a_command_is_never_a_traceback(lab_with_traffic: Lab) -> None:
    rng = random.Random(8)
    commands = [
        ("stats", "www", "--since", "all"),
        ("controls", "www"),
        ("stats", "www", "--follow", "--json"),
        ("check",),
    ]
    for i in range(16):
        args = commands[i % len(commands)]
        after = rng.uniform(0.0, 2.0)  # from the first imports to the middle of the work
        status, _out, err = interrupted(start(lab_with_traffic, *args), after)
        assert not traceback_from_opsconsole(err), (args, after, err)
        if "Traceback" in err:
            continue  # the interpreter had not started opsconsole yet
        if status == -signal.SIGINT and not err:
            # Killed by the signal's default action, silently: only outside opsconsole's code,
            # which the interpreter sets up after its own start (a slow one on a loaded
            # machine) and tears down after the command ended (`check` takes about a second).
            continue
        assert status in (0, 1, 130), (args, after, status, err)
        if status == 130:
            assert err.strip().endswith("opsconsole: interrupted"), (args, after, err)
    assert wait_no_tails(lab_with_traffic) == []


def test_stats_follow_stops_on_the_first_ctrl_c_every_time(lab_with_traffic: Lab) -> None:
    rng = random.Random(3)
    for _ in range(12):
        proc = start(lab_with_traffic, "stats", "www", "--follow", "--json")
        assert proc.stdout is not None
        line = proc.stdout.readline()  # following: one object a second
        assert json.loads(line)["service"] == "www"
        time.sleep(rng.uniform(0.0, 1.0))  # anywhere within a second's cycle
        began = time.monotonic()
        status, _out, err = interrupted(proc, 0.0)
        assert status == 0, err  # stopping is how one ends following
        assert time.monotonic() - began < 6, "took too long to stop"
        assert "Traceback" not in err
    assert wait_no_tails(lab_with_traffic) == []
