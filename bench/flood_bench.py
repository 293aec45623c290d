"""A fleet at attack rates: N servers each logging L lines a second, followed live by one console,
raw and aggregating (DESIGN §4).

    python bench/flood_bench.py [--servers 10] [--rate 2000] [--seconds 20] [--modes raw,aggregate]

Starts a rehearsal lab of N servers (a real sshd each, on loopback; the site `www` runs on all).
A generator process appends a flood to every server's `www` log: L lines a second each, in ten
batches a second, from 200,000 rotating client addresses, random paths, a few user agents.  Then,
in the same run:

  1. reference: OpenSSH's own client follows every log (`ssh SERVER tail -c 0 -f LOG`, N clients
     at once, output to a reader that only counts lines): their CPU, and for every batch the time
     from its write to its last line read (line latency through a bare SSH channel);
  2. for each mode, the console's live pipeline (`ServicePipeline("www")`, in this process)
     follows every server: this process's CPU (cores), its peak RSS, and for every batch the time
     from its write to when it is counted (line -> count latency), p50 / p95 / max.  In aggregate
     mode the agents' CPU (they run on "the servers", here the same machine) is given apart.
     Each mode runs in a process of its own.

Every phase starts on empty logs and runs --seconds after a 3 s warm-up; the lab is stopped by PID
at the end.  On a 2-core machine the servers' side (sshd, the agents, the generator) shares the
cores with the console: figures for 50 servers say what one machine can host, not a fleet.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from opsconsole.config import load_config  # noqa: E402
from opsconsole.fleet import Fleet, ServicePipeline  # noqa: E402
from opsconsole.lab import Lab  # noqa: E402

TICKS = 10
"""Batches a second per server."""

GENERATOR = r"""
import os, random, sys, time
logs, rate, out = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3]
rng = random.Random(1)
agents = [b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0", b"python-requests/2.31",
          b"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Firefox/121.0", b"curl/8.4.0"]
pool = [b"%d.%d.%d.%d" % (rng.randrange(1, 224), rng.randrange(256), rng.randrange(256),
                           rng.randrange(1, 255)) for _ in range(200000)]
per_tick = rate // 10
def block(k):  # one second of one server: @@ stands for the time
    lines = [b'%s - - [@@] "GET /r/%x HTTP/1.1" 404 153 "-" "%s"\n' % (
        pool[(k * rate + i) % len(pool)], rng.getrandbits(40), agents[i % 4]) for i in range(rate)]
    return [b"".join(lines[t * per_tick:(t + 1) * per_tick]) for t in range(10)]
