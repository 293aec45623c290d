"""Webhook notifications (issue 10): one post per intent, retried, never blocking, never leaking.

Every delivery here goes to a real HTTP server on loopback (:class:`Hooks`, started and stopped
by the test) that records what it was POSTed: one path takes posts, one answers 500 a few times
first, one refuses (404), one holds the request; an unreachable webhook is a loopback port bound
but not listening (connection refused).  The config's ``[notify]`` section is checked here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsconsole.config import parse_config, shown_url
from opsconsole.controls import audit, edits
from opsconsole.controls.report import ApplyReport, Outcome, ServerResult
from opsconsole.controls.state import ControlState
from opsconsole.errors import ConfigError
from opsconsole.notify import Kind, Notifier, recent_failures, summarize
from opsconsole.notify.failures import state_path

SECRET = "/services/T0SECRET/B0SECRET/xoxsecretpath"
QUERY = "?token=qsecretquery"
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


class Hooks:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it, by path.

    ``/flaky…`` answers 500 to its first ``fail_first`` requests, ``/refuse…`` 404, ``/hold…``
    holds every request until the server stops; any other path answers 200."""

    def __init__(self, fail_first: int = 2) -> None:
        self.fail_first = fail_first
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.release = threading.Event()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                path = self.path
                with hooks.lock:
                    hooks.hits[path] = hit = hooks.hits.get(path, 0) + 1
                if path.startswith("/hold"):
                    hooks.release.wait(30)
                status = 200
                if path.startswith("/flaky") and hit <= hooks.fail_first:
                    status = 500
                elif path.startswith("/refuse"):
                    status = 404
                if status == 200:
                    with hooks.lock:
                        hooks.bodies.setdefault(path, []).append(json.loads(body))
                with contextlib.suppress(OSError):  # a client given up on has gone
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test asserts on what it received

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies.get(path, []))

    def tries(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def serving() -> Iterator[Hooks]:
    """:class:`Hooks` running for the length of a test (the ``hooks`` fixtures)."""
    h = Hooks()
    try:
        yield h
    finally:
        h.close()


def unreachable() -> Iterator[str]:
    """A webhook nobody answers: a loopback port bound (so nobody else takes it), not listening
    (the ``dead_url`` fixtures); its path and query are secrets."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{SECRET}{QUERY}"
    finally:
        sock.close()


hooks = pytest.fixture(serving, name="hooks")
dead_url = pytest.fixture(unreachable, name="dead_url")


def report(*results: ServerResult, action: str = "block 3 networks") -> ApplyReport:
    probe = {"url": "http://www.example.org/", "http_status": 200, "latency_ms": 3.1, "error": None}
    return ApplyReport("www", action, results={r.server: r for r in results}, probe=probe)


def notifier(tmp_path: Path, *urls: str, **kw: Any) -> Notifier:
    kw.setdefault("backoff", 0.05)
    return Notifier(urls, operator="alice", audit_trail=tmp_path / "audit.jsonl", **kw)


def blocked_three(n: Notifier) -> int:
    """Write the local audit events of a block of 3 networks on web1 and web2 (as an apply
    does), returning the trail's mark from before."""
    mark = n.mark()
    before = ControlState()
    after = edits.block(["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"]).apply(
        before, "alice", NOW
    )
    diff = audit.state_diff(before, after)
    events = [
        audit.event(when=NOW, operator="alice", service="www", server=s, action="block", diff=diff)
        for s in ("web1", "web2")
    ]
    audit.append_local(n.audit_trail, events)
    return mark


async def test_one_intent_on_two_servers_is_one_post_with_each_servers_answer(
    tmp_path: Path, hooks: Hooks
) -> None:
    n = notifier(tmp_path, hooks.url("/ok"))
    mark = blocked_three(n)
    n.changed(
        report(
            ServerResult("web1", Outcome.OK, before_version=4, after_version=5),
            ServerResult("web2", Outcome.FAILED, "nginx: [emerg] unexpected '}'", before_version=4),
        ),
        Kind.CHANGE,
        mark=mark,
    )
    assert await n.aclose(5.0) == []
    [body] = hooks.posts("/ok")
    assert body["text"] == (
        "www: blocked 3 networks: 203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24 — by alice — "
        "applied on web1; FAILED (nginx: [emerg] unexpected '}') on web2 — site now HTTP 200 "
        "in 3.1 ms (http://www.example.org/)"
    )
    assert {k: body[k] for k in ("kind", "operator", "service", "server", "action", "result")} == {
        "kind": "change",
        "operator": "alice",
        "service": "www",
        "server": "web1,web2",
        "action": "block 3 networks",
        "result": "partial",
    }
    assert body["before_version"] == 4 and body["after_version"] is None  # the servers differ
    assert body["reason"] == "web2: nginx: [emerg] unexpected '}'"
    assert body["diff"]["blocks"]["added"]["count"] == 3
    assert body["servers"]["web1"]["status"] == "ok" and body["probe"]["http_status"] == 200


async def test_a_no_op_is_not_posted(tmp_path: Path, hooks: Hooks) -> None:
    n = notifier(tmp_path, hooks.url("/ok"))
    n.changed(report(ServerResult("web1", Outcome.UNCHANGED)), Kind.CHANGE)
    n.changed(report(ServerResult("web1", Outcome.NOTHING), action="confirm"), Kind.CONFIRM)
    await n.aclose(5.0)
    assert hooks.tries("/ok") == 0 and not n.sent


async def test_a_webhook_answering_500_twice_gets_the_post_on_the_third_try(
    tmp_path: Path, hooks: Hooks
) -> None:
    n = notifier(tmp_path, hooks.url("/flaky"), hooks.url("/ok"))
    started = time.monotonic()
    n.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE)
    # The change is not held up: the call returns before any webhook was even tried.
    assert time.monotonic() - started < 0.05 and hooks.tries("/flaky") == 0
    assert await n.aclose(5.0) == []
    assert hooks.tries("/flaky") == 3 and len(hooks.posts("/flaky")) == 1
    assert hooks.posts("/flaky") == hooks.posts("/ok")
    assert n.errors() == {} and recent_failures(n.state_file) == []


