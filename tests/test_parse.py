"""The log parser: every corpus line parsed or counted, the awkward real-world cases handled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.logs.logformat import compile_format
from opsconsole.logs.parse import LineParser

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():  # CI clones the project beside shared/
    CORPUS = Path(os.environ.get("OPSCONSOLE_CORPUS", "../shared/corpus")).resolve()

# (lines that are not blank, parsed as combined, unparsed) per corpus set, pinned.  Unparsed lines
# are the ones that are not access-log lines in combined format at all: CLF without referer/agent,
# nginx/apache error-log lines, syslog-wrapped lines, comments, a truncated last line.
PINNED = {
    "honeynet-2004-apache": (38487, 38483, 4),
    "secrepo-apache": (1906, 1906, 0),
    "elastic-apache-logs": (10000, 9999, 1),
    "crowdsec-hub-tests": (955, 765, 190),
    "fail2ban-http-fixtures": (80, 26, 54),
}


def corpus_files(name: str) -> list[Path]:
    return [
        p
        for p in sorted((CORPUS / name).rglob("*"))
        if p.is_file() and p.suffix not in (".md", ".tsv")
    ]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_corpus_line_is_parsed_or_counted_as_unparsed(name: str) -> None:
    parser = LineParser("combined")
    lines = parsed = unparsed = 0
    for path in corpus_files(name):
        chunk = parser.parse(path.read_bytes())
        lines += chunk.lines
        parsed += len(chunk.rows)
        unparsed += chunk.unparsed
    assert (lines, parsed, unparsed) == PINNED[name]
    assert parsed + unparsed == lines


def test_raw_shellcode_bytes_in_the_request_are_kept_as_bytes() -> None:
    parser = LineParser()
    data = (CORPUS / "honeynet-2004-apache").joinpath("access_log.25").read_bytes()
    rows = parser.parse(data).rows
    g = parser.format.groups
    non_utf8 = [r for r in rows if not _is_utf8(r[g["path"]])]
    assert non_utf8, "the honeynet set has raw binary requests"


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_awkward_but_valid_lines_parse_to_the_right_fields() -> None:
    parser = LineParser()
    g = parser.format.groups
    lines = [
        b'1.2.3.4 - - [24/Nov/2026:15:00:00 +0000] "GET /a?q=\\"x\\" HTTP/1.1" 200 5 "-" '
        b'"ua \\"q\\""',
        b'2001:db8::7 - bob [24/Nov/2026:15:00:01 +0100] "POST /login HTTP/2.0" 403 - "-" '
        b'"curl/8"  ',
        b'5.6.7.8 - - [24/Nov/2026:15:00:02 +0000] "-" 400 0 "-" "-"\r',
        b'5.6.7.9 - - [24/Nov/2026:15:00:03 +0000] "" 400 0 "-" "-" "198.18.0.1"',
    ]
    chunk = parser.parse(b"\n".join(lines) + b"\n")
    assert chunk.unparsed == 0
    r0, r1, r2, r3 = chunk.rows
    assert r0[g["path"]] == b'/a?q=\\"x\\"' and r0[g["agent"]] == b'ua \\"q\\"'
    assert r1[g["client"]] == b"2001:db8::7" and r1[g["net"]] == b"" and r1[g["status"]] == b"403"
    assert r1[g["method"]] == b"POST"
    assert r2[g["path"]] == b"-" and r2[g["status"]] == b"400"
    assert r3[g["client"]] == b"5.6.7.9" and r3[g["path"]] == b""
    t0 = parser.epoch(r0[g["time"]])
    assert t0 is not None and parser.epoch(r1[g["time"]]) == t0 + 1 - 3600


def test_a_custom_nginx_log_format_with_extra_fields_is_compiled() -> None:
    fmt = (
        '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
        '"$http_referer" "$http_user_agent" $request_time "$host"'
    )
    parser = LineParser(fmt)
    line = (
        b'198.18.7.7 - - [24/Nov/2026:15:00:00 +0000] "GET /x HTTP/1.1" 404 153 "-" '
        b'"bot/1" 0.004 "shop.example.org"\n'
    )
    chunk = parser.parse(line)
    assert chunk.unparsed == 0
    row = chunk.rows[0]
    g = parser.format.groups
    assert (row[g["client"]], row[g["path"]], row[g["host"]]) == (
        b"198.18.7.7",
        b"/x",
        b"shop.example.org",
    )


@pytest.mark.parametrize(
    "fmt,why",
    [
        ("$status $request", "remote_addr"),
        ("$remote_addr $status", "time_local"),
        ("$remote_addr [$time_local]", "status"),
        ("", "one line"),
    ],
)
def test_unusable_log_formats_are_refused_with_the_reason(fmt: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        compile_format(fmt)


def test_garbage_never_stops_the_parser_and_good_lines_around_it_still_count() -> None:
    parser = LineParser()
    good = b'1.2.3.4 - - [24/Nov/2026:15:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n'
    garbage = (
        bytes(b for b in range(256) if b != 10)
        + b"\n"
        + b"\x00" * 1000
        + b"\n"
        + b'"' * 5000
        + b"\n"
    )
    chunk = parser.parse(good + garbage + good)
    assert len(chunk.rows) == 2 and chunk.unparsed == 3
    assert len(chunk.unparsed_samples) == 3


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_either_parsed_or_counted(data: bytes) -> None:
    parser = LineParser()
    chunk = parser.parse(data)
    assert len(chunk.rows) + chunk.unparsed == chunk.lines


def test_a_time_that_matches_the_shape_but_is_not_a_date_is_unparsed() -> None:
    from opsconsole.stats.history import HistoryCounts

    stats = HistoryCounts()
    stats.add_chunk(b'1.2.3.4 - - [24/Foo/2026:15:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "u"\n')
    snap = stats.snapshot("www")
    assert (snap.requests, snap.unparsed) == (0, 1)
