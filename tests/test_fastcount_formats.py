"""The C scanner on custom log formats: the same counts as the format's regex, or no fast path.

Real servers log custom formats (``combined`` plus ``$request_time``, ``$host``, upstream
timings, ISO 8601 or ``$msec`` times, ``escape=json`` lines).  Every comparison here is against
the live regex of ``compile_format(fmt)`` (the Python path), on the real-world corpus rendered
in each format, on mutated lines and on times only Python can judge; and at the level of what
``stats --since all`` prints, between :class:`HistoryCounts` with and without the accelerator.
Skipped only when the extension is not built (CI requires it, see test_fastcount.py).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from operator import itemgetter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fastcount import CORPUS, corpus_files, needs_ext

from opsconsole.logs.logformat import COMBINED, LogFormat, compile_format
from opsconsole.logs.parse import LineParser, parse_time_local
from opsconsole.stats import fast
from opsconsole.stats.history import HistoryCounts

FORMATS = {
    "timed": COMBINED + " rt=$request_time host=$host",
    "upstream": (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent" "$http_x_forwarded_for" $request_time '
        "$upstream_response_time $upstream_addr"
    ),
    "vhost-iso": (
        '$host $remote_addr [$time_iso8601] "$request_method $request_uri" $status '
        '"$http_user_agent" $request_time'
    ),
    "json": (
        '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request",'
        '"status":$status,"bytes":$body_bytes_sent,"referer":"$http_referer",'
        '"agent":"$http_user_agent","rt":$request_time}'
    ),
    "msec": (
        '$msec $remote_addr "$request" $status $body_bytes_sent "$http_user_agent" '
        "$upstream_cache_status"
    ),
    "bare-uri": "$remote_addr [$time_local] $status $request_uri $http_user_agent",
}
FIELDS = ("clients", "nets", "others", "paths", "agents", "methods", "seconds")

_LINE = re.compile(
    rb'^(\S+) (\S+) (\S+) \[([^\]]*)\] "((?:[^"\\]|\\.)*)" (\S+) (\S+)'
    rb'(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?'
)


def render(line: bytes, fmt: str, n: int) -> bytes:
    """A corpus line (combined or common) as nginx would have logged it with ``fmt``; a line
    that is not one stays as it is (garbage is garbage in every format)."""
    m = _LINE.match(line)
    if not m:
        return line
    client, user, _, local, request, status, size, referer, agent = m.groups()
    epoch = parse_time_local(local)
    iso = (
        datetime.fromtimestamp(epoch).astimezone().isoformat().encode()
        if epoch is not None and epoch > 0
        else local
    )
    method, _, rest = request.partition(b" ")
    uri = rest.partition(b" ")[0] or b"/"
    values = {
        "remote_addr": client, "remote_user": user, "time_local": local, "time_iso8601": iso,
        "msec": b"%d.%03d" % (epoch, n % 1000) if epoch is not None and epoch > 0 else local,
        "request": request, "request_method": method, "request_uri": uri, "status": status,
        "body_bytes_sent": size, "http_referer": referer or b"-", "http_user_agent": agent or b"-",
        "request_time": b"0.%03d" % (n % 1000), "host": b"shop.example.org",
        "http_x_forwarded_for": b"-", "upstream_response_time": b"0.%03d" % (n % 997),
        "upstream_addr": b"127.0.0.1:8080", "upstream_cache_status": [b"HIT", b"MISS", b"-"][n % 3],
    }  # fmt: skip
    return re.sub(rb"\$([a-z0-9_]+)", lambda v: values[v.group(1).decode()], fmt.encode())


def regex_counts(fmt: LogFormat, chunk: bytes) -> tuple[int, int, dict[str, Counter[Any]]]:
    """What the Python path computes: findall + Counter per field (seconds as epochs)."""
    g = fmt.groups
    rows = fmt.regex.findall(chunk)
    lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)

    def col(name: str) -> Counter[Any]:
        return Counter(map(itemgetter(g[name]), rows)) if name in g else Counter()

    nets = col("net")
    nets.pop(b"", None)
    epoch = LineParser(fmt).parse_time
    counts = {
        "clients": col("client"),
        "nets": nets,
        "others": Counter(r[g["client"]] for r in rows if not r[g["net"]]),
        "paths": col("path"),
        "agents": col("agent"),
        "methods": col("method"),
        "seconds": Counter((epoch(r[g["time"]]), r[g["status"]]) for r in rows),
    }
    return lines, len(rows), counts


def c_counts(
    fmt: LogFormat, chunk: bytes, check_time: bool = False
) -> tuple[int, int, dict[str, Counter[Any]], list[tuple[int, int]]]:
    code = fast.program(fmt)
    assert code is not None, fast.why_not(fmt)
    c: dict[str, Counter[Any]] = {name: Counter() for name in FIELDS}
    g = fmt.groups
    lines, parsed, unsure = fast.count(
        chunk, code, c["clients"], c["nets"], c["others"],
        c["paths"] if "path" in g else None, c["agents"] if "agent" in g else None,
        c["methods"] if "method" in g else None, c["seconds"], None, check_time=check_time,
    )  # fmt: skip
    epoch = LineParser(fmt).parse_time
    seconds: Counter[Any] = Counter()
    for (t, status), n in c["seconds"].items():
        seconds[(epoch(t), status)] += n
    c["seconds"] = seconds
    return lines, parsed, c, unsure


def assert_same(fmt: LogFormat, chunk: bytes) -> int:
    expected = regex_counts(fmt, chunk)
    lines, parsed, got, _ = c_counts(fmt, chunk)
    assert (lines, parsed) == expected[:2], "(lines, parsed) differ"
    for name in FIELDS:
        assert got[name] == expected[2][name], f"{name} differ"
        if name != "seconds":  # same first-seen order as Counter.update: ties stay the same
            assert list(got[name]) == list(expected[2][name]), f"{name} key order differs"
    return parsed


def history(fmt: LogFormat, chunks: list[bytes], accelerate: bool) -> HistoryCounts:
    h = HistoryCounts(fmt, clock=lambda: 2_000_000_000.0, accelerate=accelerate)
    for chunk in chunks:
        h.add_chunk(chunk, "web1")
    return h


def assert_same_stats(fmt: LogFormat, chunks: list[bytes]) -> None:
    """What ``stats --since all`` shows, with the accelerator and without it."""
    fast_h, slow_h = history(fmt, chunks, True), history(fmt, chunks, False)
    assert fast_h.hll is not None and slow_h.hll is None  # the two paths really ran
    a, b = fast_h.snapshot("www", top_n=50), slow_h.snapshot("www", top_n=50)
    assert a == b
    assert fast_h.servers == slow_h.servers


# --------------------------------------------------------------- which formats go fast


@needs_ext
@pytest.mark.parametrize("name", FORMATS)
def test_common_custom_formats_run_on_the_fast_path(name: str) -> None:
    fmt = compile_format(FORMATS[name])
    assert fast.supports(fmt) and fast.why_not(fmt) is None
    assert fast.supports(compile_format("combined"))


@needs_ext
@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("$remote_addr:$status [$time_local]", "$remote_addr followed by ':'"),
        ('$remote_addr [$time_local] $status $host$request_uri "$http_user_agent"',
         "$host followed by $request_uri"),
        ("$remote_addr [$time_local] $status $request_method$request_uri",
         "$request_method followed by $request_uri"),
        ("$remote_addr [$time_local] $status $request_method/$request_uri", None),
        ("$remote_addr [$msec] $status", None),  # "]" ends a run of digits: fast
        ("$remote_addr $msec$status", "$msec followed by $status"),
    ],
)  # fmt: skip
def test_a_format_whose_pieces_can_end_in_several_places_falls_back(
    source: str, reason: str | None
) -> None:
    fmt = compile_format(source)
    if reason is None:
        assert fast.why_not(fmt) is None
        return
    why = fast.why_not(fmt)
    assert why is not None and why.startswith(reason) and "more than one possible end" in why
    assert not fast.supports(fmt)
    counts = HistoryCounts(fmt)
    assert counts.slow_path == why and counts.hll is None  # counted by the regex, correctly


# --------------------------------------------------------------- equivalence


@needs_ext
@pytest.mark.skipif(not corpus_files(), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", FORMATS)
def test_every_corpus_file_counts_like_the_regex_in_every_format(name: str) -> None:
    fmt = compile_format(FORMATS[name])
    total = matched = 0
    for path in corpus_files():
        lines = path.read_bytes().split(b"\n")
        chunk = b"\n".join(render(line, FORMATS[name], i) for i, line in enumerate(lines))
        matched += assert_same(fmt, chunk)
        assert_same(fmt, chunk.replace(b"\n", b"\r\n"))
        assert_same_stats(fmt, [chunk])
        total += len(lines)
    assert matched > total * 0.5  # the rendering is realistic: most corpus lines are requests


@st.composite
def mutated(draw: st.DrawFn, template: bytes) -> bytes:
    line = bytearray(template)
    special = b' "\\\r\t\x00\xff-[]/:.+,{}0123456789TZaZ'
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(line)))
        piece = bytes(draw(st.lists(st.sampled_from(list(special)), min_size=1, max_size=3)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            line[pos:pos] = piece
        elif op == "delete":
            del line[pos : pos + len(piece)]
        else:
            line[pos : pos + len(piece)] = piece
    return bytes(line)


TEMPLATE = (
    b'198.51.100.7 - - [24/Nov/2026:15:00:00 +0100] "GET /index.html?q=1 HTTP/1.1" 200 512 '
    b'"https://example.org/" "Mozilla/5.0 (X11; Linux x86_64)"'
)


@needs_ext
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_lines_count_like_the_regex_in_every_format(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(FORMATS)))
    fmt = compile_format(FORMATS[name])
    template = render(TEMPLATE, FORMATS[name], 7)
    lines = data.draw(st.lists(mutated(template), min_size=1, max_size=10))
    assert_same(fmt, b"\n".join(lines) + b"\n")


# --------------------------------------------------------------- times only Python can judge


ODD_TIMES = {
    "iso": [
        b"2026-13-01T00:00:00+00:00", b"2026-02-29T10:00:00Z", b"2024-02-29T10:00:00Z",
        b"2026-04-31T10:00:00+01:00", b"2026-11-24T24:00:00Z", b"2026-11-24T23:59:60Z",
        b"0000-01-01T00:00:00Z", b"2026-11-24T15:00:00+24:00", b"2026-11-24T15:00:00-23:59",
        b"9999-12-31T23:59:59-12:00", b"0001-01-01T00:00:00+01:00", b"2026-00-10T00:00:00Z",
    ],
    "msec": [
        b"1764000000.123", b"1764000000.9999", b"1" * 400 + b".5", b"0.000", b"17640000001234.5",
        b"999999999999.999",
    ],
    "local": [
        b"24/Nov/2026:15:00:00 +0100", b"24/Nov/0000:15:00:00 +0100", b"99/Feb/2026:99:99:99 -9999",
    ],
}  # fmt: skip
ODD_FORMATS = {
    "iso": '$remote_addr [$time_iso8601] "$request" $status',
    "msec": '$remote_addr $msec "$request" $status',
    "local": '$remote_addr [$time_local] "$request" $status',
}


@needs_ext
@pytest.mark.parametrize("kind", ODD_FORMATS)
def test_a_time_only_python_can_judge_is_counted_or_dropped_as_python_does(kind: str) -> None:
    fmt = compile_format(ODD_FORMATS[kind])
    chunk = b"".join(
        b'203.0.113.%d %s "GET /p%d HTTP/1.1" 200\n'
        % (i, (b"[%s]" if kind != "msec" else b"%s") % t, i)
        for i, t in enumerate(ODD_TIMES[kind] * 3)
    )
    lines, parsed, _, unsure = c_counts(fmt, chunk, check_time=True)
    assert lines == parsed + len(unsure) == 3 * len(ODD_TIMES[kind])  # every line has the shape
    assert unsure  # some times are left to Python…
    assert parsed  # …and the ordinary ones are not
    for a, b in unsure:
        assert chunk[a:b].startswith(b"203.0.113.") and b"\n" not in chunk[a:b]
    assert_same_stats(fmt, [chunk, chunk[: len(chunk) // 2]])
    slow = history(fmt, [chunk], False)
    assert 0 < slow.unparsed < slow.servers["web1"].lines  # Python dropped the impossible ones


@needs_ext
@pytest.mark.parametrize("since", ["all", "1h"])
def test_stats_says_in_one_line_when_a_format_is_read_the_slower_way(
    tmp_path: Any, since: str
) -> None:
    """The operator hears why a log_format is counted by the regex path, for a whole log and
    for a span alike; the numbers are right either way."""
    import json
    import os
    import subprocess
    import sys
    import time as _time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    log = tmp_path / "access.log"
    stamp = _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime())
    log.write_text("".join(f"198.51.100.{i}:404 [{stamp}]\n" for i in range(1, 31)))
    config = tmp_path / "config.toml"
    config.write_text(
        '[servers.here]\nhost = "local"\n\n[services.www]\nservers = ["here"]\n'
        f'access_log = "{log}"\nlog_format = "$remote_addr:$status [$time_local]"\n'
        f'url = "http://127.0.0.1:9/"\ncontrol_dir = "{tmp_path}/control"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "opsconsole", "--config", str(config), "stats", "www",
         "--since", since, "--json"],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["requests"] == 30
    notes = [line for line in proc.stderr.splitlines() if "slower regex path" in line]
    assert len(notes) == 1 and "$remote_addr followed by ':'" in notes[0]
