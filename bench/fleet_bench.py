"""Fleet size: how long the console takes to reach, read and check N servers.

    python bench/fleet_bench.py [--servers 20] [--runs 3]

Starts a rehearsal lab of N simulated servers (a real sshd and nginx each, on loopback); the
site `www` runs on all of them and gets some requests on each.  Then, --runs times, measured in
the same run:

  1. reference: OpenSSH's own client, `ssh -F <lab ssh config> SERVER true` to every server at
     once (N processes in parallel) — the bare cost of N SSH handshakes on this machine;
  2. `opsconsole stats www --since 60s --json`: connect to all N servers (at most 8 handshakes
     at a time, below sshd's MaxStartups), find the window in each log, read and count it;
  3. `opsconsole check --json`: every server's host probe and every site's HTTP probe;
  4. the console's live view: `ServicePipeline("www")` from start until all N servers are
     followed (connected, window read back, `tail` running).

Commands 2 and 3 are the real command line (a new Python process each, ~1 s of it start-up).
The lab is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import compile_package  # noqa: E402

from opsconsole.config import load_config  # noqa: E402
from opsconsole.fleet import Fleet  # noqa: E402
from opsconsole.lab import Lab, send  # noqa: E402


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - t0, proc


def bare_ssh(lab: Lab, servers: list[str]) -> float:
    config = str(lab.dir / "ssh" / "config")
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            ["ssh", "-F", config, "-o", "BatchMode=yes", s, "true"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for s in servers
    ]
    failed = [s for s, p in zip(servers, procs, strict=True) if p.wait(120) != 0]
    if failed:
        raise SystemExit(f"bare ssh failed on {failed}")
    return time.perf_counter() - t0


async def live_view(config_path: Path, servers: int) -> float:
    fleet = Fleet(load_config(str(config_path)))
    pipeline = fleet.pipeline("www")
    t0 = time.perf_counter()
    pipeline.start()
    try:
        deadline = time.monotonic() + 300
        while sum(f.state == "following" for f in pipeline.feeds.values()) < servers:
            if time.monotonic() > deadline:
                raise SystemExit(f"not all followed: {pipeline.feeds}")
            await asyncio.sleep(0.01)
        return time.perf_counter() - t0
    finally:
        await pipeline.stop()
        await fleet.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    compile_package()  # as installed: no module compiled again per run
    names = tuple(f"web{i}" for i in range(1, a.servers + 1))
    tmp = Path(tempfile.mkdtemp(prefix="opsc-fleetbench-"))
    t0 = time.perf_counter()
    lab = Lab.start(tmp / "lab", traffic=False, servers=names)
    print(f"lab of {a.servers} servers started in {time.perf_counter() - t0:.1f} s")
    try:
        for server in names:
            send(lab.url("www", server), 20, client_ip="198.51.100.7")
        cli = [sys.executable, "-m", "opsconsole", "--config", str(lab.config_path)]
        rows: dict[str, list[float]] = {"ssh": [], "stats": [], "check": [], "live": []}
        for _ in range(a.runs):
            rows["ssh"].append(bare_ssh(lab, list(names)))
            seconds, proc = timed([*cli, "stats", "www", "--since", "60s", "--json"])
            out = json.loads(proc.stdout)
            if proc.returncode != 0 or len(out["servers"]) != a.servers:
                raise SystemExit(f"stats failed: {proc.stderr}")
            rows["stats"].append(seconds)
            seconds, proc = timed([*cli, "check", "--json"])
            # Exit 1 (degraded) is a finished check: the benchmark itself loads the machine.
            reached = [
                s for s, h in json.loads(proc.stdout or "{}").get("servers", {}).items()
                if h.get("ssh") == "ok"
            ]  # fmt: skip
            if proc.returncode not in (0, 1) or len(reached) != a.servers:
                raise SystemExit(f"check failed ({proc.returncode}): {proc.stderr[-2000:]}")
            rows["check"].append(seconds)
            rows["live"].append(asyncio.run(live_view(lab.config_path, a.servers)))
        ref = statistics.median(rows["ssh"])
        labels = {
            "ssh": f"reference: `ssh SERVER true` to all {a.servers} at once",
            "stats": "`opsconsole stats www --since 60s --json`",
            "check": "`opsconsole check --json`",
            "live": f"live view: all {a.servers} servers followed",
        }
        print("| what | median s | runs (s) | / reference |")
        print("|---|---:|---|---:|")
        for key, label in labels.items():
            med = statistics.median(rows[key])
            runs = ", ".join(f"{v:.2f}" for v in rows[key])
            print(f"| {label} | {med:.2f} | {runs} | {med / ref:.1f}× |")
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
