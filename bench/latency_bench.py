"""End-to-end latency: a request nginx logs on a server, until the console has counted it.

    python bench/latency_bench.py [--samples 100] [--traffic [--flood-rps 100]] [--append-rps N]

Starts a rehearsal lab (real sshd + nginx on loopback), follows web1's `shop` access log with
the console's own pipeline (`Fleet` + `ServicePipeline`: SSH, `tail`, follower, parser, counters)
and, as the reference in the same run, with a bare asyncssh channel running `tail -c 0 -f` on
the same file.  Then it sends --samples requests for a unique path, one at a time, and
measures from the moment each request is sent until

  1. the raw channel delivered the line (the reference: sshd, tail and SSH alone), and
  2. the console's pipeline counted the chunk holding it (what the next screen refresh shows).

It prints the median and 95th percentile of both and their difference.  With --traffic, the
lab's generator runs (browsing, then a flood of random 404s) so the pipeline is busy counting
while it is measured.  The screen adds its own refresh tick (1 s) on top of what is measured.
With --append-rps N, a second process also appends generated flood lines straight to the log
at N lines/s (the lab's generator is limited to a few hundred requests a second).  The lab and
the writer are stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from opsconsole.config import load_config  # noqa: E402
from opsconsole.fleet import Fleet  # noqa: E402
from opsconsole.lab import Lab  # noqa: E402

MARK = b"/latency-probe-"


def _append(log: Path, sample: Path, rate: float) -> None:
    """Append the lines of ``sample`` to ``log`` at ``rate`` lines/s, in 10 ms batches, until
    stopped: a flood written straight into the log, beyond what the lab's generator sends."""
    lines = sample.read_bytes().splitlines(keepends=True)
    i, t = 0, time.monotonic()
    with open(log, "ab", buffering=0) as out:
        while True:
            t += 0.01
            n = max(1, round(rate * 0.01))
            batch = lines[i : i + n]
            i = (i + n) % len(lines)
            out.write(b"".join(batch))
            time.sleep(max(0.0, t - time.monotonic()))


def _arrivals(data: bytes, seen: dict[int, float], now: float) -> None:
    """Record the first arrival of every probe path in ``data``."""
    start = 0
    while (i := data.find(MARK, start)) >= 0:
        j = i + len(MARK)
        k = j
        while k < len(data) and data[k : k + 1].isdigit():
            k += 1
        if k > j:
            seen.setdefault(int(data[j:k]), now)
        start = k


async def measure(lab: Lab, samples: int) -> tuple[list[float], list[float], list[float]]:
    import asyncssh

    log = lab.access_log("shop", "web1")
    raw_seen: dict[int, float] = {}
    ops_seen: dict[int, float] = {}

    fleet = Fleet(load_config(str(lab.config_path)), max_attempts=3)
    pipeline = fleet.pipeline("shop")
    add_chunk = pipeline.window.add_chunk

    def counted(chunk: bytes, server: str = "") -> None:
        add_chunk(chunk, server)
        _arrivals(chunk, ops_seen, time.perf_counter())

    pipeline.window.add_chunk = counted  # type: ignore[method-assign]
    pipeline.start()

    async with asyncssh.connect(**lab.connect_options("web1")) as conn:  # noqa: SIM117
        async with conn.create_process(f"tail -c 0 -f -- {log}", encoding=None) as proc:

            async def read_raw() -> None:
                while data := await proc.stdout.read(1 << 16):
                    _arrivals(data, raw_seen, time.perf_counter())

            reader = asyncio.create_task(read_raw())
            deadline = time.monotonic() + 30
            while not all(f.state == "following" for f in pipeline.feeds.values()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the pipeline did not start: {pipeline.feeds}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # let tail settle on both channels

            raw: list[float] = []
            ops: list[float] = []
            answered: list[float] = []
            url = lab.url("shop", "web1")
            counted_before, began = pipeline.window.requests, time.monotonic()
            async with httpx.AsyncClient(timeout=10) as client:
                for i in range(samples):
                    sent = time.perf_counter()
                    await client.get(
                        httpx.URL(url).join(f"/latency-probe-{i}"),
                        headers={"X-Forwarded-For": "198.51.100.77"},
                    )
                    answered.append(time.perf_counter() - sent)
                    end = time.monotonic() + 10
                    while (i not in raw_seen or i not in ops_seen) and time.monotonic() < end:
                        await asyncio.sleep(0.0005)
                    if i in raw_seen and i in ops_seen:
                        raw.append(raw_seen[i] - sent)
                        ops.append(ops_seen[i] - sent)
                    await asyncio.sleep(random.uniform(0.05, 0.15))
            reader.cancel()
            rate = (pipeline.window.requests - counted_before) / (time.monotonic() - began)
            print(f"shop's log grew by {rate:.0f} lines/s while measuring (probes included)")
    await pipeline.stop()
    await fleet.close()
    return raw, ops, answered


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--traffic", action="store_true", help="run the lab's browsing + flood")
    p.add_argument("--flood-rps", type=float, default=100.0, help="flood rate with --traffic")
    p.add_argument(
        "--append-rps",
        type=float,
        default=0.0,
        help="also append generated lines straight to the log at this rate (e.g. 20000)",
    )
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="opsc-latency-"))
    lab = Lab.start(tmp / "lab", traffic=False)
    try:
        if a.traffic:
            lab.start_traffic(flood_after=0.0, flood_rps=a.flood_rps)
            time.sleep(5)  # into the flood
        writer = None
        if a.append_rps > 0:
            sample = tmp / "sample.log"
            genlog = HERE / "genlog.py"
            subprocess.run(
                [sys.executable, str(genlog), str(sample), "--lines", "100000"], check=True
            )
            log = lab.access_log("shop", "web1")
            writer = multiprocessing.Process(target=_append, args=(log, sample, a.append_rps))
            writer.start()
        try:
            raw, ops, answered = asyncio.run(measure(lab, a.samples))
        finally:
            if writer is not None:
                writer.terminate()  # by its PID
                writer.join()
        if not raw:
            raise SystemExit("no sample arrived on both channels")
        ms = 1000.0
        traffic = f"browsing + flood of {a.flood_rps:g} req/s" if a.traffic else "none"
        print(f"samples: {len(raw)} of {a.samples}; traffic: {traffic}")
        print("| path | median ms | p95 ms |")
        print("|---|---:|---:|")
        print(f"| HTTP answer (for scale) | {statistics.median(answered) * ms:.1f} | "
              f"{_p95(answered) * ms:.1f} |")  # fmt: skip
        print(f"| raw SSH channel (`tail -f`) | {statistics.median(raw) * ms:.1f} | "
              f"{_p95(raw) * ms:.1f} |")  # fmt: skip
        print(f"| opsconsole pipeline (counted) | {statistics.median(ops) * ms:.1f} | "
              f"{_p95(ops) * ms:.1f} |")  # fmt: skip
        extra = [o - r for o, r in zip(ops, raw, strict=True)]
        print(f"opsconsole - raw, median: {statistics.median(extra) * ms:.1f} ms")
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
