"""The C counter (opsconsole.stats._fastcount) gives exactly what the combined regex gives.

Every comparison is against the live regex of ``compile_format("combined")`` (``findall`` over the
chunk, then one ``Counter`` per field from ``itemgetter`` on ``format.groups``), so a change in
logformat.py shows up here.  Skipped only when the extension is not built; CI sets
``OPSCONSOLE_REQUIRE_FASTCOUNT=1`` so that a missing build fails instead.
"""

from __future__ import annotations

import gc
import os
import sys
import tracemalloc
from collections import Counter
from operator import itemgetter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsconsole.logs.logformat import COMBINED, compile_format
from opsconsole.logs.parse import LineParser
from opsconsole.stats import fast

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():  # CI clones the project beside shared/
    CORPUS = Path(os.environ.get("OPSCONSOLE_CORPUS", "../shared/corpus")).resolve()

needs_ext = pytest.mark.skipif(
    not fast.available(),
    reason="opsconsole.stats._fastcount is not built (no C compiler at install time?) or is "
    "disabled by OPSCONSOLE_NO_FASTCOUNT; "
    "the pure-Python parser is used instead",
)

FORMAT = compile_format("combined")
FIELDS = ("clients", "nets", "others", "paths", "agents", "methods", "seconds")

Result = tuple[int, int, dict[str, Counter[Any]]]


def regex_counts(chunk: bytes) -> Result:
    """What the Python path computes: findall + Counter per field."""
    g = FORMAT.groups
    rows = FORMAT.regex.findall(chunk)
    lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)

    def col(name: str) -> Counter[Any]:
        return Counter(map(itemgetter(g[name]), rows))

    nets = col("net")
    nets.pop(b"", None)
    counts = {
        "clients": col("client"),
        "nets": nets,
        "others": Counter(r[g["client"]] for r in rows if not r[g["net"]]),
        "paths": col("path"),
        "agents": col("agent"),
        "methods": col("method"),
        "seconds": Counter(map(itemgetter(g["time"], g["status"]), rows)),
    }
    return lines, len(rows), counts


def count_into(
    chunk: bytes | bytearray | memoryview, counts: dict[str, Counter[Any]], hll: bytearray | None
) -> tuple[int, int]:
    c = counts
    return fast.count_combined(
        chunk, c["clients"], c["nets"], c["others"], c["paths"], c["agents"], c["methods"],
        c["seconds"], hll,
    )  # fmt: skip


def c_counts(chunk: bytes | bytearray | memoryview, hll: bytearray | None = None) -> Result:
    counts: dict[str, Counter[Any]] = {name: Counter() for name in FIELDS}
    lines, parsed = count_into(chunk, counts, hll)
    return lines, parsed, counts


def assert_same(chunk: bytes) -> Result:
    expected = regex_counts(chunk)
    got = c_counts(chunk)
    assert got[:2] == expected[:2], "(lines, parsed) differ"
    for name in FIELDS:
        assert got[2][name] == expected[2][name], f"{name} differ"
        # Same first-seen key order as Counter.update (ties in top lists stay the same).
        assert list(got[2][name]) == list(expected[2][name]), f"{name} key order differs"
    return got


GOOD = (
    b'198.51.100.7 - - [24/Nov/2026:15:00:00 +0100] "GET /index.html?q=1 HTTP/1.1" 200 512 '
    b'"https://example.org/" "Mozilla/5.0 (X11; Linux x86_64)"'
)
TEMPLATES = [
    GOOD,
    b'2001:db8::1 - alice [01/Feb/2024:00:00:59 -0000] "POST /api/v1/login HTTP/2.0" 401 - "-" '
    b'"curl/8.0" extra "fields"',
    b'host.example - - [31/Dec/1999:23:59:59 +1400] "GET /a\\"b\\\\c d\\ e HTTP/1.0" 404 0 '
    b'"ref \\" quoted" "agent \\\\"\r',
    b'10.0.0.1 - - [09/Sep/2009:09:09:09 +0900] "-" 400 150 "-" "-"',
    b'10.0.0.12 - - [09/Sep/2009:09:09:09 +0900] "" 400 150 "" ""',
]


# --------------------------------------------------------------- the build itself


def test_extension_is_built_when_required() -> None:
    if os.environ.get("OPSCONSOLE_REQUIRE_FASTCOUNT") != "1":
        pytest.skip("OPSCONSOLE_REQUIRE_FASTCOUNT is not set to 1")
    assert fast.available(), (
        "opsconsole.stats._fastcount is not built: install with a C compiler and Python "
        "headers (pip install -e '.[test]' builds it) or unset OPSCONSOLE_REQUIRE_FASTCOUNT"
    )


