"""Every benchmark of bench/, one after the other, with the settings BENCHMARKS.md records.

    python bench/run_all.py [--quick] [--only NAME,…] [--out FILE]

Each benchmark measures its own reference in the same run (GoAccess, `wc -l`, OpenSSH's `ssh
cat`, a bare `nginx -s reload`…) and prints Markdown rows for BENCHMARKS.md.  This runs them in
turn, prints each one's output under a heading with the command, the machine (cores, load) and
the time it took, and writes all of it to --out (default bench-results.md).  --quick runs smaller
inputs (a tenth), for a check that every benchmark still works, not for figures to record.  A
benchmark that fails is reported and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (full arguments, quick arguments)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "parse": (["--lines", "1000000"], ["--lines", "100000"]),
    "formats": (["--lines", "1000000", "--runs", "3"], ["--lines", "100000", "--runs", "1"]),
    "ssh": (["--lines", "1000000", "--runs", "3"], ["--lines", "100000", "--runs", "1"]),
    "latency": (["--samples", "100"], ["--samples", "10"]),
    "fleet": (["--servers", "20", "--runs", "3"], ["--servers", "3", "--runs", "1"]),
    "flood-10": (["--servers", "10"], ["--servers", "3", "--rate", "500", "--seconds", "5"]),
    "flood-50": (["--servers", "50"], ["--servers", "5", "--rate", "500", "--seconds", "5"]),
    "memory-1m": (["--ips", "1000000", "--mode", "window"], ["--ips", "100000"]),
    "memory-5m": (["--ips", "5000000", "--mode", "window"], ["--ips", "200000"]),
    "memory-20m": (["--ips", "20000000", "--mode", "window"], ["--ips", "300000"]),
    "memory-history": (
        ["--ips", "5000000", "--mode", "history"],
        ["--ips", "100000", "--mode", "history"],
    ),
    "controls": (["--entries", "100000", "--repeat", "5"], ["--entries", "10000", "--repeat", "1"]),
    "suggest": ([], ["--scale", "0.2", "--seeds", "1"]),
    "suggest-cli": (["--runs", "3"], ["--scale", "0.2", "--runs", "1"]),
}


def script(name: str) -> Path:
    base = name.split("-")[0] if name.startswith(("memory", "flood")) else name.replace("-", "_")
    return HERE / f"{base}_bench.py"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller inputs: a smoke test")
    p.add_argument("--only", default="", help=f"comma-separated names among: {', '.join(BENCHES)}")
    p.add_argument("--out", default="bench-results.md", help="where the report goes")
    a = p.parse_args()
    names = [n for n in a.only.split(",") if n] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHES)})")
    report: list[str] = [
        f"# Benchmarks, {time.strftime('%Y-%m-%d %H:%M %Z')}",
        "",
        f"Machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start; Python "
        f"{sys.version.split()[0]}.",
        "",
    ]
    failed = []
    for name in names:
        args = BENCHES[name][1 if a.quick else 0]
        cmd = [sys.executable, str(script(name)), *args]
        shown = " ".join(["python", f"bench/{script(name).name}", *args])
        print(f"== {name}: {shown}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        took = time.perf_counter() - t0
        report += [f"## {name}", "", "```sh", shown, "```", ""]
        report += [proc.stdout.rstrip(), ""]
        if proc.returncode != 0:
            failed.append(name)
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            report += [f"**failed** (exit status {proc.returncode}):", "", "```", tail, "```", ""]
        report += [f"({took:.0f} s, load {os.getloadavg()[0]:.1f} after)", ""]
        print(proc.stdout.rstrip() or "(no output)", flush=True)
        if proc.returncode != 0:
            print(f"{name} FAILED (exit status {proc.returncode})", file=sys.stderr)
    Path(a.out).write_text("\n".join(report) + "\n")
    print(f"report written to {a.out}" + (f"; failed: {', '.join(failed)}" if failed else ""),
          file=sys.stderr)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
