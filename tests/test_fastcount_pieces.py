"""A history read's batch is counted as the pieces the channel delivered, never joined: the
tables, lines, parsed lines and the offsets of the lines only Python can judge are exactly
those of the joined batch, on one thread and split across two; a piece that would cut a line
in two is refused before anything is counted; and ``stats`` fed pieces prints what it prints
fed the whole chunk."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from test_fastcount import needs_ext
from test_fastcount_parallel import flood

from opsconsole.logs.logformat import COMBINED, compile_format
from opsconsole.stats import fast
from opsconsole.stats.history import HistoryCounts

FIELDS = ["clients", "nets", "others", "paths", "agents", "methods", "seconds"]


def pieces_of(data: bytes, rng: random.Random) -> list[bytes | memoryview]:
    """Cut at random line ends, as reads of a channel end anywhere and read_range keeps whole
    lines; some pieces are views, some are empty."""
    out: list[bytes | memoryview] = []
    view, pos = memoryview(data), 0
    while pos < len(data):
        nl = data.find(b"\n", min(pos + rng.randrange(1, 400_000), len(data) - 1))
        end = len(data) if nl < 0 else nl + 1
        out.append(view[pos:end] if rng.random() < 0.7 else data[pos:end])
        if rng.random() < 0.05:
            out.append(b"")
        pos = end
    return out


def tables(tally: fast.Tally) -> dict[str, list[tuple[object, int]]]:
    dicts: dict[str, Counter[object]] = {f: Counter() for f in FIELDS}
    hll = fast.new_hll()
    tally.export(**dicts, hll=hll)  # type: ignore[arg-type]
    out = {k: list(v.items()) for k, v in dicts.items()}
    out["hll"] = [(bytes(hll), 0)]
    return out


@needs_ext
@pytest.mark.parametrize("parallel", [False, True])
def test_pieces_count_as_their_concatenation(parallel: bool) -> None:
    data = flood(60_000, seed=3)
    code = fast.program(compile_format(COMBINED))
    assert code is not None
    pieces = pieces_of(data, random.Random(5))
    assert len(pieces) > 4
    whole, split = fast.Tally(FIELDS, hll=True), fast.Tally(FIELDS, hll=True)
    expected = whole.count(data, code, check_time=True, parallel=False)
    got = split.count_many(pieces, code, check_time=True, parallel=parallel)
    assert got == expected
    assert expected[2], "the flood has lines only Python can judge (year 0000)"
    for a, b in got[2]:  # the offsets point at those lines in the concatenation
        assert data[a:b].startswith(b"198.18.") or data[a:b].startswith(b"2001:db8:")
        assert b"0000:00:00:00" in data[a:b]
    assert tables(split) == tables(whole)


@needs_ext
def test_a_piece_that_cuts_a_line_is_refused_before_anything_counts() -> None:
    code = fast.program(compile_format(COMBINED))
    assert code is not None
    data = flood(30_000, seed=4)
    half = len(data) // 2  # not at a line end
    assert data[half - 1 : half] != b"\n"
    for parallel in (False, True):
        tally = fast.Tally(FIELDS, hll=True)
        with pytest.raises(ValueError, match="newline"):
            tally.count_many([data[:half], data[half:]], code, parallel=parallel)
        assert all(n == 0 for n in tally.sizes().values())


@needs_ext
def test_stats_fed_pieces_equal_stats_fed_the_whole_chunk() -> None:
    data = flood(40_000, seed=6)
    a, b = HistoryCounts("combined"), HistoryCounts("combined")
    a.add_chunk(data, "web1")
    b.add_pieces(pieces_of(data, random.Random(8)), "web1")
    assert a.snapshot("www").to_json() == b.snapshot("www").to_json()