@needs_ext
def test_supports_the_combined_regex() -> None:
    assert fast.supports(FORMAT), (
        f"compile_format('combined') builds a regex the C scanner does not know "
        f"({fast.why_not(FORMAT)}): update opsconsole/stats/_fastcount.c and fast.py's pieces "
        "(until then the Python path is used)"
    )
    assert fast.supports(compile_format(COMBINED + ' "$host"'))  # test_fastcount_formats.py


# --------------------------------------------------------------- equivalence


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return [p for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.suffix not in (".md", ".tsv")]


@needs_ext
@pytest.mark.skipif(not corpus_files(), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file_counts_equal_the_regex(path: Path) -> None:
    data = path.read_bytes()
    assert_same(data)
    assert_same(data.replace(b"\n", b"\r\n"))
    # Chunked as the readers chunk it: complete lines; the counts add up the same.
    parser = LineParser("combined")
    assert c_counts(data)[1] == len(parser.parse(data).rows)


@needs_ext
def test_every_single_byte_edit_of_a_good_line() -> None:
    """Insert, replace and delete each byte value at every position of the templates."""
    for template in TEMPLATES:
        lines = []
        for i in range(len(template) + 1):
            lines.append(template[:i] + template[i + 1 :])
            for b in range(256):
                byte = bytes([b])
                lines.append(template[:i] + byte + template[i:])
                if i < len(template):
                    lines.append(template[:i] + byte + template[i + 1 :])
        # A newline edit splits a line: that is fine, it is still a chunk of lines.
        assert_same(b"\n".join(lines) + b"\n")


@needs_ext
def test_awkward_chunks() -> None:
    cases = [
        b"",
        b"\n",
        b"\n\n\n",
        GOOD,  # no newline at the end
        GOOD + b"\n",
        GOOD + b"\r\n" + GOOD + b"\r\n",
        b"\n".join(TEMPLATES),
        GOOD.replace(b"GET", b"G\x00T") + b"\n" + GOOD.replace(b"Mozilla", b"Mo\x00zilla"),
        GOOD.replace(b"/index.html", "/ü€".encode() + bytes(range(0x80, 0x100))),
        b'"' * 1000,
        b'"\n' * 1000,
        b"\\" * 1001,
        GOOD[: GOOD.rindex(b'"')] + b"\\",  # a lone backslash where the closing quote would be
        GOOD[: GOOD.rindex(b'"')] + b'\\"',  # the closing quote escaped
        GOOD[: GOOD.rindex(b'"')] + b'\\\\"',  # an escaped backslash, then the quote
        GOOD.replace(b"198.51.100.7", b"1.2.3.4x"),
        GOOD.replace(b"198.51.100.7", b"1234.1.1.1"),
        GOOD.replace(b"198.51.100.7", b"1.2.3.1234"),
        GOOD.replace(b"198.51.100.7", b"1.2.3"),
        GOOD.replace(b"198.51.100.7", b'1.2.3.4"'),
        GOOD.replace(b"198.51.100.7", b"1.2.3.4\x0b"),
        GOOD.replace(b"Nov", b"nov"),
        GOOD.replace(b"Nov", b"Foo"),
        GOOD.replace(b"200", b"2000"),
        GOOD.replace(b" 512 ", b' 5"12 '),
        GOOD.replace(b" 512 ", b"  "),
        GOOD + b"\x0c",  # \f is \s but not a tolerated trailing byte
        GOOD + b"\t\x00\xff anything",
    ]
    for chunk in cases:
        assert_same(chunk)
        assert_same(chunk + b"\n")


@needs_ext
def test_megabyte_lines() -> None:
    mb = 1 << 20
    assert_same(GOOD.replace(b"Mozilla", b"M" * mb) + b"\n" + GOOD)
    assert_same(GOOD.replace(b"/index.html", b"/" + b"\\x" * (mb // 2)))
    assert_same(b'"' * mb)
    assert_same(b"\\" * mb + b'"')
    assert_same(b"1" * mb)
    assert_same(b" - " * (mb // 3))


@needs_ext
def test_more_distinct_keys_than_the_c_table_holds() -> None:
    """Past 65536 distinct keys a C table is flushed mid-chunk; later repeats still add up."""
    head, tail = GOOD.split(b"/index.html?q=1")
    assert_same(b"".join(b"%s/p%d%s\n" % (head, i % 100_000, tail) for i in range(150_000)))


@needs_ext
def test_never_reads_past_the_buffer() -> None:
    """Views that stop inside a line whose continuation would make it parse."""
    for template in TEMPLATES:
        backing = template + b'"\n' + GOOD
        for cut in range(len(template) + 1):
            view = memoryview(backing)[:cut]
            expected = regex_counts(bytes(view))
            assert c_counts(view) == expected


@needs_ext
def test_bytearray_and_memoryview_chunks_are_accepted() -> None:
    chunk = b"\n".join(TEMPLATES)
    expected = regex_counts(chunk)
    assert c_counts(bytearray(chunk)) == expected
    assert c_counts(memoryview(chunk)) == expected


# Bytes that matter to the scanner, often; any byte sometimes.
SPECIAL = b' "\\\r\n\t\x00\x0b\xff-[]/:.+0123456789aZ'
special_bytes = st.binary(max_size=3) | st.lists(
    st.sampled_from([bytes([b]) for b in SPECIAL]), max_size=3
).map(b"".join)


@st.composite
def combined_line(draw: st.DrawFn) -> bytes:
    octet = st.integers(0, 9999).map(lambda n: str(n).encode())
    client = draw(
        st.sampled_from([b"2001:db8::7", b"host.example", b"-", b"1.2.3.4x", b"::ffff:1.2.3.4"])
        | st.tuples(octet, octet, octet, octet).map(b".".join)
    )
    user = draw(st.sampled_from([b"-", b"", b"bob", b'a"b', b"x["]))
    month = draw(st.sampled_from([b"Jan", b"May", b"Dec", b"Foo", b"jan", b"MAY"]))
    time = b"%02d/%s/%04d:%02d:%02d:%02d %s%04d" % (
        draw(st.integers(0, 99)), month, draw(st.integers(0, 9999)), draw(st.integers(0, 99)),
        draw(st.integers(0, 99)), draw(st.integers(0, 99)), draw(st.sampled_from([b"+", b"-"])),
        draw(st.integers(0, 9999)),
    )  # fmt: skip
    text = st.lists(
        st.sampled_from([b"a", b"/", b" ", b"\\", b'\\"', b"\\\\", b"%", b"\xc3\xbc", b"\r"]),
        max_size=8,
    ).map(b"".join)
    method = draw(st.sampled_from([b"GET", b"POST", b"", b"get", b"M-SEARCH"]))
    request = method + draw(st.sampled_from([b" ", b"", b"  "])) + draw(text) + draw(
        st.sampled_from([b" HTTP/1.1", b"", b" HTTP/1.0 x"])
    )  # fmt: skip
    status = draw(st.sampled_from([b"200", b"404", b"20", b"2000", b"abc"]))
    size = draw(st.sampled_from([b"123", b"-", b"0", b'1"2', b""]))
    tail = draw(st.sampled_from([b"", b" ", b"\r", b"\t", b' "x" "y"', b"x", b"\x0c"]))
    return b'%s - %s [%s] "%s" %s %s "%s" "%s"%s' % (
        client, user, time, request, status, size, draw(text), draw(text), tail
    )  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    line = bytearray(draw(combined_line()))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(line)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(special_bytes)
        if op == "insert":
            line[pos:pos] = piece
        elif op == "delete":
            del line[pos : pos + len(piece) + 1]
        else:
            line[pos : pos + len(piece)] = piece
    return bytes(line)


@needs_ext
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=12), st.booleans())
def test_mutated_lines_count_like_the_regex(lines: list[bytes], final_newline: bool) -> None:
    assert_same(b"\n".join(lines) + (b"\n" if final_newline else b""))


@needs_ext
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000) | st.lists(special_bytes, max_size=200).map(b"".join))
def test_random_bytes_count_like_the_regex(chunk: bytes) -> None:
    assert_same(chunk)


# --------------------------------------------------------------- dict semantics


@needs_ext
def test_adds_to_existing_counts_and_accepts_none() -> None:
    chunk = b"\n".join(TEMPLATES * 3)
    _, _, once = regex_counts(chunk)
    counts: dict[str, Counter[Any]] = {name: Counter() for name in FIELDS}
    count_into(chunk, counts, None)
    count_into(chunk, counts, None)
    for name in FIELDS:
        assert counts[name] == once[name] + once[name]
    # None skips a field; plain dicts work like Counters.
    paths: dict[bytes, int] = {}
    assert fast.count_combined(chunk, None, None, None, paths, None, None, None, None) == (15, 15)
    assert paths == once["paths"]


@needs_ext
def test_big_and_non_int_values() -> None:
    path = b"/index.html?q=1"
    for start in (2**63 - 2, 2**70, -(2**65), 1.5, True):
        paths: dict[bytes, Any] = {path: start}
        fast.count_combined(GOOD + b"\n" + GOOD, None, None, None, paths, None, None, None, None)
        assert paths == {path: start + 2}
    paths = {path: "text"}
    with pytest.raises(TypeError):
        fast.count_combined(GOOD, None, None, None, paths, None, None, None, None)


@needs_ext
def test_argument_errors() -> None:
    with pytest.raises(TypeError):
        fast.count_combined("text", None, None, None, None, None, None, None, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fast.count_combined(GOOD, [], None, None, None, None, None, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16384"):
        fast.count_combined(GOOD, None, None, None, None, None, None, None, bytearray(10))
    with pytest.raises(BufferError):  # read-only
        fast.count_combined(GOOD, None, None, None, None, None, None, None, bytes(16384))  # type: ignore[arg-type]
    # Buffers are released on every path: a bytearray can still be resized afterwards.
    chunk, hll = bytearray(GOOD), fast.new_hll()
    with pytest.raises(TypeError):
        fast.count_combined(chunk, None, None, None, None, None, None, [], hll)  # type: ignore[arg-type]
    fast.count_combined(chunk, None, None, None, {b"/index.html?q=1": 1}, None, None, None, hll)
    with pytest.raises(TypeError):
        bad: dict[bytes, Any] = {b"/index.html?q=1": "x"}
        fast.count_combined(chunk, None, None, None, bad, None, None, None, hll)
    chunk.extend(b"\n")
    hll.append(0)
    hll.pop()


@needs_ext
def test_no_leaks_over_many_calls() -> None:
    chunk = b"\n".join([*TEMPLATES, b"garbage", b"", GOOD.replace(b"GET", b"PUT")]) + b"\n"
    hll = fast.new_hll()
    kept: dict[str, Counter[Any]] = {name: Counter() for name in FIELDS}

    def call(i: int) -> None:
        if i % 2:
            count_into(chunk, kept, hll)  # counts grow past the small ints
        else:
            count_into(chunk, {name: Counter() for name in FIELDS}, hll)

    for i in range(1000):
        call(i)
    refs = sys.getrefcount(chunk), sys.getrefcount(hll)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100_000):
            call(i)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes still allocated after 10**5 calls"
    assert (sys.getrefcount(chunk), sys.getrefcount(hll)) == refs
    assert kept["clients"][b"198.51.100.7"] == 2 * 50_500


# --------------------------------------------------------------- HyperLogLog


@needs_ext
def test_xxh64_reference_values() -> None:
    assert fast.xxh64(b"") == 0xEF46DB3751D8E999
    assert fast.xxh64(b"abc") == 0x44BC2CF5AD770999
    assert fast.xxh64(bytes(range(100))) == 0x6AC1E58032166597
    assert fast.xxh64(b"198.18.7.1", 42) == 0xC81DFB3E780B7A7D


@needs_ext
def test_hll_within_3_percent_for_a_million_ips() -> None:
    n, step = 1_000_000, 100_000
    tail = b' - - [24/Nov/2026:15:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "-"\n'
    hll, other = fast.new_hll(), fast.new_hll()
    nets: Counter[bytes] = Counter()
    for start in range(0, n, step):
        ips = [b"%d.%d.%d.%d" % (10 + (i >> 24), (i >> 16) & 255, (i >> 8) & 255, i & 255)
               for i in range(start, start + step)]  # fmt: skip
        chunk = tail.join(ips) + tail
        counted = fast.count_combined(chunk, None, nets, None, None, None, None, None, hll)
        assert counted == (step, step)
        fast.hll_add(other, ips)  # the Python-side feed hashes the same way
    assert len(nets) == -(-n // 256)
    estimate = fast.hll_estimate(hll)
    assert abs(estimate - n) / n < 0.03, estimate
    assert other == hll


@needs_ext
@pytest.mark.parametrize("n", [0, 1, 2, 10, 100, 1000, 20_000, 60_000, 200_000])
def test_hll_small_and_middle_ranges(n: int) -> None:
    hll = fast.new_hll()
    keys = [b"client-%d" % i for i in range(n)]
    fast.hll_add(hll, keys)
    fast.hll_add(hll, keys[: n // 2])  # repeats change nothing
    estimate = fast.hll_estimate(hll)
    assert abs(estimate - n) <= max(1, 0.02 * n), estimate


@needs_ext
def test_hll_merge_is_the_union() -> None:
    a, b = fast.new_hll(), fast.new_hll()
    fast.hll_add(a, (b"k%d" % i for i in range(30_000)))
    fast.hll_add(b, (b"k%d" % i for i in range(20_000, 50_000)))
    fast.hll_merge(a, b)
    assert abs(fast.hll_estimate(a) - 50_000) < 1000
    with pytest.raises(ValueError):
        fast.hll_estimate(bytes(100))
    with pytest.raises(ValueError):
        fast.hll_estimate(b"\xff" * fast.HLL_REGISTERS)
