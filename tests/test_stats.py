"""The statistics engine: windows, top lists, subnets, estimates under a flood of distinct IPs."""

from __future__ import annotations

import functools
import random
import time
import tracemalloc

import pytest

from opsconsole.stats.history import HistoryCounts
from opsconsole.stats.window import LiveWindow

T0 = 1_795_532_400  # 2026-11-24T15:00:00Z


@functools.cache
def stamp(sec: int) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(T0 + sec))


def line(ip: str, sec: int, path: str = "/", status: int = 200, ua: str = "ua") -> bytes:
    ts = stamp(sec)
    return f'{ip} - - [{ts}] "GET {path} HTTP/1.1" {status} 10 "-" "{ua}"\n'.encode()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_history_counts_status_top_ips_subnets_and_servers() -> None:
    stats = HistoryCounts()
    stats.add_chunk(b"".join(line(f"198.18.7.{i}", 0, status=404) for i in range(1, 101)), "web1")
    stats.add_chunk(line("198.18.7.7", 1, status=404) * 50 + line("2001:db8:5:1::9", 2) * 3, "web2")
    snap = stats.snapshot("www")
    assert snap.requests == 153
    assert snap.status == {"200": 3, "404": 150}
    assert snap.top_ips[0].key == "198.18.7.7" and snap.top_ips[0].requests == 51
    assert snap.top_subnets[0].key == "198.18.7.0/24" and snap.top_subnets[0].requests == 150
    assert snap.top_subnets[1].key == "2001:db8:5::/48"
    assert snap.servers == {"web1": 100, "web2": 53}
    assert snap.unique_ips == 101
    assert snap.estimated == {}
    assert snap.rps == 153 / 3  # three seconds of log


def test_history_since_drops_older_lines() -> None:
    stats = HistoryCounts(since=T0 + 10)
    stats.add_chunk(b"".join(line("1.1.1.1", s) for s in range(20)))
    assert stats.snapshot("www").requests == 10


def test_live_window_forgets_what_left_it_but_keeps_the_rate_history() -> None:
    clock = Clock(T0 + 5)
    stats = LiveWindow(window=60, clock=clock)
    stats.add_chunk(line("198.18.7.7", 0) * 30 + line("203.0.113.5", 4) * 2)
    stats.advance()
    snap = stats.snapshot("www")
    assert snap.top_ips[0].key == "198.18.7.7" and snap.top_ips[0].requests == 30
    assert snap.rps == 2  # the last full second (T0+4)
    clock.t = T0 + 62  # second 0 has left the 60 s window, second 4 has not
    stats.advance()
    snap = stats.snapshot("www")
    assert [(e.key, e.requests) for e in snap.top_ips] == [("203.0.113.5", 2)]
    assert snap.requests == 2
    assert sum(snap.per_second) == 32  # the 15-minute rate history still has both


def test_a_flood_of_distinct_ips_keeps_memory_bounded_and_says_what_is_estimated() -> None:
    rng = random.Random(7)
    stats = HistoryCounts(cap=20_000)
    heavy = "198.18.9.9"
    seen: set[str] = set()
    tracemalloc.start()
    for chunk in range(8):
        ips = [
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
            for _ in range(50_000)
        ]
        seen.update(ips)
        lines = [line(ip, chunk, path=f"/{rng.getrandbits(40):x}", status=404) for ip in ips]
        stats.add_chunk(b"".join(lines + [line(heavy, chunk, status=404)] * 500))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    snap = stats.snapshot("www")
    assert snap.requests == 404_000
    # The attacker an operator must see is never lost, and its count is exact here.
    assert (snap.top_ips[0].key, snap.top_ips[0].requests) == (heavy, 4000)
    assert len(stats.top["client"]) <= 20_000 and len(stats.top["path"]) <= 20_000
    assert snap.estimated.get("unique_ips") and snap.estimated.get("top_paths")
    assert 0.95 * len(seen) < snap.unique_ips < 1.05 * len(seen)
    assert peak < 100 * 1024 * 1024


