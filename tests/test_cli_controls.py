"""The control commands refuse what they must before any server is contacted (DESIGN §5, §7).

The config's service runs on this machine (``host = "local"``, its control directory in
tmp_path) and on an SSH server that does not exist.  Bad input, a read-only console and a missing
``--yes`` must each exit 2 with a message saying what was wrong, without a connection attempt and
without a byte written: neither in the control directory nor in the local audit trail.

Each case runs the real command line twice over: ``python -m opsconsole`` as a script would, and
in-process through :func:`opsconsole.cli.main` with opening connections made impossible (so "no
connection was attempted" is proven, not inferred) — the in-process half keeps the matrix of bad
input fast.  The pure parts of ``setup`` (reading ``nginx -T``) and ``audit`` (merging trails)
are checked here too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.cli import main
from opsconsole.controls.setup import dump_command, inclusions, split_dump
from opsconsole.controls.timeline import merge_events
from opsconsole.transport import ConnectionPool

ROOT = Path(__file__).resolve().parent.parent


class Console:
    """A config, an isolated local trail, and the CLI run as a subprocess."""

    def __init__(self, root: Path, extra: str = "") -> None:
        with socket.socket() as s:  # a loopback port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.root = root
        self.capsys: pytest.CaptureFixture[str]
        self.control = root / "control" / "web8"
        self.control.mkdir(parents=True)
        (self.control / "www.http.conf").write_text("")
        self.state_home = root / "state"
        self.config = root / "config.toml"
        self.config.write_text(
            extra
            + '[servers.web8]\nhost = "local"\n'
            + f'[servers.web9]\nhost = "127.0.0.1"\nport = {port}\nknown_hosts = "{root}/kh"\n'
            + '[services.www]\nservers = ["web8", "web9"]\n'
            + f'access_log = "{root}/www.log"\ncontrol_dir = "{root}/control/{{server}}"\n'
            + 'nginx_test = "true -t"\nnginx_reload = "true"\n'
            + '[services.edge]\nservers = ["web9"]\n'
            + f'access_log = "{root}/edge.log"\ncontrol_dir = "{root}/control/{{server}}"\n'
        )

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ,
            PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            XDG_STATE_HOME=str(self.state_home),
        )
        return subprocess.run(
            [sys.executable, "-m", "opsconsole", "--config", str(self.config), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    def written(self) -> dict[str, bytes]:
        """Every file under tmp_path except the config: the control dir and the local trail."""
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and p != self.config
        }

    def main(self, *args: str) -> tuple[int, str, str]:
        """The same command in this process: (exit status, stdout, stderr)."""
        try:
            status = main(["--config", str(self.config), *args])
        except SystemExit as e:  # argparse: --help (0) and usage errors (2)
            status = int(e.code or 0)
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err


@pytest.fixture
def console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Console:
    c = Console(tmp_path)
    c.capsys = capsys
    monkeypatch.setenv("XDG_STATE_HOME", str(c.state_home))

    async def no_connections(*args: object, **kwargs: object) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(ConnectionPool, "get", no_connections)
    return c


BAD_INPUT = [
    # (arguments, what the message must say)
    (["block", "www", "999.1.1.1"], "not an IP address or CIDR network"),
    (["block", "www", "10.0.0.0/33"], "not an IP address or CIDR network"),
    (["block", "www", "::g"], "not an IP address or CIDR network"),
    (["block", "www", "1.2.3.4; }"], "not an IP address or CIDR network"),
    (["block", "www", 'x"; include /etc/passwd; #'], "not an IP address or CIDR network"),
    (["block", "www", "1.2.3.4\n5.6.7.8"], "not an IP address or CIDR network"),
    (["block", "www", "$(reboot)"], "not an IP address or CIDR network"),
    (["block", "www", "`reboot`"], "not an IP address or CIDR network"),
    (["block", "www", "203.0.113.9/24"], "did you mean 203.0.113.0/24"),
    (["block", "www", "0.0.0.0/0"], "would block every IPv4 client"),
    (["block", "www", "::/0"], "would block every IPv6 client"),
    (["block", "www", "10.0.0.0/7"], "33,554,432 IPv4 addresses"),
    (["block", "www", "2000::/15"], "need --everyone"),
    (["block", "www", "192.0.2.1", "--ttl", "1h", "--permanent"], "not allowed with"),
    (["block", "www"], "at least one IP address"),
    (["block", "www", "192.0.2.1", "--ttl", "forever"], "--ttl: 'forever' is not a duration"),
    (["block", "www", "192.0.2.1", "--ttl", "99999999d"], "--ttl: '99999999d' is too long"),
    (["block", "www", "192.0.2.1", "--reason", "a\nb"], "control character"),
    (["block", "www", "192.0.2.1", "--confirm-within", "soon"], "--confirm-within"),
    (["unblock", "www", "1.2.3.4; }"], "not an IP address or CIDR network"),
    (["maintenance", "www", "on", "--allow", "10.0.0.0/33"], "not an IP address or CIDR"),
    (["maintenance", "www", "on", "--message", "x" * 501], "at most 500 are allowed"),
    (["maintenance", "www", "on", "--message", "down\nnow"], "control character"),
    (["filter", "www", "--path", 'x"; include /etc/passwd; #'], "contains a double quote"),
    (
        ["filter", "www", "--path", "x", "--user-agent", "y", "--method", "GET", "--referer", "z"],
        "one to three conditions",
    ),
    (["filter", "www"], "give one to three of --path"),
    (["filter", "www", "--path", "^/x", "--referer", "a'b"], "contains a single quote"),
    (["filter", "www", "--path", "$(reboot)"], "'$' is only allowed as the end anchor"),
    (["filter", "www", "--user-agent", "`reboot`"], "contains a backtick"),
    (["filter", "www", "--path", "^/a\n}"], "control or non-ASCII character"),
    (["filter", "www", "--path", "(a+)+$"], "nests a repetition"),
    (["filter", "www", "--path", "(a|aa)+"], "repeats an alternation"),
    (["filter", "www", "--path", "(unclosed"], "does not compile"),
    (["filter", "www", "--method", "GET; }"], "is not an HTTP method"),
    (["filter", "www", "--method", "$(reboot)"], "is not an HTTP method"),
    (["unfilter", "www", "f1; }"], "is not a filter id"),
    (["limit", "www", "10"], "is not a rate: expected e.g. 10r/s or 600r/m"),
    (["limit", "www", "10r/h"], "is not a rate"),
    (["limit", "www", "10r/s; }"], "is not a rate"),
    (["limit", "www", "0r/s"], "out of range"),
    (["limit", "www", "5r/s", "--burst", "-5"], "burst '-5' is not a whole number"),
    (["limit", "www", "5r/s", "--burst", "ten"], "is not a whole number"),
    (["block", "nosuch", "192.0.2.1"], "services.nosuch: no such service"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=lambda v: repr(v)[:40])
def test_bad_input_is_refused_with_exit_2_before_any_connection_and_writes_nothing(
    console: Console, args: list[str], message: str
) -> None:
    before = console.written()
    status, out, err = console.main(*args, "--yes")
    assert status == 2, err
    assert message in err
    assert out == ""
    assert console.written() == before
    assert not console.state_home.exists()  # not even a local audit event


@pytest.mark.parametrize(
    ("since", "message"),
    [("99999999999999d", "is too long: at most 3650d"), ("5x", "is not a duration"),
     ("9" * 400, "is too long")],
)  # fmt: skip
def test_stats_refuses_a_look_back_it_cannot_express(
    console: Console, since: str, message: str
) -> None:
    status, out, err = console.main("stats", "www", "--since", since, "--json")
    assert status == 2
    assert message in err and "Traceback" not in err
    assert out == ""


def test_a_block_list_file_that_is_binary_missing_or_bad_is_refused(
    console: Console, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xe9\x00\xff" + bytes(range(256)))
    listing = tmp_path / "list.txt"
    listing.write_text("192.0.2.1  # scanner\n\n198.51.100.0/24\n1.2.3.4; }\n")
    before = console.written()
    for path, message in [
        (garbage, "not a text file (byte 0xe9 at offset 0 is not UTF-8)"),
        (tmp_path / "missing.txt", "No such file or directory"),
        (tmp_path, "Is a directory"),
        (listing, "'1.2.3.4;' is not an IP address or CIDR network"),
    ]:
        status, out, err = console.main("block", "www", "--from-file", str(path), "--yes")
        assert status == 2, err
        assert message in err
        assert out == ""
        assert "Traceback" not in err
        assert console.written() == before


def test_bad_input_through_the_real_entry_point(console: Console) -> None:
    before = console.written()
    messages = {tuple(args): message for args, message in BAD_INPUT}
    for args in (
        ["block", "www", "1.2.3.4; }"],
        ["block", "www", 'x"; include /etc/passwd; #'],
        ["block", "www", "$(reboot)"],
        ["block", "www", "`reboot`"],
        ["filter", "www", "--path", 'x"; include /etc/passwd; #'],
        ["limit", "www", "10"],
        ["limit", "www", "5r/s", "--burst", "-5"],
        ["maintenance", "www", "on", "--message", "down\nnow"],
    ):
        message = messages[tuple(args)]
        result = console.run(*args, "--yes")
        assert (result.returncode, result.stdout) == (2, ""), (args, result.stderr)
        assert message in result.stderr
        assert "connect" not in result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert console.written() == before
    assert not console.state_home.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["filter", "www", "--path", "x", "--action", "500"],
        ["maintenance", "www", "maybe"],
        ["limit", "www", "5r/s", "--key", "asn"],
    ],
)
def test_bad_usage_exits_2_with_argparse_s_message(console: Console, args: list[str]) -> None:
    status, _out, err = console.main(*args, "--yes")
    assert status == 2
    assert "error:" in err
    assert not console.state_home.exists()


def test_a_read_only_console_refuses_every_action(console: Console) -> None:
    text = console.config.read_text()
    console.config.write_text("[console]\nread_only = true\n" + text)
    before = console.written()
    for args in (
        ["block", "www", "192.0.2.1"],
        ["unblock", "www", "192.0.2.1"],
        ["filter", "www", "--path", "^/x"],
        ["unfilter", "www", "f1"],
        ["limit", "www", "off"],
        ["maintenance", "www", "on"],
        ["confirm", "www"],
        ["rollback", "www"],
    ):
        status, _out, err = console.main(*args, "--yes")
        assert status == 2, (args, err)
        assert "console.read_only = true" in err and "refused" in err
    result = console.run("block", "www", "192.0.2.1", "--yes")
    assert result.returncode == 2 and "console.read_only = true" in result.stderr
    assert console.written() == before


def test_without_a_terminal_and_without_yes_nothing_is_done_and_nothing_hangs(
    console: Console,
) -> None:
    for args in (["block", "www", "192.0.2.1"], ["maintenance", "www", "off"], ["rollback", "www"]):
        result = console.run(*args, timeout=20)  # stdin is /dev/null, not a terminal
        assert result.returncode == 2
        assert "pass --yes" in result.stderr
        assert "connect" not in result.stderr
    assert not console.state_home.exists()


def test_an_unreachable_server_fails_the_change_with_exit_1_and_names_it(
    console: Console,
) -> None:
    result = console.run("block", "edge", "192.0.2.1", "--yes", "--json")
    assert result.returncode == 1
    web9 = json.loads(result.stdout)["servers"]["web9"]
    assert (web9["status"], web9["ok"]) == ("failed", False)
    assert "web9" in result.stderr and "failed on 1 of 1 servers" in result.stderr
    events = [json.loads(x) for x in (console.state_home / "opsconsole" / "audit.jsonl").open()]
    assert [(e["server"], e["result"]) for e in events] == [("web9", "failed")]

    controls = console.run("controls", "edge", "--json")
    assert controls.returncode == 1
    data = json.loads(controls.stdout)
    assert data["consistent"] is False and data["servers"]["web9"]["error"]


HELP = {
    "setup": ["create", "include", "nginx -t"],
    "controls": ["consistent", "--json"],
    "block": ["TARGET", "--reason", "--ttl", "--from-file", "commit-confirmed"],
    "unblock": ["TARGET"],
    "filter": ["--path", "--user-agent", "--method", "--action", "444", "(?i)"],
    "unfilter": ["FILTER_ID"],
    "limit": ["RATE", "--burst", "--key", "429", "r/s"],
    "maintenance": ["on", "off", "--allow", "--message", "Retry-After"],
    "confirm": ["commit-confirmed"],
    "rollback": ["previous"],
    "audit": ["--service", "--since", "--json", "time order"],
}
ACTING = {"block", "unblock", "filter", "unfilter", "limit", "maintenance", "confirm", "rollback"}


@pytest.mark.parametrize("command", sorted(HELP))
def test_every_command_explains_itself(console: Console, command: str) -> None:
    status, out, _err = console.main(command, "--help")
    assert status == 0
    text = " ".join(out.split())
    for word in HELP[command]:
        assert word in text, (command, word)
    if command in ACTING:
        for option in ("--dry-run", "--yes", "--json", "Exit status: 0 done, 1 failed"):
            assert option in text, (command, option)
    if command in ACTING - {"confirm", "rollback"}:
        assert "--confirm-within" in text


# --- setup: what nginx -T says about the includes ------------------------------------------

DUMP = """\
# configuration file /etc/nginx/nginx.conf:
user www-data;
events { worker_connections 768; }
http {
    include mime.types;
    include /etc/nginx/opsconsole/*.http.conf;
    map $uri $x { default 0; "~^/a{2}" 1; }
    server {
        listen 80;
        server_name shop.example.org "www.shop.example.org";
        include opsconsole/shop.server.conf;
        location / { include /etc/nginx/opsconsole/www.server.conf; }
    }
}

# configuration file /etc/nginx/mime.types:
types { text/html html; }

# configuration file /etc/nginx/opsconsole/shop.http.conf:
geo $remote_addr $opsc_shop_blocked { default 0; }

# configuration file /etc/nginx/opsconsole/www.http.conf:

# configuration file /etc/nginx/opsconsole/shop.server.conf:

# configuration file /etc/nginx/opsconsole/www.server.conf:

"""


def test_setup_reads_the_block_context_of_each_include_from_nginx_s_dump() -> None:
    files = split_dump(DUMP)
    assert list(files)[:2] == ["/etc/nginx/nginx.conf", "/etc/nginx/mime.types"]
    c = "/etc/nginx/opsconsole"
    found = inclusions(
        files,
        {f"{c}/shop.http.conf", f"{c}/shop.server.conf", f"{c}/www.server.conf", f"{c}/x.conf"},
    )
    assert [i.context for i in found[f"{c}/shop.http.conf"]] == [("http",)]  # by glob
    shop = found[f"{c}/shop.server.conf"]  # by a path relative to nginx.conf's directory
    assert [(i.context, i.server_names) for i in shop] == [
        (("http", "server"), ("shop.example.org", "www.shop.example.org"))
    ]
    assert [i.context for i in found[f"{c}/www.server.conf"]] == [("http", "server", "location")]
    assert found[f"{c}/x.conf"] == []


def test_setup_asks_nginx_only_through_a_plain_nginx_test_command() -> None:
    assert dump_command("nginx -t") == ["nginx", "-T"]
    assert dump_command("/usr/sbin/nginx -p '/srv/my nginx' -c nginx.conf -t -q") == [
        "/usr/sbin/nginx",
        "-p",
        "/srv/my nginx",
        "-c",
        "nginx.conf",
        "-T",
    ]
    for unsafe in ("nginx -t && reboot", "nginx -t; true", "nginx -c $HOME/x -t", "check-nginx"):
        assert dump_command(unsafe) is None


# --- audit: server trails and the local trail, merged ----------------------------------------


def _ev(time: str, server: str, action: str, **kw: object) -> dict[str, object]:
    return {"time": time, "operator": "alice", "service": "www", "server": server,
            "action": action, **kw}  # fmt: skip


def test_audit_merges_the_same_event_once_and_keeps_what_only_one_side_knows() -> None:
    local = [
        _ev("2026-01-01T10:00:05Z", "web1", "block 192.0.2.1", result="failed", reason="nginx!"),
        _ev("2026-01-01T10:00:09Z", "web1", "block 192.0.2.2", result="failed", reason="stale"),
    ]
    remote = [
        _ev("2026-01-01T10:00:07Z", "web1", "rollback: timer", operator="opsconsole-timer"),
        _ev("2026-01-01T10:00:05Z", "web1", "block 192.0.2.1", result="test-failed"),
        _ev("2026-01-01T10:00:01Z", "web2", "limit 5r/s", operator="bob", result="ok"),
    ]
    merged = merge_events(local, remote)
    assert [(e["time"][-3:-1], e["source"]) for e in merged] == [
        ("01", "server"),
        ("05", "both"),
        ("07", "server"),
        ("09", "local"),
    ]
    both = merged[1]
    assert (both["result"], both["reason"]) == ("test-failed", "nginx!")
    assert all(e["before_version"] is None for e in merged)  # every key present


def test_audit_local_shows_only_this_configs_services_on_its_servers(console: Console) -> None:
    trail = console.state_home / "opsconsole" / "audit.jsonl"
    trail.parent.mkdir(parents=True)
    base = {"operator": "alice", "action": "maintenance on", "result": "ok"}
    events = [
        dict(base, time="2026-11-24T10:00:00Z", service="www", server="web8"),
        # another fleet this operator also looks after, with a "www" of its own:
        dict(base, time="2026-11-24T10:00:01Z", service="www", server="prod3"),
        dict(base, time="2026-11-24T10:00:02Z", service="blog", server="web8"),
        dict(base, time="2026-11-24T10:00:03Z", service="edge", server="web9"),
    ]
    trail.write_text("".join(json.dumps(e) + "\n" for e in events))
    status, out, err = console.main("audit", "--local", "--json")
    assert status == 0, err
    shown = [(e["service"], e["server"]) for e in json.loads(out)["events"]]
    assert shown == [("www", "web8"), ("edge", "web9")]
