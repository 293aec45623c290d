"""Optional C accelerator for the history statistics of nginx ``combined`` logs.

``opsconsole stats --since all`` spends nearly all its time turning log lines into counts.  The
extension ``opsconsole.stats._fastcount`` (``_fastcount.c`` beside this file, built by
``pip install`` when a C compiler is present, skipped otherwise) parses a chunk of lines and updates
the caller's counters in one C pass, without a Python object per line.  Everything else stays in
Python; when the extension is missing (``available()`` is False), or the log format is not exactly
nginx's ``combined`` (``supports(fmt)`` is False), or in the live window mode, the pure-Python
path of :mod:`opsconsole.logs.parse` + :mod:`opsconsole.stats.traffic` does the work.

The C scanner is a hand translation of the regex ``compile_format("combined")`` builds, and gives
exactly its results (``tests/test_fastcount.py`` compares both on the real-world corpus and on
mutated and random lines).  :data:`COMBINED_PATTERN` is the regex it was written for: if
:mod:`opsconsole.logs.logformat` ever builds another one, :func:`supports` turns False, so the
program falls back to the (correct) Python path and the tests fail until the C code follows.

What the C path does not know: a time field that has the right shape but no epoch second (only
year 0000: ``parse_time_local`` returns None) or lies before ``--since``.  The Python path drops
such rows from every counter, after the counting this function does.  So use it for
``since=None`` and send a chunk containing ``b"/0000:"`` (a cheap ``in`` test; false positives
only cost speed) down the Python path; with a ``since``, count into fresh dicts and merge them
only if every second in ``seconds`` is recent enough.

Distinct clients are counted with a HyperLogLog of ``2**14`` one-byte registers (a ``bytearray``
from :func:`new_hll`; standard error 1.04/128 = 0.8 %), fed with XXH64 (seed 0) of each client's
bytes: register = the low 14 bits of the hash, value = 1 + the number of trailing zero bits of
the other 50 (the layout Redis uses).  :func:`hll_estimate` applies Ertl's improved estimator
("New cardinality estimation algorithms for HyperLogLog sketches", 2017), which needs no
empirical bias tables and behaves like linear counting for small cardinalities.  Sketches merge
by taking the register-wise maximum (:func:`hll_merge`).

Set ``OPSCONSOLE_NO_FASTCOUNT=1`` to make :func:`available` False (to compare both paths).
"""

from __future__ import annotations

import importlib
import math
import os
import re
from collections.abc import Iterable
from types import ModuleType

from ..logs.logformat import LogFormat

HLL_P = 14
"""Index bits of the HyperLogLog: ``2**HLL_P`` registers."""
HLL_REGISTERS = 1 << HLL_P
_HLL_Q = 64 - HLL_P  # hash bits left for the rank; register values are 0 .. _HLL_Q + 1
_ALPHA_INF = 1 / (2 * math.log(2))

COMBINED_PATTERN = (
    rb"^((\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}|[^\s\"]+)\ \-\ [^\s]*\ \["
    rb"(\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})"
    rb'\]\ "([A-Za-z]*) ?([^ "\\\n]*(?:\\.[^ "\\\n]*)*)[^"\\\n]*(?:\\.[^"\\\n]*)*"\ (\d{3})\ '
    rb'[^\s]*\ "[^"\\\n]*(?:\\.[^"\\\n]*)*"\ "([^"\\\n]*(?:\\.[^"\\\n]*)*)"(?:[ \t\r][^\n]*)?$'
)
"""The regex (with ``re.MULTILINE``) whose matches and groups the C scanner reproduces."""

_COMBINED_GROUPS = {
    "client": 0, "net": 1, "time": 2, "method": 3, "path": 4, "status": 5, "agent": 6
}  # fmt: skip