async def test_a_refusing_webhook_is_not_retried_and_its_error_is_kept(
    tmp_path: Path, hooks: Hooks
) -> None:
    n = notifier(tmp_path, hooks.url("/refuse" + SECRET))
    n.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE)
    [failure] = await n.aclose(5.0)
    assert hooks.tries("/refuse" + SECRET) == 1
    assert failure.error == "HTTP 404 Not Found (not retried)" and failure.attempts == 1
    assert failure.webhook == shown_url(hooks.url("/"))
    assert failure.what == "block 3 networks on www"


async def test_an_unreachable_webhook_never_shows_its_secret(
    tmp_path: Path, hooks: Hooks, dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx's own request log lines too
    working = hooks.url(SECRET + QUERY)
    n = notifier(tmp_path, dead_url, working, attempts=3)
    mark = blocked_three(n)
    n.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE, mark=mark)
    [failure] = await n.aclose(5.0)
    port = dead_url.split(":")[2].split("/")[0]
    assert failure.webhook == f"http://127.0.0.1:{port}/…" and failure.attempts == 3
    assert failure.error == f"connection refused by 127.0.0.1:{port}"
    assert list(n.errors()) == [failure.webhook]
    assert recent_failures(n.state_file) == [failure]
    assert n.state_file.stat().st_mode & 0o777 == 0o600
    assert len(hooks.bodies[SECRET + QUERY]) == 1  # the other webhook was told
    assert f"POST http://127.0.0.1:{hooks.server.server_address[1]}/…" in caplog.text
    for text in (caplog.text, n.state_file.read_text(), n.audit_trail.read_text(), failure.line()):
        assert "SECRET" not in text and "secret" not in text


async def test_a_webhook_that_works_again_is_no_longer_listed_as_failing(
    tmp_path: Path, hooks: Hooks
) -> None:
    n = notifier(tmp_path, hooks.url("/flaky"), attempts=2)  # both tries get the 500s
    n.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE)
    [failure] = await n.aclose(5.0)
    assert failure.error == "HTTP 500 Internal Server Error" and failure.attempts == 2
    assert recent_failures(state_path(tmp_path / "audit.jsonl")) == [failure]
    # The next command's post goes through: `check` no longer lists the webhook.
    later = notifier(tmp_path, hooks.url("/flaky"))
    later.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE)
    assert await later.aclose(5.0) == []
    assert recent_failures(state_path(tmp_path / "audit.jsonl")) == []
    assert len(hooks.posts("/flaky")) == 1


