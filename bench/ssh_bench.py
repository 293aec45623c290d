"""Log reading through a real SSH channel: the whole command against OpenSSH's own client.

    python bench/ssh_bench.py [--lines 1000000] [--runs 3]

Starts a rehearsal lab (real sshd + nginx on loopback, no traffic), writes a generated combined
log of --lines lines as web1's `shop` access log, then measures, --runs times in the same run:
  1. the reference: OpenSSH `ssh -F <lab ssh config> web1 cat FILE > /dev/null` (the raw
     channel: one handshake, the file through sshd's cipher into a C client, its output to
     /dev/null; until 2026-12-03's third session it went through a pipe into this script,
     which slowed the reference by about 0.3 s);
  2. the whole command: `python -m opsconsole --config <lab> stats shop --since all --json`
     (start-up, config, handshake, the ranged read, parse, count, JSON);
and prints the seconds and the ratio raw / opsconsole (1.0: as fast as the raw channel).  The
lab is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
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

from opsconsole.lab import Lab  # noqa: E402


def timed(cmd: list[str], **kw: object) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    out = subprocess.run(
        cmd,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        **kw,  # type: ignore[call-overload]
    ).stdout
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    compile_package()  # as installed: no module compiled again per run
    tmp = Path(tempfile.mkdtemp(prefix="opsc-sshbench-"))
    lab = Lab.start(tmp / "lab", traffic=False)
    try:
        log = lab.access_log("shop", "web1")
        gen = [sys.executable, str(HERE / "genlog.py"), str(tmp / "gen.log"), "--lines"]
        subprocess.run([*gen, str(a.lines)], check=True)
        shutil.copyfile(tmp / "gen.log", log)  # same inode: nginx keeps appending to it
        size = log.stat().st_size
        ssh = ["ssh", "-F", str(lab.layout.ssh_config), "web1", "cat", "--", str(log)]
        env = dict(os.environ, PYTHONPATH=str(HERE.parent))
        ops = [sys.executable, "-m", "opsconsole", "--config", str(lab.config_path)]
        ops += ["stats", "shop", "--since", "all", "--json"]
        load = os.getloadavg()[0]
        print(f"file: {size / 1e6:.0f} MB, {a.lines:,} lines; machine: {os.cpu_count()} cores, "
              f"load {load:.1f}")  # fmt: skip
        print(
            "| run | OpenSSH `ssh web1 cat` s | opsconsole `stats --since all` s "
            "| raw / opsconsole |"
        )
        print("|---|---:|---:|---:|")
        ratios = []
        _, out = timed([*ssh[:-3], "wc", "-c", "<", str(log)])
        assert int(out) == size, "the file is whole on the server"
        for run in range(1, a.runs + 1):
            # Exactly ``ssh SERVER cat FILE > /dev/null``: the output goes to /dev/null, not
            # through a pipe into this process (that would slow the reference down).
            t0 = time.perf_counter()
            subprocess.run(ssh, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            raw_s = time.perf_counter() - t0
            ops_s, js = timed(ops, env=env)
            requests = json.loads(js)["requests"]
            ratios.append(raw_s / ops_s)
            print(f"| {run} | {raw_s:.2f} | {ops_s:.2f} ({requests:,} requests) | "
                  f"{raw_s / ops_s:.2f} |")  # fmt: skip
        print(f"median raw / opsconsole: {statistics.median(ratios):.2f}")
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
