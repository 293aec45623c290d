"""Starting, watching and stopping the lab's own processes, by PID and never by name.

Used by :mod:`opsconsole.lab.sshd`, :mod:`opsconsole.lab.nginx` and :class:`opsconsole.lab.Lab`.
A :class:`ProcRecord` is what the state file remembers of a process: its PID *and* its start time
(in clock ticks since boot, which never move), so that a PID the kernel has since given to another
program is never signalled.  psutil enters the
lab here only.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .model import LabError

_SAME_START = 0.5
"""Seconds two start times may differ and still name the same process (clock-tick rounding)."""


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat``), or None.

    Unlike a start time in seconds since the epoch (boot time + ticks), it never moves: the boot
    time the kernel reports shifts by whole seconds when the clock is stepped or slewed (NTP on
    a VM), and a record compared by epoch seconds would then stop naming its own process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return int(fields[19])  # field 22 of stat(5); fields[0] is field 3
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcRecord:
    name: str
    pid: int
    create_time: float
    argv: tuple[str, ...]
    ticks: int | None = None
    """:func:`start_ticks` when it was recorded; records written before it have none."""

    def to_json(self) -> dict[str, Any]:
        data = {"pid": self.pid, "create_time": self.create_time, "argv": list(self.argv)}
        return data if self.ticks is None else {**data, "start_ticks": self.ticks}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> ProcRecord:
        ticks = data.get("start_ticks")
        return cls(
            name,
            int(data["pid"]),
            float(data["create_time"]),
            tuple(data["argv"]),
            ticks if isinstance(ticks, int) and not isinstance(ticks, bool) else None,
        )

    def process(self) -> psutil.Process | None:
        """The live process this record names, or None (gone, a zombie, or the PID was reused)."""
        try:
            proc = psutil.Process(self.pid)
            if self.ticks is not None:
                if start_ticks(self.pid) != self.ticks:
                    return None
            elif abs(proc.create_time() - self.create_time) > _SAME_START:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None
        return proc

    def alive(self) -> bool:
        return self.process() is not None


def spawn(
    name: str, argv: Sequence[str], *, output: Path, env: Mapping[str, str] | None = None
) -> tuple[ProcRecord, subprocess.Popen[bytes]]:
    """Start ``argv`` in its own session (a Ctrl-C in the operator's terminal does not reach it).

    stdout and stderr go to ``output`` so that a failure can be explained from its tail.
    """
    with open(output, "ab") as out:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=None if env is None else dict(env),
            )
        except OSError as e:
            raise LabError(f"cannot start {name} ({argv[0]}): {e.strerror}") from None
    try:
        created = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:
        created = time.time()
    return ProcRecord(name, popen.pid, created, tuple(argv), start_ticks(popen.pid)), popen


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log, joined with " | " so an error stays on one line."""
    try:
        text = path.read_text("utf-8", "replace")
    except OSError:
        return ""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


def wait_started(
    name: str,
    popen: subprocess.Popen[bytes],
    *,
    pid_file: Path,
    log: Path,
    timeout: float = 10.0,
) -> None:
    """Return once ``pid_file`` names the process (sshd and nginx write it after binding).

    Raises LabError, with the tail of ``log``, if the process exits or stalls first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if popen.poll() is not None:
            tail = log_tail(log)
            raise LabError(
                f"{name} exited at start with status {popen.returncode}"
                + (f": {tail}" if tail else f" (see {log})")
            )
        if pid_file_names(pid_file, popen.pid):
            return
        if time.monotonic() > deadline:
            tail = log_tail(log)
            raise LabError(
                f"{name} did not come up within {timeout:.0f}s" + (f": {tail}" if tail else "")
            )
        time.sleep(0.02)


def pid_file_names(path: Path, pid: int) -> bool:
    """True once ``path`` holds ``pid``."""
    try:
        return int(path.read_text().strip() or "0") == pid
    except (OSError, ValueError):
        return False


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free right now (held open together, then released)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each process has exited (a zombie counts as exited); return the survivors."""
    deadline = time.monotonic() + timeout
    left = list(procs)
    while left:
        still: list[psutil.Process] = []
        for p in left:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    still.append(p)
            except psutil.NoSuchProcess:
                pass
        left = still
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return left


def _signal_all(procs: Sequence[psutil.Process], sig: int) -> None:
    for p in procs:
        # psutil refuses to signal a PID that now belongs to another process (start time check).
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            p.send_signal(sig)


def stop_process(
    record: ProcRecord, popen: subprocess.Popen[bytes] | None = None, *, timeout: float = 5.0
) -> bool:
    """Stop the process ``record`` names and the descendants it has now; True if it was running.

    SIGTERM first, SIGKILL after ``timeout``.  Descendants (nginx workers, sshd's per-connection
    processes and the commands they run) are collected before the signal, because once their
    parent is gone they can no longer be found through it.  ``popen`` is given when this process
    started it, so that it is reaped instead of left as a zombie.
    """
    proc = record.process()
    if proc is None:
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(0.1)
        return False
    try:
        descendants = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    _signal_all([proc], signal.SIGTERM)
    if _wait_gone([proc], timeout):
        _signal_all([proc], signal.SIGKILL)
        _wait_gone([proc], 2.0)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(1.0)
    survivors = _wait_gone(descendants, 0.2)  # nginx workers follow their master
    if survivors:
        _signal_all(survivors, signal.SIGTERM)
        survivors = _wait_gone(survivors, 2.0)
        _signal_all(survivors, signal.SIGKILL)
        _wait_gone(survivors, 2.0)
    return True
