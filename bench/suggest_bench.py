"""How well ``suggest`` separates labelled attacks from real visitors, and how fast.

    python bench/suggest_bench.py [--scale 1] [--seeds 1,2,3] [--scenarios all]

For each labelled scenario of :mod:`opsconsole.lab.scenarios` (the attacked site's log: a 30 min
baseline and a 10 min window), the analysis behind ``opsconsole suggest`` runs on the log lines,
and its recommended rules are replayed over the window's requests with nginx's matching
(:mod:`opsconsole.controls.matching`, the same decision the lab tests check against nginx):

- recall: the share of the window's attack requests the recommended set refuses;
- collateral: the share of the window's real visitors' requests it refuses;

side by side, in the same run, with the best per-IP threshold of the fail2ban kind ("ban an
address after N 4xx answers in the window"): the best N that spares every real visitor, and the
best N within 0.5 % collateral.  ``analysis s`` is the analysis alone (parsing included, the SSH
read excluded), on one core of a shared machine; ``GoAccess s`` is GoAccess's JSON report of the
same log lines (baseline and window) in the same run, the reference the ratio is taken against
(``ratio`` = analysis / GoAccess: below 1, the analysis is the faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opsconsole.controls.matching import Matcher, Request
from opsconsole.controls.state import ControlState
from opsconsole.detect import RequestLog, analyze
from opsconsole.detect.rules import as_state
from opsconsole.lab.scenarios import SCENARIOS, LabeledRequest, combined_line, generate

WINDOW = 600.0


def state_of(suggestions: list) -> ControlState:  # type: ignore[type-arg]
    return as_state([s.rule for s in suggestions if s.kind != "limit"])


def limited(suggestions: list, window: list[LabeledRequest]) -> set[int]:  # type: ignore[type-arg]
    """Indexes of window requests a recommended rate limit refuses (nginx's limit_req)."""
    from opsconsole.controls.ratelimit import RateLimiter, spread

    out: set[int] = set()
    for s in suggestions:
        if s.kind != "limit":
            continue
        limiter = RateLimiter(s.rule.rate, s.rule.burst, s.rule.key)
        for i, ms in spread(((i, r.time // 1) for i, r in enumerate(window)), 1.0):
            if not limiter.allow(window[i].client_ip, ms):
                out.add(i)
    return out


def measure(suggestions: list, window: list[LabeledRequest]) -> tuple[float, float]:  # type: ignore[type-arg]
    matcher = Matcher(state_of(suggestions))
    by_limit = limited(suggestions, window)
    hit = Counter()
    total = Counter()
    for i, r in enumerate(window):
        req = Request.from_parts(
            r.client_ip, r.method.encode(), r.target.encode(), r.user_agent.encode(),
            r.referer.encode(),
        )  # fmt: skip
        refused = req.invalid is None and bool(
            matcher.blocked_by(req.client) or matcher.filtered_by(req) or i in by_limit
        )
        total[r.attack] += 1
        hit[r.attack] += refused
    return hit[True] / max(total[True], 1), hit[False] / max(total[False], 1)


def fail2ban(
    window: list[LabeledRequest],
) -> tuple[tuple[int, float, float], tuple[int, float, float]]:
    """(N, recall, collateral) of "ban after N 4xx": sparing everyone, and within 0.5 %."""
    attack = sum(r.attack for r in window)
    legit = len(window) - attack
    best_zero, best_half = (0, 0.0, 0.0), (0, 0.0, 0.0)
    for n in range(1, 101):
        seen: dict[str, int] = defaultdict(int)
        stopped = Counter()
        for r in window:
            if seen[r.client_ip] >= n:
                stopped[r.attack] += 1
                continue
            if 400 <= r.status < 500:
                seen[r.client_ip] += 1
        rec = stopped[True] / max(attack, 1)
        col = stopped[False] / max(legit, 1)
        if col == 0 and rec > best_zero[1]:
            best_zero = (n, rec, col)
        if col <= 0.005 and rec > best_half[1]:
            best_half = (n, rec, col)
    return best_zero, best_half


def goaccess_seconds(data: bytes) -> float:
    """CPU seconds GoAccess takes for its JSON report of ``data`` (a combined log)."""
    goaccess = shutil.which("goaccess")
    if goaccess is None:
        raise SystemExit("suggest_bench: goaccess (the reference) is not installed")
    with tempfile.TemporaryDirectory(prefix="opsc-suggest-bench-") as tmp:
        log = Path(tmp) / "access.log"
        log.write_bytes(data)
        report = str(Path(tmp) / "r.json")
        cmd = [goaccess, str(log), "--log-format=COMBINED", "--no-global-config",
               "--no-progress", "--max-items=10000000", "-o", report]  # fmt: skip
        before = os.times()
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seeds", default="1")
    p.add_argument("--scenarios", default="all")
    p.add_argument(
        "--since",
        type=float,
        default=WINDOW,
        help="seconds of window to analyse (less than the scenario's 600: the flood began "
        "inside the baseline)",
    )
    a = p.parse_args()
    names = list(SCENARIOS) if a.scenarios == "all" else a.scenarios.split(",")
    print(
        "| scenario | seed | window lines | attack | status | rules | recall | collateral "
        "| analysis s | GoAccess s | ratio | fail2ban best N (0 %): recall "
        "| best N (≤0.5 %): recall, collateral |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        for seed in (int(x) for x in a.seeds.split(",")):
            reqs = list(generate(name, seed=seed, scale=a.scale))
            attacked = Counter(r.service for r in reqs if r.attack)
            service = attacked.most_common(1)[0][0] if attacked else "www"
            reqs = [r for r in reqs if r.service == service]
            end = reqs[-1].time + 1
            data = b"".join(combined_line(r) for r in reqs)
            began = time.process_time()
            log = RequestLog("combined")
            pos = 0
            while pos < len(data):  # in 4 MiB batches of whole lines, as a history read does
                cut = min(pos + (4 << 20), len(data))
                if cut < len(data):
                    cut = data.rfind(b"\n", pos, cut) + 1
                log.add_chunk(data[pos:cut], "web1")
                pos = cut
            result = analyze(log, service, window=a.since, now=end)
            spent = time.process_time() - began
            ga = goaccess_seconds(data)
            window = [r for r in reqs if r.time > end - a.since]
            rec = [s for s in result.suggestions if s.recommended]
            recall, collateral = measure(rec, window)
            zero, half = fail2ban(window)
            n_attack = sum(r.attack for r in window)
            print(
                f"| {name} | {seed} | {len(window)} | {n_attack / len(window) * 100:.0f} % "
                f"| {result.status} | {len(rec)} | {recall * 100:.1f} % | {collateral * 100:.2f} % "
                f"| {spent:.2f} | {ga:.2f} | {spent / ga:.2f} | N={zero[0]}: {zero[1] * 100:.1f} % "
                f"| N={half[0]}: {half[1] * 100:.1f} %, {half[2] * 100:.2f} % |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
