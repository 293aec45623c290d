"""Parse + aggregate throughput of opsconsole's stats engine vs GoAccess and `wc -l`, same file.

    python bench/parse_bench.py [--lines 1000000] [--distinct-ips 300000] [--file PATH]

Generates the log with bench/genlog.py unless --file is given, then measures in one run:
`wc -l` (the I/O floor), opsconsole's history mode (what `opsconsole stats --since all` does:
parse every line, count status, per-second buckets, top IPs / subnets / paths / agents, unique
IPs) pinned to one core, and GoAccess 1.7 producing its JSON report on the same file.  Prints a
Markdown table row block for BENCHMARKS.md.  Also reports peak RSS of the opsconsole run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def run_opsconsole(path: str) -> tuple[float, int, int]:
    from opsconsole.fleet import HISTORY_BATCH
    from opsconsole.stats.history import HistoryCounts

    stats = HistoryCounts()
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        rest = b""
        while block := f.read(HISTORY_BATCH):  # the batch size `stats --since` counts with
            block = rest + block
            cut = block.rfind(b"\n") + 1
            stats.add_chunk(block[:cut], "bench")
            rest = block[cut:]
        if rest:
            stats.add_chunk(rest, "bench")
    snap = stats.snapshot("bench")
    return time.perf_counter() - t0, snap.requests, snap.unique_ips


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--distinct-ips", type=int, default=300_000)
    p.add_argument("--file")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="opsc-bench-"))
    try:
        path = a.file or str(tmp / "access.log")
        if not a.file:
            subprocess.run(
                [
                    sys.executable,
                    str(HERE / "genlog.py"),
                    path,
                    "--lines",
                    str(a.lines),
                    "--distinct-ips",
                    str(a.distinct_ips),
                ],
                check=True,
            )
        lines = int(
            subprocess.run(
                ["wc", "-l", path], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
        wc = timed(["wc", "-l", path])
        ops, parsed, unique = run_opsconsole(path)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        goaccess = shutil.which("goaccess")
        ga = None
        if goaccess:
            ga = timed(
                [
                    goaccess,
                    path,
                    "--log-format=COMBINED",
                    "--no-global-config",
                    "--no-progress",
                    "--max-items=10000000",
                    "-o",
                    str(tmp / "r.json"),
                ]
            )
        print(f"lines: {lines}  parsed: {parsed}  unique IPs: {unique}")
        print("| tool | seconds | lines/s | vs GoAccess |")
        print("|---|---:|---:|---:|")
        print(f"| wc -l | {wc:.3f} | {lines / wc:,.0f} | |")
        ratio = f"{ga / ops:.1f}x" if ga else "n/a"
        print(f"| opsconsole (1 core) | {ops:.2f} | {lines / ops:,.0f} | {ratio} |")
        if ga:
            print(f"| GoAccess | {ga:.2f} | {lines / ga:,.0f} | 1.0x |")
        print(f"peak RSS of the benchmark process: {peak_mb:.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
