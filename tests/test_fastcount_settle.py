"""A top list that outgrows its cap is pruned in C (``Tally.settle``) exactly as
``TopCounter.prune`` prunes the exported counts: the same keys kept, with the same counts, in
the same order, and the same cut added to the error bound — round after round, with counts
carried over from earlier rounds, ties at the cut, and keys of both sides."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from test_fastcount import needs_ext

from opsconsole.logs.logformat import COMBINED, compile_format
from opsconsole.stats import fast
from opsconsole.stats.sketch import TopCounter

CODE = (fast.program(compile_format(COMBINED)) if fast.available() else None) or b""


def lines(rng: random.Random, n: int, paths: list[str]) -> bytes:
    out = []
    for _ in range(n):
        # Mostly a flood of fresh random paths (count 1), some recurring ones, a few hot ones.
        r = rng.random()
        if r < 0.6:
            path = f"/{rng.getrandbits(40):x}"
        elif r < 0.95:
            path = rng.choice(paths)
        else:
            path = rng.choice(paths[:3])
        out.append(
            f"198.18.{rng.randrange(4)}.{rng.randrange(256)} - - [24/Nov/2026:15:00:00 +0000] "
            f'"GET {path} HTTP/1.1" 404 9 "-" "a"\n'
        )
    return "".join(out).encode()


def python_way(counter: TopCounter, tally: fast.Tally) -> None:
    tally.export(paths=counter.counts)
    if len(counter) > counter.cap:
        counter.prune()


def c_way(counter: TopCounter, tally: fast.Tally) -> None:
    pruned = tally.settle("paths", counter.counts, counter.cap)
    if pruned is not None:
        counter.take_pruned(*pruned)


@needs_ext
@pytest.mark.parametrize("cap", [10, 101, 2_000])
def test_settling_in_c_keeps_what_prune_keeps_round_after_round(cap: int) -> None:
    rng = random.Random(cap)
    paths = [f"/p{i}" for i in range(cap * 2)]
    ours, theirs = TopCounter(cap), TopCounter(cap)
    mine, other = fast.Tally(["paths"]), fast.Tally(["paths"])
    pruned_rounds = 0
    for _ in range(12):
        chunk = lines(rng, rng.choice([cap // 3 + 1, cap, 3 * cap]), paths)
        for tally in (mine, other):
            tally.count(chunk, CODE, check_time=False, parallel=False)
        before = ours.error_bound
        c_way(ours, mine)
        python_way(theirs, other)
        pruned_rounds += ours.error_bound > before
        assert list(ours.counts.items()) == list(theirs.counts.items())
        assert ours.error_bound == theirs.error_bound
        assert type(ours.counts) is Counter
        assert mine.sizes()["paths"] == 0  # the table was emptied either way
    assert pruned_rounds >= 3  # the pruning branch ran, not only the plain export


@needs_ext
def test_a_counter_with_a_key_c_cannot_hash_is_settled_the_plain_way() -> None:
    counter = TopCounter(3)
    counter.counts["not bytes"] = 5  # type: ignore[index]
    tally = fast.Tally(["paths"])
    chunk = b"".join(
        f'1.2.3.4 - - [24/Nov/2026:15:00:00 +0000] "GET /{i} HTTP/1.1" 404 9 "-" "a"\n'.encode()
        for i in range(10)
    )
    tally.count(chunk, CODE, check_time=False, parallel=False)
    assert tally.settle("paths", counter.counts, counter.cap) is None  # exported, not pruned
    assert len(counter.counts) == 11 and counter.counts[b"/3"] == 1


@needs_ext
def test_settle_refuses_a_table_of_pairs_and_a_used_fresh_dict() -> None:
    tally = fast.Tally(["paths", "seconds"])
    with pytest.raises(ValueError, match="one field"):
        tally.settle("seconds", Counter(), 10)
    with pytest.raises(ValueError, match="empty fresh dict"):
        tally._c.settle("paths", Counter(), Counter({b"x": 1}), 10)


@needs_ext
@pytest.mark.parametrize("cap", [500, 3_000, 200_000])
def test_a_snapshot_ranked_where_the_keys_are_equals_one_that_settles_them_all(
    cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``stats`` ranks the top lists from the C tables and the counters together instead of
    handing every key over first: the same snapshot, also when the counters were pruned
    before (cap 500, 3,000) and when a snapshot is taken half-way and counting goes on."""
    from test_fastcount_parallel import chunked, flood

    from opsconsole.stats.history import HistoryCounts

    data = flood(40_000, seed=9)
    chunks = chunked(data, 60_000)  # the tables hold keys the counters hold too
    half = len(chunks) // 2
    ours, settled = HistoryCounts("combined", cap=cap), HistoryCounts("combined", cap=cap)
    with monkeypatch.context() as m:
        m.setattr(fast.Tally, "top", lambda *a: None)  # the old way: settle everything
        for chunk in chunks[:half]:
            settled.add_chunk(chunk, "web1")
        before_settled = settled.snapshot("www").to_json()
        for chunk in chunks[half:]:
            settled.add_chunk(chunk, "web1")
        after_settled = settled.snapshot("www").to_json()
    for chunk in chunks[:half]:
        ours.add_chunk(chunk, "web1")
    before = ours.snapshot("www").to_json()
    for chunk in chunks[half:]:
        ours.add_chunk(chunk, "web1")
    assert ours._tally is not None and ours._tally.sizes()["paths"] > 0  # ranked, not settled
    assert ours.snapshot("www").to_json() == after_settled
    assert before == before_settled
    assert ours.snapshot("www").to_json() == after_settled  # a snapshot changes nothing
    if cap < 200_000:
        assert after_settled.get("estimated")  # the pruned case was exercised
