"""The recovery board against a real fleet: `check` and `controls` say where each site stands.

A lab of its own (real sshd + nginx on loopback, no background traffic) per test; the operator
runs the CLI as a subprocess and sends real requests whose answers the log then shows.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_cli_controls_lab import Operator, alice, lab, status

from opsconsole.controls.state import parse_utc
from opsconsole.lab import Lab

pytestmark = pytest.mark.lab
__all__ = ["alice", "lab"]  # the fixtures, imported for this module's tests


def stage_of(op: Operator, service: str = "www") -> dict[str, Any]:
    data: dict[str, Any] = op.controls(service)
    return data


def test_a_site_goes_from_open_to_protected_to_staff_only_and_back(
    lab: Lab, alice: Operator
) -> None:
    first = stage_of(alice)
    assert first["stage"] == "open" and first["awaiting_confirmation"] is None
    alice.ok("block", "www", "198.51.100.7", "--reason", "flood", "--yes")
    for server in ("web1", "web2"):
        for _ in range(6):
            assert status(lab, server, "198.51.100.7") == 403
        for i in range(2):
            assert status(lab, server, f"203.0.113.{i + 1}") == 200
    protected = stage_of(alice)
    state = protected["servers"]["web1"]
    assert protected["stage"] == "protected" and protected["stage_reason"] == "1 block"
    assert protected["stage_since"] == state["blocks"][0]["added_at"]
    # 12 of the 16 requests of the last minute (the probe's own included) were refused.
    assert 0.6 <= protected["refused_share"] <= 0.75
    alice.ok("maintenance", "www", "on", "--allow", "10.0.0.0/8", "--yes")
    staff = stage_of(alice)
    assert staff["stage"] == "staff only" and "10.0.0.0/8" in staff["stage_reason"]
    assert parse_utc(staff["stage_since"]) >= parse_utc(protected["stage_since"])
    alice.ok("maintenance", "www", "off", "--yes")  # commit-confirmed by default
    back = stage_of(alice)
    assert back["stage"] == "protected" and back["awaiting_confirmation"] is not None
    text = alice.ok("controls", "www")
    assert "stage: protected since" in text and "awaits confirmation" in text
    alice.ok("confirm", "www", "--yes")
    alice.ok("unblock", "www", "198.51.100.7", "--yes")
    assert stage_of(alice)["stage"] == "open"


def test_check_shows_each_site_s_stage_and_a_site_that_does_not_answer_is_down(
    lab: Lab, alice: Operator
) -> None:
    alice.ok("maintenance", "shop", "on", "--yes")
    text = alice.config.read_text()
    www_url = lab.url("www")
    assert www_url in text
    # www's URL now points at a port nothing listens on: the site does not answer.
    alice.config.write_text(text.replace(www_url, "http://127.0.0.1:9/"))
    result = alice.run("check", "--json")
    assert result.returncode == 1, result.stderr  # www is down
    services = json.loads(result.stdout)["services"]
    assert services["www"]["stage"] == "down" and services["www"]["stage_reason"]
    assert services["shop"]["stage"] == "closed"
    assert {services[n]["stage"] for n in services if n not in ("www", "shop")} == {"open"}
    table = alice.run("check").stdout
    header = next(line for line in table.splitlines() if line.startswith("SERVICE"))
    assert "STAGE" in header
    www = next(line for line in table.splitlines() if line.startswith("www "))
    assert " down " in www
    # The board remembers since when: a second check keeps the first one's time.
    again = json.loads(alice.run("check", "--json").stdout)["services"]["www"]
    assert again["stage"] == "down" and again["stage_since"] == services["www"]["stage_since"]
