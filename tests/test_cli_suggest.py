"""``opsconsole suggest`` as an operator runs it (DESIGN §7): the command line, end to end.

The service runs on this machine (``host = "local"``: the log is read back with the same
commands as over SSH, without the SSH).  A labelled flood is written to its access log; the
suggestion is checked as text (80 columns, the incident channel's analysis) and as ``--json``,
and its printed command is run as printed (plus ``--yes``) and changes the service's controls.
That nginx then refuses what the suggestion says is ``tests/test_suggest_lab.py``'s part.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole.cli.suggest import command_lines
from opsconsole.detect.rules import Rule
from opsconsole.lab.scenarios import combined_line, generate

ROOT = Path(__file__).resolve().parent.parent


class Site:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "www.log"
        self.log.write_bytes(b"")
        (root / "control" / "web1").mkdir(parents=True)
        self.config = root / "config.toml"
        self.config.write_text(
            '[servers.web1]\nhost = "local"\n'
            f'[services.www]\nservers = ["web1"]\naccess_log = "{self.log}"\n'
            f'control_dir = "{root}/control/{{server}}"\n'
            'nginx_test = "true -t"\nnginx_reload = "true"\n'
        )
        self.env = dict(
            os.environ,
            PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            XDG_STATE_HOME=str(root / "state"),
            COLUMNS="80",
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opsconsole", *args, "--config", str(self.config)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self.env,
            timeout=timeout,
        )  # fmt: skip


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def flood(site: Site, name: str = "low-and-slow", scale: float = 0.1) -> None:
    start = time.time() - 2400
    lines = [combined_line(r) for r in generate(name, seed=21, scale=scale, start=start,
                                                 services=["www"])]  # fmt: skip
    site.log.write_bytes(b"".join(lines))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "30s"], "--since 30s: expected 1m to 1d"),
        (["--since", "0s"], "--since: '0s' is not a positive duration"),
        (["--since", "soon"], "--since: "),
        (["--since", "2d"], "expected 1m to 1d"),
        (["--baseline", "1m"], "--baseline 1m: expected 5m to 7d"),
        (["--baseline", "30"], "--baseline"),
        (["--budget", "50%"], "--budget 50%: expected 0% to 10%"),
        (["--budget=-1%"], "--budget -1%: expected 0% to 10%"),
        (["--budget", "lots"], "--budget 'lots': expected a share such as 0.5% or 0.005"),
    ],
)
def test_out_of_range_options_are_refused_with_a_message(
    site: Site, args: list[str], message: str
) -> None:
    result = site.run("suggest", "www", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_service_with_no_log_yet_gets_no_rule(site: Site) -> None:
    site.log.unlink()
    result = site.run("suggest", "www", "--json")
    out = json.loads(result.stdout)
    assert out["status"] == "not-enough-data"
    assert out["reason"] and out["suggestions"] == []
    assert "Traceback" not in result.stderr


def test_a_log_of_garbage_gets_a_clear_answer(site: Site) -> None:
    site.log.write_bytes(bytes(range(256)) * 100)
    result = site.run("suggest", "www")
    assert result.returncode == 0, result.stderr
    words = " ".join(result.stdout.split())
    assert "not-enough-data: no request could be read from the log" in words
    assert "lines did not parse as the configured log_format" in words
    assert "No rule is recommended." in words


def test_a_flood_gets_rules_whose_printed_command_applies_them(site: Site) -> None:
    flood(site)
    result = site.run("suggest", "www")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "Recommended:" in text
    # Lines wrap at 80 columns, but a word as long as the config's path cannot be broken.
    assert all(len(line) <= 80 for line in text.splitlines() if not line.startswith(
        ("opsconsole ", "  '", "  --", "  ^")) and str(site.config) not in line), text  # fmt: skip
    data = json.loads(site.run("suggest", "www", "--json").stdout)
    assert data["status"] == "ok" and data["window"] == "10m" and data["baseline"] == "30m"
    assert data["window_requests"] > data["baseline_requests"] / 3 > 0
    rec = [s for s in data["suggestions"] if s["recommended"]]
    assert rec
    for s in data["suggestions"]:
        for key in ("attack_share", "collateral", "collateral_clients", "window_share",
                    "explanation", "samples", "command", "rule", "kind", "id"):  # fmt: skip
            assert key in s
        assert f"--config {site.config}" in s["command"]
    # Each command reads back as the rule it stands for (applying it: test_suggest_lab.py).
    for s in rec:
        words = shlex.split(s["command"])
        assert words[:4] == ["opsconsole", "--config", str(site.config), s["kind"]]
        if s["kind"] == "block":
            assert words[5 : 5 + len(s["rule"]["targets"])] == s["rule"]["targets"]
        elif s["kind"] == "filter":
            for cond in s["rule"].get("all", [s["rule"]]):
                flag = "--" + cond["field"].replace("_", "-")
                assert words[words.index(flag) + 1] == cond["pattern"]


def test_a_long_block_list_prints_as_a_here_document_that_runs_as_printed(site: Site) -> None:
    """What the shell makes of the printed lines: the command, its words and its stdin (the
    apply itself, with --from-file -, is the lab tests' part)."""
    targets = tuple(f"198.51.{i}.0/24" for i in range(40))
    rule = Rule("block", targets=targets)
    command = rule.command("www", "suggested 03:12 UTC: stops 40 % of the excess",
                           str(site.config))  # fmt: skip
    lines = command_lines(command, targets)
    assert lines[-1] == "EOF" and lines[0].startswith("opsconsole ")
    assert all(len(line) <= 80 for line in lines if str(site.config) not in line)
    bindir = site.root / "bin"
    bindir.mkdir()
    record = site.root / "argv.json"
    (bindir / "opsconsole").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"json.dump([sys.argv[1:], sys.stdin.read()], open({str(record)!r}, 'w'))\n"
    )
    (bindir / "opsconsole").chmod(0o755)
    env = dict(site.env, PATH=f"{bindir}{os.pathsep}{site.env['PATH']}")
    done = subprocess.run(["bash", "-c", "\n".join(lines)], env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    argv, stdin = json.loads(record.read_text())
    assert argv[:6] == ["--config", str(site.config), "block", "www", "--from-file", "-"]
    assert argv[6:] == ["--reason", "suggested 03:12 UTC: stops 40 % of the excess"]
    assert stdin.split() == list(targets)


def test_a_flood_older_than_the_baseline_is_compared_with_the_traffic_before_it(
    site: Site,
) -> None:
    # Fifty minutes of flood after half an hour of normal traffic: the default 30 minutes of
    # baseline are flood too.  suggest says so, looks two hours back, and cuts where it began.
    start = time.time() - 4800
    lines = [combined_line(r) for r in generate("low-and-slow", seed=22, scale=0.05,
             start=start, baseline=1800, window=3000, services=["www"])]  # fmt: skip
    site.log.write_bytes(b"".join(lines))
    data = json.loads(site.run("suggest", "www", "--json").stdout)
    assert data["status"] == "ok", data.get("reason")
    assert data["baseline"] == "2h" and data["onset"] is not None
    assert any("looked flooded too" in n for n in data["notes"])
    assert [s for s in data["suggestions"] if s["recommended"]]
    # An explicit --baseline is taken as given: flooded, it says so and how to look further.
    explicit = json.loads(site.run("suggest", "www", "--baseline", "30m", "--json").stdout)
    assert explicit["status"] == "no-anomaly" and explicit["baseline_flooded"] is True
    assert "--baseline 2h" in explicit["reason"]
