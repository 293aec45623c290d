"""Parsing and formatting of durations such as ``60s``, ``5m``, ``1h30m`` or ``2d``.

Used by the config loader (``console.window``), the CLI (``--since``, ``--ttl``,
``--confirm-within``) and the controls (block expiry).  Pure functions, no imports from the app.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
MAX_DURATION = 3650 * 86400.0
"""Ten years: no window, expiry or look-back a console deals in is longer, and anything beyond
would overflow date arithmetic (``--since 99999999d``)."""


def parse_duration(text: str) -> float:
    """Return the number of seconds in ``text`` (``90s``, ``5m``, ``1h30m``, ``2d``).

    A bare number is taken as seconds.  Raises ``ValueError`` with a message that says what is
    accepted; zero, negative and over-ten-year durations are refused.
    """
    s = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        seconds = float(s)
    elif _WHOLE.fullmatch(s):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(s))
    else:
        raise ValueError(
            f"{text!r} is not a duration: expected a number with a unit, e.g. 30s, 5m, 1h, 2d"
        )
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    if seconds > MAX_DURATION:
        raise ValueError(f"{text!r} is too long: at most 3650d (ten years)")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds compactly: ``90`` -> ``1m30s``, ``3600`` -> ``1h``."""
    total = round(seconds)
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
