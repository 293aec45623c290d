"""Path candidates: exact paths far more common in the window, and the *shapes* of invented ones.

A flood of random paths never repeats a path, so no exact path stops it; what repeats is how the
flood invents them.  Each path the baseline never saw is reduced to its shape — the segments this
site really has stay literal (``/blog/``), the others become a class and a length
(``[0-9a-f]{12,31}``, a UUID, a slug of words, digits), a file extension stays — and paths of one
shape become one regex: ``^/[0-9a-f]{12,31}\\.php$``.  Used by :mod:`.analysis`; every regex is
checked by the controls' validators before it is offered.  Standard library and NumPy only.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from .rules import Condition, exact_condition, valid_conditions
from .values import TOKENS, runs_regex, segment_shape, split_ext, token_regex

if TYPE_CHECKING:
    from .analysis import _Analyzer

MAX_SHAPES = 16
"""Shape regexes tried (the most frequent)."""
SHAPE_SAMPLE = 25_000
"""New paths whose shapes are taken (a sample: each regex is then replayed over all paths)."""
SAMPLE = 4000
"""Paths of a shape its regex is built from (its lengths are taken from them; the replay then
counts every path it matches)."""
MIN_SHAPE_PATHS = 5
"""A shape must cover at least this many distinct window paths to be worth a rule."""
MAX_DEPTH = 8
"""Segments of a path its shape spells out; a deeper path's shape ends with ``more``."""


def _known_segments(uris: list[bytes]) -> dict[int, set[bytes]]:
    """Segments (by depth) this site has: seen in at least two distinct baseline paths."""
    seen: dict[tuple[int, bytes], int] = Counter()
    for uri in uris:
        for depth, seg in enumerate(uri[1:].split(b"/")[:-1]):  # directories, not the leaf
            seen[(depth, seg)] += 1
    out: dict[int, set[bytes]] = defaultdict(set)
    for (depth, seg), n in seen.items():
        if n >= 2 and seg:
            out[depth].add(seg)
    return out


def _key(
    uri: bytes, known: dict[int, set[bytes]], shapes: dict[bytes, str]
) -> tuple[tuple[str, bytes], ...] | None:
    """``shapes``: a cache of segment shapes (real segments repeat across many paths)."""
    segs = uri[1:].split(b"/")
    more = len(segs) > MAX_DEPTH
    if more:  # a deep path: only a skeleton that ends before its depth can cover it
        segs = segs[:MAX_DEPTH]
    parts: list[tuple[str, bytes]] = []
    for depth, seg in enumerate(segs):
        last = depth == len(segs) - 1
        if not seg:
            parts.append(("empty", b""))
            continue
        if not last and seg in known.get(depth, ()):
            parts.append(("lit", seg))
            continue
        name, ext = split_ext(seg) if last else (seg, b"")
        shape = shapes.get(name)
        if shape is None:
            shape = segment_shape(name)
            if len(shapes) < 100_000:
                shapes[name] = shape
        parts.append((shape + ("+ext" if ext else ""), b""))
    if more:
        parts.append(("more", b""))
    return tuple(parts)


STRONG = frozenset({"hex", "HEX", "uuid"})
"""Segment shapes no real site structure has: after one, the rest of a path is its tail."""
_LITERAL_CLASS = rb"[A-Za-z0-9._~-]+"


def _skeleton(key: tuple[tuple[str, bytes], ...]) -> tuple[tuple[str, bytes], ...]:
    """The key with literal segments generalised and the tail after a strongly random segment
    (a commit hash, a UUID) dropped: what views of many repositories or files share."""
    out: list[tuple[str, bytes]] = []
    for shape, _lit in key:
        out.append(("lit*", b"") if shape == "lit" else (shape, b""))
        if _strong(shape) and len(out) < len(key):
            out.append(("tail", b""))
            break
    return tuple(out)


ANY_DIRS = ("dirs*", b"")
"""Any directories before a path's last segment: ``(.*/)?``."""


def _strong(shape: str) -> bool:
    base = shape.partition("+")[0]
    return base in STRONG or (base.startswith("r:") and "H" in base.split(","))


def _optional_ext(key: tuple[tuple[str, bytes], ...]) -> tuple[tuple[str, bytes], ...]:
    """The key with its last segment's extension optional, when that segment is strongly random:
    a commit's page and its ``.diff`` / ``.patch`` are one flood."""
    shape = key[-1][0]
    if not _strong(shape):
        return key
    return (*key[:-1], (shape.partition("+")[0] + "+ext?", b""))


def _tokens(key: tuple[tuple[str, bytes], ...]) -> tuple[tuple[str, bytes], ...]:
    """The key with every token shape (hex, mixed case, letters and digits) as one ``tok``: a
    flood's tokens drawn from one alphabet fall into several of them by chance."""
    out = []
    for shape, lit in key:
        base, plus, ext = shape.partition("+")
        out.append(("tok" + plus + ext, b"") if base in TOKENS else (shape, lit))
    return tuple(out)


