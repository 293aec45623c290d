"""The control commands against a real fleet, driven as an operator drives them (issue 3).

Every test starts its own rehearsal lab (real sshd + nginx on loopback, two servers; ``www`` runs
on both) in tmp_path — these tests change what nginx answers, corrupt configs and kill consoles,
so they never share the session's lab — and runs ``python -m opsconsole --config LAB --yes …`` as
a subprocess.  What nginx answers is checked with real requests, the client address carried in
``X-Forwarded-For`` (trusted by the lab's realip).  Commit-confirmed timers a test leaves armed
and every lab are stopped by PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsconsole.lab import Lab, send

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parent.parent
WWW = ("web1", "web2")


class Operator:
    """One console: a config (maybe with its own operator name) and its own local trail."""

    def __init__(self, lab: Lab, name: str = "alice") -> None:
        self.lab = lab
        self.home = lab.dir / f"console-{name}"
        self.home.mkdir(exist_ok=True)
        self.config = self.home / "config.toml"
        self.config.write_text(f'[console]\noperator = "{name}"\n' + lab.config_path.read_text())

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "opsconsole", "--config", str(self.config), *args]

    @property
    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            XDG_STATE_HOME=str(self.home / "state"),
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def on_terminal(self, *args: str, answer: str) -> tuple[int, str]:
        """Run with a terminal as stdin/stdout/stderr, answer the y/N question; (status, text)."""
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            self.argv(*args), stdin=slave, stdout=slave, stderr=slave, env=self.env
        )
        os.close(slave)
        text, answered, deadline = b"", False, time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                if not select.select([master], [], [], 0.5)[0]:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child side is closed
                    break
                text += chunk
                if b"[y/N]" in text and not answered:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            return proc.wait(timeout=30), text.decode("utf-8", "replace").replace("\r\n", "\n")
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def controls(self, service: str = "www") -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("controls", service, "--json"))
        return data


def _stop_timers(lab: Lab) -> None:
    """End commit-confirmed timers still armed in this lab (by the PID in the marker file)."""
    for server in lab.servers:
        for marker in lab.control_dir(server).glob(".*.confirm"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid = int(marker.read_text().split()[4])
                if "opsc-timer" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                    os.killpg(pid, signal.SIGTERM)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab.start(tmp_path / "lab", traffic=False) as running:
        try:
            yield running
        finally:
            _stop_timers(running)


@pytest.fixture
def alice(lab: Lab) -> Operator:
    return Operator(lab)


def status(lab: Lab, server: str, client: str, path: str = "/", **kw: Any) -> int:
    return send(lab.url("www", server), client_ip=client, path=path, **kw)[0]


def get(lab: Lab, server: str, client: str) -> httpx.Response:
    headers = {"X-Forwarded-For": client, "Connection": "close"}
    return httpx.get(lab.url("www", server), headers=headers, timeout=10, trust_env=False)


def snapshot(lab: Lab, server: str, *, audit: bool = False) -> dict[str, Any]:
    """Every file and link of the control directory, byte for byte (the audit trail optional)."""
    root = lab.control_dir(server)
    out: dict[str, Any] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if name.endswith(".audit.jsonl") and not audit:
                continue
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = p.read_bytes()
    return out


def versions(lab: Lab, server: str) -> set[str]:
    """The state version each live file of www belongs to (one value when they agree)."""
    c = lab.control_dir(server)
    found = {str(json.loads((c / "www.state.json").read_text())["version"])}
    for name in ("www.http.conf", "www.server.conf"):
        found.add((c / name).read_text().split("state version ", 1)[1].split(".", 1)[0])
    return found


def wait_unlocked(lab: Lab, server: str, timeout: float = 30) -> None:
    """Until no server-side step of www holds the service's lock on ``server``."""
    lock = lab.control_dir(server) / ".www.lock"
    deadline = time.monotonic() + timeout
    while lock.exists():
        with lock.open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                assert time.monotonic() < deadline, "the lock stayed held"
                time.sleep(0.1)
                continue
            fcntl.flock(f, fcntl.LOCK_UN)
            return


def blocked(lab: Lab, server: str) -> set[str]:
    state = json.loads((lab.control_dir(server) / "www.state.json").read_text())
    return {b["target"] for b in state["blocks"]}