async def test_a_webhook_that_hangs_is_given_up_on_within_the_bound(
    tmp_path: Path, hooks: Hooks
) -> None:
    n = notifier(tmp_path, hooks.url("/hold"), timeout=30.0)
    n.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE)
    started = time.monotonic()
    [failure] = await n.aclose(0.5)
    assert time.monotonic() - started < 2.5
    assert failure.error == "given up at exit after 0.5 s" and failure.attempts == 1
    assert recent_failures(n.state_file) == [failure]


async def test_stage_changes_are_posted_once_with_both_stages(tmp_path: Path, hooks: Hooks) -> None:
    import enum

    class Stage(enum.Enum):
        MITIGATING = "mitigating"
        RECOVERING = "recovering"

    n = notifier(tmp_path, hooks.url("/ok"))
    n.stage_changed("www", Stage.MITIGATING, Stage.RECOVERING, "excess under 5 % for 5 min")
    n.stage_changed("www", Stage.RECOVERING, Stage.RECOVERING, "still")  # not a change
    assert await n.aclose(5.0) == []
    [body] = hooks.posts("/ok")
    assert body["text"] == (
        "www: recovery stage mitigating → recovering — excess under 5 % for 5 min — alice's console"
    )
    assert (body["kind"], body["stage"], body["previous_stage"]) == (
        "stage",
        "recovering",
        "mitigating",
    )
    assert body["service"] == "www" and body["operator"] == "alice"


async def test_a_stage_change_with_a_key_is_posted_once_per_machine(
    tmp_path: Path, hooks: Hooks
) -> None:
    """Two consoles (or a console and `check`) of this machine see www close at 15:00."""
    first, second = notifier(tmp_path, hooks.url("/ok")), notifier(tmp_path, hooks.url("/ok"))
    for n in (first, second):
        n.stage_changed("www", "down", "closed", "maintenance on", key="closed@15:00:00Z")
    first.stage_changed("www", "closed", "open", key="open@15:20:00Z")  # a later change
    assert await first.aclose(5.0) == [] and await second.aclose(5.0) == []
    assert sorted(p["stage"] for p in hooks.posts("/ok")) == ["closed", "open"]


async def test_a_stage_change_another_machine_claimed_first_is_not_posted(
    tmp_path: Path, hooks: Hooks
) -> None:
    """The server-side claim says whether this console is the first of every machine."""
    answers = iter([False, True])
    asked: list[bool] = []

    async def first_of_all() -> bool:
        asked.append(answer := next(answers))
        return answer

    for machine in "ab":
        (tmp_path / machine).mkdir()
    here, there = (notifier(tmp_path / d, hooks.url("/ok")) for d in "ab")
    here.stage_changed("www", "open", "down", key="down@15:0", claim=first_of_all)
    assert await here.aclose(5.0) == []
    there.stage_changed("www", "down", "open", key="open@15:1", claim=first_of_all)
    assert await there.aclose(5.0) == []
    assert asked == [False, True]
    assert [p["stage"] for p in hooks.posts("/ok")] == ["open"]


async def test_nothing_is_posted_without_webhooks(tmp_path: Path) -> None:
    n = notifier(tmp_path)
    n.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE)
    n.stage_changed("www", None, "mitigating")
    assert not n.enabled and await n.aclose(1.0) == [] and not n.sent


def test_a_diff_reads_as_what_an_operator_would_say() -> None:
    empty = ControlState()
    blocked = edits.block(["203.0.113.0/24"]).apply(empty, "alice", NOW)
    assert summarize(audit.state_diff(empty, blocked)) == "blocked 203.0.113.0/24"
    assert summarize(audit.state_diff(blocked, empty)) == "unblocked 203.0.113.0/24"
    many = edits.block([f"198.51.{i}.0/24" for i in range(5)]).apply(empty, "alice", NOW)
    assert summarize(audit.state_diff(empty, many)) == (
        "blocked 5 networks: 198.51.0.0/24, 198.51.1.0/24, 198.51.2.0/24, …"
    )
    one = edits.add_filter("path", r"^/wp-login\.php$").apply(empty, "alice", NOW)
    two = edits.add_filter(
        conditions=[("user_agent", "curl/8.5", "exact"), ("method", "POST", None)], action=444
    ).apply(one, "alice", NOW)
    assert summarize(audit.state_diff(empty, one)) == (
        r"filter f1 added: path ~ ^/wp-login\.php$ → 403"
    )
    assert summarize(audit.state_diff(one, two)) == (
        "filter f2 added: user agent = curl/8.5 and method = POST → 444"
    )
    assert summarize(audit.state_diff(two, one)) == "filter f2 removed"
    on = edits.maintenance(True).apply(empty, "alice", NOW)
    assert summarize(audit.state_diff(empty, on)) == "maintenance on"
    assert summarize(audit.state_diff(on, empty)) == "maintenance off"
    limited = edits.limit("10r/s", burst=5).apply(empty, "alice", NOW)
    assert summarize(audit.state_diff(empty, limited)) == "rate limit 10r/s per ip (burst 5)"
    assert summarize(audit.state_diff(limited, empty)) == "rate limit off"