def test_live_window_under_a_flood_keeps_heavy_hitters_exact_within_a_memory_bound() -> None:
    clock = Clock(T0 + 30)
    stats = LiveWindow(window=60, clock=clock, bucket_cap=200)
    rng = random.Random(3)
    for sec in range(30):
        flood = [line(f"10.9.{rng.randrange(256)}.{rng.randrange(256)}", sec) for _ in range(1000)]
        stats.add_chunk(b"".join(flood + [line("198.18.7.7", sec, ua="heavy")] * 5))
    snap = stats.snapshot("www")
    assert (snap.top_ips[0].key, snap.top_ips[0].requests) == ("198.18.7.7", 150)
    assert len(stats.top["client"]) <= 30 * 200
    assert snap.estimated.get("top_ips") and snap.estimated.get("unique_ips")
    assert snap.requests == 30 * 1005  # request counts and status mix are never estimates
    # Once those seconds leave the window nothing of them is left behind.
    clock.t = T0 + 200
    stats.advance()
    assert stats.snapshot("www").top_ips == () and len(stats.top["client"]) == 0


def test_subnets_of_any_ipv6_spelling_match_the_ipaddress_module() -> None:
    import ipaddress

    from opsconsole.stats.snapshot import subnet_of

    rng = random.Random(5)
    masks = [0, (1 << 128) - 1, ((1 << 16) - 1) << 96, ((1 << 32) - 1) << 80, ((1 << 48) - 1) << 80]
    for _ in range(3000):
        addr = ipaddress.IPv6Address(rng.getrandbits(128) & ~rng.choice(masks))
        if addr.ipv4_mapped is not None:
            continue
        expected = str(ipaddress.ip_network(f"{addr}/48", strict=False)).encode()
        for spelling in (str(addr), addr.exploded, addr.exploded.upper()):
            assert subnet_of(spelling.encode()) == expected, spelling
    assert subnet_of(b"203.0.113.9") == b"203.0.113.0/24"
    assert subnet_of(b"::ffff:203.0.113.9") == b"203.0.113.0/24"
    assert subnet_of(b"crawler.example.org") == b"crawler.example.org"


def test_the_new_ip_rate_counts_clients_not_seen_recently() -> None:
    clock = Clock(T0 + 40)
    stats = LiveWindow(window=60, clock=clock)
    regulars = [f"192.0.2.{i}" for i in range(20)]
    # 30 s of the same 20 visitors: after their first second, nobody is new.
    stats.add_chunk(b"".join(line(ip, sec) for sec in range(30) for ip in regulars))
    stats.advance()
    snap = stats.snapshot("www")
    assert snap.new_ips_per_s == 0.0  # seconds 30..39: no new client
    # A flood: every second 500 addresses never seen before, plus the regulars.
    flood = iter(f"198.18.{n // 250}.{n % 250}" for n in range(100_000))
    stats.add_chunk(
        b"".join(
            line(ip, sec)
            for sec in range(30, 40)
            for ip in [*regulars, *(next(flood) for _ in range(500))]
        )
    )
    stats.advance()
    snap = stats.snapshot("www")
    rate = snap.new_ips_per_s
    assert rate is not None and 490 <= rate <= 500  # Bloom false positives only make it lower
    assert snap.to_json()["new_ips_per_s"] == round(rate, 1)
    # History mode (stats --since) has no such rate.
    history = HistoryCounts()
    history.add_chunk(line("192.0.2.1", 0))
    assert history.snapshot("www").new_ips_per_s is None
    assert "new_ips_per_s" not in history.snapshot("www").to_json()


def test_the_seen_filter_keeps_a_fixed_size_and_forgets_old_generations() -> None:
    from opsconsole.stats.sketch import SeenFilter

    seen = SeenFilter(bits_log2=16, max_age=100)  # 8 KiB a generation, retired at 8192 keys
    first = [f"10.0.{i // 256}.{i % 256}".encode() for i in range(5000)]
    # A Bloom filter may take a new key for a seen one (about 0.5 % here), never the reverse.
    assert 4900 <= seen.add_new(first, now=0) <= 5000
    assert seen.add_new(first, now=1) == 0
    # 50,000 other keys: many generations retire, memory does not grow.
    others = [f"10.9.{i // 256}.{i % 256}".encode() for i in range(50_000)]
    for start in range(0, 50_000, 1000):
        seen.add_new(others[start : start + 1000], now=2)
    assert len(seen._cur) == len(seen._old) == 8192
    assert seen.add_new(first, now=3) > 4500  # long gone: new again (a few false positives)


