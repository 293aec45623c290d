"""Webhook notifications on a real fleet (issue 10): what the team's chat hears of each change.

A lab of its own per test (real sshd + nginx on loopback, ``www`` on two servers), driven as an
operator drives it: ``python -m opsconsole --config … block … --yes`` and so on, with ``[notify]
webhooks`` pointing at a real HTTP server started by the test (:class:`test_notify.Hooks`) that
records what it is POSTed.  The automatic revert and the recovery stages are watched by three live
sessions in this process, as the consoles of two operators would watch them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from test_cli_controls_lab import WWW, Operator
from test_cli_controls_lab import lab as own_lab
from test_notify import Hooks, serving, unreachable

from opsconsole.config import load_config
from opsconsole.lab import Lab
from opsconsole.notify import recent_failures
from opsconsole.session import LiveSession, Session

pytestmark = pytest.mark.lab


lab = own_lab  # a lab of its own per test, its commit-confirmed timers stopped after
hooks = pytest.fixture(serving, name="hooks")
dead_url = pytest.fixture(unreachable, name="dead_url")


def notifying(lab: Lab, name: str, *webhooks: str) -> Operator:
    op = Operator(lab, name)
    with op.config.open("a") as f:
        f.write(f"\n[notify]\nwebhooks = {json.dumps(list(webhooks))}\n")
    return op


def state_version(lab: Lab, server: str) -> int:
    """The version of www's live controls on ``server`` (0: none written yet)."""
    path = lab.control_dir(server) / "www.state.json"
    if not path.exists():
        return 0
    version: int = json.loads(path.read_text())["version"]
    return version


def test_each_intent_is_posted_once_with_who_what_and_the_sites_answer(
    lab: Lab, hooks: Hooks
) -> None:
    alice = notifying(lab, "alice", hooks.url("/ok"), hooks.url("/flaky"))
    nets = ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"]
    block = alice.run("block", "www", *nets, "--reason", "flood", "--confirm-within", "5m", "--yes")
    assert block.returncode == 0 and "webhook" not in block.stderr, block.stderr
    [post] = hooks.posts("/ok")
    assert re.fullmatch(
        r"www: blocked 3 networks: 203\.0\.113\.0/24, 198\.51\.100\.0/24, 192\.0\.2\.0/24 — by "
        # Both servers' deadlines, one or two (the second server applied a second later).
        r"alice — applied, awaiting confirmation by \S+Z on web1(, web2|; applied, awaiting "
        r"confirmation by \S+Z on web2) — site now HTTP 200 in "
        rf"\S+ ms \({re.escape(lab.url('www'))}\)",
        post["text"],
    ), post["text"]
    assert (post["kind"], post["service"], post["operator"], post["server"]) == (
        "change",
        "www",
        "alice",
        "web1,web2",
    )
    assert post["action"] == "block " + " ".join(nets) and post["result"] == "ok"
    assert (post["before_version"], post["after_version"]) == (0, 1)
    assert [b["target"] for b in post["diff"]["blocks"]["added"]["items"]] == nets
    # The webhook that answered 500 twice got the same post on its third try, before the
    # command exited (it waits a few seconds for its posts).
    assert hooks.tries("/flaky") == 3 and hooks.posts("/flaky") == [post]

    alice.ok("confirm", "www")
    alice.ok("filter", "www", "--path", r"^/wp-login\.php$", "--reason", "scanner", "--yes")
    alice.ok("unblock", "www", "10.9.9.0/24", "--yes")  # not blocked: nothing changed, no post
    # On a terminal: previewed, asked, then applied as shown (the console's way too).
    status, shown = alice.on_terminal("unblock", "www", "192.0.2.0/24", answer="y")
    assert status == 0 and "webhook" not in shown, shown
    alice.ok("rollback", "www", "--yes")

    posts = hooks.posts("/ok")
    assert [p["kind"] for p in posts] == ["change", "confirm", "change", "change", "rollback"]
    assert {p["operator"] for p in posts} == {"alice"} and {p["service"] for p in posts} == {"www"}
    confirm, filtered, unblocked, rollback = posts[1:]
    assert confirm["text"] == (
        "www: confirmed: blocked 3 networks: 203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24 — "
        "by alice — confirmed on web1, web2"
    )
    assert filtered["text"].startswith(
        r"www: filter f1 added: path ~ ^/wp-login\.php$ → 403 — by alice — applied on web1, web2"
    )
    assert unblocked["text"].startswith(
        "www: unblocked 192.0.2.0/24 — by alice — applied on web1, web2 — site now HTTP 200"
    )
    assert rollback["text"].startswith(
        "www: rolled back: unblocked 192.0.2.0/24 (version 3 → 2) — by alice — rolled back on "
        "web1, web2 — site now HTTP 200"
    ), rollback["text"]
    assert rollback["change_diff"]["blocks"]["removed"]["items"] == ["192.0.2.0/24"]
    assert rollback["action"] == "rollback" and rollback["after_version"] == 2
    assert hooks.posts("/flaky") == posts


