"""A log the user cannot read, a log that is a directory: a clear per-server error, the rest is
counted (issue 2, "Bad input").

Both "servers" are this machine (``host = "local"``: the same shell programs as over SSH, real
``stat`` and ``tail``).  Tests run as root, who reads any file, so the command runs under
``setpriv`` without the two capabilities that override file permissions: exactly the position of
an operator whose account may not read the log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

LINE = '198.51.100.{n} - - [24/Nov/2026:10:00:0{n} +0000] "GET /{n} HTTP/1.1" 200 5 "-" "ua"\n'


def unprivileged(*argv: str) -> list[str]:
    if os.geteuid() != 0:
        return list(argv)
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's file-permission override"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *argv]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "good.log").write_text("".join(LINE.format(n=n) for n in range(1, 4)))
    locked = logs / "locked.log"
    locked.write_text(LINE.format(n=9))
    locked.chmod(0)
    (logs / "dir.log").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(
        '[servers.good]\nhost = "local"\n[servers.locked]\nhost = "local"\n'
        '[servers.dir]\nhost = "local"\n'
        '[services.www]\nservers = ["good", "locked", "dir"]\n'
        f'access_log = "{logs}/{{server}}.log"\n'
    )
    return path


def test_an_unreadable_log_and_a_directory_are_named_and_the_rest_is_counted(
    config: Path,
) -> None:
    proc = subprocess.run(
        unprivileged(sys.executable, "-m", "opsconsole", "--config", str(config), "stats", "www",
                     "--since", "all", "--json"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # one server was read
    out = json.loads(proc.stdout)
    assert out["requests"] == 3
    servers = out["servers"]
    assert servers["good"] == {"requests": 3, "connected": True, "error": None}
    assert servers["locked"]["connected"] is False
    assert "locked.log: permission denied for user" in servers["locked"]["error"]
    assert servers["dir"]["error"].endswith("dir.log is not a regular file (directory)")
    assert "opsconsole: locked: cannot read " in proc.stderr
    assert "opsconsole: dir: " in proc.stderr
    assert "Traceback" not in proc.stderr


def test_following_an_unreadable_log_says_permission_denied(config: Path) -> None:
    proc = subprocess.Popen(
        unprivileged(sys.executable, "-m", "opsconsole", "--config", str(config), "stats", "www",
                     "--follow", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    last: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60  # one object a second once it runs
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = json.loads(line)
            servers = last["servers"]
            if (
                servers["good"]["connected"]
                and "permission denied" in str(servers["locked"]["error"]).lower()
            ):
                break
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert last, err
    assert last["servers"]["good"]["connected"] is True
    assert "permission denied" in str(last["servers"]["locked"]["error"]).lower(), last["servers"]
    # tail's own "cannot open … Permission denied", not its last words "no files remaining"
    assert "opsconsole: locked: " in err and "permission denied" in err.lower()
    assert "no files remaining" not in err
    assert "Traceback" not in err