templates = [[block(k + j * 7) for k in range(6)] for j in range(len(logs))]
fds = [os.open(p, os.O_WRONLY | os.O_APPEND) for p in logs]
ticks = open(out, "w")
start = time.time()
n = 0
while True:
    due = start + n / 10
    time.sleep(max(0.0, due - time.time()))
    sec = int(time.time())
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec)).encode()
    for j, fd in enumerate(fds):
        os.write(fd, templates[j][(n // 10) % 6][n % 10].replace(b"@@", stamp))
    n += 1
    ticks.write("%.4f\n" % time.time())
    ticks.flush()
"""


@dataclasses.dataclass
class Phase:
    name: str
    cores: float
    rss_mb: float | None
    latency: list[float]
    counted_per_s: float
    other_cores: float | None = None


def start_generator(logs: list[Path], rate: int, ticks: Path) -> subprocess.Popen[bytes]:
    for log in logs:
        log.write_bytes(b"")
    argv = [sys.executable, "-c", GENERATOR, ",".join(map(str, logs)), str(rate), str(ticks)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read_ticks(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()]


def latencies(ticks: list[float], counted: list[tuple[float, int]], per_tick: int,
              t_from: float, t_to: float) -> list[float]:  # fmt: skip
    """For every batch written between ``t_from`` and ``t_to``: when the count reached it."""
    times = [t for t, _ in counted]
    counts = [n for _, n in counted]
    out = []
    for k, t in enumerate(ticks):
        if not t_from <= t <= t_to:
            continue
        i = bisect.bisect_left(counts, (k + 1) * per_tick)
        out.append((times[i] if i < len(times) else float("inf")) - t)
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def reference(lab: Lab, names: list[str], rate: int, seconds: float, tmp: Path) -> Phase:
    """N OpenSSH clients following the logs; their CPU and web1's line latency."""
    logs = [lab.access_log("www", s) for s in names]
    for log in logs:
        log.write_bytes(b"")
    config = str(lab.dir / "ssh" / "config")
    procs = [
        subprocess.Popen(
            ["ssh", "-F", config, "-o", "BatchMode=yes", s, "tail", "-c", "0", "-f", str(log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        )
        for s, log in zip(names, logs, strict=True)
    ]  # fmt: skip
    counted: list[list[tuple[float, int]]] = [[] for _ in procs]

    def reader(i: int, stream) -> None:  # type: ignore[no-untyped-def]
        n = 0
        while data := stream.read1(1 << 20):
            n += data.count(b"\n")
            counted[i].append((time.time(), n))

    threads = [threading.Thread(target=reader, args=(i, p.stdout), daemon=True)
               for i, p in enumerate(procs)]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(2.0)  # every tail running
    ticks_file = tmp / "ticks-ref"
    gen = start_generator(logs, rate, ticks_file)
    try:
        time.sleep(3.0)
        cpu0 = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)
        t0 = time.time()
        time.sleep(seconds)
        cpu1 = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in procs)
        t1 = time.time()
    finally:
        stop(gen)
    time.sleep(1.0)
    for p in procs:
        p.terminate()
        p.wait(5)
    ticks = read_ticks(ticks_file)
    lat = [x for c in counted for x in latencies(ticks, c, rate // TICKS, t0, t1)]
    total = sum(c[-1][1] for c in counted if c)
    rate_read = total / (ticks[-1] - ticks[0]) if len(ticks) > 1 else 0.0
    name = "reference: `ssh SERVER tail -f LOG` (OpenSSH), N clients"
    return Phase(name, (cpu1 - cpu0) / (t1 - t0), None, lat, rate_read)


def agent_cpu(lab: Lab, names: list[str]) -> float:
    total = 0.0
    for s in names:
        for proc in psutil.Process(lab.servers[s].sshd_pid).children(recursive=True):
            try:
                argv = proc.cmdline()
                if len(argv) >= 2 and argv[1] == "-":
                    total += sum(proc.cpu_times()[:2])
            except psutil.NoSuchProcess:
                continue
    return total


async def console(lab: Lab, names: list[str], rate: int, seconds: float, mode: str,
                  tmp: Path) -> Phase:  # fmt: skip
    logs = [lab.access_log("www", s) for s in names]
    for log in logs:
        log.write_bytes(b"")
    fleet = Fleet(load_config(str(lab.config_path)))
    svc = dataclasses.replace(fleet.config.service("www"), mode=mode)
    pipeline = ServicePipeline(fleet, svc, 60.0)
    counted: dict[str, list[tuple[float, int]]] = {s: [] for s in names}
    window = pipeline.window
    add_chunk, add_summary = window.add_chunk, window.add_summary

    def note(server: str) -> None:
        counted[server].append((time.time(), window.servers[server].requests))

    def chunk(data: bytes, server: str = "") -> None:
        add_chunk(data, server)
        note(server)

    def summary(data, server: str = "") -> None:  # type: ignore[no-untyped-def]
        add_summary(data, server)
        note(server)

    window.add_chunk = chunk  # type: ignore[method-assign]
    window.add_summary = summary  # type: ignore[method-assign]
    me = psutil.Process()
    pipeline.start()
    try:
        deadline = time.monotonic() + 120
        while not all(f.connected for f in pipeline.feeds.values()):
            if time.monotonic() > deadline:
                raise SystemExit(f"not all followed: {pipeline.feeds}")
            await asyncio.sleep(0.1)
        want = "aggregate" if mode == "aggregate" else "raw"
        if any(f.mode != want for f in pipeline.feeds.values()) and mode == "aggregate":
            await asyncio.sleep(2.0)
        ticks_file = tmp / f"ticks-{mode}"
        gen = start_generator(logs, rate, ticks_file)
        try:
            await asyncio.sleep(3.0)
            cpu0, agents0, t0 = sum(me.cpu_times()[:2]), agent_cpu(lab, names), time.time()
            peak = 0
            while time.time() < t0 + seconds:
                await asyncio.sleep(0.5)
                peak = max(peak, me.memory_info().rss)
            cpu1, agents1, t1 = sum(me.cpu_times()[:2]), agent_cpu(lab, names), time.time()
        finally:
            stop(gen)
        await asyncio.sleep(3.0)  # let the last batches be counted
        modes = {f.mode for f in pipeline.feeds.values()}
    finally:
        await pipeline.stop()
        await fleet.close()
    ticks = read_ticks(ticks_file)
    lat = [x for c in counted.values() for x in latencies(ticks, c, rate // TICKS, t0, t1)]
    total = sum(c[-1][1] for c in counted.values() if c)
    rate_counted = total / (ticks[-1] - ticks[0]) if len(ticks) > 1 else 0.0
    return Phase(
        f"console, mode {mode} ({'/'.join(sorted(modes))})", (cpu1 - cpu0) / (t1 - t0),
        peak / 1e6, lat, rate_counted,
        (agents1 - agents0) / (t1 - t0) if mode == "aggregate" else None,
    )  # fmt: skip


def in_child(a: argparse.Namespace, names: list[str], mode: str, tmp: Path) -> Phase:
    """One console phase in a process of its own (its memory is its own)."""
    argv = [sys.executable, __file__, "--phase", mode, "--servers", str(a.servers),
            "--rate", str(a.rate), "--seconds", str(a.seconds), "--tmp", str(tmp)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"phase {mode} failed: {proc.stderr[-2000:]}")
    return Phase(**json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=int, default=10)
    p.add_argument("--rate", type=int, default=2000, help="lines a second per server")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase")
    p.add_argument("--modes", default="raw,aggregate")
    p.add_argument("--phase", help=argparse.SUPPRESS)  # internal: one console phase
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    a = p.parse_args()
    names = [f"web{i}" for i in range(1, a.servers + 1)]
    if a.phase:
        tmp = Path(a.tmp)
        phase = asyncio.run(console(Lab.load(tmp / "lab"), names, a.rate, a.seconds, a.phase, tmp))
        print(json.dumps(dataclasses.asdict(phase)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="opsc-floodbench-"))
    lab = Lab.start(tmp / "lab", traffic=False, servers=tuple(names))
    try:
        phases = [reference(lab, names, a.rate, a.seconds, tmp)]
        for mode in a.modes.split(","):
            phases.append(in_child(a, names, mode, tmp))
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    ref = phases[0]
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    print(f"{a.servers} servers × {a.rate} lines/s = {a.servers * a.rate} lines/s, "
          f"{a.seconds:g} s measured per phase, {cores} cores, load {load:.1f}")  # fmt: skip
    print()
    print("| what | counted lines/s | CPU (cores) | / reference | agents' CPU | peak RSS | "
          "latency p50 / p95 / max (s) | p95 / reference |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    ref_p95 = pct(ref.latency, 0.95)
    for ph in phases:
        worst = max(ph.latency, default=float("nan"))
        lat = f"{pct(ph.latency, 0.5):.2f} / {pct(ph.latency, 0.95):.2f} / {worst:.2f}"
        agents = f"{ph.other_cores:.2f}" if ph.other_cores is not None else "–"
        rss = f"{ph.rss_mb:.0f} MB" if ph.rss_mb is not None else "–"
        ratio = ph.cores / ref.cores
        print(f"| {ph.name} | {ph.counted_per_s:,.0f} | {ph.cores:.2f} | {ratio:.1f}× | "
              f"{agents} | {rss} | {lat} | {pct(ph.latency, 0.95) / ref_p95:.1f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