# --- config ------------------------------------------------------------------------------------

BASE = """
[servers.web1]
host = "web1.example.org"

[services.www]
servers = ["web1"]
access_log = "/var/log/nginx/www.access.log"
"""


def config_with(notify: str) -> Any:
    return parse_config(tomllib.loads(BASE + "\n[notify]\n" + notify), Path("ops.toml"))


def test_webhooks_are_read_from_the_notify_section() -> None:
    urls = ["https://hooks.slack.com" + SECRET, "http://[::1]:8065/hooks/abc"]
    config = config_with(f"webhooks = {json.dumps(urls)}")
    assert config.notify.webhooks == tuple(urls)
    assert parse_config(tomllib.loads(BASE), Path("ops.toml")).notify.webhooks == ()


@pytest.mark.parametrize(
    "notify,key,expected",
    [
        (f'webhooks = ["https://hooks.slack.com{SECRET}", "ftp://files.example.org{SECRET}"]',
         "notify.webhooks[1]", "expected an http:// or https:// URL with a host, got ftp://"),
        (f'webhooks = ["https://{SECRET}"]', "notify.webhooks[0]", "with a host"),
        (f'webhooks = ["hooks.slack.com{SECRET}"]', "notify.webhooks[0]", "got (not a URL)"),
        (f'webhooks = ["https://hooks.slack.com {SECRET}"]', "notify.webhooks[0]", "with a host"),
        ("webhooks = [42]", "notify.webhooks[0]", "got int"),
        (f'webhooks = "https://hooks.slack.com{SECRET}"', "notify.webhooks", "expected a list"),
        (f'webhooks = ["https://a.example{SECRET}", "https://a.example{SECRET}"]',
         "notify.webhooks[1]", "listed twice"),
        (f'webhook = ["https://hooks.slack.com{SECRET}"]', "notify.webhook", "unknown key"),
    ],
)  # fmt: skip
def test_a_bad_webhook_is_a_config_error_naming_its_key_and_never_its_secret(
    notify: str, key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        config_with(notify)
    text = str(refused.value)
    assert f"ops.toml: {key}:" in text and expected in text, text
    assert "SECRET" not in text and "secret" not in text


def test_the_example_config_documents_the_notify_section() -> None:
    example = (Path(__file__).resolve().parents[1] / "config.toml").read_text()
    assert "# [notify]" in example and "# webhooks = [" in example
    uncommented = example.replace("# [notify]", "[notify]").replace("# webhooks", "webhooks")
    config = parse_config(tomllib.loads(uncommented), Path("config.toml"))
    assert config.notify.webhooks and all(u.startswith("https://") for u in config.notify.webhooks)


def test_shown_urls_keep_scheme_host_and_port_only() -> None:
    assert shown_url("https://hooks.slack.com" + SECRET + QUERY) == "https://hooks.slack.com/…"
    assert shown_url("http://user:pw@[::1]:8065/hooks/x") == "http://[::1]:8065/…"


async def test_delivery_runs_in_the_background_of_the_event_loop(
    tmp_path: Path, hooks: Hooks
) -> None:
    """A message is handed over at once; it is delivered while the loop does other work."""
    n = notifier(tmp_path, hooks.url("/ok"))
    n.changed(report(ServerResult("web1", Outcome.OK)), Kind.CHANGE)
    for _ in range(200):
        if hooks.posts("/ok"):
            break
        await asyncio.sleep(0.02)
    assert len(hooks.posts("/ok")) == 1
    await n.aclose(1.0)
