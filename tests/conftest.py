"""Shared fixtures: a real rehearsal lab (sshd + nginx on loopback) for integration tests.

``lab`` is started once per session without traffic (tests send their own with
:func:`opsconsole.lab.send`, so they know exactly what is in the logs); ``lab_with_traffic`` is a
second lab whose generator browses and floods (after 5 s).  Both are always stopped at the end.
Tests that use them are marked ``lab``.  A missing nginx or sshd fails them with what to install.
Every test runs with ``XDG_STATE_HOME`` and ``XDG_CONFIG_HOME`` in a temporary directory.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from opsconsole.lab import Lab


@pytest.fixture(scope="session", autouse=True)
def _private_state_and_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test, and every command it runs, keeps its local audit trail, logs and saved
    settings in a temporary directory: never in the user's ``~/.local/state`` or ``~/.config``
    (tests that need their own set these again with monkeypatch)."""
    root = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(root / "state"))
        mp.setenv("XDG_CONFIG_HOME", str(root / "config"))
        mp.delenv("OPSCONSOLE_CONFIG", raising=False)
        yield


def _require(names: tuple[str, ...], package: str) -> None:
    """Fail (never skip) when a real program the tests run is missing: a skipped integration
    test would hide exactly what it is there to prove."""
    search = "/usr/sbin:/usr/local/sbin:/usr/bin:/bin"
    if not any(shutil.which(n, path=search) or shutil.which(n) for n in names):
        pytest.fail(
            f"{names[0]} is not installed: these tests run the real one "
            f"(apt-get install {package}, or run bash .ci/run)",
            pytrace=False,
        )


@pytest.fixture
def needs_nginx() -> None:
    _require(("nginx",), "nginx")


@pytest.fixture
def needs_sshd() -> None:
    _require(("sshd",), "openssh-server")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _teardown_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while a lab runs.

    ``timeout`` and CI runners end a hung run with SIGTERM, which by default ends Python without
    fixture teardown; the lab's daemons run in sessions of their own and would outlive the run.
    On KeyboardInterrupt pytest still tears the fixtures down, so the lab is stopped.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with _teardown_on_sigterm(), Lab.start(tmp_path_factory.mktemp("lab"), traffic=False) as lab:
        yield lab


@pytest.fixture(scope="session")
def lab_with_traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab_dir = tmp_path_factory.mktemp("lab-traffic")
    with _teardown_on_sigterm(), Lab.start(lab_dir, traffic=True, flood_after=5.0) as lab:
        yield lab
