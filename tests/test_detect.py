"""What separates the attack (DESIGN §10): the analysis behind ``suggest``, on labelled traffic.

The scenarios of :mod:`opsconsole.lab.scenarios` carry ground truth on every request.  The
recommended rules are replayed over the window's requests with the controls' own matching
(:mod:`opsconsole.controls.matching`, the decision the lab tests check against a real nginx) —
not with the analysis's replay — so recall and collateral here are what nginx would do.  Small
scales keep the suite fast; ``bench/suggest_bench.py`` measures the full-size floods.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from opsconsole.controls import validate
from opsconsole.controls.matching import Matcher, Request
from opsconsole.controls.ratelimit import RateLimiter, spread
from opsconsole.controls.render import render
from opsconsole.controls.state import ControlState
from opsconsole.detect import RequestLog, analyze
from opsconsole.detect.analysis import Analysis, flood_onset
from opsconsole.detect.rules import as_state
from opsconsole.lab.scenarios import LabeledRequest, combined_line, generate

START = 1_780_000_000.0


@functools.cache
def scenario(
    name: str, seed: int, scale: float
) -> tuple[str, tuple[LabeledRequest, ...], RequestLog]:
    reqs = list(generate(name, seed=seed, scale=scale, start=START))
    attacked = Counter(r.service for r in reqs if r.attack)
    service = attacked.most_common(1)[0][0] if attacked else "www"
    mine = tuple(r for r in reqs if r.service == service)
    log = RequestLog("combined")
    log.add_chunk(b"".join(combined_line(r) for r in mine), "web1")
    return service, mine, log


def run(
    name: str, seed: int = 11, scale: float = 0.15, window: float = 600.0
) -> tuple[Analysis, list[LabeledRequest]]:
    service, reqs, log = scenario(name, seed, scale)
    end = reqs[-1].time + 1
    result = analyze(log, service, window=window, now=end)
    return result, [r for r in reqs if r.time > end - window]


def refused(result: Analysis, window: list[LabeledRequest]) -> list[bool]:
    """Which window requests nginx would refuse under the recommended set."""
    rules = [s.rule for s in result.recommended]
    matcher = Matcher(as_state([r for r in rules if r.kind != "limit"]))
    limited: set[int] = set()
    for rule in (r for r in rules if r.kind == "limit"):
        assert rule.rate is not None
        limiter = RateLimiter(rule.rate, rule.burst, rule.key)
        for i, ms in spread(((i, r.time // 1) for i, r in enumerate(window)), 1.0):
            if not limiter.allow(window[i].client_ip, ms):
                limited.add(i)
    out = []
    for i, r in enumerate(window):
        req = Request.from_parts(
            r.client_ip, r.method.encode(), r.target.encode(), r.user_agent.encode(),
            r.referer.encode(),
        )  # fmt: skip
        hit = matcher.blocked_by(req.client) or matcher.filtered_by(req) or i in limited
        out.append(req.invalid is None and bool(hit))
    return out


def recall_and_collateral(result: Analysis, window: list[LabeledRequest]) -> tuple[float, float]:
    stops = refused(result, window)
    attack = [s for s, r in zip(stops, window, strict=True) if r.attack]
    legit = [s for s, r in zip(stops, window, strict=True) if not r.attack]
    return sum(attack) / max(len(attack), 1), sum(legit) / max(len(legit), 1)


@pytest.mark.parametrize(
    "name", ["low-and-slow", "botnet-ua", "ipv6-rotate", "scanner", "ai-crawler"]
)
def test_an_attack_gets_rules_that_stop_it_and_spare_real_visitors(name: str) -> None:
    result, window = run(name)
    assert result.status == "ok", result.reason
    recall, collateral = recall_and_collateral(result, window)
    assert recall >= 0.9, [s.rule.describe() for s in result.recommended]
    assert collateral <= 0.01
    # The analysis's own figures agree with nginx's matching.
    assert abs(result.recall - recall) < 0.1
    for s in result.suggestions:
        assert 0 <= s.attack_share <= 1 and 0 <= s.collateral <= 1
        assert s.command.startswith("opsconsole ") and s.samples and s.explanation


@pytest.mark.parametrize("seed", [11, 12])
def test_real_visitors_who_show_themselves_are_not_counted_twice_against_a_rule(seed: int) -> None:
    """The AI crawler's page views look like real visitors' direct visits, which the baseline
    also has; the window's real visitors load the pages' assets and are counted as they are, so
    the baseline predicts only the visitors the window cannot tell apart (93 % and 90 % recall
    while both were added)."""
    result, window = run("ai-crawler", seed)
    recall, collateral = recall_and_collateral(result, window)
    assert recall >= 0.95, [s.rule.describe() for s in result.recommended]
    assert collateral <= 0.005


def test_a_flood_of_thousands_of_addresses_becomes_few_rules() -> None:
    result, window = run("low-and-slow")
    attackers = {r.client_ip for r in window if r.attack}
    assert len(attackers) > 1000
    blocks = sum(len(s.rule.targets) for s in result.recommended if s.kind == "block")
    assert blocks < len(attackers) / 10
    assert len(result.recommended) <= 8


def test_an_ipv6_attacker_rotating_in_one_prefix_is_one_network() -> None:
    result, window = run("ipv6-rotate")
    blocks = [t for s in result.recommended if s.kind == "block" for t in s.rule.targets]
    six = [t for t in blocks if ":" in t]
    assert len({r.client_ip for r in window if r.attack and ":" in r.client_ip}) > 100
    assert 1 <= len(six) <= 2, six


@pytest.mark.parametrize("name", ["quiet", "flash-crowd"])
@pytest.mark.parametrize("seed", [11, 12])
def test_no_rule_on_a_quiet_day_or_a_flash_crowd(name: str, seed: int) -> None:
    result, _window = run(name, seed=seed)
    assert result.status == "no-anomaly"
    assert result.reason
    assert result.recommended == []


@pytest.mark.parametrize("own_hosts", [[], ["127.0.0.1"], ["10.1.2.3", "www.example.org"]])
def test_a_flood_half_a_minute_old_gets_its_rule_whatever_the_configured_host(
    own_hosts: list[str],
) -> None:
    # The console analyses a service as soon as its traffic surges; its config's URL (the
    # health check's) is often an internal address, not the name visitors' browsers send as
    # the referer of the site's own pages: the two must not make real visitors look odd.
    service, reqs, _log = scenario("low-and-slow", 11, 0.5)
    began = min(r.time for r in reqs if r.attack)
    end = began + 30
    log = RequestLog("combined")
    log.add_chunk(b"".join(combined_line(r) for r in reqs if r.time < end), "web1")
    result = analyze(log, service, now=end, own_hosts=own_hosts)
    assert result.status == "ok", result.reason
    window = [r for r in reqs if end - 600 < r.time < end]
    recall, collateral = recall_and_collateral(result, window)
    assert recall >= 0.9 and collateral <= 0.01


def test_a_flood_that_began_inside_the_baseline_is_cut_out_of_it() -> None:
    # The flood ran the last 10 minutes; a 6-minute window leaves 4 of them in the baseline.
    result, window = run("low-and-slow", window=360.0)
    assert result.status == "ok", result.reason
    assert any("inside the baseline" in n for n in result.notes)
    recall, collateral = recall_and_collateral(result, window)
    assert recall >= 0.9 and collateral <= 0.01


def test_flood_onset() -> None:
    rng = np.random.default_rng(1)
    start, split, end = 0.0, 1800.0, 2400.0
    normal = rng.uniform(start, end, 600)
    flood = rng.uniform(1500.0, end, 9000)
    onset = flood_onset(np.sort(np.concatenate([normal, flood])), start, split, end)
    assert onset is not None and 1380 <= onset <= 1500
    # A flood that starts with the window leaves the baseline alone, and so does no flood.
    late = rng.uniform(split, end, 9000)
    assert flood_onset(np.sort(np.concatenate([normal, late])), start, split, end) is None
    assert flood_onset(np.sort(normal), start, split, end) is None
    # A flood that began in the minute the window begins in (its first seconds in the baseline).
    split, end = 1830.0, 2430.0
    normal = rng.uniform(start, end, 600)
    flood = rng.uniform(1800.0, end, 9000)
    assert flood_onset(np.sort(np.concatenate([normal, flood])), start, split, end) == 1800.0


def test_a_scan_that_began_a_minute_before_the_window_gets_its_rules() -> None:
    # The scan's first minute fell in the baseline, its busiest address calling itself an
    # internet survey (CensysInspect): neither may shield it.
    result, window = run("scanner", seed=3, scale=1.0, window=360.0)
    assert result.status == "ok", result.reason
    assert any("inside the baseline" in n for n in result.notes)
    recall, collateral = recall_and_collateral(result, window)
    assert recall >= 0.95 and collateral <= 0.005


def test_an_empty_log_a_log_of_garbage_and_a_window_without_baseline() -> None:
    empty = analyze(RequestLog("combined"), "www")
    assert empty.status == "not-enough-data" and "empty" in (empty.reason or "")
    garbage = RequestLog("combined")
    garbage.add_chunk(bytes(range(256)) * 40 + b"\n\x00\xff not a log line\n" * 50)
    result = analyze(garbage, "www")
    assert result.status == "not-enough-data"
    assert "did not parse" in (result.reason or "") and not result.suggestions
    # Ten minutes of flood and nothing before it: nothing to compare with.
    _service, reqs, _log = scenario("low-and-slow", 11, 0.15)
    end = reqs[-1].time + 1
    only_window = RequestLog("combined")
    only_window.add_chunk(b"".join(combined_line(r) for r in reqs if r.time > end - 600))
    result = analyze(only_window, "www", now=end)
    assert result.status == "not-enough-data"
    assert "too little to tell what is normal" in (result.reason or "")
    assert not result.suggestions


def test_an_old_log_is_analysed_up_to_its_last_line_and_says_so() -> None:
    service, reqs, log = scenario("botnet-ua", 11, 0.15)
    result = analyze(log, service, now=reqs[-1].time + 7200)
    assert result.status == "ok"
    assert result.anchored_at is not None
    assert any("newest line" in n for n in result.notes)


def test_hostile_log_strings_reach_rules_only_through_the_validators(tmp_path: Path) -> None:
    """A flood whose every request carries nginx syntax, shell and terminal tricks."""
    _service, reqs, _log = scenario("botnet-ua", 11, 0.15)
    end = reqs[-1].time + 1
    evil_agent = 'x"; return 200; # $(reboot) `id` \x1b[31m {bad}'
    evil_ref = "http://e.example/'; include /etc/passwd;"
    lines = [combined_line(r) for r in reqs if r.time <= end - 600]
    for i, r in enumerate(x for x in reqs if x.time > end - 600 and x.attack):
        lines.append(combined_line(replace(
            r, user_agent=evil_agent, referer=evil_ref, target=f"/a;{{}}$x/{i:x}${{host}}",
        )))  # fmt: skip
    log = RequestLog("combined")
    log.add_chunk(b"".join(lines))
    result = analyze(log, "www", now=end)
    assert result.status == "ok"
    state = ControlState()
    for s in result.suggestions:
        for c in s.rule.conditions:
            assert validate.regex(c.pattern) == c.pattern
        edit = s.rule.edit("suggested")  # the validators of the controls accept it
        state = edit.apply(state, "test", datetime.now(UTC))
        assert "\x1b" not in s.command and "\n" not in s.command
    assert state.filters or state.blocks
    rendered = render(state, "www", str(tmp_path))  # nginx -t on such states: the lab tests
    text = rendered.http_conf + rendered.server_conf
    assert 'x"; return 200;' not in text and "include /etc/passwd" not in text


def test_a_log_read_in_several_spans_counts_each_line_once() -> None:
    """Spans read separately into one log (a saved baseline slice, then the window; or an older
    span after a newer one) keep only their own lines: reads start a little early."""
    _service, reqs, _log = scenario("quiet", 11, 0.15)
    data = b"".join(combined_line(r) for r in reqs)
    mid = reqs[len(reqs) // 2].time
    log = RequestLog("combined")
    log.limits = (mid, float("inf"))
    log.add_chunk(data)  # the whole file, as a read that started early would see it
    log.limits = (float("-inf"), mid)
    log.add_chunk(data)
    assert log.rows == len(reqs)
    assert log.latest() == int(reqs[-1].time)  # whatever order the spans came in


@pytest.mark.parametrize(
    "pattern",
    [r"^/[^/]+\.php$", r"[^a-z]", r"^Mozilla/5\.0 \((Windows|X11)[^()]*\) .*$", r"x$", r"^$",
     r"(?i)^/ADMIN", r"a\sb", r"[^x]{3}", r"^/(.*/)?[a-z0-9]{0,5}([a-z][0-9]|[0-9][a-z])$",
     r"^/(.*/)?[a-z]{0,9}?([a-z][0-9]|_)[a-z0-9_]{0,9}(\.php|\.c)$", r"^/(.*/)?b", r"^/a|x"],
)  # fmt: skip
def test_matching_every_value_in_one_scan_agrees_with_matching_each(pattern: str) -> None:
    """The one-scan fast path (values joined one per line) decides as a search of each value
    would, whatever the values hold — newlines and empty values included."""
    import re

    from opsconsole.detect.analysis import columns
    from opsconsole.detect.rules import Condition as Cond

    agents = [b"", b"x", b"ab", b"a b", b"a\nb", b"Mozilla/5.0 (X11; Linux) Gecko/1 x",
              b"\n", b"xyz\n", b"/admin", b"/ADMINx", b"q" * 300, b"/a/b.php", b"/ab1",
              b"/x/ab1/c", b"/b/c", b"/a\n/ab1", b"/d/e/a_1.php", b"/d/a1.c/x",
              b"/ab1\n"]  # fmt: skip
    lines = b"".join(
        b'192.0.2.1 - - [01/Dec/2026:10:00:%02d +0000] "GET / HTTP/1.1" 200 1 "-" "%s"\n'
        % (i, a.replace(b"\n", b"\\x0A")) for i, a in enumerate(agents)
    )  # fmt: skip
    log = RequestLog("combined")
    log.add_chunk(lines)
    table = log.table(0, 0, 2e9)
    cols = columns(table)
    texts = cols.texts("user_agent")
    assert any(t is not None and b"\n" in t for t in texts)  # as nginx unescapes the header
    fast = cols.value_mask(Cond("user_agent", pattern))
    slow = [v is not None and re.search(pattern.encode(), v) is not None for v in texts]
    assert fast.tolist() == slow, [(t, f, s) for t, f, s in zip(texts, fast, slow, strict=True)]