def _shape_regex(key: tuple[tuple[str, bytes], ...], uris: list[bytes]) -> str | None:
    """One regex for the paths of one shape, with the lengths they showed."""
    pieces: list[bytes] = []
    segs_of = [u[1:].split(b"/") for u in uris]
    if key[0] == ANY_DIRS:  # (any directories, then the last segment's shape)
        segs_of = [[s[-1]] for s in segs_of]
        last = _shape_regex(key[1:], [b"/" + s[0] for s in segs_of])
        return None if last is None else "^/(.*/)?" + last[2:]
    for depth, (shape, lit) in enumerate(key):
        if shape == "tail":
            pieces[-1] += rb"(/.*)?"
            break
        column = [s[depth] if depth < len(s) else b"" for s in segs_of]
        if shape == "empty":
            pieces.append(b"")
            continue
        if shape == "more":
            return None  # deeper than a shape spells out
        if shape == "lit":
            pieces.append(re.escape(lit))
            continue
        if shape == "lit*":
            found = sorted(set(column))
            if len(found) == 1:
                pieces.append(re.escape(found[0]))
            elif len(found) <= 6:
                pieces.append(b"(" + b"|".join(re.escape(f) for f in found) + b")")
            else:
                pieces.append(_LITERAL_CLASS)
            continue
        base, _, has_ext = shape.partition("+")
        names, exts = zip(*(split_ext(c) if has_ext else (c, b"") for c in column), strict=True)
        if base == "other":
            return None
        optional = has_ext == "ext?" and not all(exts)
        found = sorted({e.lower() for e in exts if e})
        if base.startswith("r:"):
            body = runs_regex(base, list(names))
            if found:
                body += _ext_regex(found, optional)
            pieces.append(body)
            continue
        if base == "slug":
            words = [n.count(b"-") + 1 for n in names]
            lo, hi = min(words), max(words)
            body = rb"[a-z]+" + rb"-[a-z]+" * (lo - 1) + rb"(-[a-z]+)?" * min(3, hi - lo + 1)
        elif base == "tok":
            body = token_regex(list(names))
        else:
            from .values import segment_regex

            lengths = [len(n) for n in names]
            body = segment_regex(base, (min(lengths), max(lengths)))
        if found:
            body += _ext_regex(found, optional)
        pieces.append(body)
    pattern = b"^/" + b"/".join(pieces) + b"$"
    try:
        return pattern.decode("ascii")
    except UnicodeDecodeError:
        return None


def _ext_regex(found: list[bytes], optional: bool) -> bytes:
    """The extensions a shape's paths showed (``optional``: or none)."""
    if len(found) > 6:
        body = rb"\.[a-z]{2,6}"
    elif len(found) > 1 or optional:
        body = b"(" + b"|".join(re.escape(e) for e in found) + b")"
    else:
        body = re.escape(found[0])
    return body + b"?" if optional else body


def path_candidates(a: _Analyzer, floor: float) -> list[tuple[Condition, str]]:
    t, cols = a.t, a.cols
    out: list[tuple[Condition, str]] = []
    uri_ids: dict[bytes, int] = {}
    uri_of_target = np.array(
        [uri_ids.setdefault(u, len(uri_ids)) if u is not None else -1 for u in cols.uri],
        dtype=np.int64,
    )
    uris = list(uri_ids)
    req_uri = uri_of_target[t.target]
    valid = req_uri >= 0
    w = np.bincount(req_uri[a.W & valid], minlength=len(uris))
    b = np.bincount(req_uri[a.B & valid], minlength=len(uris))
    excess = w - a.ratio * b
    # Exact paths that carry a good part of the excess.
    for i in np.flatnonzero(excess > floor).tolist():
        try:
            cond = exact_condition("path", uris[i])
        except UsageError:
            continue
        out.append((cond, f"the path {uris[i].decode('latin-1')!r}"))
    # Shapes of the paths the baseline never saw.
    base_uris = [uris[i] for i in np.flatnonzero(b).tolist()]
    known = _known_segments(base_uris)
    groups: dict[Any, list[int]] = defaultdict(list)
    shapes: dict[bytes, str] = {}
    new = np.flatnonzero((w > 0) & (b == 0))
    sampled = 1  # one new path in `sampled` is shaped
    if len(new) > SHAPE_SAMPLE:  # the shapes of a flood show in a sample of its paths
        sampled = len(new) // SHAPE_SAMPLE + 1
        new = new[::sampled]
    for i in new.tolist():
        key = _key(uris[i], known, shapes)
        if key is not None:
            groups[key].append(i)
    merged: dict[Any, list[int]] = defaultdict(list)
    for key, members in groups.items():
        sk = _skeleton(key)
        if sk != key:
            merged[sk].extend(members)
        if (ek := _optional_ext(sk)) != sk:
            merged[ek].extend(members)
        tk = _tokens(key)
        if tk != key:
            merged[tk].extend(members)
        if tk[-1][0].partition("+")[0] == "tok" and len(tk) > 1:
            merged[(ANY_DIRS, tk[-1])].extend(members)  # the same token at any depth
    ranked = sorted(groups.items(), key=lambda kv: -int(w[kv[1]].sum()))[:MAX_SHAPES]
    ranked += sorted(merged.items(), key=lambda kv: -int(w[kv[1]].sum()))[:MAX_SHAPES]
    for key, members in ranked:
        if len(members) < MIN_SHAPE_PATHS or int(w[members].sum()) * sampled < floor:
            continue
        step = max(1, len(members) // SAMPLE)
        regex = _shape_regex(key, [uris[i] for i in members[::step]])
        if regex is None:
            continue
        cond = Condition("path", regex)
        if valid_conditions([cond]):
            n = len(members) * sampled
            out.append((cond, f"paths shaped {regex} (about {n} of them, none in the baseline)"
                        if sampled > 1 else
                        f"paths shaped {regex} ({n} of them, none in the baseline)"))  # fmt: skip
    return out