def test_a_block_answers_403_on_every_server_and_unblock_restores(
    lab: Lab, alice: Operator
) -> None:
    out = alice.ok("block", "www", "203.0.113.0/24", "--reason", "flood", "--yes")
    assert "web1  ok, version 0 -> 1" in out and "web2  ok, version 0 -> 1" in out
    for server in WWW:
        assert status(lab, server, "203.0.113.9") == 403
        assert status(lab, server, "198.51.100.1") == 200
    controls = alice.controls()
    assert controls["consistent"] is True
    for server in WWW:
        state = controls["servers"][server]
        assert [(b["target"], b["reason"], b["added_by"]) for b in state["blocks"]] == [
            ("203.0.113.0/24", "flood", "alice")
        ]
        assert state["version"] == 1 and state["error"] is None

    alice.ok("unblock", "www", "203.0.113.0/24", "--yes")
    for server in WWW:
        assert status(lab, server, "203.0.113.9") == 200
    assert all(s["blocks"] == [] for s in alice.controls()["servers"].values())


def test_path_and_user_agent_filters_refuse_exactly_the_matching_requests(
    lab: Lab, alice: Operator
) -> None:
    alice.ok("filter", "www", "--path", r"^/wp-login\.php$", "--reason", "scanner", "--yes")
    alice.ok("filter", "www", "--user-agent", "(?i)masscan", "--action", "444", "--yes")
    alice.ok("filter", "www", "--method", "DELETE", "--yes")
    client = "198.51.100.7"
    for server in WWW:
        assert status(lab, server, client, "/wp-login.php") == 403
        assert status(lab, server, client, "/wp-login.phpx") == 404  # anchored: not matched
        assert status(lab, server, client, "/blog/wp-login.php") == 404
        assert status(lab, server, client, "/about") == 200
        assert status(lab, server, client, "/", user_agent="MASSCAN/1.3") == 444
        assert status(lab, server, client, "/", user_agent="Mozilla/5.0 (X11)") == 200
        assert status(lab, server, client, "/", method="DELETE") == 403
    filters = alice.controls()["servers"]["web1"]["filters"]
    assert [(f["id"], f["field"], f["action"]) for f in filters] == [
        ("f1", "path", 403),
        ("f2", "user_agent", 444),
        ("f3", "method", 403),
    ]
    alice.ok("unfilter", "www", "f1", "--yes")
    assert [status(lab, s, client, "/wp-login.php") for s in WWW] == [404, 404]


def test_a_rate_limit_answers_429_to_a_burst_from_one_client_only(
    lab: Lab, alice: Operator
) -> None:
    alice.ok("limit", "www", "5r/s", "--burst", "10", "--yes")
    for server in WWW:
        codes = send(lab.url("www", server), 30, client_ip="203.0.113.60")
        assert codes[:11] == [200] * 11 and codes.count(429) >= 15, codes
        assert status(lab, server, "203.0.113.61") == 200
    alice.ok("limit", "www", "off", "--yes")
    assert 429 not in send(lab.url("www", "web1"), 30, client_ip="203.0.113.60")


def test_maintenance_shows_the_page_to_all_but_the_allow_list_and_off_restores(
    lab: Lab, alice: Operator
) -> None:
    out = alice.ok(
        "maintenance", "www", "on", "--allow", "127.0.0.10/32", "--message", "Back at 15:00",
        "--yes",
    )  # fmt: skip
    assert "site now: HTTP 503" in out  # the probe right after the change sees the page
    for server in WWW:
        page = get(lab, server, "198.51.100.3")
        assert page.status_code == 503 and page.headers["retry-after"] == "300"
        assert "Back at 15:00" in page.text and "maintenance" in page.text.lower()
        assert status(lab, server, "127.0.0.10") == 200

    out = alice.ok("maintenance", "www", "off", "--yes")  # risky: commit-confirmed by default
    assert "commit-confirmed: unless confirmed by" in out
    assert "site now: HTTP 200" in out
    assert f"opsconsole --config {alice.config} confirm www" in out
    for server in WWW:
        assert status(lab, server, "198.51.100.3") == 200
    out = alice.ok("confirm", "www", "--yes")
    assert "web1  confirmed, version 2" in out and "web2  confirmed, version 2" in out
    assert not any((lab.control_dir(s) / ".www.confirm").exists() for s in WWW)


def test_a_dry_run_prints_the_diff_and_changes_nothing(lab: Lab, alice: Operator) -> None:
    alice.ok("block", "www", "192.0.2.1", "--yes")
    before = {s: snapshot(lab, s, audit=True) for s in WWW}
    out = alice.ok("block", "www", "203.0.113.0/24", "--ttl", "1h", "--dry-run")
    assert "dry run: block 203.0.113.0/24 for 1h on www" in out
    assert "web1  would change version 1 -> 2" in out
    assert "+    203.0.113.0/24 1;" in out and "www.http.conf (new)" in out
    data = json.loads(alice.ok("maintenance", "www", "on", "--dry-run", "--json"))
    assert data["dry_run"] is True
    assert {r["status"] for r in data["servers"].values()} == {"dry-run"}
    assert "return 503;" in data["servers"]["web2"]["diff"]
    assert {s: snapshot(lab, s, audit=True) for s in WWW} == before
    assert status(lab, "web1", "203.0.113.9") == 200
    trail = alice.home / "state" / "opsconsole" / "audit.jsonl"
    assert len(trail.read_text().splitlines()) == 2  # the first block on two servers, only


