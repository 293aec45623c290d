"""Which labs run on this machine, and which of them were left behind by a process that died.

:class:`~opsconsole.lab.Lab` writes an entry here whenever it saves its ``lab.json`` and removes it
when it stops; ``opsconsole demo`` and ``opsconsole lab up`` call :func:`survey` at start to find
labs whose owner was killed (SIGKILL, a lost machine session) while their sshd, nginx and traffic
generator kept running.  An entry is a small JSON file under ``$XDG_STATE_HOME/opsconsole/labs/``
holding the lab's directory, the PID and start time of the process that owns the lab (None for a
lab meant to outlive the command that started it, ``lab up``), and a copy of the lab's process
records, so that a lab whose directory was deleted can still be stopped by PID.  Liveness is
always judged by :class:`~opsconsole.lab.procs.ProcRecord` (PID *and* start time), never by name.

The registry is bookkeeping, not a source of truth an operator edits: an entry that cannot be read
or parsed is removed (or, if it cannot be removed, ignored), never reported with a traceback.
Imports only :mod:`.procs` and :mod:`.model`; :mod:`.lab` imports this module, not the reverse.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .model import LabError
from .procs import ProcRecord, start_ticks

ENTRY_VERSION = 1
_PID_MAX = 4_194_304
_ABANDONED_TMP = 60.0
"""Seconds after which a half-written entry (its writer died before the rename) is removed."""


def state_home() -> Path:
    """``$XDG_STATE_HOME``, or ``~/.local/state`` when it is unset (as the audit trail uses)."""
    return Path(os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"))


def default_lab_dir() -> Path:
    """Where ``opsconsole lab up|down|status`` keep their lab unless told ``--dir``."""
    return state_home() / "opsconsole" / "lab"


def registry_dir() -> Path:
    return state_home() / "opsconsole" / "labs"


def this_process() -> ProcRecord:
    """The calling process as an owner record (PID, start time, command line)."""
    # psutil otherwise enters the lab only through procs.py; this is the one record procs.spawn
    # cannot make, because the process was not spawned by the lab.
    created = psutil.Process(os.getpid()).create_time()
    return ProcRecord("owner", os.getpid(), created, tuple(sys.orig_argv), start_ticks(os.getpid()))


def stop_order(keys: list[str]) -> list[str]:
    """The order a lab's processes are stopped in: the traffic first, nginx before sshd."""
    return sorted(keys, key=lambda k: (k != "traffic", k.endswith("/sshd"), k))


@dataclass(frozen=True)
class Entry:
    """One registered lab: its directory, its owner (None: none) and its processes by key."""

    dir: Path
    owner: ProcRecord | None
    processes: dict[str, ProcRecord]

    def owner_alive(self) -> bool:
        return self.owner is not None and self.owner.alive()

    def alive(self) -> list[str]:
        """Keys ("web1/sshd", …) of the recorded processes still running, in start order."""
        return [k for k, r in self.processes.items() if r.alive()]

    def left_by(self) -> str:
        """Who left the lab running, for a message: "a demo that did not stop", …"""
        if self.owner is None:
            return "`opsconsole lab up`"
        command = _opsconsole_command(self.owner.argv)
        if command[:1] == ["demo"]:
            return "a demo that did not stop"
        if command[:2] == ["lab", "up"]:
            return "an `opsconsole lab up` killed while it was starting the lab"
        argv = [Path(self.owner.argv[0]).name, *self.owner.argv[1:]] if self.owner.argv else []
        shown = " ".join(" ".join(argv).split())  # one line, whatever `python -c` was given
        if len(shown) > 60:
            shown = shown[:59] + "…"
        who = f"process {self.owner.pid}" + (f" ({shown})" if shown else "")
        return f"{who}, which ended without stopping it"


def _opsconsole_command(argv: tuple[str, ...]) -> list[str]:
    """The sub-command words of an ``opsconsole`` command line (``["lab", "up"]``), else []."""
    for i, word in enumerate(argv):
        if Path(word).name == "opsconsole" and (i == 0 or argv[i - 1] != "--config"):
            rest = list(argv[i + 1 :])
            while rest and rest[0].startswith("-"):
                option = rest.pop(0)
                if option == "--config" and rest:
                    rest.pop(0)
            return [w for w in rest if not w.startswith("-")][:2]
    return []


