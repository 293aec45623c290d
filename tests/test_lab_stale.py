"""A lab whose owner died is found and stopped by PID; labs live in the XDG state directory.

A demo killed with SIGKILL runs no cleanup, so its sshd, nginx and traffic generator keep running.
These tests leave such a lab behind for real — a child Python process starts it as its owner and
SIGKILLs itself — and check what the next ``opsconsole lab up`` does with it: without a terminal it
prints the command that stops the lab and carries on; on a pseudo-terminal it asks and stops it.
Each test has its own ``XDG_STATE_HOME`` (so its own lab registry), and stops by PID every process
it caused to be started, also when it fails.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pty
import select
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from opsconsole.cli import main
from opsconsole.lab import Lab, LabError, registry
from opsconsole.lab.procs import ProcRecord, spawn, stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.lab


def opsconsole(*args: str) -> list[str]:
    return [sys.executable, "-m", "opsconsole", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """``opsconsole ARGS`` as a script runs it: no terminal, stdin at end of file."""
    return subprocess.run(
        opsconsole(*args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(),
        timeout=60,
    )


def run_printed(command: str) -> subprocess.CompletedProcess[str]:
    """Run a command exactly as opsconsole printed it (``opsconsole`` being this checkout's)."""
    argv = shlex.split(command)
    assert argv[0] == "opsconsole", command
    return cli(*argv[1:])


def on_terminal(*args: str, answer: str) -> tuple[int, str, str]:
    """Run with a pseudo-terminal as stdin and stderr, answer the [Y/n] question.

    Returns (exit status, what the terminal showed, stdout)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        opsconsole(*args),
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env(),
        cwd=REPO_ROOT,
        text=True,
    )
    os.close(slave)
    shown, answered, deadline = b"", False, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child's side of the terminal is closed
                break
            shown += chunk
            if b"[Y/n]" in shown and not answered:
                os.write(master, answer.encode() + b"\n")
                answered = True
        stdout = proc.stdout.read() if proc.stdout else ""
        status = proc.wait(timeout=30)
        return status, shown.decode("utf-8", "replace").replace("\r\n", "\n"), stdout
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


LEAVE_A_LAB = textwrap.dedent(
    """
    import os, signal, sys
    from opsconsole.lab import Lab
    Lab.start(sys.argv[1], traffic=False)  # owned by this process
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


class Cleanup:
    """Every lab a test caused to be started, stopped by PID at the end whatever happened."""

    def __init__(self) -> None:
        self.dirs: list[Path] = []
        self.records: list[ProcRecord] = []

    def lab_in(self, lab_dir: Path) -> Path:
        self.dirs.append(lab_dir)
        return lab_dir

    def stop_all(self) -> None:
        for lab_dir in self.dirs:
            with contextlib.suppress(LabError):
                Lab.load(lab_dir).stop()
        for record in self.records:
            stop_process(record)


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    done = Cleanup()
    try:
        yield done
    finally:
        done.stop_all()


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry of this test's own (commands it runs inherit the variable)."""
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


def leave_a_lab(lab_dir: Path, cleanup: Cleanup) -> dict[str, ProcRecord]:
    """A lab whose owner died of SIGKILL: its processes (PID + start time), all still running."""
    cleanup.lab_in(lab_dir)
    child = subprocess.run(
        [sys.executable, "-c", LEAVE_A_LAB, str(lab_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    state_file = lab_dir / "lab.json"  # written as soon as the first process started
    assert state_file.exists(), f"the child started no lab: {child.stderr}"
    state = json.loads(state_file.read_text())
    records = {k: ProcRecord.from_json(k, v) for k, v in state["processes"].items()}
    cleanup.records += records.values()
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert set(records) == {"web1/sshd", "web1/nginx", "web2/sshd", "web2/nginx"}
    assert all(r.alive() for r in records.values())
    return records


def with_descendants(records: dict[str, ProcRecord]) -> list[psutil.Process]:
    procs = []
    for record in records.values():
        proc = record.process()
        assert proc is not None, f"{record.name} is not running"
        procs += [proc, *proc.children(recursive=True)]
    return procs


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
    return alive


def down_line(lab_dir: Path) -> str:
    return f"opsconsole lab down --dir {shlex.quote(str(lab_dir))}"


# -- a lab left behind ----------------------------------------------------------------------


def test_without_a_terminal_lab_up_prints_how_to_stop_a_left_lab_and_still_starts_its_own(
    tmp_path: Path, state_home: Path, cleanup: Cleanup
) -> None:
    stale = leave_a_lab(tmp_path / "stale", cleanup)
    other = cleanup.lab_in(tmp_path / "other")

    up = cli("lab", "up", "--no-traffic", "--dir", str(other))

    assert up.returncode == 0, up.stderr
    assert up.stdout == f"{other / 'config.toml'}\n"
    assert Lab.load(other).status()["running"]
    report = next(line for line in up.stderr.splitlines() if "still running" in line)
    assert f"still running in {tmp_path / 'stale'} (web1/sshd, web1/nginx" in report
    assert "[Y/n]" not in up.stderr  # no question without a terminal
    assert report.endswith(f"stop it with: {down_line(tmp_path / 'stale')}")
    assert all(r.alive() for r in stale.values())  # told about, not touched

    procs = with_descendants(stale)
    down = run_printed(report.rsplit("stop it with: ", 1)[1])
    assert down.returncode == 0, down.stderr
    assert still_running(procs) == []


def test_on_a_terminal_answering_yes_stops_every_process_of_a_left_lab_by_pid(
    tmp_path: Path, state_home: Path, cleanup: Cleanup
) -> None:
    stale_dir = tmp_path / "stale"
    stale = leave_a_lab(stale_dir, cleanup)
    procs = with_descendants(stale)  # the nginx workers too
    other = cleanup.lab_in(tmp_path / "other")

    status, shown, stdout = on_terminal(
        "lab", "up", "--no-traffic", "--dir", str(other), answer="y"
    )

    assert status == 0, shown
    assert f"a rehearsal lab is still running in {stale_dir} (web1/sshd" in shown
    assert "stop it now? [Y/n]" in shown
    assert f"stopped the lab in {stale_dir} (4 processes)" in shown
    assert "Traceback" not in shown
    assert still_running(procs) == []
    assert registry.find(stale_dir) is None
    assert not (stale_dir / "lab.json").exists()
    assert stdout == f"{other / 'config.toml'}\n"
    assert Lab.load(other).status()["running"]


def test_on_a_terminal_answering_no_leaves_the_lab_running_and_says_how_to_stop_it(
    tmp_path: Path, state_home: Path, cleanup: Cleanup
) -> None:
    stale_dir = tmp_path / "stale"
    stale = leave_a_lab(stale_dir, cleanup)
    other = cleanup.lab_in(tmp_path / "other")

    status, shown, _ = on_terminal("lab", "up", "--no-traffic", "--dir", str(other), answer="n")

    assert status == 0, shown
    assert f"left running; stop it later with: {down_line(stale_dir)}" in shown
    assert all(r.alive() for r in stale.values())


def test_a_left_lab_whose_directory_was_deleted_is_still_stopped_by_lab_down(
    tmp_path: Path, state_home: Path, cleanup: Cleanup
) -> None:
    stale_dir = tmp_path / "stale"
    procs = with_descendants(leave_a_lab(stale_dir, cleanup))
    subprocess.run(["rm", "-rf", str(stale_dir)], check=True)  # as a user tidying /tmp would

    down = run_printed(down_line(stale_dir))

    assert down.returncode == 0, down.stderr
    assert "stopped (4 processes)" in down.stderr
    assert still_running(procs) == []
    assert registry.find(stale_dir) is None


def test_a_registered_lab_with_no_live_process_is_forgotten_without_a_word(
    tmp_path: Path, state_home: Path, cleanup: Cleanup
) -> None:
    stale_dir = tmp_path / "stale"
    for record in leave_a_lab(stale_dir, cleanup).values():
        stop_process(record)  # by PID, behind the registry's back

    assert registry.survey() == ([], [])
    assert registry.find(stale_dir) is None


def test_a_running_lab_up_lab_is_mentioned_with_its_lab_down_command_but_not_taken_for_stale(
    tmp_path: Path, state_home: Path, cleanup: Cleanup
) -> None:
    first = cleanup.lab_in(tmp_path / "first")
    second = cleanup.lab_in(tmp_path / "second")
    assert cli("lab", "up", "--no-traffic", "--dir", str(first)).returncode == 0

    up = cli("lab", "up", "--no-traffic", "--dir", str(second))

    assert up.returncode == 0, up.stderr
    assert f"also running in {first} (4 processes); stop it with: {down_line(first)}" in up.stderr
    assert "still running" not in up.stderr
    assert Lab.load(first).status()["running"] and Lab.load(second).status()["running"]


# -- the registry ---------------------------------------------------------------------------


def test_garbage_in_the_registry_is_removed_and_never_signals_anything(
    tmp_path: Path, state_home: Path, cleanup: Cleanup
) -> None:
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)
    created = psutil.Process(bystander.pid).create_time()
    cleanup.records.append(ProcRecord("sleep", bystander.pid, created, ("sleep", "60")))
    labs = state_home / "opsconsole" / "labs"
    labs.mkdir(parents=True)

    def entry(name: str, create_time: float, **changes: object) -> Path:
        """An entry naming the bystander as a process of a lab whose owner is long dead."""
        lab_dir = tmp_path / name
        record = {"pid": bystander.pid, "create_time": create_time, "argv": ["sleep"]}
        owner = {"pid": 2, "create_time": 1.0, "argv": ["opsconsole", "demo"]}
        data = {"version": 1, "dir": str(lab_dir), "owner": owner, "processes": {"x": record}}
        data.update(changes)
        path = registry.entry_path(lab_dir)
        path.write_text(json.dumps(data))
        return path

    (labs / "not-json.json").write_text("{ this is not json")
    (labs / "a-list.json").write_text("[1, 2, 3]")
    (labs / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (labs / "a-directory.json").mkdir()
    entry("copied", created).rename(labs / "copied-elsewhere.json")
    entry("nan-start-time", math.nan)  # NaN compares "close enough" to any start time
    entry("relative-dir", created, dir="relative/lab")
    entry("pid-one", created, processes={"x": {"pid": 1, "create_time": 1.0, "argv": []}})
    entry("reused-pid", created - 1000.0)  # the PID now belongs to another process
    newer = entry("newer-format", created, version=2)  # a later opsconsole's: left alone

    assert main(["lab", "down", "--dir", str(tmp_path / "nan-start-time")]) == 0
    assert registry.survey() == ([], [])

    assert sorted(p.name for p in labs.iterdir()) == sorted(["a-directory.json", newer.name])
    assert bystander.poll() is None  # never signalled


def test_a_record_names_its_process_by_start_ticks_even_when_the_boot_time_moves(
    tmp_path: Path,
) -> None:
    """The kernel's boot time (and so every start time in epoch seconds) shifts when the clock
    is stepped or slewed: a record still names, and stops, its own process; a PID reused by
    another process (other start ticks) is never signalled."""
    record, popen = spawn("sleep", ["sleep", "60"], output=tmp_path / "sleep.out")
    try:
        assert record.ticks is not None
        assert ProcRecord.from_json("sleep", record.to_json()) == record
        moved = replace(record, create_time=record.create_time + 3.0)  # the clock moved
        assert moved.alive()
        reused = replace(record, ticks=record.ticks - 1)  # the PID of another process
        assert not reused.alive() and not stop_process(reused)
        assert popen.poll() is None  # never signalled
        assert stop_process(moved, popen) and popen.poll() is not None
    finally:
        stop_process(record, popen)


def test_a_lab_is_registered_while_it_runs_with_its_starter_as_owner(
    tmp_path: Path, state_home: Path
) -> None:
    with Lab.start(tmp_path / "lab", traffic=False) as lab:
        entry = registry.find(lab.dir)
        assert entry is not None and entry.owner is not None
        assert (entry.owner.pid, entry.owner.alive()) == (os.getpid(), True)
        recorded = {k: (r.pid, r.create_time) for k, r in entry.processes.items()}
        assert recorded == {k: (r.pid, r.create_time) for k, r in lab.processes().items()}
    assert registry.find(lab.dir) is None


def test_who_left_a_lab_is_named_from_its_owners_command_line() -> None:
    def left_by(*argv: str) -> str:
        owner = ProcRecord("owner", 4242, 1.0, argv)
        return registry.Entry(Path("/tmp/lab"), owner, {}).left_by()

    assert left_by("/venv/bin/python", "/venv/bin/opsconsole", "demo") == "a demo that did not stop"
    assert left_by("python3", "-m", "opsconsole", "--config", "x", "demo") == (
        "a demo that did not stop"
    )
    assert "lab up" in left_by("python3", "-m", "opsconsole", "lab", "up", "--dir", "demo")
    assert left_by("/usr/bin/python3", "-c", "import x\nx.run()") == (
        "process 4242 (python3 -c import x x.run()), which ended without stopping it"
    )


# -- the default directory and the hints ------------------------------------------------------


def test_lab_up_without_dir_keeps_its_lab_in_the_xdg_state_directory_and_prints_runnable_hints(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, cleanup: Cleanup
) -> None:
    # conftest.py points XDG_STATE_HOME into pytest's temporary directory: never the user's own.
    state = Path(os.environ["XDG_STATE_HOME"])
    assert state.is_relative_to(tmp_path_factory.getbasetemp()), state
    lab_dir = cleanup.lab_in(state / "opsconsole" / "lab")
    config = lab_dir / "config.toml"
    cwd = tmp_path / "checkout"
    cwd.mkdir()

    up = cli("lab", "up", "--no-traffic", cwd=cwd)

    assert up.returncode == 0, up.stderr
    assert up.stdout == f"{config}\n"
    assert list(cwd.iterdir()) == []  # nothing in the current directory
    lines = up.stderr.splitlines()
    export = f"export OPSCONSOLE_CONFIG={shlex.quote(str(config))}"
    assert export in lines
    shell = subprocess.run(
        ["sh", "-c", f'{export} && printf %s "$OPSCONSOLE_CONFIG"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == str(config)
    assert f"  stop:     {down_line(lab_dir)}" in lines
    help_text = cli("lab", "up", "--help").stdout
    assert "$XDG_STATE_HOME/opsconsole/lab" in " ".join(help_text.split())

    status = cli("lab", "status", cwd=cwd)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"lab {lab_dir}: running\n")
    down = cli("lab", "down", cwd=cwd)
    assert down.returncode == 0, down.stderr
    assert f"lab in {lab_dir} stopped (4 processes)" in down.stderr


def test_the_demo_names_its_lab_directory_when_it_starts_and_when_it_ends(
    tmp_path: Path,
    state_home: Path,
    cleanup: Cleanup,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lab_dir = cleanup.lab_in(tmp_path / "demo-lab")
    seen: list[bool] = []

    def console(app: object) -> int:  # instead of the TUI: the lab is up and registered
        entry = registry.find(lab_dir)
        seen.append(entry is not None and entry.owner is not None and entry.owner.alive())
        return 0

    monkeypatch.setattr("opsconsole.cli.demo.build_app", lambda *a, **k: object())
    monkeypatch.setattr("opsconsole.cli.demo.run_app", console)

    assert main(["demo", "--dir", str(lab_dir)]) == 0

    assert seen == [True]
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"opsconsole demo: the lab's files are in {lab_dir} "
        f"(if the demo is killed, stop what it left with: {down_line(lab_dir)})"
    )
    assert err[-1].endswith(f"; its files stay in {lab_dir}")
    assert registry.find(lab_dir) is None