def test_on_a_terminal_the_preview_is_shown_and_only_yes_applies(lab: Lab, alice: Operator) -> None:
    before = {s: snapshot(lab, s, audit=True) for s in WWW}
    code, text = alice.on_terminal("block", "www", "203.0.113.0/24", answer="n")
    assert code == 1 and "aborted, nothing changed" in text
    assert "web1  would change version 0 -> 1" in text and "+    203.0.113.0/24 1;" in text
    assert "block 203.0.113.0/24 on web1, web2? [y/N]" in text
    assert {s: snapshot(lab, s, audit=True) for s in WWW} == before

    code, text = alice.on_terminal("block", "www", "203.0.113.0/24", answer="y")
    assert code == 0, text
    assert "web1: connected" in text and "web2: writing the files, nginx -t, reload" in text
    assert "web1  ok, version 0 -> 1" in text
    assert [status(lab, s, "203.0.113.9") for s in WWW] == [403, 403]


def test_bad_input_against_the_fleet_is_refused_and_nothing_is_written(
    lab: Lab, alice: Operator
) -> None:
    alice.ok("block", "www", "192.0.2.1", "--yes")
    before = {s: snapshot(lab, s, audit=True) for s in WWW}
    for args in (
        ["block", "www", "1.2.3.4; }"],
        ["filter", "www", "--path", 'x"; include /etc/passwd; #'],
        ["limit", "www", "10r/s", "--burst", "-1"],
        ["maintenance", "www", "on", "--message", "x" * 600],
    ):
        result = alice.run(*args, "--yes")
        assert result.returncode == 2, (args, result.stderr)
    assert {s: snapshot(lab, s, audit=True) for s in WWW} == before


def test_a_config_nginx_refuses_exits_1_with_nginx_s_message_and_keeps_the_old_controls(
    lab: Lab, alice: Operator
) -> None:
    alice.ok("block", "www", "203.0.113.0/24", "--yes")
    before = snapshot(lab, "web1")
    conf = lab.nginx_prefix("web1") / "nginx.conf"
    conf.write_text(conf.read_text().replace("http {", "http {\n    bogus_directive on;", 1))

    result = alice.run("block", "www", "198.51.100.0/24", "--yes")
    assert result.returncode == 1
    assert 'unknown directive "bogus_directive"' in result.stderr
    assert "web1  FAILED, rolled back, version 1 kept" in result.stdout
    assert "web2  ok, version 1 -> 2" in result.stdout
    assert snapshot(lab, "web1") == before  # the same files, byte for byte
    assert status(lab, "web1", "203.0.113.9") == 403  # nginx still serves the old controls
    assert status(lab, "web1", "198.51.100.1") == 200
    assert status(lab, "web2", "198.51.100.1") == 403
    controls = alice.controls()
    assert controls["consistent"] is False
    assert [controls["servers"][s]["version"] for s in WWW] == [1, 2]
    audit = (lab.control_dir("web1") / "www.audit.jsonl").read_text().splitlines()
    assert json.loads(audit[-1])["result"] == "test-failed"


def test_an_unconfirmed_change_reverts_by_itself(lab: Lab, alice: Operator) -> None:
    def timer_events(server: str) -> int:
        trail = lab.control_dir(server) / "www.audit.jsonl"
        return trail.read_bytes().count(b"opsconsole-timer") if trail.exists() else 0

    earlier = {s: timer_events(s) for s in WWW}
    alice.ok("block", "www", "203.0.113.0/24", "--yes")
    out = alice.ok("block", "www", "198.51.100.0/24", "--confirm-within", "3s", "--yes")
    assert "commit-confirmed: unless confirmed by" in out and "confirm www" in out
    assert [status(lab, s, "198.51.100.5") for s in WWW] == [403, 403]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(status(lab, s, "198.51.100.5") == 403 for s in WWW):
        time.sleep(0.5)
    # nginx answers from the reverted config a moment before the timer has recorded the revert
    # (it retires the old workers first): wait for its audit line on every server.
    while time.monotonic() < deadline and any(timer_events(s) == earlier[s] for s in WWW):
        time.sleep(0.2)
    for server in WWW:
        assert status(lab, server, "198.51.100.5") == 200
        assert status(lab, server, "203.0.113.5") == 403
        assert alice.controls()["servers"][server]["version"] == 1
    events = json.loads(alice.ok("audit", "--service", "www", "--json"))["events"]
    timer = [e for e in events if e["operator"] == "opsconsole-timer"]
    assert {e["server"] for e in timer} == set(WWW)
    assert all("not confirmed within 3s" in e["action"] and e["source"] == "server" for e in timer)


