"""Optional C accelerator for the history statistics of nginx access logs, in any format.

``opsconsole stats --since all`` spends nearly all its time turning log lines into counts.  The
extension ``opsconsole.stats._fastcount`` (``_fastcount.c`` beside this file, built by
``pip install`` when a C compiler is present, skipped otherwise) parses a chunk of lines and updates
the caller's counters in one C pass, without a Python object per line.  Everything else stays in
Python; when the extension is missing (``available()`` is False), or the log format has a piece
the scanner cannot reproduce exactly (``program(fmt)`` is None, :func:`why_not` says why), or in
the live window mode, the pure-Python path of :mod:`opsconsole.logs.parse` +
:mod:`opsconsole.stats.traffic` does the work.

The C scanner interprets a small program, one op per piece of the regex
``compile_format(fmt)`` builds (:attr:`LogFormat.pieces
<opsconsole.logs.logformat.LogFormat.pieces>`), and gives exactly the regex's results
(``tests/test_fastcount.py`` for ``combined``, ``tests/test_fastcount_formats.py`` for custom
formats, on the real-world corpus and on mutated and random lines).  :func:`program` checks each
piece's regex byte for byte against the pattern its op was written for (``_FIXED``, ``_TIMES``
and the ``until``/``body`` shapes below), and that the piece can end in one place only: if
:mod:`opsconsole.logs.logformat` ever builds another regex, the format falls back to the
(correct) Python path and the tests fail until the C code follows.

What the C path does not know: a time field that has the right shape but no epoch second (year
0000, a 31 February) or lies before ``--since``.  The first kind it leaves to Python
(``count(check_time=True)`` returns those lines as ``unsure``); so use it for ``since=None``.
With a ``since``, one could count into fresh dicts and merge them only if every second in
``seconds`` is recent enough.

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
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from ..logs.logformat import COMBINED, LogFormat, Piece, compile_format

HLL_P = 14
"""Index bits of the HyperLogLog: ``2**HLL_P`` registers."""
HLL_REGISTERS = 1 << HLL_P
_HLL_Q = 64 - HLL_P  # hash bits left for the rank; register values are 0 .. _HLL_Q + 1
_ALPHA_INF = 1 / (2 * math.log(2))

# What each piece of logformat's regex must be for the C scanner to reproduce it: written here
# again on purpose, so that a change in logformat.py makes `program` refuse the piece (and the
# Python path run) until _fastcount.c follows, instead of silently counting something else.
_BODY = rb'[^"\\\n]*(?:\\.[^"\\\n]*)*'
_WORD = rb'[^ "\\\n]*(?:\\.[^ "\\\n]*)*'
_FIXED = {
    "client": (rb"((\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}|[^\s\"]+)", b"C"),
    "status": (rb"(\d{3})", b"s"),
    "request": (rb"([A-Za-z]*) ?(" + _WORD + rb")" + _BODY, b"R"),
    "end": (rb"(?:[ \t\r][^\n]*)?$", b"E"),
}
_TIMES = {
    b"local": (
        rb"(\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}"
        rb":\d\d:\d\d:\d\d [+-]\d{4})",
        b"l",
    ),
    b"iso8601": (rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[+-]\d\d:\d\d|Z))", b"i"),
    b"msec": (rb"(\d+\.\d+)", b"m"),
}
_SLOTS = {"client": 0, "time": 1, "method": 2, "path": 3, "status": 4, "agent": 5}
_NO_SLOT = 0xFF
_SPACE = frozenset(b" \t\n\r\f\v")
_DIGITS = frozenset(b"0123456789")
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_END_BYTES = b" \t\r"
"""What may follow the last piece on its line (besides the line's end)."""

# A greedy run ends in one place only if the byte after it cannot belong to it: the bytes
# that may follow each kind of run.
_STOPS: dict[str, Callable[[int], bool]] = {
    "client": lambda b: b in _SPACE or b == ord('"'),
    "nospace": lambda b: b in _SPACE,
    "alpha": lambda b: b not in _LETTERS,
    "msec": lambda b: b not in _DIGITS,
}


def _follows(piece: Piece | None, stops: Callable[[int], bool]) -> bool:
    """Whether every way ``piece`` can begin is a byte ``stops`` accepts."""
    if piece is None:
        return False
    if piece.kind == "end":
        return all(stops(b) for b in _END_BYTES)
    return piece.kind == "lit" and bool(piece.arg) and stops(piece.arg[0])


def _slot(fields: tuple[str, ...]) -> int:
    return _SLOTS.get(fields[0], _NO_SLOT) if fields else _NO_SLOT


def _op(piece: Piece, nxt: Piece | None) -> tuple[bytes, str] | None:
    """The C code of one piece, or None and why the scanner cannot take it exactly."""
    kind, regex = piece.kind, piece.regex
    if kind == "lit":
        if regex != re.escape(piece.arg) or not piece.arg or len(piece.arg) > 0xFFFF:
            return None
        return b"L" + len(piece.arg).to_bytes(2, "big") + piece.arg, ""
    if kind in _FIXED:
        pattern, code = _FIXED[kind]
        if regex != pattern:
            return None
        if kind == "client" and not _follows(nxt, _STOPS["client"]):
            return None
        if kind == "request" and not (nxt and nxt.kind == "lit" and nxt.arg[:1] == b'"'):
            return None
        return code, ""
    if kind == "time":
        pattern, code = _TIMES.get(piece.arg, (b"", b""))
        if not code or regex != pattern:
            return None
        if code == b"m" and not _follows(nxt, _STOPS["msec"]):
            return None
        return code, ""
    inner = regex[1:-1] if piece.fields and regex[:1] == b"(" and regex[-1:] == b")" else regex
    slot = bytes([_slot(piece.fields)])
    if kind == "alpha":
        if inner != rb"[A-Za-z]*" or not _follows(nxt, _STOPS["alpha"]):
            return None
        return b"A" + slot, ""
    if kind == "body":
        if inner != _BODY or not (nxt and nxt.kind == "lit" and nxt.arg[:1] == b'"'):
            return None
        return b"Q" + slot, ""
    if kind == "until":
        if inner == rb"[^\s]*":
            return (b"S" + slot, "") if _follows(nxt, _STOPS["nospace"]) else None
        if inner == rb"[^\n]*?":
            return (b"T" + slot, "") if nxt is not None and nxt.kind == "end" else None
        m = re.fullmatch(rb"\[\^(\\?.)\\n\]\*", inner, re.DOTALL)
        if m and nxt is not None and nxt.kind == "lit":
            d = nxt.arg[:1]
            if d and m.group(1) == re.escape(d) and d not in b" \t\n":
                return b"B" + d + slot, ""
        return None
    return None


def program(fmt: LogFormat) -> bytes | None:
    """The C scanner's program for ``fmt``, or None where it cannot reproduce the regex exactly
    (:func:`why_not` says why); then the Python path parses the format."""
    return _compile(fmt)[0]


def why_not(fmt: LogFormat) -> str | None:
    """Why ``fmt`` runs on the (slower) Python path, in a few words; None if it need not."""
    if _ext is None:
        if os.environ.get("OPSCONSOLE_NO_FASTCOUNT", "") not in ("", "0"):
            return "the C accelerator is disabled by OPSCONSOLE_NO_FASTCOUNT"
        return "the C accelerator is not built (no C compiler when opsconsole was installed)"
    return _compile(fmt)[1]


def _compile(fmt: LogFormat) -> tuple[bytes | None, str | None]:
    cached = _programs.get(fmt.regex.pattern)
    if cached is not None:
        return cached
    out = _build(fmt)
    _programs[fmt.regex.pattern] = out
    return out


_programs: dict[bytes, tuple[bytes | None, str | None]] = {}


def _build(fmt: LogFormat) -> tuple[bytes | None, str | None]:
    pieces = fmt.pieces
    if (
        not pieces
        or fmt.regex.flags != re.MULTILINE
        or fmt.regex.pattern != b"^" + b"".join(p.regex for p in pieces)
        or pieces[-1].kind != "end"
    ):
        return None, "its regex is not made of the pieces the C scanner knows"
    code = []
    for i, piece in enumerate(pieces):
        nxt = pieces[i + 1] if i + 1 < len(pieces) else None
        op = _op(piece, nxt)
        if op is None:
            what = piece.var or repr(piece.arg.decode("latin-1"))
            if nxt is None or nxt.kind == "end":
                follow = "the end of the line"
            elif nxt.kind == "lit":
                follow = repr(nxt.arg.decode("latin-1"))
            else:
                follow = nxt.var
            return None, f"{what} followed by {follow} has more than one possible end"
        code.append(op[0])
    return b"".join(code), None


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
    """True if :func:`count` can stand in for parsing ``fmt`` with its regex."""
    return _ext is not None and program(fmt) is not None


def count(
    chunk: Buffer,
    code: bytes,
    clients: dict[bytes, int] | None,
    nets: dict[bytes, int] | None,
    others: dict[bytes, int] | None,
    paths: dict[bytes, int] | None,
    agents: dict[bytes, int] | None,
    methods: dict[bytes, int] | None,
    seconds: dict[tuple[bytes, bytes], int] | None,
    hll: bytearray | memoryview | None,
    *,
    check_time: bool = True,
) -> tuple[int, int, list[tuple[int, int]]]:
    """Parse a chunk of complete lines with ``code`` (:func:`program`); count its fields into
    the dicts in place.

    Each dict (a ``Counter`` or any ``dict``; ``None`` skips the field, and must be given for a
    field the format does not log) gains exactly what ``Counter.update`` over the matching
    ``findall`` column would add, keys in the same first-seen order:

    * ``clients``: the client field (``$remote_addr``) of every parsed line;
    * ``nets``: the first three octets (``b"198.18.7"``) of IPv4 clients;
    * ``others``: the client itself when it is not IPv4 (IPv6, hostnames): the caller maps it
      to a /48 or keeps the text;
    * ``paths``, ``agents``, ``methods``: those fields;
    * ``seconds``: ``(time, status)`` pairs, e.g. ``(b"24/Nov/2026:15:00:00 +0000", b"404")``;
      for ``$msec`` the time is its whole seconds (``b"1764000000"``).

    ``hll`` (:func:`new_hll`) gets every parsed client.  Returns ``(lines, parsed, unsure)``:
    ``lines`` as :meth:`LineParser.parse <opsconsole.logs.parse.LineParser.parse>` counts them
    before removing blank lines (newlines, plus one for a final piece without newline),
    ``parsed`` the lines counted; with ``check_time``, a line the regex matches but whose time
    may have no epoch second (year 0000, a 31 February) is not counted and its ``(start,
    end)`` offsets are in ``unsure``, for the Python path to decide.  Values are added through
    the dict API (a subclass's ``__setitem__`` is not called).  If it raises (``MemoryError``,
    a value that cannot be added to), the dicts may hold part of the chunk.  Raises
    RuntimeError if not :func:`available`.
    """
    if _ext is None:
        raise RuntimeError("opsconsole.stats._fastcount is not built")
    lines, parsed, unsure = _ext.count_lines(
        chunk, code, check_time, clients, nets, others, paths, agents, methods, seconds, hll
    )
    return int(lines), int(parsed), unsure


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
    """:func:`count` for ``combined``, counting every line the regex matches (no time check):
    ``(lines, parsed)``."""
    if _ext is None:
        raise RuntimeError("opsconsole.stats._fastcount is not built")
    code = program(compile_format(COMBINED))
    assert code is not None
    lines, parsed, _ = count(
        chunk, code, clients, nets, others, paths, agents, methods, seconds, hll, check_time=False
    )
    return lines, parsed


FIELDS = ("clients", "nets", "others", "paths", "agents", "methods", "seconds")
"""The tables of a :class:`Tally`, in the order of :func:`count`'s dicts."""

PARALLEL_MIN = 1 << 20
"""A chunk at least this big is counted in two halves on two threads (GIL released)."""

_helper: ThreadPoolExecutor | None = None


class Tally:
    """Counts kept in C across chunks, handed to dicts by :meth:`export`.

    :func:`count` turns every distinct key of every chunk into a Python object and a dict
    update; a tally does that once per key for as long as it holds it, so a client that recurs
    in every chunk costs one.  :meth:`count` parses a large chunk in two halves, one on a
    helper thread, each into its own tables with the GIL released, and merges the second into
    the first: the tables are exactly those of one pass (counts and first-seen order).

    With ``v6nets``, an IPv6 client whose first three hextets are written out counts in
    ``nets`` as its /48, the key :func:`~opsconsole.stats.snapshot.subnet_of` makes of it
    (``b"2001:db8:7::/48"``), instead of in ``others``: only the clients of other shapes are
    left for Python to map.
    """

    def __init__(self, fields: Iterable[str], *, hll: bool = False, v6nets: bool = False) -> None:
        if _ext is None:
            raise RuntimeError("opsconsole.stats._fastcount is not built")
        wanted = set(fields)
        unknown = wanted - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        self._flags = [name in wanted for name in FIELDS]
        self._hll = hll
        self._v6nets = v6nets
        self._c = _ext.Tally(*self._flags, hll, v6nets)
        self._other: Any = None
        """The second half's tables (made on first use)."""

    def count(
        self, chunk: Buffer, code: bytes, *, check_time: bool = True, parallel: bool = True
    ) -> tuple[int, int, list[tuple[int, int]]]:
        """:func:`count` into the tally: ``(lines, parsed, unsure)``, offsets into ``chunk``."""
        view = memoryview(chunk).cast("B")
        half = len(view) // 2
        cut = bytes(view[half : half + 65536]).find(b"\n") if half else -1
        if not parallel or len(view) < PARALLEL_MIN or cut < 0 or (os.cpu_count() or 1) < 2:
            lines, parsed, unsure = self._c.count(view, code, check_time)
            return int(lines), int(parsed), list(unsure)
        split = half + cut + 1
        return self._in_halves("count", view[:split], view[split:], split, code, check_time)

    def count_many(
        self,
        pieces: Sequence[Buffer],
        code: bytes,
        *,
        check_time: bool = True,
        parallel: bool = True,
    ) -> tuple[int, int, list[tuple[int, int]]]:
        """:meth:`count` of the pieces' concatenation, without making it (a history read's
        batch, as the channel delivered it).  Every piece but the last must end with a newline
        (ValueError otherwise).  A large batch is counted in two runs of pieces on two threads,
        split where a piece ends; offsets in ``unsure`` are into the concatenation."""
        if len(pieces) == 1:
            return self.count(pieces[0], code, check_time=check_time, parallel=parallel)
        sizes = [memoryview(p).nbytes for p in pieces]
        total = sum(sizes)
        if not parallel or total < PARALLEL_MIN or (os.cpu_count() or 1) < 2:
            lines, parsed, unsure = self._c.count_many(pieces, code, check_time)
            return int(lines), int(parsed), list(unsure)
        split, done = 1, sizes[0]  # the first run holds at least one piece
        while split < len(pieces) - 1 and done + sizes[split] <= total // 2:
            done += sizes[split]
            split += 1
        for piece in pieces[:-1]:  # checked before either half counts anything
            if memoryview(piece)[-1:].tobytes() not in (b"\n", b""):
                raise ValueError("every piece but the last must end with a newline")
        return self._in_halves("count_many", pieces[:split], pieces[split:], done, code, check_time)

    def _in_halves(
        self, method: str, first: object, second: object, offset: int, code: bytes, check: bool
    ) -> tuple[int, int, list[tuple[int, int]]]:
        """``method`` of the C tally on ``first`` here and on ``second`` (which starts
        ``offset`` bytes further) on the helper thread, the second's tables merged into ours."""
        if self._other is None:
            assert _ext is not None  # checked when the tally was made
            self._other = _ext.Tally(*self._flags, self._hll, self._v6nets)
        later = _pool().submit(getattr(self._other, method), second, code, check)
        try:
            lines, parsed, unsure = getattr(self._c, method)(first, code, check)
        finally:
            lines2, parsed2, unsure2 = later.result()
        self._c.merge(self._other)
        unsure = list(unsure) + [(a + offset, b + offset) for a, b in unsure2]
        return int(lines + lines2), int(parsed + parsed2), unsure

    def merge(self, other: Tally) -> None:
        """Add ``other``'s counts and HyperLogLog to this tally and empty it: the same tables
        as if this one had counted ``other``'s chunks after its own."""
        self._c.merge(other._c)

    def settle(
        self, field: str, counts: dict[bytes, int], cap: int
    ) -> tuple[Counter[bytes], int] | None:
        """Hand the ``field`` table to ``counts`` as :meth:`TopCounter.update
        <opsconsole.stats.sketch.TopCounter.update>` would, then prune past ``cap``: if both
        hold at most ``cap`` keys together, the table is exported into ``counts`` (None is
        returned); else ``counts`` is left as it was and ``(kept, cut)`` returned, exactly what
        :meth:`TopCounter.prune <opsconsole.stats.sketch.TopCounter.prune>` would make of the
        exported counts, without a Python object for any key it drops.  The table is emptied
        either way."""
        if field not in FIELDS or field == "seconds":
            raise ValueError(f"settle takes a table of one field, not {field!r}")
        kept: Counter[bytes] = Counter()
        cut = self._c.settle(field, counts, kept, cap)
        return None if cut is None else (kept, int(cut))

    def top(
        self, field: str, counts: dict[bytes, int], n: int, cap: int
    ) -> tuple[list[tuple[bytes, int]], int] | None:
        """The ``n`` best of ``counts`` and the ``field`` table together (:func:`top_items`'
        order) and how many distinct keys they hold, without exporting the table; None if they
        hold more than ``cap`` keys (export and prune first) or keys of another type."""
        if field not in FIELDS or field == "seconds":
            raise ValueError(f"top takes a table of one field, not {field!r}")
        out: tuple[list[tuple[bytes, int]], int] | None = self._c.top(field, counts, n, cap)
        return out

    def sizes(self) -> dict[str, int]:
        """Distinct keys held per table."""
        return dict(zip(FIELDS, self._c.sizes(), strict=True))

    def export(
        self,
        *,
        clients: dict[bytes, int] | None = None,
        nets: dict[bytes, int] | None = None,
        others: dict[bytes, int] | None = None,
        paths: dict[bytes, int] | None = None,
        agents: dict[bytes, int] | None = None,
        methods: dict[bytes, int] | None = None,
        seconds: dict[tuple[bytes, bytes], int] | None = None,
        hll: bytearray | None = None,
    ) -> None:
        """Add each named table's counts to its dict (as :func:`count` would have, in
        first-seen order) and empty it; tables not named keep theirs.  ``hll`` takes the
        register-wise maximum with the tally's registers."""
        self._c.export(clients, nets, others, paths, agents, methods, seconds, hll)


def _pool() -> ThreadPoolExecutor:
    global _helper
    if _helper is None:
        _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsconsole-count2")
    return _helper


def top_items(counts: dict[bytes, int], n: int) -> list[tuple[bytes, int]] | None:
    """The ``n`` largest counts, ties broken by key, best first (``sorted(counts.items(),
    key=lambda kv: (-kv[1], kv[0]))[:n]``) in one pass in C; None without the extension or
    when a key is not bytes or a count not a 64-bit int (then the caller sorts)."""
    if _ext is None:
        return None
    out: list[tuple[bytes, int]] | None = _ext.top_items(counts, n)
    return out


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
