"""Peak memory of the statistics with 1,000,000 distinct client IPs.

    python bench/memory_bench.py [--ips 1000000] [--mode window|history]

    python bench/memory_bench.py --ips 5000000 --mode window   # the issue's 5 million

Feeds --ips lines, each from a different IPv4/IPv6 client with a random 404 path, into
LiveWindow (`window` mode: all within one 60 s sliding window, the live console under a flood)
or HistoryCounts (`history` mode, as `stats --since all`), and prints the peak RSS of this
process next to its RSS before the feed (the interpreter and modules), and the estimated vs true
unique IPs.
"""

from __future__ import annotations

import argparse
import itertools
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opsconsole.stats.history import HistoryCounts
from opsconsole.stats.window import LiveWindow

T0 = 1_795_532_400


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ips", type=int, default=1_000_000)
    p.add_argument("--mode", choices=("window", "history"), default="window")
    a = p.parse_args()
    rng = random.Random(1)
    base = rss_mb()
    clock_now = float(T0 + 59)  # the 60 seconds fed are all in the window
    stats: HistoryCounts | LiveWindow = (
        LiveWindow(window=60.0, clock=lambda: clock_now)
        if a.mode == "window"
        else HistoryCounts(clock=lambda: clock_now)
    )
    per_second = a.ips // 60 + 1
    # Distinct addresses without a list of them in memory: i -> i * odd + c (mod 2**32) is a
    # bijection, so the first --ips values are distinct.
    ips = ((i * 2_654_435_761 + 12_345) & 0xFFFFFFFF for i in range(a.ips))
    t0 = time.perf_counter()
    for sec in range(60):
        ts = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(T0 + sec))
        chunk = []
        for n in itertools.islice(ips, per_second):
            ip = (
                f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
                if n % 10
                else f"2001:db8:{n >> 16:x}:{n & 0xFFFF:x}::1"
            )
            chunk.append(
                f'{ip} - - [{ts}] "GET /{rng.getrandbits(48):x} HTTP/1.1" 404 153 "-" "bot"\n'
            )
        stats.add_chunk("".join(chunk).encode(), "bench")
    snap = stats.snapshot("bench")
    took = time.perf_counter() - t0
    print(f"mode {a.mode}: {snap.requests} requests from {a.ips} distinct IPs in {took:.1f}s")
    print(f"unique_ips reported: {snap.unique_ips} (true {a.ips}), estimated: {snap.estimated}")
    print(f"RSS before feeding: {base:.0f} MB; peak RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