def entry_path(lab_dir: Path) -> Path:
    """The registry file of the lab in ``lab_dir`` (one per directory, named by its hash)."""
    digest = hashlib.sha256(str(lab_dir).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return registry_dir() / f"{digest}.json"


def record(lab_dir: Path, owner: ProcRecord | None, processes: Mapping[str, ProcRecord]) -> None:
    """Register (or update) the lab in ``lab_dir``; LabError if the registry cannot be written."""
    entry = {
        "version": ENTRY_VERSION,
        "dir": str(lab_dir),
        "owner": None if owner is None else owner.to_json(),
        "processes": {k: r.to_json() for k, r in processes.items()},
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = entry_path(lab_dir)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp.write_text(json.dumps(entry, indent=2) + "\n")
        tmp.replace(path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LabError(
            f"cannot register the lab in {path.parent}: {e.strerror or e} "
            "(set XDG_STATE_HOME to a writable directory)"
        ) from None


def forget(lab_dir: Path, owner: ProcRecord | None, processes: Mapping[str, ProcRecord]) -> None:
    """Remove the lab's entry, unless it names another lab by now (a newer one in that directory:
    another owner, or other PIDs for the same processes)."""
    path = entry_path(lab_dir)
    current = _read(path)
    if isinstance(current, Entry) and (
        current.owner != owner
        or any(
            k in current.processes and current.processes[k].pid != r.pid
            for k, r in processes.items()
        )
    ):
        return
    with contextlib.suppress(OSError):
        path.unlink()


def find(lab_dir: Path) -> Entry | None:
    """The entry of the lab in ``lab_dir`` (an absolute path), if one is registered."""
    entry = _read(entry_path(lab_dir))
    return entry if isinstance(entry, Entry) else None


def entries() -> list[Entry]:
    """Every readable entry; unreadable or malformed ones are removed on the way."""
    try:
        files = sorted(registry_dir().iterdir())
    except OSError:
        return []
    found = []
    for path in files:
        if path.suffix == ".tmp":
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > _ABANDONED_TMP:
                    path.unlink()
            continue
        if path.suffix != ".json":
            continue
        entry = _read(path)
        if entry is _NEWER:
            continue  # a newer opsconsole's: not ours to judge, nor to remove
        if isinstance(entry, Entry) and path == entry_path(entry.dir):
            found.append(entry)
        else:  # garbage, or not where record() would have written it
            with contextlib.suppress(OSError):
                path.unlink()
    return found


def survey() -> tuple[list[Entry], list[Entry]]:
    """``(stale, detached)``: labs with live processes whose owner is dead, and ownerless labs
    that still run.  Labs with no live process left are forgotten silently; labs whose owner is
    alive (a demo or a test running now) are none of the caller's business and not returned."""
    stale, detached = [], []
    for entry in entries():
        if entry.owner_alive():
            continue
        if not entry.alive():
            forget(entry.dir, entry.owner, entry.processes)
        elif entry.owner is None:
            detached.append(entry)
        else:
            stale.append(entry)
    return stale, detached


_NEWER = object()
"""What :func:`_read` returns for an entry of a later format (written by a newer opsconsole)."""


def _read(path: Path) -> Entry | object | None:
    """The entry in ``path``; :data:`_NEWER`; or None for a missing, unreadable or bad file."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > ENTRY_VERSION:
        return _NEWER
    return _parse(data)


def _parse(data: Any) -> Entry | None:
    """An Entry from an entry file's JSON, or None for anything that is not one."""
    try:
        if data["version"] != ENTRY_VERSION:
            return None
        lab_dir = Path(data["dir"])
        owner = None if data["owner"] is None else ProcRecord.from_json("owner", data["owner"])
        processes = {str(k): ProcRecord.from_json(str(k), v) for k, v in data["processes"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    records = [*processes.values(), *([owner] if owner else [])]
    if not lab_dir.is_absolute() or not all(plausible(r) for r in records):
        return None
    return Entry(lab_dir, owner, processes)


def plausible(proc: ProcRecord) -> bool:
    """False for a record no live process can match safely: PID 0 or 1, a PID above Linux's
    ``pid_max`` limit, or a start time that is not a finite positive number (a NaN would compare
    as "the same start time" with any process)."""
    started = proc.create_time
    return 1 < proc.pid <= _PID_MAX and math.isfinite(started) and started > 0