def test_rollback_reverts_at_once_and_confirm_keeps_the_change(lab: Lab, alice: Operator) -> None:
    alice.ok("block", "www", "192.0.2.0/24", "--confirm-within", "60s", "--yes")
    assert status(lab, "web1", "192.0.2.7") == 403
    out = alice.ok("rollback", "www", "--yes")
    assert "web1  rolled back, version 1 -> 0" in out
    assert [status(lab, s, "192.0.2.7") for s in WWW] == [200, 200]
    assert not any((lab.control_dir(s) / ".www.confirm").exists() for s in WWW)

    alice.ok("block", "www", "192.0.2.0/24", "--confirm-within", "3s", "--yes")
    assert "confirmed" in alice.ok("confirm", "www", "--yes")
    time.sleep(5)  # past the window: nothing reverts
    assert [status(lab, s, "192.0.2.7") for s in WWW] == [403, 403]


def test_killing_the_console_during_an_apply_leaves_each_server_all_old_or_all_new(
    lab: Lab, alice: Operator
) -> None:
    alice.ok("block", "www", "192.0.2.1", "--yes")
    start = time.monotonic()
    alice.ok("block", "www", "192.0.2.2", "--yes")
    whole = time.monotonic() - start
    rng = random.Random(3)
    seen = set()
    for i in range(8):
        target = f"198.51.100.{i}"
        console = alice.start("block", "www", target, "--yes")
        time.sleep(rng.uniform(0.5, 1.05) * whole)
        console.kill()  # SIGKILL, at some moment of the apply
        console.communicate()
        time.sleep(0.3)
        for server in WWW:
            wait_unlocked(lab, server)
            assert len(versions(lab, server)) == 1, (i, server, versions(lab, server))
            pending = (lab.control_dir(server) / ".www.pending").exists()
            new = target in blocked(lab, server)
            seen.add("new" if new else "old")
            if not pending:  # nginx serves exactly what the state says
                assert status(lab, server, target) == (403 if new else 200), (i, server)
        # The next change (it first rolls back whatever an interrupted apply left) works.
        alice.ok("block", "www", f"203.0.113.{i}", "--yes")
        for server in WWW:
            assert not (lab.control_dir(server) / ".www.pending").exists()
            assert status(lab, server, f"203.0.113.{i}") == 403
            expect = 403 if target in blocked(lab, server) else 200
            assert status(lab, server, target) == expect
    print(f"outcomes of the kills: {sorted(seen)}")


def test_two_consoles_at_once_both_apply_or_one_is_told_to_re_read(
    lab: Lab, alice: Operator
) -> None:
    bob = Operator(lab, "bob")
    applied: dict[str, set[str]] = {s: set() for s in WWW}
    for round_ in range(3):
        targets = {"alice": f"192.0.2.{round_}", "bob": f"198.51.100.{round_}"}
        procs = {
            who: op.start("block", "www", targets[who], "--yes", "--json")
            for who, op in (("alice", alice), ("bob", bob))
        }
        for who, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode in (0, 1), err
            for server, r in json.loads(out)["servers"].items():
                if r["status"] == "ok":
                    applied[server].add(targets[who])
                else:
                    assert "changed by" in r["reason"] and "re-read" in r["reason"], r
        for server in WWW:
            assert blocked(lab, server) == applied[server]  # no update lost
            state = alice.controls()["servers"][server]
            assert state["version"] == len(applied[server])
            for t in applied[server]:
                assert status(lab, server, t) == 403


