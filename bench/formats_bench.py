"""Whole-command `opsconsole stats --since all` on `combined` and on a custom format, against
GoAccess on the same file and `wc -l`, all in the same run.

    python bench/formats_bench.py [--lines 1000000] [--runs 3] [--file PATH]

Generates the flood-shaped `combined` log with bench/genlog.py (unless --file), and from it the
same lines in the custom format of issue 11 (`combined` + ` rt=$request_time host=$host`).  For
each format it times, as an operator runs them: `wc -l FILE` (the I/O floor),
`python -m opsconsole --config C stats www --since all --json` on a server with host = "local"
(the whole command: start-up, config, reading, parsing, counting, printing), and GoAccess 1.7
writing its JSON report of the same file with the matching --log-format.  Prints Markdown rows
for BENCHMARKS.md; the figure that matters is the ratio GoAccess seconds / opsconsole seconds.
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

from common import compile_package

HERE = Path(__file__).resolve().parent
COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
CUSTOM = COMBINED + " rt=$request_time host=$host"
GOACCESS_FORMATS = {
    "combined": "COMBINED",
    "custom": '%h %^[%d:%t %^] "%r" %s %b "%R" "%u" rt=%T host=%v',
}


def timed(cmd: list[str]) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE).stdout
    return time.perf_counter() - t0, out


def write_config(tmp: Path, name: str, log: Path, fmt: str) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        '[servers.here]\nhost = "local"\n\n'
        f'[services.www]\nservers = ["here"]\naccess_log = "{log}"\n'
        f"log_format = '{fmt}'\nurl = \"http://127.0.0.1:9/\"\n"
        f'control_dir = "{tmp}/control"\n'
    )
    return path


def custom_copy(src: Path, dst: Path) -> None:
    """The same lines with ` rt=0.NNN host=shop.example.org` appended (as nginx would log)."""
    with src.open("rb") as f, dst.open("wb") as out:
        for n, line in enumerate(f):
            out.write(b"%s rt=0.%03d host=shop.example.org\n" % (line.rstrip(b"\n"), n % 1000))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--file", help="an existing combined log instead of a generated one")
    a = p.parse_args()
    compile_package()  # as installed: no module compiled again per run
    tmp = Path(tempfile.mkdtemp(prefix="opsc-formats-"))
    try:
        combined = Path(a.file) if a.file else tmp / "combined.log"
        if not a.file:
            gen = [sys.executable, str(HERE / "genlog.py"), str(combined), "--lines", str(a.lines)]
            subprocess.run(gen, check=True, stdout=subprocess.DEVNULL)
        custom = tmp / "custom.log"
        custom_copy(combined, custom)
        goaccess = shutil.which("goaccess")
        print(f"machine: {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
        print("| format | run | wc -l s | opsconsole s | GoAccess s | GoAccess / opsconsole |")
        print("|---|---:|---:|---:|---:|---:|")
        ratios: dict[str, list[float]] = {}
        for name, log, fmt in (("combined", combined, COMBINED), ("custom", custom, CUSTOM)):
            config = write_config(tmp, name, log, fmt)
            cmd = [sys.executable, "-m", "opsconsole", "--config", str(config)]
            for run in range(1, a.runs + 1):
                wc, _ = timed(["wc", "-l", str(log)])
                ops, out = timed([*cmd, "stats", "www", "--since", "all", "--json"])
                requests = json.loads(out)["requests"]
                ga = float("nan")
                if goaccess:
                    ga, _ = timed(
                        [
                            goaccess, str(log), f"--log-format={GOACCESS_FORMATS[name]}",
                            "--date-format=%d/%b/%Y", "--time-format=%T", "--no-global-config",
                            "--no-progress", "--max-items=10000000", "-o", str(tmp / "r.json"),
                        ]
                    )  # fmt: skip
                ratios.setdefault(name, []).append(ga / ops)
                print(
                    f"| {name} | {run} | {wc:.2f} | {ops:.2f} ({requests:,} requests) "
                    f"| {ga:.2f} | {ga / ops:.1f}× |",
                    flush=True,
                )
        for name, rs in ratios.items():
            print(f"{name}: median GoAccess / opsconsole = {statistics.median(rs):.1f}×")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
