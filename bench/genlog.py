"""Generate a deterministic nginx `combined` access log shaped like the mission's flood.

Used by the parser benchmark (bench/parse_bench.py) and by tests that compare with GoAccess.
Mix: legitimate browsing from a stable pool of clients (mostly 200s on real pages) and a flood of
random 404 paths from a very large pool of client IPs, IPv4 and IPv6, a few /24s heavier than
others.

    python bench/genlog.py OUT.log --lines 1000000 [--distinct-ips 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time

PAGES = [
    "/",
    "/about",
    "/products/1",
    "/products/2",
    "/static/app.css",
    "/static/app.js",
    "/cart",
    "/search?q=shoes",
    "/blog/2026/11/incident",
    "/favicon.ico",
]
BROWSER_UAS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
]
BOT_UAS = [
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1)",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "-",
]


def flood_ip(rng: random.Random, distinct: int) -> str:
    n = rng.randrange(distinct)
    if n % 10 == 0:  # one in ten flood clients is IPv6
        return f"2001:db8:{(n >> 16) & 0xFFFF:x}:{n & 0xFFFF:x}::{n % 97 + 1:x}"
    if n % 7 == 0:  # a few heavy /24s
        return f"198.18.{n % 5}.{n % 251 + 1}"
    return f"{198 + (n >> 24) % 2}.{18 + (n >> 16) % 2}.{(n >> 8) & 0xFF}.{n & 0xFF}"


def generate(path: str, lines: int, distinct_ips: int, seed: int) -> None:
    rng = random.Random(seed)
    legit_ips = [f"203.0.113.{i}" for i in range(1, 255)] + [f"192.0.2.{i}" for i in range(1, 255)]
    start = int(time.mktime((2026, 11, 24, 15, 0, 0, 0, 0, 0)))
    per_second = 800
    with open(path, "w", encoding="ascii") as out:
        for i in range(lines):
            ts = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(start + i // per_second))
            if rng.random() < 0.25:
                ip = rng.choice(legit_ips)
                page = rng.choice(PAGES)
                status, size = (200, rng.randrange(500, 40000)) if rng.random() < 0.95 else (304, 0)
                ref = "https://www.example.org/" if rng.random() < 0.5 else "-"
                ua = rng.choice(BROWSER_UAS)
                method = "GET"
            else:
                ip = flood_ip(rng, distinct_ips)
                page = f"/{rng.getrandbits(48):012x}"
                status, size = 404, 153
                ref, ua, method = "-", rng.choice(BOT_UAS), "GET" if rng.random() < 0.9 else "POST"
            out.write(
                f'{ip} - - [{ts}] "{method} {page} HTTP/1.1" {status} {size} "{ref}" "{ua}"\n'
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--distinct-ips", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    generate(a.out, a.lines, a.distinct_ips, a.seed)


if __name__ == "__main__":
    main()
