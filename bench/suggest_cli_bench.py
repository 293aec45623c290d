"""``opsconsole suggest`` end to end on a real lab, against the raw SSH channel and GoAccess.

    python bench/suggest_cli_bench.py [--scenario low-and-slow] [--scale 1] [--runs 3]

Starts a rehearsal lab (real sshd + nginx on loopback, no traffic), writes the labelled
scenario's www traffic (its 30 min baseline and 10 min window, ending now) into www's access logs
on its two servers, then measures in the same run, each the median of ``--runs``:

1. ``opsconsole suggest www --json`` as an operator runs it (a new process: interpreter start,
   SSH connections, the ranged reads of both logs, the controls read, the analysis);
2. the raw channel: ``cat`` of both logs over the lab's SSH, in parallel, bytes discarded;
3. GoAccess's JSON report of the same lines from local files.

and prints the seconds and the ratios.  The lab is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import compile_package  # noqa: E402

from opsconsole.lab import Lab  # noqa: E402
from opsconsole.lab.scenarios import combined_line, generate  # noqa: E402

SERVERS = ("web1", "web2")


async def raw_channel(lab: Lab) -> float:
    import asyncssh

    async def one(server: str) -> None:
        path = lab.access_log("www", server)
        async with asyncssh.connect(**lab.connect_options(server)) as conn:  # noqa: SIM117
            async with conn.create_process(f"cat -- {path}", encoding=None) as proc:
                while await proc.stdout.read(1 << 20):
                    pass

    t0 = time.perf_counter()
    await asyncio.gather(*(one(s) for s in SERVERS))
    return time.perf_counter() - t0


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env)
    took = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({out.returncode}): {out.stderr.decode()[-500:]}")
    return took, out.stdout


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="low-and-slow")
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    compile_package()  # as installed: no module compiled again per run
    goaccess = shutil.which("goaccess")
    if goaccess is None:
        raise SystemExit("suggest_cli_bench: goaccess (a reference) is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="opsc-suggest-cli-"))
    env = dict(os.environ, XDG_STATE_HOME=str(tmp / "state"), XDG_CONFIG_HOME=str(tmp / "cfg"))
    os.environ.update(XDG_STATE_HOME=env["XDG_STATE_HOME"])
    try:
        with Lab.start(tmp / "lab", traffic=False) as lab:
            start = time.time() - 2400 + 5
            reqs = list(generate(a.scenario, seed=a.seed, scale=a.scale, start=start,
                                 services=["www"]))  # fmt: skip
            chunks: dict[str, list[bytes]] = {s: [] for s in SERVERS}
            for i, r in enumerate(reqs):
                chunks[SERVERS[i % 2]].append(combined_line(r))
            for server, lines in chunks.items():
                with lab.access_log("www", server).open("ab") as f:
                    f.write(b"".join(lines))
            end = reqs[-1].time
            window = sum(r.time > end - 600 for r in reqs)
            local = tmp / "all.log"
            local.write_bytes(b"".join(b"".join(v) for v in chunks.values()))
            mb = local.stat().st_size / 1e6
            cli = [sys.executable, "-m", "opsconsole", "suggest", "www", "--json",
                   "--config", str(lab.config_path)]  # fmt: skip
            report = str(tmp / "r.json")
            ga_cmd = [goaccess, str(local), "--log-format=COMBINED", "--no-global-config",
                      "--no-progress", "--max-items=10000000", "-o", report]  # fmt: skip
            sug, raw, ga = [], [], []
            result: dict[str, Any] = {}
            for _ in range(a.runs):
                took, out = timed(cli, env)
                sug.append(took)
                result = json.loads(out)
                raw.append(asyncio.run(raw_channel(lab)))
                ga.append(timed(ga_cmd)[0])
            s, r, g = (statistics.median(x) for x in (sug, raw, ga))
            kinds = Counter(x["kind"] for x in result["suggestions"] if x["recommended"])
            print(f"{a.scenario} scale {a.scale:g}: {len(reqs)} lines ({mb:.0f} MB) on 2 "
                  f"servers, {window} in the 10 min window; suggest said {result.get('status')}, "
                  f"recommended {dict(kinds)}")  # fmt: skip
            print(f"| step (median of {a.runs}) | seconds | × raw SSH read | × GoAccess |")
            print("|---|---:|---:|---:|")
            print(f"| `opsconsole suggest www --json`, end to end | {s:.2f} | {s / r:.1f} "
                  f"| {s / g:.2f} |")  # fmt: skip
            print(f"| raw SSH channel: `cat` of both logs, in parallel | {r:.2f} | 1.0 | |")
            print(f"| GoAccess JSON report of the same lines (local file) | {g:.2f} | | 1.00 |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
