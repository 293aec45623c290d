"""Finding where a time begins in a log (``fleet.find_offset``), on a real file, real commands.

The console reads a saved slice of normal traffic (before a flood) and the window without the
flood in between; the slice's end is found by bisecting the file with small samples.  Run over
this machine's own shell (``host = "local"``): the same commands as over SSH.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from opsconsole.fleet import find_offset
from opsconsole.logs.logformat import compile_format
from opsconsole.logs.parse import LineParser
from opsconsole.transport import LocalTransport

LINE = (
    '198.51.100.{n} - - [01/Dec/2026:{h:02d}:{m:02d}:{s:02d} +0000] "GET /p{n} HTTP/1.1" 200 5 '
    '"-" "x"\n'
)


def write(path: Path, seconds: int, step: int = 1) -> list[tuple[int, int]]:
    """A log of one line per ``step`` seconds from 10:00:00; (offset, second) of each line."""
    out, offset = [], 0
    with path.open("w") as f:
        for i in range(0, seconds, step):
            h, rest = divmod(36000 + i, 3600)
            line = LINE.format(n=i % 250, h=h, m=rest // 60, s=rest % 60)
            out.append((offset, i))
            f.write(line)
            offset += len(line)
    return out


def test_the_first_line_at_a_time_is_found_exactly(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lines = write(log, 20000)  # ~1.9 MB: the bisection runs, then the last sample
    size = log.stat().st_size
    parser = LineParser(compile_format("combined"))
    t = LocalTransport("here")
    base = 1796119200  # 01/Dec/2026 10:00:00 UTC

    async def at(second: float) -> int:
        return await find_offset(t, str(log), size, base + second, parser)

    for second in (0, 1, 777, 10001, 19999):
        want = next(o for o, s in lines if s >= second)
        assert asyncio.run(at(second)) == want, second
    assert asyncio.run(at(-50)) == 0
    assert asyncio.run(at(20000)) == size  # every line is older
    assert asyncio.run(at(0.5)) == lines[1][0]  # between two lines: the next one
