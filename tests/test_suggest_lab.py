"""``suggest`` on a real fleet: its recommended set applied through the CLI, then proven by nginx.

For two labelled scenarios, the flood and the 30 minutes of ordinary traffic before it are
written into the access logs of ``www`` on both lab servers (the window ending now), as nginx
writes them.  ``opsconsole suggest www --json`` reads them back over SSH (real sshd), and every
recommended rule is applied by running its printed command (plus ``--yes``): validated, ``nginx
-t``, reloaded.  Then a sample of the window's requests is replayed over HTTP, byte for byte,
each with its client address in ``X-Forwarded-For`` (the lab's realip trusts loopback), and what
nginx refuses (403) must agree with the suggestion's own figures: its recall on the attack and its
collateral on real visitors — and, request by request, with the controls' replay of the rules.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli_controls_lab import WWW, Operator, _stop_timers

from opsconsole.controls.matching import Matcher, Request
from opsconsole.detect.rules import Condition, Rule, as_state
from opsconsole.lab import Lab
from opsconsole.lab.scenarios import LabeledRequest, combined_line, generate

pytestmark = pytest.mark.lab
SAMPLE = 240


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab.start(tmp_path / "lab", traffic=False) as running:
        try:
            yield running
        finally:
            _stop_timers(running)


def write_scenario(lab: Lab, name: str, seed: int) -> list[LabeledRequest]:
    """The scenario's www traffic in both servers' logs (alternating), its window ending now."""
    start = time.time() - 2400 + 5
    reqs = list(generate(name, seed=seed, scale=0.1, start=start, services=["www"]))
    chunks: dict[str, list[bytes]] = {s: [] for s in WWW}
    for i, r in enumerate(reqs):
        chunks[WWW[i % 2]].append(combined_line(r))
    for server, lines in chunks.items():
        with lab.access_log("www", server).open("ab") as f:
            f.write(b"".join(lines))
    end = reqs[-1].time
    return [r for r in reqs if r.time > end - 600]


def rule_of(s: dict[str, Any]) -> Rule:
    r = s["rule"]
    if s["kind"] == "block":
        return Rule("block", targets=tuple(r["targets"]))
    conds = r.get("all", [r])
    return Rule("filter", conditions=tuple(Condition(c["field"], c["pattern"]) for c in conds))


def shell(op: Operator, script: str) -> subprocess.CompletedProcess[str]:
    bindir = op.home / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "opsconsole"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m opsconsole "$@"\n')
    exe.chmod(0o755)
    env = dict(op.env, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", "-c", script], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, env=env, timeout=180)  # fmt: skip


def replay(lab: Lab, reqs: list[LabeledRequest]) -> list[int]:
    """Each request sent as logged (target byte for byte), alternating between the servers."""
    ports = [int(lab.url("www", s).rsplit(":", 1)[1].strip("/")) for s in WWW]
    codes = []
    conns: dict[int, http.client.HTTPConnection] = {}
    for i, r in enumerate(reqs):
        port = ports[i % 2]
        for attempt in (1, 2):
            conn = conns.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conns[port] = conn
            try:
                conn.putrequest(r.method, r.target, skip_accept_encoding=True)
                conn.putheader("X-Forwarded-For", r.client_ip)
                if r.user_agent:
                    conn.putheader("User-Agent", r.user_agent)
                if r.referer:
                    conn.putheader("Referer", r.referer)
                conn.endheaders()
                resp = conn.getresponse()
                resp.read()
                codes.append(resp.status)
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    del conns[port]
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                del conns[port]
                if attempt == 2:
                    codes.append(444)
    for conn in conns.values():
        conn.close()
    return codes


@pytest.mark.parametrize(("name", "seed"), [("low-and-slow", 31), ("botnet-ua", 32)])
def test_nginx_refuses_what_the_suggestion_says(lab: Lab, name: str, seed: int) -> None:
    window = write_scenario(lab, name, seed)
    op = Operator(lab)
    result = op.run("suggest", "www", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "ok", data.get("reason")
    assert all(v["error"] is None for v in data["servers"].values())
    rec = [s for s in data["suggestions"] if s["recommended"] and s["kind"] != "limit"]
    assert rec, data["suggestions"]
    for s in rec:  # each printed command, as printed, plus --yes
        done = shell(op, s["command"] + " --yes")
        assert done.returncode == 0, (s["command"], done.stdout, done.stderr)
    controls = json.loads(op.ok("controls", "www", "--json"))
    assert controls  # read back from both servers
    # A sample of the window, attack and real visitors alike (the 400s nginx would reject as
    # bad requests are not sent: their refusal is not the rules').
    rng = random.Random(seed)
    sendable = [r for r in window if r.status != 400 and r.target.startswith("/")]
    attack = [r for r in sendable if r.attack]
    real = [r for r in sendable if not r.attack]
    sample = rng.sample(attack, min(len(attack), SAMPLE * 2 // 3)) + rng.sample(
        real, min(len(real), SAMPLE // 3)
    )
    codes = replay(lab, sample)
    refused = [c == 403 for c in codes]
    # Request by request, nginx and the controls' replay of the suggested rules agree.
    matcher = Matcher(as_state([rule_of(s) for s in rec]))
    predicted = []
    for r in sample:
        req = Request.from_parts(r.client_ip, r.method.encode(), r.target.encode(),
                                 r.user_agent.encode(), r.referer.encode())  # fmt: skip
        predicted.append(bool(matcher.blocked_by(req.client) or matcher.filtered_by(req)))
    disagree = [(r.target, c) for r, c, p in zip(sample, codes, predicted, strict=True)
                if (c == 403) != p]  # fmt: skip
    assert not disagree, disagree[:5]
    # And with the suggestion's figures: its recall on the attack, its collateral on real ones.
    n_attack = sum(r.attack for r in sample)
    recall = sum(f for f, r in zip(refused, sample, strict=True) if r.attack) / n_attack
    collateral = sum(f for f, r in zip(refused, sample, strict=True) if not r.attack) / max(
        len(sample) - n_attack, 1
    )
    assert recall >= 0.9
    assert abs(recall - data["recall"]) <= 0.08, (recall, data["recall"])
    assert collateral <= 0.02 and data["collateral"] <= 0.005
    # `controls` says what each rule stops now, from the log: the replay's refusals, by rule.
    stops = json.loads(op.ok("controls", "www", "--json"))["stops_now"]
    assert sum(e["requests"] for e in stops["rules"]) == sum(refused)
    assert stops["unattributed"] == 0
    assert {e["rule"] for e in stops["rules"] if e["requests"]} <= {
        "blocks",
        *(f["id"] for f in controls["servers"]["web1"]["filters"]),
    }
    # Asked again, what the applied rules refuse is set aside (the window still holds the flood
    # answered before them), and no applied rule is suggested again.
    again = json.loads(op.ok("suggest", "www", "--json"))
    assert again["already_stopped"] >= 0.9 * sum(s["stopped_requests"] for s in rec[:1])
    assert again["active_rules"]
    applied = [s["rule"] for s in rec]
    assert not [s for s in again["suggestions"] if s["recommended"] and s["rule"] in applied]
