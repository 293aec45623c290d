"""Both cores on one large log: a chunk counted in two halves on two threads and merged gives
exactly what one pass gives — every count, the keys' first-seen order, the HyperLogLog, the
lines only Python can judge — and so does what ``stats --since all`` prints, also once the
top lists outgrew their caps and were pruned (estimates equal to the estimates)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from test_fastcount import corpus_files, needs_ext
from test_fastcount_formats import FIELDS, FORMATS, render

from opsconsole.logs.logformat import COMBINED, LogFormat, compile_format
from opsconsole.stats import fast
from opsconsole.stats.history import HistoryCounts

T0 = 1_795_532_400


def flood(n: int, seed: int = 1) -> bytes:
    """A flood-shaped combined log: many clients (a tenth IPv6) sending a few requests each to
    random 404 paths, real visitors beside them; a few times only Python can judge."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.1:
            client = f"2001:db8:{rng.randrange(64):x}::{rng.randrange(1 << 16):x}"
        else:
            client = f"198.18.{rng.randrange(40)}.{rng.randrange(256)}"
        path = f"/{rng.getrandbits(32):x}" if rng.random() < 0.8 else rng.choice(["/", "/a"])
        status = 404 if path.startswith("/") and len(path) > 2 else 200
        sec = T0 + i // 500
        stamp = "00/Jan/0000:00:00:00 +0000" if i % 50_000 == 7 else _stamp(sec)
        out.append(
            f'{client} - - [{stamp}] "GET {path} HTTP/1.1" {status} 9 "-" '
            f'"agent/{rng.randrange(5)}"\n'
        )
    return "".join(out).encode()


def chunked(data: bytes, step: int) -> list[bytes]:
    """Batches of whole lines of about ``step`` bytes, as a history read makes them."""
    chunks, pos = [], 0
    while pos < len(data):
        end = data.rfind(b"\n", pos, pos + step) + 1 if pos + step < len(data) else len(data)
        chunks.append(data[pos:end])
        pos = end
    return chunks


def _stamp(sec: int) -> str:
    import time

    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec))


def logged(fmt: LogFormat) -> list[str]:
    """The tables a format fills (no paths without a path in it…)."""
    has = {"paths": "path", "agents": "agent", "methods": "method"}
    return [f for f in FIELDS if f not in has or has[f] in fmt.groups]


def tallied(
    chunks: list[bytes], code: bytes, *, parallel: bool, fields: list[str] | None = None
) -> tuple[list[tuple[int, int, list[tuple[int, int]]]], dict[str, list[Any]], bytes]:
    fields = list(FIELDS) if fields is None else fields
    tally = fast.Tally(fields, hll=True)
    results = [tally.count(c, code, check_time=True, parallel=parallel) for c in chunks]
    dicts: dict[str, Counter[object]] = {name: Counter() for name in fields}
    hll = fast.new_hll()
    tally.export(**dicts, hll=hll)  # type: ignore[arg-type]
    assert all(n == 0 for n in tally.sizes().values())  # exported: nothing left behind
    return results, {k: list(v.items()) for k, v in dicts.items()}, bytes(hll)


@needs_ext
def test_two_halves_on_two_threads_give_the_tables_of_one_pass() -> None:
    code = fast.program(compile_format(COMBINED))
    assert code is not None
    data = flood(60_000)
    assert len(data) > 2 * fast.PARALLEL_MIN  # the parallel path really runs
    chunks = [data[: data.rfind(b"\n", 0, len(data) // 2) + 1]]
    chunks.append(data[len(chunks[0]) :])
    one, two = tallied(chunks, code, parallel=False), tallied(chunks, code, parallel=True)
    assert one == two  # counts, key order (lists of items), HLL registers, unsure offsets
    results = one[0]
    assert isinstance(results, list) and sum(r[0] for r in results) == 60_000
    assert all(r[2] for r in results)  # each half of the log has a year-0000 line
    # The counts are the regex's: one pass of count() into plain dicts agrees.
    ref: dict[str, Any] = {name: Counter() for name in FIELDS}
    for chunk in chunks:
        r = ref
        fast.count(
            chunk, code, r["clients"], r["nets"], r["others"], r["paths"], r["agents"],
            r["methods"], r["seconds"], None,
        )  # fmt: skip
    assert one[1] == {k: list(v.items()) for k, v in ref.items()}


@needs_ext
@pytest.mark.parametrize("cap", [200_000, 3_000])
def test_stats_of_a_large_log_are_the_same_on_one_core_and_on_two(
    monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    """With cap 3,000 the client and path counters are pruned many times: the estimates of
    two cores equal those of one, as the exact counts do with the default cap."""
    data = flood(80_000, seed=2)
    chunks = chunked(data, 1 << 20)

    def snapshot(parallel_min: int) -> object:
        monkeypatch.setattr(fast, "PARALLEL_MIN", parallel_min)
        h = HistoryCounts(COMBINED, cap=cap, clock=lambda: 2_000_000_000.0)
        for chunk in chunks:
            h.add_chunk(chunk, "web1")
        return h.snapshot("www", top_n=100), dict(h.servers)

    one, two = snapshot(1 << 40), snapshot(1 << 16)
    assert one == two
    snap = one[0]  # type: ignore[index]
    assert snap.requests == 80_000 - 2  # the two year-0000 lines have no epoch second
    assert bool(snap.estimated) == (cap < 10_000)


@needs_ext
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_corpus_file_in_every_format_counts_the_same_in_halves(name: str) -> None:
    fmt = compile_format(FORMATS[name])
    code = fast.program(fmt)
    assert code is not None
    files = corpus_files()
    assert files, "the corpus is missing"
    lines = [
        render(line, FORMATS[name], n)
        for path in files
        for n, line in enumerate(path.read_bytes().splitlines(keepends=True))
    ]
    data = b"".join(lines) * max(1, (3 * fast.PARALLEL_MIN) // max(1, sum(map(len, lines))))
    chunks = [data]
    one = tallied(chunks, code, parallel=False, fields=logged(fmt))
    assert one == tallied(chunks, code, parallel=True, fields=logged(fmt))
    assert one[1]["clients"]  # something was counted


@needs_ext
def test_a_span_since_a_time_counts_as_the_regex_path_does() -> None:
    """`stats --since 15m`: chunks wholly after `since` go the C way, the one that holds the
    older lines a read from a line start includes goes the Python way; what is shown is the
    same as with the Python path alone (exact counts: once pruned, the two paths prune at
    different moments and their estimates differ within the stated bounds)."""
    cap = 200_000
    data = flood(60_000, seed=3)
    chunks = chunked(data, 1 << 20)
    since = float(T0 + 17)  # inside the first chunk

    def snapshot(accelerate: bool) -> tuple[object, ...]:
        h = HistoryCounts(COMBINED, since=since, cap=cap, clock=lambda: 2e9, accelerate=accelerate)
        for chunk in chunks:
            h.add_chunk(chunk, "web1")
        return h.snapshot("www", top_n=100), dict(h.servers), h.hll is not None

    fast_snap, slow_snap = snapshot(True), snapshot(False)
    assert fast_snap[2] and not slow_snap[2]  # the two paths really ran
    assert fast_snap[:2] == slow_snap[:2]
    assert fast_snap[0].requests == 60_000 - 17 * 500 - 1  # type: ignore[attr-defined]
