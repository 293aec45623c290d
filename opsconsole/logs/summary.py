"""What the aggregating agent (:mod:`opsconsole.logs.agent`) ships, checked and decoded.

The agent's JSON is data from a server: every field is checked for its type here, and anything
else is a :class:`SummaryError` (the pipeline then reads that server raw), never a crash.
Bytes travel as latin-1 text, so ``str.encode("latin-1")`` gives back the log's exact bytes.
Standard library and :mod:`.parse` only.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .parse import ParsedChunk


class SummaryError(ValueError):
    """The agent sent something that is not a summary."""


@dataclass
class AgentSecond:
    """What one log second (one time string of the log) added on one server."""

    time: bytes
    status: Counter[bytes]
    dims: dict[str, Counter[bytes]]
    """client, path, agent, method, net: counts of this second (the tail maybe cut)."""
    trimmed: frozenset[str] = frozenset()
    """Dimensions whose tail beyond the agent's cap was cut off (their counts are estimates)."""
    hashes: tuple[int, ...] = ()
    """When the clients were cut: a K-minimum-values sketch of all of them (unique IPs)."""
    new_cut: int = 0
    """Clients among the cut-off ones that the agent had not seen recently (new-IP rate)."""


@dataclass
class AgentSummary:
    lines: int = 0
    unparsed: int = 0
    samples: list[str] = field(default_factory=list)
    seconds: list[AgentSecond] = field(default_factory=list)


def _counter(value: Any, what: str) -> Counter[bytes]:
    if not isinstance(value, dict):
        raise SummaryError(f"{what}: expected an object")
    counts = value.values()
    if not all(type(n) is int for n in counts) or (counts and min(counts) < 0):
        raise SummaryError(f"{what}: a count that is not a number")
    return Counter({k.encode("latin-1"): n for k, n in value.items()})


def _count(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SummaryError(f"{what}: expected a count")
    return value


def decode_summary(msg: dict[str, Any]) -> AgentSummary:
    """An agent's ``data`` message as an :class:`AgentSummary` (SummaryError if malformed)."""
    try:
        samples = msg.get("samples", [])
        if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
            raise SummaryError("samples: expected a list of lines")
        out = AgentSummary(
            _count(msg.get("lines", 0), "lines"),
            _count(msg.get("unparsed", 0), "unparsed"),
            samples[-20:],
        )
        secs = msg.get("secs", [])
        if not isinstance(secs, list):
            raise SummaryError("secs: expected a list")
        for item in secs:
            if not isinstance(item, list) or len(item) != 6 or not isinstance(item[0], str):
                raise SummaryError("secs: expected [time, status, dims, trimmed, sketch, new]")
            t, status, dims, trimmed, sketch, new_cut = item
            if not isinstance(dims, dict) or not isinstance(trimmed, list):
                raise SummaryError("secs: dims and trimmed")
            hashes: tuple[int, ...] = ()
            if sketch is not None:
                if not isinstance(sketch, str):
                    raise SummaryError("secs: sketch")
                raw = base64.b64decode(sketch, validate=True)
                hashes = tuple(
                    int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw) - 7, 8)
                )
            out.seconds.append(
                AgentSecond(
                    t.encode("latin-1"),
                    _counter(status, "status"),
                    {str(d): _counter(c, str(d)) for d, c in dims.items()},
                    frozenset(str(d) for d in trimmed),
                    hashes,
                    _count(new_cut, "new"),
                )
            )
        return out
    except (UnicodeEncodeError, ValueError, AttributeError, TypeError) as e:
        if isinstance(e, SummaryError):
            raise
        raise SummaryError(f"not a summary ({type(e).__name__}: {e})") from None


class RowDecoder:
    """The rows of an agent's ``read`` (each distinct value sent once, then by number), back
    as the tuples ``regex.findall`` gives the console (columns nothing reads are empty)."""

    def __init__(self, ngroups: int) -> None:
        self.ngroups = ngroups
        self.tables: list[list[bytes]] = [[] for _ in range(ngroups)]

    def decode(self, msg: dict[str, Any]) -> ParsedChunk:
        try:
            cols, new, ids = msg["cols"], msg["new"], msg["ids"]
            if not all(isinstance(i, int) and 0 <= i < self.ngroups for i in cols):
                raise SummaryError("rows: a column that the format does not have")
            for i, values in new:
                if not isinstance(i, int) or not 0 <= i < self.ngroups:
                    raise SummaryError("rows: a column that the format does not have")
                self.tables[i].extend(v.encode("latin-1") for v in values)
            n = len(ids[0]) if ids else 0
            columns: list[Any] = [(b"",) * n] * self.ngroups
            for i, col in zip(cols, ids, strict=True):
                if len(col) != n:
                    raise SummaryError("rows: columns of different lengths")
                if col and min(col) < 0:
                    raise SummaryError("rows: a negative value number")
                columns[i] = list(map(self.tables[i].__getitem__, col))
            samples = msg.get("samples") or []
            if not all(isinstance(s, str) for s in samples):
                raise SummaryError("rows: samples")
            return ParsedChunk(
                list(zip(*columns, strict=True)) if n else [],
                _count(msg.get("lines", 0), "lines"),
                _count(msg.get("unparsed", 0), "unparsed"),
                samples[:20],
            )
        except SummaryError:
            raise
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
            raise SummaryError(f"not rows ({type(e).__name__}: {e})") from None