def test_an_unreachable_webhook_fails_no_change_and_is_named_without_its_secret(
    lab: Lab, dead_url: str
) -> None:
    alice = notifying(lab, "alice", dead_url)
    started = time.monotonic()
    result = alice.run("block", "www", "203.0.113.7", "--reason", "flood", "--yes")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr  # the change is done: its exit status
    assert "web1  ok, version 0 -> 1" in result.stdout and "web2  ok" in result.stdout
    assert all(state_version(lab, s) == 1 for s in WWW)
    port = dead_url.split(":")[2].split("/")[0]
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"opsconsole: webhook http://127.0.0.1:{port}/… was not told of block 203.0.113.7 on "
        f"www: connection refused by 127.0.0.1:{port}"
    ), line
    assert took < 20, "the command waits a few seconds for its posts, not more"
    state = alice.home / "state" / "opsconsole"
    [failure] = recent_failures(state / "notify.jsonl")
    assert failure.webhook == f"http://127.0.0.1:{port}/…" and failure.what.startswith("block")
    # `check` names the webhook that failed, with what it missed (and not its secret).
    check = alice.run("check", "--json")
    notify = json.loads(check.stdout)["notify"]
    assert notify["webhooks"] == [f"http://127.0.0.1:{port}/…"]
    [listed] = notify["failures"]
    assert listed["webhook"] == failure.webhook and listed["what"] == failure.what
    table = alice.run("check")
    assert f"opsconsole: webhook http://127.0.0.1:{port}/… was not told of block" in table.stderr
    trails = [state / "audit.jsonl", state / "notify.jsonl"]
    trails += [lab.control_dir(s) / "www.audit.jsonl" for s in WWW]
    shown = [result.stdout, result.stderr, check.stdout, check.stderr, table.stdout, table.stderr]
    for text in [*shown, *(p.read_text() for p in trails)]:
        assert "SECRET" not in text and "secret" not in text
        assert "Traceback" not in text


async def test_a_revert_by_the_servers_is_posted_once_by_whichever_console_sees_it(
    lab: Lab, hooks: Hooks
) -> None:
    team = hooks.url("/team")  # the team's chat: every operator's config posts there
    alice, bob = notifying(lab, "alice", team), notifying(lab, "bob", team)
    # Alice has two consoles open on this machine (two terminals), bob one (on another
    # machine: his own state directory).
    consoles = [
        LiveSession(load_config(str(op.config)), audit_trail_path=op.home / "console.jsonl")
        for op in (alice, alice, bob)
    ]
    try:
        result = await asyncio.to_thread(
            alice.run, "block", "www", "203.0.113.99", "--confirm-within", "8s", "--yes"
        )
        assert result.returncode == 0, result.stderr
        for console in consoles:  # all see the change awaiting confirmation
            event = await console.refresh_controls("www")
            assert event.deadline() is not None
        # They watch as a console does, reading every half second, until no server awaits
        # confirmation any more; each sees both servers revert (in one read or two).
        seen: list[set[str]] = [set() for _ in consoles]
        deadline = time.monotonic() + 30
        while True:
            events = await asyncio.gather(*(c.refresh_controls("www") for c in consoles))
            for reverted, event in zip(seen, events, strict=True):
                reverted.update(event.reverted)
            if all(e.deadline() is None for e in events):
                break
            assert time.monotonic() < deadline, "the servers did not revert by themselves"
            await asyncio.sleep(0.5)
        assert seen == [set(WWW)] * 3
        assert all(state_version(lab, s) == 0 for s in WWW)
        for console in consoles:  # a read after: nothing left to announce
            await console.refresh_controls("www")
    finally:
        for console in consoles:
            await console.aclose()
    posts = hooks.posts("/team")
    assert [p["kind"] for p in posts] == ["change", "revert"], [p["text"] for p in posts]
    change, revert = posts  # once, though three consoles saw it
    assert change["kind"] == "change" and revert["kind"] == "revert"
    assert revert["text"].startswith(
        "www: web1, web2 reverted the unconfirmed change of alice (blocked 203.0.113.99) by "
        "themselves: nobody confirmed it in time (version 1 → 0) — site now HTTP 200"
    ), revert["text"]
    assert (revert["operator"], revert["changed_by"], revert["service"]) == (
        "opsconsole-timer",
        "alice",
        "www",
    )


