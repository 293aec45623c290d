"""The aggregating agent's parts, without servers: it parses and counts as the console does
(every corpus file, in every format the console compiles), its output is checked before it is
counted, and an interpreter that cannot run it says why.  The agent itself runs as a server
runs it — ``python3 -`` with its source on stdin — through the local transport."""

from __future__ import annotations

import ast
import json
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from test_fastcount import CORPUS, corpus_files
from test_fastcount_formats import FORMATS, render

from opsconsole.config import load_config
from opsconsole.errors import ConfigError
from opsconsole.logs import agent
from opsconsole.logs.aggregate import (
    AgentFollower,
    AgentUnavailable,
    _messages,
    agent_program,
    format_params,
    read_rows,
)
from opsconsole.logs.logformat import COMBINED, compile_format
from opsconsole.logs.parse import LineParser
from opsconsole.logs.summary import RowDecoder, SummaryError, decode_summary
from opsconsole.stats.sketch import hash64
from opsconsole.stats.snapshot import subnet_of
from opsconsole.stats.window import LiveWindow
from opsconsole.transport.local import LocalTransport

ALL_FORMATS = {"combined": COMBINED, **FORMATS}


_TIME = re.compile(
    rb"\[\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:[\d:]{8} [+-]\d{4}\]"
)


