"""Log reading through a real SSH channel: opsconsole's history read vs the raw channel.

    python bench/ssh_bench.py [--lines 1000000]

Starts a rehearsal lab (real sshd + nginx on loopback, no traffic), writes a generated combined
log of --lines lines as web1's `shop` access log, then measures in the same run:
  1. the raw channel: asyncssh `cat FILE`, bytes read and discarded (the reference);
  2. opsconsole: `Fleet.read_history("shop", since=None)` — ranged read + parse + count;
and prints both rates and their ratio.  The lab is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from opsconsole.config import load_config  # noqa: E402
from opsconsole.fleet import Fleet  # noqa: E402
from opsconsole.lab import Lab  # noqa: E402


async def raw_channel(lab: Lab, path: Path) -> tuple[float, int]:
    import asyncssh

    t0 = time.perf_counter()
    total = 0
    async with asyncssh.connect(**lab.connect_options("web1")) as conn:  # noqa: SIM117
        async with conn.create_process(f"cat -- {path}", encoding=None) as proc:
            while data := await proc.stdout.read(1 << 20):
                total += len(data)
    return time.perf_counter() - t0, total


async def opsconsole_read(config_path: Path) -> tuple[float, int]:
    fleet = Fleet(load_config(str(config_path)), max_attempts=3)
    t0 = time.perf_counter()
    try:
        stats, feeds = await fleet.read_history("shop", None)
    finally:
        await fleet.close()
    errors = [f.error for f in feeds.values() if f.error]
    if errors:
        raise SystemExit(f"read failed: {errors}")
    return time.perf_counter() - t0, stats.requests


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="opsc-sshbench-"))
    lab = Lab.start(tmp / "lab", traffic=False)
    try:
        log = lab.access_log("shop", "web1")
        subprocess.run(
            [
                sys.executable,
                str(HERE / "genlog.py"),
                str(tmp / "gen.log"),
                "--lines",
                str(a.lines),
            ],
            check=True,
        )
        shutil.copyfile(tmp / "gen.log", log)  # same inode: nginx keeps appending to it
        raw_s, raw_bytes = asyncio.run(raw_channel(lab, log))
        ops_s, lines = asyncio.run(opsconsole_read(lab.config_path))
        print(f"file: {raw_bytes / 1e6:.0f} MB, {lines} lines")
        print("| path | seconds | MB/s | lines/s |")
        print("|---|---:|---:|---:|")
        print(
            f"| raw SSH channel (`cat`) | {raw_s:.2f} | {raw_bytes / raw_s / 1e6:.0f} | "
            f"{lines / raw_s:,.0f} |"
        )
        print(
            f"| opsconsole stats --since all | {ops_s:.2f} | {raw_bytes / ops_s / 1e6:.0f} | "
            f"{lines / ops_s:,.0f} |"
        )
        print(f"opsconsole / raw channel: {raw_s / ops_s:.2f}")
    finally:
        lab.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
