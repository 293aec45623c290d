"""The apply pipeline against a real nginx: changes land whole or not at all, and say so.

Each test starts private nginx instances (the harness of ``test_controls_render.py``) and drives
them through :func:`apply_change` over :class:`LocalTransport`, which runs exactly the argument
vectors an SSH transport would.  Every process a test starts is stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_controls_render import NGINX, Nginx

from opsconsole.config import Config, parse_config
from opsconsole.controls import edits, remote, serverside
from opsconsole.controls.apply import apply_change
from opsconsole.controls.remote import read_controls
from opsconsole.controls.report import ApplyReport
from opsconsole.controls.settle import confirm_change, rollback_change
from opsconsole.controls.state import state_from_json
from opsconsole.errors import OperationError
from opsconsole.transport.base import RunResult
from opsconsole.transport.local import LocalTransport

MakeFleet = Callable[[int], "Fleet"]
pytestmark = pytest.mark.usefixtures("needs_nginx")


class Fleet:
    """Servers web1..webN, each its own nginx, all "local"; service www runs on every one."""

    def __init__(self, root: Path, n: int) -> None:
        self.root = root
        self.nginx: dict[str, Nginx] = {}
        for i in range(1, n + 1):
            (root / f"web{i}").mkdir(mode=0o755)
            self.nginx[f"web{i}"] = Nginx(root / f"web{i}")
        self.trail = root / "local-audit.jsonl"
        self.config: Config = parse_config(
            {
                "servers": {name: {"host": "local"} for name in self.nginx},
                "services": {
                    name: {
                        "servers": list(self.nginx),
                        "access_log": f"{root}/{{server}}/access.log",
                        "control_dir": f"{root}/{{server}}/control",
                        "nginx_test": f"{NGINX} -p {root}/{{server}} -c nginx.conf -t -q",
                        "nginx_reload": f"{NGINX} -p {root}/{{server}} -c nginx.conf -s reload",
                    }
                    for name in ("www", "shop-eu")
                },
            },
            root / "config.toml",
        )
        self.transports = {name: LocalTransport(name) for name in self.nginx}

    @property
    def web1(self) -> Nginx:
        return self.nginx["web1"]

    async def apply(self, edit: edits.Edit, service: str = "www", **kw: object) -> ApplyReport:
        kw.setdefault("confirm_within", 0)
        kw.setdefault("operator", "alice")
        return await apply_change(
            self.config,
            service,
            self.transports,
            edit,
            audit_trail=self.trail,
            **kw,  # type: ignore[arg-type]
        )

    def state(self, server: str = "web1") -> dict[str, Any]:
        text = (self.nginx[server].control / "www.state.json").read_text()
        data: dict[str, Any] = json.loads(text)
        return data

    def snapshot(self, server: str = "web1") -> dict[str, str]:
        c = self.nginx[server].control
        return {f: (c / f"www.{f}").read_text() for f in ("http.conf", "server.conf", "state.json")}


@pytest.fixture
def make_fleet() -> Iterator[Callable[[int], Fleet]]:
    made: list[tuple[Path, Fleet]] = []

    def make(n: int = 1) -> Fleet:
        root = Path(tempfile.mkdtemp(prefix="opsc-apply-"))
        root.chmod(0o755)
        fleet = Fleet(root, n)
        made.append((root, fleet))
        for ng in fleet.nginx.values():
            ng.start()
        return fleet

    yield make
    for root, fleet in made:
        for ng in fleet.nginx.values():
            ng.stop()
        _stop_timers(root)
        shutil.rmtree(root, ignore_errors=True)


def _timers(root: Path) -> list[int]:
    """PIDs of commit-confirmed timers armed for this test's control directories."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(cmd) > 6 and cmd[3] == b"opsc-timer" and cmd[6].startswith(str(root).encode()):
            found.append(int(proc.name))
    return found


def _stop_timers(root: Path) -> None:
    """End commit-confirmed timers a test left armed (by the PID recorded in the marker)."""
    for marker in root.glob("*/control/.www.confirm"):
        pid = int(marker.read_text().split()[4])
        if "opsc-timer" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            os.killpg(pid, signal.SIGTERM)