def test_reading_a_snapshot_of_the_window_changes_nothing() -> None:
    clock = Clock(T0 + 5)
    stats = LiveWindow(window=60, clock=clock)
    stats.add_chunk(line("198.18.7.7", 0) * 30)
    clock.t = T0 + 100  # second 0 has left the window, but nobody advanced it yet
    before = (dict(stats.top["client"].counts), len(stats.ring))
    first = stats.snapshot("www")
    assert (dict(stats.top["client"].counts), len(stats.ring)) == before
    assert stats.snapshot("www") == first  # the same answer twice: reading is pure
    assert first.requests == 0  # the request count is over the window, whatever is expired
    stats.advance()  # the owner (the pipeline's publisher) expires the window
    assert stats.snapshot("www").top_ips == ()


def test_each_servers_numbers_in_the_window_add_up_to_the_total() -> None:
    clock = Clock(T0 + 100)
    stats = LiveWindow(window=60, clock=clock)
    stats.add_chunk(line("198.18.7.7", 10) * 7, "web1")  # before the window
    stats.add_chunk(line("198.18.7.7", 50) * 5 + line("198.18.7.8", 90) * 3, "web1")
    stats.add_chunk(line("203.0.113.5", 95) * 4, "web2")
    stats.advance()
    snap = stats.snapshot("www")
    assert snap.requests == 12  # seconds 41..100: not the 7 requests of second 10
    assert snap.servers == {"web1": 8, "web2": 4}
    assert sum(snap.servers.values()) == snap.requests
    assert snap.to_json()["servers"]["web1"]["requests"] == 8


def test_a_log_younger_than_the_window_divides_its_rate_by_the_time_it_covers() -> None:
    clock = Clock(T0 + 20)
    # `stats --since 60s` of a lab started 20 s ago: 36 requests over 20 s is 1.8 req/s.
    history = HistoryCounts(since=T0 + 20 - 60, clock=clock)
    young = b"".join(line("198.51.100.1", 1 + i * 19 // 35) for i in range(36))  # s 1..20
    history.add_chunk(young)
    snap = history.snapshot("www")
    assert snap.requests == 36
    assert snap.span == 20 and snap.rps == 36 / 20
    assert snap.to_json()["from"] == "2026-11-24T15:00:01Z"
    # A log that reaches back beyond --since covers all of it.
    old = HistoryCounts(since=T0 + 20 - 60, clock=clock)
    old.add_chunk(line("198.51.100.1", -100) + line("198.51.100.1", 10) * 30)
    assert old.snapshot("www").span == 51  # from --since (second -40) to the last line (10)
    # The live window too: its mean rate is over the seconds the logs cover.
    live = LiveWindow(window=60, clock=clock)
    live.add_chunk(young)
    live.advance()
    assert live.snapshot("www").span == 20 and live.snapshot("www").mean_rps == 36 / 20


@pytest.mark.parametrize("way", ["C", "Python"])
def test_top_lists_are_the_largest_counts_with_ties_broken_by_key(
    way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top list is what sorting every key by (count descending, key) would give, also for
    a flood's long tail of keys seen once, where the last places are decided by the ties — in
    one C pass (with the extension) and in Python (without it, or for keys that are not
    bytes)."""
    import random

    from opsconsole.stats import fast
    from opsconsole.stats.sketch import TopCounter

    if way == "Python":
        monkeypatch.setattr(fast, "top_items", lambda counts, n: None)
    elif not fast.available():
        pytest.skip("the C extension is not built")
    rng = random.Random(7)
    for size in (0, 1, 5, 30, 100, 1000, 5000):
        counter = TopCounter()
        for _ in range(size):
            counter.add(rng.randbytes(rng.randint(0, 3)), rng.choice([1, 1, 1, 2, 3, 50]))
        every = sorted(counter.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        for n in (0, 1, 3, 10, 20, 100):
            assert counter.top(n) == every[:n], (size, n)
    if way == "C":  # what C cannot rank is left to Python, never ranked wrong
        assert fast.top_items({b"a": 1, "b": 2}, 1) is None  # type: ignore[dict-item]
        assert fast.top_items({b"a": 1 << 70}, 1) is None
