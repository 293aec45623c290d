"""What a new user hit, fixed in the one session layer (issue 8), proven on a real fleet.

A lab of its own per test (real sshd + nginx, ``www`` on two servers), driven through the CLI as
an operator or a script drives it: commands the tool prints are run exactly as printed, with no
terminal; no-ops say so and exit 0; repeating a block changes nothing (no new version, no
reload); ``maintenance on`` says what it keeps.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_controls_lab import WWW, Operator, _stop_timers

from opsconsole.lab import Lab, send

pytestmark = pytest.mark.lab


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


def printed(output: str, verb: str) -> list[str]:
    """The command line the tool printed for the operator to run (``opsconsole … confirm …``)."""
    for line in output.splitlines():
        match = re.search(rf"(opsconsole .*\b{verb} \S+.*?)\)?$", line.strip())
        if match:
            return shlex.split(match.group(1))
    raise AssertionError(f"no printed {verb} command in:\n{output}")


def run_as_printed(op: Operator, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a printed command without a terminal (stdin /dev/null), as a script would."""
    assert argv[0] == "opsconsole"
    return subprocess.run(
        [*op.argv()[:3], *argv[1:]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=op.env,
        timeout=120,
    )


def workers(lab: Lab, server: str) -> set[int]:
    master = lab.servers[server].nginx_pid
    text = Path(f"/proc/{master}/task/{master}/children").read_text()
    return {int(p) for p in text.split()}


def test_the_printed_confirm_keeps_the_change_from_a_script_without_asking(
    lab: Lab, alice: Operator
) -> None:
    out = alice.ok("block", "www", "203.0.113.0/24", "--confirm-within", "12s", "--yes")
    assert "applied, awaiting confirmation" in out
    confirm = printed(out, "confirm")
    assert "--yes" not in confirm  # confirm never asks: it keeps what is already live
    result = run_as_printed(alice, confirm)
    assert result.returncode == 0, result.stderr
    assert "confirmed" in result.stdout
    time.sleep(14)  # past the window: a confirmed change stays
    for server in WWW:
        assert send(lab.url("www", server), client_ip="203.0.113.9") == [403], server
    assert all(s["confirm_deadline"] is None for s in alice.controls()["servers"].values())


def test_the_printed_rollback_works_as_printed_from_a_script(lab: Lab, alice: Operator) -> None:
    out = alice.ok("block", "www", "203.0.113.0/24", "--confirm-within", "60s", "--yes")
    result = run_as_printed(alice, printed(out, "rollback"))
    assert result.returncode == 0, result.stderr
    assert "rolled back" in result.stdout
    for server in WWW:
        assert send(lab.url("www", server), client_ip="203.0.113.9") == [200], server


def test_a_no_op_says_so_names_what_and_exits_0(lab: Lab, alice: Operator) -> None:
    result = alice.run("rollback", "www", "--yes")
    assert result.returncode == 0, result.stderr
    assert "nothing to roll back" in result.stdout and "FAILED" not in result.stdout
    result = alice.run("unblock", "www", "10.9.9.0/24", "--yes")
    assert result.returncode == 0, result.stderr
    assert "not blocked on www: 10.9.9.0/24 — nothing changed" in result.stdout
    result = alice.run("confirm", "www")  # no --yes, no terminal: confirm does not ask
    assert result.returncode == 0, result.stderr
    assert "no change awaits confirmation on www — nothing changed" in result.stdout
    data = json.loads(alice.ok("rollback", "www", "--yes", "--json"))
    assert data["ok"] and {s["status"] for s in data["servers"].values()} == {"nothing"}
    assert alice.controls()["servers"]["web1"]["version"] == 0  # nothing was written


def test_blocking_again_changes_nothing_and_keeps_the_expiry(lab: Lab, alice: Operator) -> None:
    alice.ok("block", "www", "203.0.113.0/24", "--reason", "flood", "--yes")
    first = alice.controls()["servers"]["web1"]
    before = {s: workers(lab, s) for s in WWW}
    time.sleep(1.1)  # a new added_at would differ by the second
    out = alice.ok("block", "www", "203.0.113.0/24", "--yes")
    assert "already blocked on www: 203.0.113.0/24 — nothing changed" in out
    again = alice.controls()["servers"]["web1"]
    assert again["version"] == first["version"]
    assert again["blocks"] == first["blocks"]  # added_at, author and reason kept
    assert {s: workers(lab, s) for s in WWW} == before  # nginx was not reloaded
    # A --ttl block re-blocked without --ttl keeps its expiry and says so.
    alice.ok("block", "www", "198.51.100.0/24", "--ttl", "1h", "--yes")
    expiry = {b["target"]: b["expires_at"] for b in alice.controls()["servers"]["web2"]["blocks"]}
    out = alice.ok("block", "www", "198.51.100.0/24", "--yes")
    assert "keeps its expiry" in out and "--permanent" in out
    kept = {b["target"]: b["expires_at"] for b in alice.controls()["servers"]["web2"]["blocks"]}
    assert kept["198.51.100.0/24"] == expiry["198.51.100.0/24"] is not None
    alice.ok("block", "www", "198.51.100.0/24", "--permanent", "--yes")
    made = {b["target"]: b["expires_at"] for b in alice.controls()["servers"]["web2"]["blocks"]}
    assert made["198.51.100.0/24"] is None


def test_maintenance_on_says_what_it_keeps_and_allow_none_clears_it(
    lab: Lab, alice: Operator
) -> None:
    alice.ok("maintenance", "www", "on", "--allow", "127.0.0.10", "--message", "Back soon", "--yes")
    alice.ok("maintenance", "www", "off", "--confirm-within", "0", "--yes")
    preview = alice.ok("maintenance", "www", "on", "--dry-run")
    assert "maintenance on, allow 127.0.0.10 (kept), message 'Back soon' (kept)" in preview
    data = json.loads(alice.ok("maintenance", "www", "on", "--yes", "--json"))
    assert data["action"] == "maintenance on, allow 127.0.0.10 (kept), message 'Back soon' (kept)"
    trail = (alice.home / "state" / "opsconsole" / "audit.jsonl").read_text().splitlines()
    assert json.loads(trail[-1])["action"] == data["action"]  # the audit says so too
    assert send(lab.url("www"), client_ip="127.0.0.10") == [200]  # still allowed
    alice.ok("maintenance", "www", "on", "--allow", "none", "--yes")
    state = alice.controls()["servers"]["web1"]
    assert state["maintenance"] == {"on": True, "allow": [], "message": "Back soon"}
    assert send(lab.url("www"), client_ip="127.0.0.10") == [503]


def test_blocking_everyone_needs_everyone(lab: Lab, alice: Operator) -> None:
    result = alice.run("block", "www", "0.0.0.0/0", "--yes")
    assert result.returncode == 2
    assert "would block every IPv4 client" in result.stderr and "--everyone" in result.stderr
    assert alice.controls()["servers"]["web1"]["version"] == 0
    out = alice.ok("block", "www", "10.0.0.0/8", "--dry-run")  # /8 is the broadest allowed
    assert "10.0.0.0/8" in out
    out = alice.ok("block", "www", "0.0.0.0/0", "--everyone", "--dry-run")
    assert "would change" in out


def test_a_filter_of_three_conditions_refuses_only_what_matches_them_all(
    lab: Lab, alice: Operator
) -> None:
    out = alice.ok(
        "filter", "www", "--path", "^/api/", "--user-agent", "^curl/", "--referer", "^$",
        "--reason", "scraper", "--yes",
    )  # fmt: skip
    assert "path ~ ^/api/ and user_agent ~ ^curl/ and referer ~ ^$" in out
    url = lab.url("www")
    assert send(url, path="/api/x", user_agent="curl/8.4.0") == [403]
    assert send(url, path="/api/x", user_agent="curl/8.4.0", headers={"Referer": "x"}) == [404]
    assert send(url, path="/api/x", user_agent="Mozilla/5.0") == [404]
    assert send(url, path="/other", user_agent="curl/8.4.0") == [404]
    state = alice.controls()["servers"]["web2"]["filters"][0]
    assert [c["field"] for c in state["when"]] == ["path", "user_agent", "referer"]
