"""Applying a 100,000-entry block list through the real lab, against nginx's own reload time.

    python bench/controls_bench.py [--entries 100000] [--service shop] [--repeat 5]
    python bench/controls_bench.py --entries 500000 --servers 10 --service www   # issue 11

Starts a rehearsal lab (real sshd + nginx on loopback, no traffic) and measures, in the same run
and on the same nginx:

1. the reference: a bare ``nginx -s reload`` plus the wait until new worker processes exist,
   with the service's controls empty, then again with the 100,000-entry ``geo`` loaded;
2. ``opsconsole block SERVICE --from-file LIST --yes --json`` as an operator runs it: process
   start, validation, SSH, render, transfer, write beside + atomic swap, ``nginx -t``, reload and
   the wait for new workers (the server-side step timings come from the JSON);
3. one more block on top of the 100,000 (the state is read back, re-validated and re-rendered);
4. ``opsconsole controls SERVICE --json``, before (the fixed cost of a command: process start,
   SSH connection, one read) and after (reading the 100,000-entry state back).

Prints a Markdown table: seconds (median of --repeat for the references) and the ratio to the bare
reload of the same config.  Checks that nginx answers 403 to a listed client and 200 to another.
Every process started is stopped by PID at the end, and the work directory removed.
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from common import compile_package  # noqa: E402

from opsconsole.lab import Lab, send  # noqa: E402
from opsconsole.lab.nginx import nginx_argv  # noqa: E402


def children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        out.update(int(x) for x in text.split())
    return out


def bare_reload(lab: Lab, server: str) -> float:
    """Seconds from ``nginx -s reload`` to the first new worker process of the master."""
    master = lab.servers[server].nginx_pid
    before = children(master)
    argv = nginx_argv(lab.nginx, lab.nginx_prefix(server), "-s", "reload")
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    while not (children(master) - before):
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    time.sleep(0.5)  # let the old workers finish before the next measurement
    return elapsed


def median_reload(lab: Lab, server: str, repeat: int) -> float:
    return statistics.median(bare_reload(lab, server) for _ in range(repeat))


PROFILE: Path | None = None
"""--profile DIR: each opsconsole command runs under cProfile, its profile saved in DIR."""


def opsconsole(lab: Lab, state: Path, *args: str) -> tuple[float, dict[str, Any]]:
    env = dict(os.environ, XDG_STATE_HOME=str(state), PYTHONPATH=str(HERE.parent))
    prof: list[str] = []
    if PROFILE is not None:
        out = PROFILE / f"{len(list(PROFILE.iterdir())) + 1}-{args[0]}.prof"
        prof = ["-m", "cProfile", "-o", str(out)]
    argv = [sys.executable, *prof, "-m", "opsconsole", "--config", str(lab.config_path), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"opsconsole {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return elapsed, data


def step_ms(report: dict[str, Any], server: str) -> str:
    t = report["servers"][server]["timings_ms"]
    return f"nginx -t {t['test']} ms, reload {t['reload']} ms; per-server operation {t['total']} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument(
        "--service", default="shop", help="a lab service (shop runs on web1 only, www on all)"
    )
    ap.add_argument(
        "--servers", type=int, default=0, help="a lab of N servers (web1…webN), www on all"
    )
    ap.add_argument("--repeat", type=int, default=5, help="bare reloads per reference")
    ap.add_argument("--profile", type=Path, help="save a cProfile of each opsconsole command here")
    args = ap.parse_args()
    compile_package()  # as installed: no module compiled again per run
    global PROFILE
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE = args.profile
    work = Path(tempfile.mkdtemp(prefix="opsc-controls-bench-"))
    names = tuple(f"web{i}" for i in range(1, args.servers + 1)) if args.servers else None
    lab = Lab.start(work / "lab", traffic=False, **({"servers": names} if names else {}))
    try:
        all_servers = lab.services[args.service].servers
        server = all_servers[0]
        targets = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(args.entries)]
        listing = work / "blocklist.txt"
        listing.write_text("\n".join(targets) + "\n")
        state = work / "state"

        empty_reload = median_reload(lab, server, args.repeat)
        base_s, _ = opsconsole(lab, state, "controls", args.service, "--json")
        apply_s, report = opsconsole(
            lab, state, "block", args.service, "--from-file", str(listing), "--reason", "flood",
            "--yes", "--json",
        )  # fmt: skip
        full_reload = median_reload(lab, server, args.repeat)
        one_s, one = opsconsole(lab, state, "block", args.service, "192.0.2.1", "--yes", "--json")
        read_s, controls = opsconsole(lab, state, "controls", args.service, "--json")
        for each in all_servers:  # every server refuses a listed client, serves another
            assert len(controls["servers"][each]["blocks"]) == args.entries + 1
            url = lab.url(args.service, each)
            assert send(url, client_ip=targets[len(targets) // 3])[0] == 403
            assert send(url, client_ip="11.0.0.1")[0] == 200
        size = (lab.control_dir(server) / f"{args.service}.http.conf").stat().st_size
    finally:
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)

    n = f"{args.entries:,}"
    rows = [
        ("bare `nginx -s reload` + new workers, empty controls", empty_reload, ""),
        ("`opsconsole controls --json`, empty controls (start, SSH, read)", base_s, ""),
        (f"bare `nginx -s reload` + new workers, {n} blocks loaded", full_reload, ""),
        (f"`opsconsole block` of {n} entries (CLI, end to end)", apply_s, step_ms(report, server)),
        (f"`opsconsole block` of 1 more on top of {n}", one_s, step_ms(one, server)),
        (f"`opsconsole controls --json` with {n} blocks", read_s, ""),
    ]
    print(
        f"\n{n} blocks on `{args.service}` ({len(all_servers)} servers, steps of {server}); "
        f"http.conf {size / 1e6:.1f} MB; references: "
        f"median of {args.repeat} reloads of the same nginx in the same run\n"
    )
    print("| step | seconds | × bare reload (blocks loaded) | detail (from the JSON report) |")
    print("|---|---:|---:|---|")
    for name, seconds, detail in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / full_reload:.1f} | {detail} |")


if __name__ == "__main__":
    main()