def corpus_chunk(fmt: str, recent: bool = False) -> bytes:
    """Every corpus file's lines in ``fmt``; ``recent``: re-timed to 40 a second, ending now
    (what a live window holds: its ring keeps 15 minutes)."""
    lines = b"".join(p.read_bytes() for p in corpus_files()).split(b"\n")
    if recent:
        start = int(time.time()) - len(lines) // 40 - 5
        lines = [
            _TIME.sub(
                time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime(start + i // 40)).encode(),
                line,
            )
            for i, line in enumerate(lines)
        ]
    return b"\n".join(render(line, fmt, i) for i, line in enumerate(lines)) + b"\n"


def test_the_agent_is_python_3_6_and_imports_only_the_standard_library() -> None:
    tree = ast.parse(agent_program(), feature_version=(3, 6))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    stdlib = {
        "base64",
        "hashlib",
        "heapq",
        "ipaddress",
        "json",
        "os",
        "re",
        "sys",
        "time",
        "collections",
        "stat",
        "typing",
    }
    assert imported <= stdlib, imported - stdlib


def test_the_agents_subnets_and_hashes_are_the_consoles() -> None:
    rng = random.Random(3)
    clients = [b"2001:db8::1", b"::1", b"::ffff:192.0.2.1", b"fe80::1%eth0", b"1:2:0::",
               b"0:0:5::9", b"2001:DB8:AB:CD::1", b"example.org", b"-", b"\xff\xfe",
               b"300.1.1.1", b""]  # fmt: skip
    clients += [b"%d.%d.%d.%d" % tuple(rng.randrange(256) for _ in range(4)) for _ in range(200)]
    clients += [b":".join(b"%x" % rng.randrange(65536) for _ in range(8)) for _ in range(200)]
    for c in clients:
        assert agent.subnet_of(c) == subnet_of(c), c
        assert agent.hash64(c) == hash64(c)


@pytest.mark.skipif(not corpus_files(), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", ALL_FORMATS)
def test_the_agents_summaries_count_every_corpus_file_as_the_console_does(name: str) -> None:
    """Every corpus file in each format: the live window fed the agent's summaries equals the
    window fed the raw lines, field for field (no second here outgrows the cut-off)."""
    fmt = compile_format(ALL_FORMATS[name])
    chunk = corpus_chunk(ALL_FORMATS[name], recent=True)
    clock = time.time() + 1
    windows = [LiveWindow(fmt, window=900, clock=lambda: clock) for _ in range(2)]
    parser = agent.Parser(json.loads(json.dumps(format_params(fmt))))
    summary = agent.Summary(parser, 2000, 1024)
    lines = chunk.split(b"\n")
    for j in range(0, len(lines), 400):
        part = b"\n".join(lines[j : j + 400]) + b"\n"
        windows[0].add_chunk(part, "web1")
        summary.add(*parser.parse(part))
        if j % 2000 == 0:  # several messages, some seconds spread over two
            windows[1].add_summary(
                decode_summary(json.loads(json.dumps(summary.message()))), "web1"
            )
    windows[1].add_summary(decode_summary(json.loads(json.dumps(summary.message()))), "web1")
    a, b = (w.snapshot("www", top_n=50) for w in windows)
    assert a.requests > 100
    for field in ("requests", "unparsed", "unique_ips", "status", "servers", "per_second",
                  "top_ips", "top_subnets", "top_paths", "top_user_agents",
                  "estimated"):  # fmt: skip
        assert getattr(a, field) == getattr(b, field), field
    assert windows[0].servers["web1"] == windows[1].servers["web1"]
    assert sorted(a.unparsed_samples) == sorted(b.unparsed_samples)


@pytest.mark.skipif(not corpus_files(), reason=f"corpus not found at {CORPUS}")
@pytest.mark.parametrize("name", ["combined", "json", "vhost-iso"])
async def test_the_agents_rows_are_the_consoles_rows(name: str, tmp_path: Path) -> None:
    """``read`` mode run as on a server (``python3 -``): the rows it ships, decoded, are the
    tuples the console's own parser makes of the same bytes, line counts and all."""
    fmt = compile_format(ALL_FORMATS[name])
    chunk = corpus_chunk(ALL_FORMATS[name]) * 3
    log = tmp_path / "access.log"
    log.write_bytes(chunk)
    rows, lines, unparsed, done = [], 0, 0, 0
    async for parsed, step in read_rows(
        LocalTransport("web1"), str(log), fmt, 0, len(chunk), server="web1"
    ):
        rows += parsed.rows
        lines += parsed.lines
        unparsed += parsed.unparsed
        done += step
    want = LineParser(fmt).parse(chunk)
    g = sorted(fmt.groups.values())
    assert [tuple(r[i] for i in g) for r in rows] == [tuple(r[i] for i in g) for r in want.rows]
    assert (lines, unparsed, done) == (want.lines, want.unparsed, len(chunk))


async def test_a_missing_or_old_interpreter_is_named(tmp_path: Path) -> None:
    old = tmp_path / "python2"
    old.write_text(
        "#!/bin/sh\ncat >/dev/null\necho '  File \"<stdin>\", line 40' >&2\n"
        "echo 'SyntaxError: invalid syntax' >&2\nexit 1\n"
    )
    old.chmod(0o755)
    log = tmp_path / "a.log"
    log.write_bytes(b"")
    fmt = compile_format("combined")
    cases = {
        "python3-not-installed": "python3-not-installed not found on web1",
        str(old): f"{old} on web1 is too old for the agent (it needs Python 3.6+)",
    }
    for python, why in cases.items():
        follower = AgentFollower(_local, str(log), fmt, server="web1", python=python, files=[])
        with pytest.raises(AgentUnavailable) as caught:
            async for _ in follower.summaries():
                pass
        assert str(caught.value) == why
        with pytest.raises(AgentUnavailable) as caught:
            async for _ in read_rows(
                LocalTransport("web1"), str(log), fmt, 0, 0, server="web1", python=python
            ):
                pass
        assert str(caught.value) == why


async def _local() -> LocalTransport:
    return LocalTransport("web1")


async def test_the_agent_follows_a_growing_file_and_says_where_it_is(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    t = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()).encode()
    line = b'198.18.0.1 - - [%s] "GET / HTTP/1.1" 404 9 "-" "x"\n' % t
    log.write_bytes(line * 3)
    st = log.stat()
    fid = f"{st.st_dev}:{st.st_ino}"
    follower = AgentFollower(
        _local, str(log), compile_format("combined"), server="web1", files=[(fid, len(line))]
    )
    seen = 0
    async for summary in follower.summaries():
        seen += sum(sum(s.status.values()) for s in summary.seconds)
        if seen == 2:
            with log.open("ab") as f:
                f.write(line * 5 + b"partial")
        if seen >= 7:
            break
    await follower.close()
    assert seen == 7  # from the offset given, then what was appended, not the partial line
    assert follower.files == [(fid, len(line) * 8, True)]
    assert follower.version and follower.version.startswith("3.")


def bad_summaries() -> list[object]:
    good: list[Any] = [
        "24/Nov/2026:15:00:00 +0000",
        {"200": 1},
        {"client": {"1.2.3.4": 1}},
        [],
        None,
        0,
    ]
    return [
        {"lines": -1},
        {"lines": True},
        {"samples": "x"},
        {"secs": {}},
        {"secs": [good[:5]]},
        {"secs": [[1, *good[1:]]]},
        {"secs": [[good[0], {"200": "1"}, *good[2:]]]},
        {"secs": [[good[0], good[1], {"client": {"1.2.3.4": -5}}, *good[3:]]]},
        {"secs": [[*good[:4], "not base64!", 0]]},
        {"secs": [[*good[:4], None, -1]]},
        {"secs": [[str(good[0]) + "\u0100", *good[1:]]]},  # not a byte
    ]


@pytest.mark.parametrize("msg", bad_summaries())
def test_a_malformed_summary_is_refused_not_counted(msg: dict[str, object]) -> None:
    with pytest.raises(SummaryError):
        decode_summary(msg)


@pytest.mark.parametrize(
    "msg",
    [
        {"cols": [9], "new": [], "ids": [[0]]},
        {"cols": [0], "new": [[-1, ["a"]]], "ids": [[0]]},
        {"cols": [0], "new": [[0, ["a"]]], "ids": [[-1]]},
        {"cols": [0], "new": [[0, ["a"]]], "ids": [[3]]},
        {"cols": [0, 1], "new": [[0, ["a"]], [1, ["b"]]], "ids": [[0], [0, 0]]},
        {"cols": [0], "new": [[0, [1]]], "ids": [[0]]},
        {"new": [], "ids": []},
    ],
)
def test_malformed_rows_are_refused(msg: dict[str, object]) -> None:
    with pytest.raises(SummaryError):
        RowDecoder(7).decode(msg)


class Feed:
    def __init__(self, data: bytes) -> None:
        self.data = [data, b""]

    async def read(self, n: int = 65536) -> bytes:
        return self.data.pop(0)


@pytest.mark.parametrize("data", [b"not json\n", b"[1, 2]\n", b"\x00\xff\xfe garbage\n"])
async def test_output_that_is_not_the_agents_is_refused(data: bytes) -> None:
    with pytest.raises(SummaryError):
        async for _ in _messages(Feed(data)):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("mode", ["raw", "aggregate", "auto"])
def test_a_service_chooses_how_it_is_read(tmp_path: Path, mode: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[servers.a]\nhost = "local"\n[services.s]\nservers = ["a"]\naccess_log = "/l"\n'
        f'mode = "{mode}"\n'
    )
    assert load_config(str(cfg)).service("s").mode == mode


@pytest.mark.parametrize("value", ['"fast"', "1", '"Raw"', "true"])
def test_a_mode_that_is_not_one_is_refused(tmp_path: Path, value: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[servers.a]\nhost = "local"\n[services.s]\nservers = ["a"]\naccess_log = "/l"\n'
        f"mode = {value}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(cfg))
    assert "services.s.mode" in str(caught.value) and "raw" in str(caught.value)


def test_the_agents_client_counts_survive_json_as_bytes() -> None:
    fmt = compile_format("combined")
    parser = agent.Parser(format_params(fmt))
    t = b"24/Nov/2026:15:00:00 +0000"
    chunk = b'1.2.3.4 - - [%s] "GET /\xe9\xff HTTP/1.1" 200 1 "-" "\xc3\xa9 \x01"\n' % t
    summary = agent.Summary(parser, 2000, 1024)
    summary.add(*parser.parse(chunk))
    decoded = decode_summary(json.loads(json.dumps(summary.message())))
    second = decoded.seconds[0]
    assert second.dims["path"] == Counter({b"/\xe9\xff": 1})
    assert second.dims["agent"] == Counter({b"\xc3\xa9 \x01": 1})