async def test_a_block_applies_on_the_server_and_an_unblock_restores(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(1)
    report = await fleet.apply(edits.block(["203.0.113.0/24"], reason="flood"))
    assert report.ok, report.to_dict()
    r = report.results["web1"]
    assert (r.status, r.before_version, r.after_version) == ("ok", 0, 1)
    assert fleet.web1.status(client="203.0.113.9") == 403
    assert fleet.web1.status(client="198.51.100.1") == 200
    assert fleet.state()["blocks"][0]["added_by"] == "alice"

    report = await fleet.apply(edits.unblock(["203.0.113.0/24"]))
    assert report.ok and report.results["web1"].after_version == 2
    assert fleet.web1.status(client="203.0.113.9") == 200

    server_audit = (fleet.web1.control / "www.audit.jsonl").read_text().splitlines()
    local = fleet.trail.read_text().splitlines()
    for lines in (server_audit, local):
        events = [json.loads(x) for x in lines]
        assert [e["action"] for e in events] == ["block 203.0.113.0/24", "unblock 203.0.113.0/24"]
        assert [(e["before_version"], e["after_version"]) for e in events] == [(0, 1), (1, 2)]
        assert all(e["operator"] == "alice" and e["result"] == "ok" for e in events)
    assert json.loads(server_audit[0])["diff"]["blocks"]["added"]["items"][0]["reason"] == "flood"
    mode = (fleet.web1.control / ".www.cur" / "state.json").stat().st_mode & 0o777
    assert mode == 0o640


async def test_filters_and_a_rate_limit_change_what_nginx_answers(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.add_filter("path", r"^/wp-login\.php$"))).ok
    assert (await fleet.apply(edits.add_filter("user_agent", "(?i)masscan", action=444))).ok
    assert fleet.web1.status("/wp-login.php") == 403
    assert fleet.web1.status("/wp-login.phpx") == 200
    assert fleet.web1.status("/", ua="masscan/1.3") == "closed"
    assert fleet.web1.status("/", ua="Mozilla/5.0") == 200

    assert (await fleet.apply(edits.remove_filter("f1"))).ok
    assert fleet.web1.status("/wp-login.php") == 200

    assert (await fleet.apply(edits.limit("5r/s", burst=10))).ok
    codes = fleet.web1.burst(30, client="203.0.113.60")
    assert codes[:11] == [200] * 11 and codes.count(429) >= 15
    assert fleet.web1.status(client="203.0.113.61") == 200
    assert (await fleet.apply(edits.limit("off"))).ok
    assert 429 not in fleet.web1.burst(30, client="203.0.113.60")


async def test_maintenance_on_and_off_with_the_allow_list_and_the_page(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    on = edits.maintenance(True, allow=["127.0.0.10/32"], message="Back at 15:00 <b>sorry</b>")
    assert (await fleet.apply(on)).ok
    r = fleet.web1.get(client="198.51.100.3")
    assert r.status_code == 503 and r.headers["retry-after"] == "300"
    assert "Back at 15:00 &lt;b&gt;sorry&lt;/b&gt;" in r.text
    assert fleet.web1.status(client="127.0.0.10") == 200

    off = await fleet.apply(edits.maintenance(False), confirm_within=None)  # risky: confirm
    assert off.ok and off.results["web1"].confirm_deadline is not None
    assert fleet.web1.status(client="198.51.100.3") == 200
    refused = await fleet.apply(edits.block(["192.0.2.1"]))
    assert not refused.ok and "awaits confirmation" in refused.results["web1"].reason
    confirmed = await confirm_change(
        fleet.config, "www", fleet.transports, operator="alice", audit_trail=fleet.trail
    )
    assert confirmed.results["web1"].status == "confirmed"
    assert not (fleet.web1.control / ".www.confirm").exists()
    assert not _timers(fleet.root)  # the server's timer was stopped, not just ignored
    assert (await fleet.apply(edits.block(["192.0.2.1"]))).ok


async def test_a_config_nginx_refuses_is_rolled_back_with_nginx_s_message(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.block(["203.0.113.0/24"]))).ok
    before = fleet.snapshot()
    # Someone broke the site's own config: the next apply must not leave new files behind.
    conf = fleet.web1.dir / "nginx.conf"
    conf.write_text(conf.read_text().replace("http {", "http {\n    bogus_directive on;", 1))

    report = await fleet.apply(edits.block(["198.51.100.0/24"]))
    r = report.results["web1"]
    assert (r.status, r.rolled_back) == ("failed", True)
    assert 'unknown directive "bogus_directive"' in r.reason
    with pytest.raises(OperationError, match="bogus_directive"):
        report.raise_for_failures()
    assert fleet.snapshot() == before
    assert fleet.web1.status(client="203.0.113.9") == 403  # still the old behaviour
    assert fleet.web1.status(client="198.51.100.9") == 200
    last = json.loads((fleet.web1.control / "www.audit.jsonl").read_text().splitlines()[-1])
    assert (last["result"], last["after_version"]) == ("test-failed", 1)