def test_a_revert_nobody_watched_is_posted_by_the_next_command_that_reads_the_controls(
    lab: Lab, hooks: Hooks
) -> None:
    alice, bob = notifying(lab, "alice", hooks.url("/team")), notifying(lab, "bob")
    block = alice.run("block", "www", "203.0.113.7", "--confirm-within", "3s", "--yes")
    assert block.returncode == 0, block.stderr
    deadline = time.monotonic() + 30  # no console runs: the servers revert unseen
    while any(state_version(lab, s) for s in WWW) or any(
        (lab.control_dir(s) / ".www.confirm").exists() for s in WWW
    ):
        assert time.monotonic() < deadline, "the servers did not revert by themselves"
        time.sleep(0.3)
    time.sleep(0.5)  # the timers leave the revert to announce just after it
    assert [p["kind"] for p in hooks.posts("/team")] == ["change"]
    quiet = bob.run("controls", "www")  # bob has no webhooks: he leaves it to those who do
    assert quiet.returncode == 0, quiet.stderr
    assert [p["kind"] for p in hooks.posts("/team")] == ["change"]
    for _ in range(2):  # the first read announces it; the second finds nothing left
        read = alice.run("controls", "www", "--json")
        assert read.returncode == 0, read.stderr
    _, revert = hooks.posts("/team")
    assert revert["kind"] == "revert" and revert["changed_by"] == "alice"
    assert revert["text"].startswith(
        "www: web1, web2 reverted the unconfirmed change of alice (blocked 203.0.113.7) by "
        "themselves: nobody confirmed it in time (version 1 → 0)"
    ), revert["text"]


async def test_blocks_a_console_lifts_when_they_fall_due_are_posted_once(
    lab: Lab, hooks: Hooks
) -> None:
    alice = notifying(lab, "alice", hooks.url("/ok"))
    result = await asyncio.to_thread(alice.run, "block", "www", "203.0.113.5", "--ttl", "2s", "-y")
    assert result.returncode == 0, result.stderr
    console = Session(load_config(str(alice.config)), audit_trail_path=alice.home / "c.jsonl")
    try:
        deadline = time.monotonic() + 30
        while (lifted := await console.expire_due("www")) is None:  # as a console's loop does
            assert time.monotonic() < deadline, "the block did not fall due"
            await asyncio.sleep(0.5)
        assert lifted.ok
        assert await console.expire_due("www") is None  # nothing more falls due
    finally:
        assert await console.aclose() == []
    block, expiry = hooks.posts("/ok")
    assert block["text"].startswith("www: blocked 203.0.113.5 — by alice")
    assert expiry["kind"] == "expiry" and expiry["action"] == "expire blocks"
    assert expiry["text"].startswith(
        "www: blocks fell due and were lifted: unblocked 203.0.113.5 — by alice — applied on "
        "web1, web2 — site now HTTP 200"
    ), expiry["text"]


async def test_a_recovery_stage_change_is_posted_once_by_whichever_console_sees_it_first(
    lab: Lab, hooks: Hooks
) -> None:
    alice = notifying(lab, "alice", hooks.url("/team"))
    bob = notifying(lab, "bob", hooks.url("/team"))
    consoles = [
        LiveSession(load_config(str(op.config)), audit_trail_path=op.home / f"c{i}.jsonl")
        for i, op in enumerate((alice, alice, bob))
    ]  # two consoles of alice on one machine and one of bob (another), watching as consoles do

    async def stages(want: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            found = [c.known_stage("www") for c in consoles]
            if all(s is not None and s.stage == want for s in found):
                return
            assert time.monotonic() < deadline, f"www never became {want}: {found}"
            await asyncio.sleep(0.2)

    try:
        for console in consoles:
            await console.start(suggest=False)
        await stages("open")  # its probe answers 200, no controls
        assert hooks.posts("/team") == []  # a stage first seen is not a change
        result = await asyncio.to_thread(alice.run, "maintenance", "www", "on", "--yes")
        assert result.returncode == 0, result.stderr
        for console in consoles:  # the console reads the controls after its own changes
            await console.refresh_controls("www")
        await stages("closed")
        await asyncio.sleep(1.5)  # another round of the three consoles: still one post
    finally:
        for console in consoles:
            await console.stop()
    change, stage = hooks.posts("/team")
    assert change["kind"] == "change" and change["text"].startswith("www: maintenance on")
    assert stage["kind"] == "stage" and stage["service"] == "www"
    assert stage["diff"]["stage"] == {"before": "open", "after": "closed"}
    text = stage["text"]
    assert text.startswith("www: recovery stage open → closed — closed since "), text
