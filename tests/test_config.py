"""The config file: every mistake is one clear message naming file, key path and expectation."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from opsconsole.config import load_config, parse_config
from opsconsole.errors import ConfigError

GOOD = """
[console]
window = "2m"
operator = "alice"

[servers.web1]
host = "web1.example.org"
port = 2222
user = "ops"
client_keys = ["~/.ssh/id_ed25519"]

[servers.local]
host = "local"

[services.shop]
servers = ["web1", "local"]
access_log = "/var/log/nginx/{server}/shop.access.log"
url = "https://shop.example.org/"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(str(write(tmp_path, GOOD)))
    assert config.console.window == 120 and config.console.operator == "alice"
    shop = config.service("shop")
    assert shop.servers == ("web1", "local") and shop.log_format == "combined"
    assert shop.access_log_on("web1") == "/var/log/nginx/web1/shop.access.log"
    assert shop.control_dir == "/etc/nginx/opsconsole" and shop.nginx_test == "nginx -t"
    assert config.servers["local"].is_local and config.servers["web1"].port == 2222
    assert config.console.export is None  # nothing served unless asked for
    served = load_config(
        str(write(tmp_path, GOOD.replace("[console]", '[console]\nexport = "[::1]:9464"')))
    )
    assert served.console.export == ("::1", 9464)


def test_the_shipped_example_config_is_valid_but_never_used_as_a_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = Path(__file__).resolve().parents[1] / "config.toml"
    text = example.read_text()
    config = parse_config(tomllib.loads(text), example)  # every key of it is valid
    assert config.services and config.example
    # Found in the current directory (a checkout), it does not shadow the operator's config:
    # it is refused with what to do instead, before anything connects.
    monkeypatch.chdir(example.parent)
    with pytest.raises(ConfigError, match="documented example") as refused:
        load_config(None)
    assert "OPSCONSOLE_CONFIG" in str(refused.value) and "example = true" in str(refused.value)
    # $OPSCONSOLE_CONFIG (what `lab up` prints) comes first in the search order.
    mine = write(tmp_path, text.replace("example = true\n", ""))
    monkeypatch.setenv("OPSCONSOLE_CONFIG", str(mine))
    assert load_config(None).path == mine


@pytest.mark.parametrize(
    "change,key,expected",
    [
        (("[console]", '[console]\nwindoww = "60s"'), "console.windoww", "unknown key"),
        (('window = "2m"', 'window = "2 minutes"'), "console.window", "not a duration"),
        (("port = 2222", 'port = "2222"'), "servers.web1.port", "expected a port"),
        (("port = 2222", "port = 70000"), "servers.web1.port", "expected a port"),
        (
            ('servers = ["web1", "local"]', 'servers = ["web1", "web9"]'),
            "services.shop.servers",
            "unknown server 'web9'",
        ),
        (
            ('access_log = "/var/log/nginx/{server}/shop.access.log"', 'access_log = "shop.log"'),
            "services.shop.access_log",
            "absolute path",
        ),
        (
            ('url = "https://shop.example.org/"', 'url = "shop.example.org"'),
            "services.shop.url",
            "http:// or https://",
        ),
        (
            ("[services.shop]", '[services.shop]\nlog_format = "$status"'),
            "services.shop.log_format",
            "remote_addr",
        ),
        (('operator = "alice"', "operator = 5"), "console.operator", "expected a string"),
        (('host = "local"', "host = true"), "servers.local.host", "expected"),
        (("[servers.local]", '[servers."bad name"]'), "servers.bad name", "server name"),
        (
            ("[console]", "[health]\ntls_warn_days = -1\n[console]"),
            "health.tls_warn_days",
            "0 to 3650",
        ),
        (
            ("[console]", "[health]\nlatency_warn_ms = 0\n[console]"),
            "health.latency_warn_ms",
            "positive",
        ),
        (
            ("[console]", '[health]\nsyn_recv_warn = "lots"\n[console]'),
            "health.syn_recv_warn",
            "whole",
        ),
        (("[console]", '[console]\nexport = "9464"'), "console.export", "HOST:PORT"),
        (("[console]", "[console]\nexport = 9464"), "console.export", "HOST:PORT"),
        (("[console]", '[console]\nexport = "::1:9464"'), "console.export", "brackets"),
        (("[console]", '[console]\nexport = "prom.example.org:9464"'), "console.export", "IP"),
        (("[console]", '[console]\nexport = "127.0.0.1:99999"'), "console.export", "1 to 65535"),
        (("[console]", '[console]\nexport = "127.0.0.1:9x"'), "console.export", "port"),
    ],
)
def test_each_mistake_names_file_key_and_expectation(
    tmp_path: Path, change: tuple[str, str], key: str, expected: str
) -> None:
    assert change[0] in GOOD
    path = write(tmp_path, GOOD.replace(change[0], change[1], 1))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    message = str(err.value)
    assert str(path) in message and key in message and expected in message


def test_not_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(write(tmp_path, "[console\n")))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize("text", ['[console]\nwindow = "soon"\n', "[console\n"])
def test_the_cli_exits_2_with_one_line_and_no_traceback(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--config", str(path), "stats", "www"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr and proc.stderr.count("\n") == 1


def test_an_unknown_service_is_refused_before_connecting(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--config", str(path), "stats", "nope", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "services.nope" in proc.stderr and "shop" in proc.stderr
    assert proc.stdout == ""