async def test_a_reload_nginx_does_not_take_is_rolled_back(
    make_fleet: MakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = make_fleet(1)
    monkeypatch.setattr(serverside, "RELOAD_WAIT", 1.0)
    svc = fleet.config.services["www"]
    object.__setattr__(svc, "nginx_reload", "true")  # "reloads" without telling nginx
    report = await fleet.apply(edits.block(["203.0.113.0/24"]))
    r = report.results["web1"]
    assert (r.status, r.rolled_back) == ("failed", True)
    assert "kept its old configuration" in r.reason
    assert not (fleet.web1.control / "www.state.json").exists()
    assert fleet.web1.status(client="203.0.113.9") == 200


async def test_an_apply_based_on_a_stale_version_is_refused(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.block(["192.0.2.1"]), operator="bob")).ok
    report = await fleet.apply(edits.block(["192.0.2.2"]), expected_version=0)
    reason = report.results["web1"].reason
    assert report.exit_status == 1 and "changed by bob at" in reason and "re-read" in reason
    assert fleet.state()["version"] == 1


class InterleavingTransport(LocalTransport):
    """Runs another operator's apply between this console's read and its apply step."""

    def __init__(self, before_apply: Callable[[], object]) -> None:
        super().__init__("web1")
        self.before_apply = before_apply

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        if len(argv) > 5 and argv[5] == "apply" and self.before_apply is not None:
            hook, self.before_apply = self.before_apply, None  # type: ignore[assignment]
            await hook()  # type: ignore[misc]
        return await super().run(argv, input=input, timeout=timeout, privileged=privileged)