def test_audit_merges_every_console_s_events_in_time_order(lab: Lab, alice: Operator) -> None:
    bob = Operator(lab, "bob")
    alice.ok("block", "www", "203.0.113.0/24", "--yes")
    bob.ok("limit", "www", "50r/s", "--yes")
    refused = alice.run("block", "www", "192.0.2.9", "--expect-version", "1", "--yes")
    assert refused.returncode == 1 and "re-read" in refused.stderr
    alice.ok("rollback", "www", "--yes")

    data = json.loads(alice.ok("audit", "--service", "www", "--json"))
    events = data["events"]
    assert data["errors"] == {}
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    for e in events:
        assert {"operator", "service", "server", "action", "before_version", "after_version",
                "result", "time"} <= e.keys()  # fmt: skip
    by = {(e["operator"], e["action"], e["server"]): e for e in events}
    block = by[("alice", "block 203.0.113.0/24", "web1")]
    assert (block["before_version"], block["after_version"], block["result"]) == (0, 1, "ok")
    assert block["source"] == "both"
    limit = by[("bob", "limit 50r/s burst 0 per ip", "web2")]  # bob's console, seen by alice
    assert (limit["before_version"], limit["after_version"], limit["source"]) == (1, 2, "server")
    stale = by[("alice", "block 192.0.2.9", "web1")]  # never reached the server's trail
    assert (stale["result"], stale["source"]) == ("failed", "local")
    back = by[("alice", "rollback", "web2")]
    assert (back["before_version"], back["after_version"]) == (2, 1)
    text = alice.ok("audit", "--since", "1h")
    assert "bob" in text and "www/web2" in text


def test_controls_show_the_expiry_and_a_running_console_removes_due_blocks(
    lab: Lab, alice: Operator
) -> None:
    import asyncio

    from opsconsole.config import load_config
    from opsconsole.controls import ApplyReport, expire_due
    from opsconsole.transport import ConnectionPool

    alice.ok("block", "www", "203.0.113.0/24", "--ttl", "1h", "--yes")
    alice.ok("block", "www", "198.51.100.0/24", "--ttl", "2s", "--yes")
    text = alice.ok("controls", "www")
    assert "203.0.113.0/24" in text and "(in 59m" in text
    expiry = {b["target"]: b["expires_at"] for b in alice.controls()["servers"]["web1"]["blocks"]}
    assert all(expiry.values())
    time.sleep(3)

    async def console() -> tuple[ApplyReport | None, ApplyReport | None]:
        config = load_config(str(alice.config))
        pool = ConnectionPool(config.servers, max_attempts=2, ssh_config=[])
        try:
            transports = {n: await pool.get(n) for n in WWW}
            first = await expire_due(config, "www", transports, "tui")
            again = await expire_due(config, "www", transports, "tui")
            return first, again
        finally:
            await pool.close()

    first, again = asyncio.run(console())
    assert first is not None and first.ok, first and first.to_dict()
    assert first.action == "expire blocks"
    assert again is None  # a second call finds nothing due
    for server in WWW:
        assert blocked(lab, server) == {"203.0.113.0/24"}
        assert status(lab, server, "198.51.100.9") == 200
        assert status(lab, server, "203.0.113.9") == 403


def test_setup_says_when_nginx_includes_the_snippets_and_prints_the_lines_when_not(
    lab: Lab, alice: Operator
) -> None:
    out = alice.ok("setup", "www")
    assert out.startswith("www: ready on every server")
    for server in WWW:
        c = lab.control_dir(server)
        assert f"{c}/www.http.conf is included in http {{}}" in out
        assert f"{c}/www.server.conf is included in server {{ server_name www; }}" in out

    for suffix in ("http.conf", "server.conf"):  # shop's snippets are gone: setup makes them
        (lab.control_dir("web1") / f"shop.{suffix}").unlink()
    out = alice.ok("setup", "shop")
    assert f"created {lab.control_dir('web1')}/shop.server.conf (empty)" in out
    assert (lab.control_dir("web1") / "shop.http.conf").read_text() == ""

    conf = lab.nginx_prefix("web1") / "nginx.conf"
    text = conf.read_text()
    c1 = lab.control_dir("web1")
    edited = text.replace(f"include {c1}/*.http.conf;", "").replace(
        f"include {c1}/www.server.conf;", ""
    )
    assert edited != text
    conf.write_text(edited)
    result = alice.run("setup", "www")
    assert result.returncode == 1
    assert "add inside the http {} block of web1's nginx config:" in result.stdout
    assert f"    include {c1}/www.http.conf;\n" in result.stdout
    assert "add inside the server {} block of www on web1:" in result.stdout
    assert f"    include {c1}/www.server.conf;\n" in result.stdout
    assert conf.read_text() == edited  # the operator's file is never edited
    data = json.loads(alice.run("setup", "www", "--json").stdout)
    assert data["ok"] is False and data["servers"]["web2"]["ok"] is True
    assert data["servers"]["web1"]["missing"] == [
        {"block": "http", "line": f"include {c1}/www.http.conf;"},
        {"block": "server", "line": f"include {c1}/www.server.conf;"},
    ]