def _load() -> ModuleType | None:
    if os.environ.get("OPSCONSOLE_NO_FASTCOUNT", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module("opsconsole.stats._fastcount")
    except ImportError:  # not built (no compiler at install time): the Python path is used
        return None


_ext = _load()

Buffer = bytes | bytearray | memoryview


def available() -> bool:
    """True if the C extension is built and importable (and not disabled by the environment)."""
    return _ext is not None


def supports(fmt: LogFormat) -> bool:
    """True if :func:`count_combined` can stand in for parsing ``fmt`` with its regex."""
    return (
        _ext is not None
        and fmt.regex.pattern == COMBINED_PATTERN
        and fmt.regex.flags == re.MULTILINE
        and fmt.groups == _COMBINED_GROUPS
    )


def count_combined(
    chunk: Buffer,
    clients: dict[bytes, int] | None,
    nets: dict[bytes, int] | None,
    others: dict[bytes, int] | None,
    paths: dict[bytes, int] | None,
    agents: dict[bytes, int] | None,
    methods: dict[bytes, int] | None,
    seconds: dict[tuple[bytes, bytes], int] | None,
    hll: bytearray | memoryview | None,
) -> tuple[int, int]:
    """Parse a chunk of complete ``combined`` lines; count its fields into the dicts in place.

    Each dict (a ``Counter`` or any ``dict``; ``None`` skips the field) gains exactly what
    ``Counter.update`` over the matching ``findall`` column would add, keys in the same
    first-seen order:

    * ``clients``: the client field (``$remote_addr``) of every parsed line;
    * ``nets``: the first three octets (``b"198.18.7"``) of IPv4 clients;
    * ``others``: the client itself when it is not IPv4 (IPv6, hostnames): the caller maps it
      to a /48 or keeps the text;
    * ``paths``, ``agents``, ``methods``: those fields;
    * ``seconds``: ``(time, status)`` pairs, e.g. ``(b"24/Nov/2026:15:00:00 +0000", b"404")``.

    ``hll`` (:func:`new_hll`) gets every parsed client.  Returns ``(lines, parsed)``: ``lines``
    as :meth:`LineParser.parse <opsconsole.logs.parse.LineParser.parse>` counts them before
    removing blank lines (newlines, plus one for a final piece without newline), ``parsed`` the
    lines the regex matches.  Values are added through the dict API (a subclass's
    ``__setitem__`` is not called).  If it raises (``MemoryError``, a value that cannot be added
    to), the dicts may hold part of the chunk.  Raises RuntimeError if not :func:`available`.
    """
    if _ext is None:
        raise RuntimeError("opsconsole.stats._fastcount is not built")
    lines, parsed = _ext.count_combined(
        chunk, clients, nets, others, paths, agents, methods, seconds, hll
    )
    return int(lines), int(parsed)


def xxh64(data: Buffer, seed: int = 0) -> int:
    """XXH64 of ``data``: the hash the HyperLogLog registers are fed with."""
    if _ext is None:
        raise RuntimeError("opsconsole.stats._fastcount is not built")
    return int(_ext.xxh64(data, seed))


def new_hll() -> bytearray:
    """Empty HyperLogLog registers for :func:`count_combined` and :func:`hll_add`."""
    return bytearray(HLL_REGISTERS)


def hll_add(registers: bytearray | memoryview, keys: Iterable[Buffer]) -> None:
    """Add keys (e.g. clients counted by the Python path) to the registers, hashed as in C."""
    if _ext is None:
        raise RuntimeError("opsconsole.stats._fastcount is not built")
    _ext.hll_add(registers, keys)


def hll_merge(into: bytearray, other: Buffer) -> None:
    """Union of two sketches, in place: the register-wise maximum."""
    if len(into) != HLL_REGISTERS or len(other) != HLL_REGISTERS:
        raise ValueError(f"HyperLogLog registers must be {HLL_REGISTERS} bytes")
    into[:] = bytes(map(max, into, bytes(other)))


def _sigma(x: float) -> float:
    """sum_k x**(2**k) * 2**(k-1) (Ertl): the small-range (linear counting) term."""
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        z_prev = z
        z += x * y
        y += y
        if z == z_prev:
            return z


def _tau(x: float) -> float:
    """Ertl's large-range term, for registers that reached the maximum value."""
    if x in (0.0, 1.0):
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        z_prev = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z == z_prev:
            return z / 3


def hll_estimate(registers: Buffer) -> int:
    """Estimated number of distinct keys added to the registers (Ertl's improved estimator)."""
    regs = bytes(registers)
    m = len(regs)
    if m != HLL_REGISTERS:
        raise ValueError(f"HyperLogLog registers must be {HLL_REGISTERS} bytes, not {m}")
    hist = [regs.count(k) for k in range(_HLL_Q + 2)]
    if sum(hist) != m:
        raise ValueError(f"HyperLogLog register values must be at most {_HLL_Q + 1}")
    z = m * _tau((m - hist[_HLL_Q + 1]) / m)
    for k in range(_HLL_Q, 0, -1):
        z = 0.5 * (z + hist[k])
    z += m * _sigma(hist[0] / m)
    return round(_ALPHA_INF * m * m / z)