async def test_a_change_made_between_read_and_write_is_never_lost(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(1)

    async def bob() -> None:
        assert (await fleet.apply(edits.block(["192.0.2.66"]), operator="bob")).ok

    transports = {"web1": InterleavingTransport(bob)}
    report = await apply_change(
        fleet.config,
        "www",
        transports,
        edits.block(["192.0.2.1"]),
        operator="alice",
        confirm_within=0,
        audit_trail=fleet.trail,
    )
    assert "were changed by bob" in report.results["web1"].reason
    assert [b["target"] for b in fleet.state()["blocks"]] == ["192.0.2.66"]
    assert fleet.state()["version"] == 1


async def test_concurrent_applies_are_each_applied_or_refused_without_loss(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    targets = [f"192.0.2.{i}" for i in range(1, 7)]
    reports = await asyncio.gather(*(fleet.apply(edits.block([t])) for t in targets))
    applied = {t for t, r in zip(targets, reports, strict=True) if r.ok}
    for r in reports:
        assert r.ok or "re-read" in r.results["web1"].reason, r.to_dict()
    state = fleet.state()
    assert {b["target"] for b in state["blocks"]} == applied
    assert state["version"] == len(applied) >= 1
    for t in targets:
        assert fleet.web1.status(client=t) == (403 if t in applied else 200)


async def test_an_unconfirmed_change_reverts_by_itself_even_if_the_console_dies(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.block(["198.51.100.0/24"]))).ok
    # The console runs in its own process and is killed as soon as the change is applied.
    script = f"""
import asyncio, pickle, sys
sys.path[:0] = {sys.path!r}
from opsconsole.config import parse_config
from opsconsole.controls import edits
from opsconsole.controls.apply import apply_change
from opsconsole.transport.local import LocalTransport
config = pickle.loads({__import__("pickle").dumps(fleet.config)!r})
async def main():
    r = await apply_change(config, "www", {{"web1": LocalTransport("web1")}},
        edits.block(["0.0.0.0/0"], everyone=True), operator="carol", confirm_within=4,
        audit_trail=__import__("pathlib").Path({str(fleet.trail)!r}))
    print(r.results["web1"].status, flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""
    console = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert console.stdout is not None and console.stdout.readline().strip() == "ok"
    finally:
        console.kill()
        console.wait()
    assert fleet.web1.status(client="192.0.2.1") == 403  # everyone is blocked now
    assert fleet.state()["version"] == 2
    trail = fleet.web1.control / "www.audit.jsonl"

    def last_event() -> dict[str, Any]:
        return dict(json.loads(trail.read_text().splitlines()[-1]))

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        fleet.state()["version"] != 1
        or fleet.web1.status(client="192.0.2.1") != 200
        or last_event()["operator"] != "opsconsole-timer"
    ):  # the timer swaps the files back, reloads (old workers answer for a moment), records
        await asyncio.sleep(0.2)
    assert fleet.state()["version"] == 1
    assert fleet.web1.status(client="192.0.2.1") == 200
    assert fleet.web1.status(client="198.51.100.1") == 403
    last = last_event()
    assert last["operator"] == "opsconsole-timer" and last["result"] == "ok"
    assert "not confirmed within 4s" in last["action"]


async def test_rollback_reverts_a_pending_change_at_once_or_else_the_last_one(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)

    async def rollback() -> ApplyReport:
        return await rollback_change(
            fleet.config, "www", fleet.transports, operator="alice", audit_trail=fleet.trail
        )

    assert (await fleet.apply(edits.block(["192.0.2.1"]))).ok
    assert (await fleet.apply(edits.block(["192.0.2.2"]), confirm_within=300)).ok
    r = (await rollback()).results["web1"]
    assert (r.status, r.before_version, r.after_version) == ("rolled-back", 2, 1)
    assert not (fleet.web1.control / ".www.confirm").exists()
    assert fleet.web1.status(client="192.0.2.2") == 200
    assert fleet.web1.status(client="192.0.2.1") == 403
    again = (await rollback()).results["web1"]  # one level only: a no-op, not a failure
    assert (again.status, again.ok) == ("nothing", True) and "nothing to roll back" in again.reason

    assert (await fleet.apply(edits.block(["192.0.2.3"]))).ok  # no confirm: undo the last change
    r = (await rollback()).results["web1"]
    assert (r.status, r.before_version, r.after_version) == ("rolled-back", 2, 1)
    assert fleet.web1.status(client="192.0.2.3") == 200
    events = [json.loads(x) for x in fleet.trail.read_text().splitlines()]
    assert [e["result"] for e in events if e["action"] == "rollback"] == [
        "rolled-back",
        "rolled-back",
    ]


class KillingTransport(LocalTransport):
    """Runs the apply step in its own process group and SIGKILLs the group after ``delay``."""

    def __init__(self, delay: float) -> None:
        super().__init__("web1")
        self.delay = delay

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        if len(argv) <= 5 or argv[5] != "apply":
            return await super().run(argv, input=input, timeout=timeout, privileged=privileged)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(input or b"")
        proc.stdin.close()
        assert proc.stdout is not None and proc.stderr is not None
        reading = asyncio.gather(proc.stdout.read(), proc.stderr.read(), proc.wait())
        try:
            out, err, _ = await asyncio.wait_for(asyncio.shield(reading), self.delay)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err, _ = await reading
        return RunResult(proc.returncode or 0, out, err)


def _versions(fleet: Fleet) -> set[str]:
    """The state version each visible file belongs to (one value when the set is whole)."""
    snap = fleet.snapshot()
    found = {str(json.loads(snap["state.json"])["version"])}
    for name in ("http.conf", "server.conf"):
        found.add(snap[name].split("state version ", 1)[1].split(".", 1)[0])
    return found


async def test_killing_an_apply_at_any_moment_leaves_the_files_all_old_or_all_new(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.block(["192.0.2.1"]))).ok
    start = time.monotonic()
    assert (await fleet.apply(edits.block(["192.0.2.2"]))).ok
    step = (time.monotonic() - start) / 10
    outcomes = []
    for i in range(14):
        transports = {"web1": KillingTransport(delay=i * step)}
        report = await apply_change(
            fleet.config,
            "www",
            transports,
            edits.block([f"198.51.100.{i}"]),
            operator="mallory",
            confirm_within=0,
            audit_trail=fleet.trail,
        )
        assert len(_versions(fleet)) == 1, (i, _versions(fleet))
        outcomes.append(report.results["web1"].status)
        # The next apply recovers whatever the killed one left, then works normally.
        report = await fleet.apply(edits.block([f"203.0.113.{i}"]))
        assert report.ok, report.to_dict()
        assert fleet.web1.status(client=f"203.0.113.{i}") == 403
        state = state_from_json((fleet.web1.control / "www.state.json").read_text())
        blocked = {b.target for b in state.blocks}
        expect = 403 if f"198.51.100.{i}" in blocked else 200
        assert fleet.web1.status(client=f"198.51.100.{i}") == expect
    assert "failed" in outcomes  # some kills did land mid-way
    leftovers = {p.name for p in fleet.web1.control.iterdir() if p.name.startswith(".www.g")}
    assert len(leftovers) <= 2  # the live and the previous generation only


async def test_an_apply_that_dies_after_the_swap_is_rolled_back_by_the_next_one(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.block(["192.0.2.1"]))).ok
    svc = fleet.config.services["www"]
    real_test = svc.nginx_test
    # nginx -t "crashes" the whole apply: the new files are in place, untested, not reloaded.
    object.__setattr__(svc, "nginx_test", "kill -9 0")
    transports = {"web1": KillingTransport(delay=30)}
    report = await apply_change(
        fleet.config,
        "www",
        transports,
        edits.block(["192.0.2.2"]),
        operator="mallory",
        confirm_within=0,
        audit_trail=fleet.trail,
        pid_files={"web1": str(fleet.web1.dir / "nginx.pid")},  # nginx_test no longer names it
    )
    object.__setattr__(svc, "nginx_test", real_test)
    assert report.results["web1"].status == "failed"
    assert _versions(fleet) == {"2"}  # all new...
    controls = await read_controls(fleet.config, "www", fleet.transports)
    assert controls.servers["web1"].pending  # ...and known to be unfinished
    assert fleet.web1.status(client="192.0.2.2") == 200  # nginx never loaded it

    report = await fleet.apply(edits.block(["192.0.2.3"]))
    r = report.results["web1"]
    assert r.ok and r.recovered and (r.before_version, r.after_version) == (1, 2)
    assert [b["target"] for b in fleet.state()["blocks"]] == ["192.0.2.1", "192.0.2.3"]
    assert fleet.web1.status(client="192.0.2.2") == 200
    assert fleet.web1.status(client="192.0.2.3") == 403
    events = [
        json.loads(x) for x in (fleet.web1.control / "www.audit.jsonl").read_text().splitlines()
    ]
    assert [e["result"] for e in events] == ["ok", "recovered", "ok"]


async def test_a_missing_control_directory_is_reported_and_nothing_is_created(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    shutil.rmtree(fleet.web1.control)
    report = await fleet.apply(edits.block(["192.0.2.1"]))
    assert report.exit_status == 1
    assert "does not exist on web1 (run: opsconsole setup www)" in report.results["web1"].reason
    assert not fleet.web1.control.exists()


async def test_two_services_share_one_nginx_and_control_dir_without_touching_each_other(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    web1 = fleet.web1
    # At the same time on the same nginx: each service has its own lock, state and names.
    results = await asyncio.gather(
        fleet.apply(edits.block(["203.0.113.0/24"])),
        fleet.apply(edits.limit("1r/m", burst=1, key="subnet"), service="shop-eu"),
    )
    assert all(r.ok for r in results), [r.to_dict() for r in results]
    assert (await fleet.apply(edits.maintenance(True, allow=["127.0.0.10"]), service="shop-eu")).ok
    assert web1.status(client="203.0.113.1") == 403
    assert web1.status(client="203.0.113.1", port=web1.port2) == 503
    assert web1.status(client="198.51.100.1") == 200
    assert (await fleet.apply(edits.maintenance(False), service="shop-eu")).ok
    codes = [web1.status(client="198.51.100.1", port=web1.port2) for _ in range(3)]
    assert codes == [200, 200, 429]  # one request and a burst of one per minute
    assert [web1.status(client="198.51.100.1") for _ in range(3)] == [200, 200, 200]
    assert json.loads((web1.control / "www.state.json").read_text())["version"] == 1
    assert json.loads((web1.control / "shop-eu.state.json").read_text())["version"] == 3


async def test_a_dry_run_shows_the_diff_and_changes_nothing(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.block(["192.0.2.1"]))).ok
    before = fleet.snapshot()
    report = await fleet.apply(edits.block(["203.0.113.0/24"]), dry_run=True)
    r = report.results["web1"]
    assert r.status == "dry-run" and "+    203.0.113.0/24 1;" in r.diff
    assert fleet.snapshot() == before
    assert len(fleet.trail.read_text().splitlines()) == 1


async def test_expired_blocks_are_dropped_by_the_next_apply(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(1)
    past = datetime.now(UTC) - timedelta(hours=2)
    assert (await fleet.apply(edits.block(["192.0.2.9"], ttl=3600), now=past)).ok
    assert fleet.state()["blocks"][0]["expires_at"] is not None
    assert (await fleet.apply(edits.block(["192.0.2.10"]))).ok
    assert [b["target"] for b in fleet.state()["blocks"]] == ["192.0.2.10"]
    assert fleet.web1.status(client="192.0.2.9") == 200


async def test_servers_apply_in_parallel_and_a_failure_on_one_is_reported(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(2)
    assert (await fleet.apply(edits.block(["192.0.2.1"]))).ok
    conf = fleet.nginx["web2"].dir / "nginx.conf"
    conf.write_text(conf.read_text().replace("http {", "http {\n    bogus_directive on;", 1))
    report = await fleet.apply(edits.block(["192.0.2.2"]))
    assert report.results["web1"].status == "ok"
    assert report.results["web2"].rolled_back and report.exit_status == 1
    controls = await read_controls(fleet.config, "www", fleet.transports)
    assert not controls.consistent
    assert controls.to_dict()["servers"]["web2"]["version"] == 1


async def test_a_hundred_thousand_blocks_apply(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(1)
    targets = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(100_000)]
    t0 = time.perf_counter()
    edit = edits.block(targets, reason="flood")
    t1 = time.perf_counter()
    report = await fleet.apply(edit)
    t2 = time.perf_counter()
    assert report.ok, report.to_dict()
    r = report.results["web1"]
    print(
        f"\n100,000 blocks: validate {t1 - t0:.2f}s, apply {t2 - t1:.2f}s (of which nginx -t "
        f"{r.test_ms} ms, reload {r.reload_ms} ms); http.conf "
        f"{(fleet.web1.control / 'www.http.conf').stat().st_size / 1e6:.1f} MB"
    )
    assert fleet.web1.status(client="10.1.134.159") == 403
    assert fleet.web1.status(client="11.0.0.1") == 200
    t3 = time.perf_counter()
    assert (await fleet.apply(edits.unblock(["10.0.0.1"]))).ok
    print(f"one more change on top of 100,000 blocks: {time.perf_counter() - t3:.2f}s")


@pytest.mark.lab
async def test_over_ssh_a_change_reaches_every_server_and_an_unconfirmed_one_reverts_alone(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same pipeline through the rehearsal lab's real sshd; the connection is dropped while
    a commit-confirmed change waits, and the servers revert it by themselves."""
    from opsconsole.config import load_config
    from opsconsole.lab import Lab
    from opsconsole.transport import ConnectionPool

    lab = Lab.start(tmp_path_factory.mktemp("lab-controls"), traffic=False)
    try:
        config = load_config(str(lab.config_path))
        service = next(s for s in config.services.values() if len(s.servers) > 1)
        trail = tmp_path_factory.mktemp("trail") / "audit.jsonl"

        def status(server: str, client: str) -> int:
            import httpx

            headers = {"X-Forwarded-For": client, "Connection": "close"}
            return httpx.get(lab.url(service.name, server), headers=headers, timeout=5).status_code

        pool = ConnectionPool(config.servers, ssh_config=[], max_attempts=3)
        try:
            transports = {name: await pool.get(name) for name in service.servers}
            report = await apply_change(
                config,
                service.name,
                transports,
                edits.block(["203.0.113.0/24"]),
                operator="alice",
                confirm_within=0,
                audit_trail=trail,
            )
            assert report.ok, report.to_dict()
            report = await apply_change(
                config,
                service.name,
                transports,
                edits.block(["198.51.100.0/24"]),
                operator="alice",
                confirm_within=3,
                audit_trail=trail,
            )
            assert report.ok, report.to_dict()
            for server in service.servers:
                assert status(server, "203.0.113.5") == 403
                assert status(server, "198.51.100.5") == 403
        finally:
            await pool.close()  # the console goes away with the change unconfirmed
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(
            status(server, "198.51.100.5") == 403 for server in service.servers
        ):
            await asyncio.sleep(0.5)
        for server in service.servers:
            assert status(server, "198.51.100.5") == 200
            assert status(server, "203.0.113.5") == 403
            text = (lab.control_dir(server) / f"{service.name}.state.json").read_text()
            assert state_from_json(text).version == 1
    finally:
        lab.stop()


class _Counting(LocalTransport):
    """A local transport that counts the steps of the server-side program it runs, by mode."""

    def __init__(self, name: str, steps: list[str]) -> None:
        super().__init__(name)
        self.steps = steps

    async def run(self, argv: Sequence[str], **kw: Any) -> RunResult:
        if len(argv) > 5 and argv[3] == "opsc":
            self.steps.append(f"{self.name} {argv[5]}")
        return await super().run(argv, **kw)


async def test_servers_holding_the_same_large_state_send_it_once(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(3)
    targets = [f"10.0.{i >> 8}.{i & 255}" for i in range(20_000)]  # a 2.6 MB state file
    assert (await fleet.apply(edits.block(targets, reason="flood"))).ok
    assert (fleet.nginx["web1"].control / "www.state.json").stat().st_size > remote.INLINE_MAX
    steps: list[str] = []
    fleet.transports = {name: _Counting(name, steps) for name in fleet.nginx}
    remote._KNOWN.clear()  # as a new console starts

    controls = (await read_controls(fleet.config, "www", fleet.transports)).to_dict()
    for name in fleet.nginx:
        assert [b["target"] for b in controls["servers"][name]["blocks"]] == targets
    assert sorted(s for s in steps if s.endswith(" body")) in (
        [f"{name} body"] for name in fleet.nginx
    ), steps

    # web3 moves on alone: it is read on its own, and the others' known state is not reused.
    report = await fleet.apply(edits.block(["192.0.2.9"]), servers=["web3"])
    assert report.ok
    steps.clear()
    controls = (await read_controls(fleet.config, "www", fleet.transports)).to_dict()
    assert len(controls["servers"]["web3"]["blocks"]) == 20_001
    assert len(controls["servers"]["web1"]["blocks"]) == 20_000
    assert [s for s in steps if s.endswith(" body")] == ["web3 body"]

    # An apply on all three compares each server against what it holds, and lands everywhere.
    assert (await fleet.apply(edits.unblock(["10.0.0.1"]))).ok
    for name in fleet.nginx:
        assert fleet.nginx[name].status(client="10.0.0.1") == 200
        assert fleet.nginx[name].status(client="10.0.0.2") == 403
    assert fleet.nginx["web3"].status(client="192.0.2.9") == 403


async def test_a_large_state_file_damaged_on_the_server_is_reported_and_not_used(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(1)
    assert (await fleet.apply(edits.block([f"10.0.{i >> 8}.{i & 255}" for i in range(20_000)]))).ok
    before = fleet.snapshot()
    state = fleet.web1.control / "www.state.json"
    text = state.read_text()
    state.resolve().write_text(text[: len(text) // 2])  # cut short: not JSON any more
    controls = await read_controls(fleet.config, "www", fleet.transports)
    assert "the state file of www on web1 is invalid" in str(controls.to_dict()["servers"]["web1"])
    report = await fleet.apply(edits.block(["192.0.2.1"]))
    assert not report.ok
    assert "is invalid" in report.results["web1"].reason
    assert fleet.snapshot()["http.conf"] == before["http.conf"]


async def test_a_state_file_edited_by_hand_is_read_as_it_is_now(make_fleet: MakeFleet) -> None:
    """The server trusts the SHA-256 an apply sent beside a state file only while the file is
    unchanged: an edit by hand, even one that keeps its size, is hashed and read afresh."""
    fleet = make_fleet(1)
    targets = [f"10.0.{i >> 8}.{i & 255}" for i in range(20_000)]
    assert (await fleet.apply(edits.block(targets, reason="flood"))).ok
    server, svc = fleet.config.servers["web1"], fleet.config.services["www"]
    first = await remote.read_server(fleet.transports["web1"], svc, server)
    path = (fleet.web1.control / "www.state.json").resolve()
    assert first.sha == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text().replace('"flood"', '"fixed"', 1))  # the same size
    again = await remote.read_server(fleet.transports["web1"], svc, server)
    assert again.sha == hashlib.sha256(path.read_bytes()).hexdigest() != first.sha
    assert again.state.blocks[0].reason == "fixed"
    # An apply builds on the file as it is now: the edit by hand is kept.
    assert (await fleet.apply(edits.block(["192.0.2.1"]))).ok
    assert fleet.state()["blocks"][0]["reason"] == "fixed"
