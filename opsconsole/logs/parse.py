"""Turn chunks of raw access-log bytes into :class:`ParsedChunk` column batches.

Called by the stats pipeline (:mod:`opsconsole.stats`) with chunks of *complete* lines from the
follower or a history read.  Parsing is chunk-at-a-time: one ``findall`` of the compiled format over
the whole chunk, so the per-line work stays in C.  Lines that do not match are counted as unparsed
and a few are kept (as text, bytes decoded with replacement) for display.  Never raises on content:
binary garbage, NUL bytes, CRLF, overlong lines are all just "unparsed" or parsed as far as they go.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime

from .logformat import LogFormat, compile_format

MAX_KEPT_UNPARSED = 20

_MONTHS = {
    m.encode(): i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


@dataclass
class ParsedChunk:
    """The matched rows of one chunk, as returned by ``findall`` (one tuple per parsed line)."""

    rows: list[tuple[bytes, ...]]
    lines: int
    unparsed: int
    unparsed_samples: list[str] = field(default_factory=list)


def parse_time_local(value: bytes) -> int | None:
    """``24/Nov/2026:15:00:00 +0100`` -> epoch seconds (UTC), None if malformed."""
    try:
        day = int(value[0:2])
        month = _MONTHS[value[3:6]]
        year = int(value[7:11])
        hh, mm, ss = int(value[12:14]), int(value[15:17]), int(value[18:20])
        sign = -1 if value[21:22] == b"-" else 1
        off = sign * (int(value[22:24]) * 3600 + int(value[24:26]) * 60)
        return calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0)) - off
    except (KeyError, ValueError, OverflowError):
        return None


def parse_time_iso(value: bytes) -> int | None:
    try:
        return int(datetime.fromisoformat(value.decode().replace("Z", "+00:00")).timestamp())
    except (ValueError, OverflowError):
        return None


def parse_time_msec(value: bytes) -> int | None:
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # 1e400 seconds is "inf"
        return None


TIME_PARSERS = {"local": parse_time_local, "iso8601": parse_time_iso, "msec": parse_time_msec}


class LineParser:
    """A compiled format applied to chunks.  Create once per service; reuse for every chunk."""

    def __init__(self, fmt: str | LogFormat = "combined") -> None:
        self.format = fmt if isinstance(fmt, LogFormat) else compile_format(fmt)
        self.parse_time = TIME_PARSERS[self.format.time_kind]
        self._time_cache: dict[bytes, int | None] = {}

    def epoch(self, value: bytes) -> int | None:
        """Epoch second of a time field, cached (a chunk holds only a few distinct seconds)."""
        cache = self._time_cache
        try:
            return cache[value]
        except KeyError:
            if len(cache) > 100_000:
                cache.clear()
            t = cache[value] = self.parse_time(value)
            return t

    def parse(self, chunk: bytes) -> ParsedChunk:
        """Parse a chunk of complete lines (a final line without newline counts as a line).

        Blank lines are neither requests nor unparsed.  The regex never crosses a newline and
        has no nested quantifiers, so a hostile line costs time linear in its length.
        """
        if not chunk:
            return ParsedChunk([], 0, 0)
        lines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        rows = self.format.regex.findall(chunk)
        if len(rows) == lines:
            return ParsedChunk(rows, lines, 0)
        lines, unparsed, samples = self.account(chunk, lines, len(rows))
        return ParsedChunk(rows, lines, unparsed, samples)

    def account(self, chunk: bytes, lines: int, parsed: int) -> tuple[int, int, list[str]]:
        """For a chunk where fewer than ``lines`` lines parsed: (non-blank lines, unparsed lines,
        a few unparsed samples).  Blank lines are neither requests nor unparsed."""
        blank = sum(1 for line in chunk.split(b"\n") if not line.strip())
        if chunk.endswith(b"\n"):
            blank -= 1  # the empty string after the final newline is not a line
        lines -= blank
        samples = self.unparsed_lines(chunk, MAX_KEPT_UNPARSED)
        return lines, max(lines - parsed, 0), samples

    def unparsed_lines(self, chunk: bytes, limit: int) -> list[str]:
        """The first ``limit`` non-blank lines of ``chunk`` that the format does not match."""
        out = []
        match = self.format.regex.match
        for line in chunk.split(b"\n"):
            if line.strip() and not match(line):
                out.append(line[:300].decode("utf-8", "replace"))
                if len(out) >= limit:
                    break
        return out


def split_complete(buffer: bytes) -> tuple[bytes, bytes]:
    """Split ``buffer`` into (complete lines, trailing partial line)."""
    cut = buffer.rfind(b"\n") + 1
    return buffer[:cut], buffer[cut:]
