"""Shared fixtures: a real rehearsal lab (sshd + nginx on loopback) for integration tests.

``lab`` is started once per session without traffic (tests send their own with
:func:`opsconsole.lab.send`, so they know exactly what is in the logs); ``lab_with_traffic`` is a
second lab whose generator browses and floods (after 5 s).  Both are always stopped at the end.
Tests that use them are marked ``lab``.  A missing nginx or sshd fails them with what to install.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from opsconsole.lab import Lab


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
