"""Showing text that came from outside — log lines, paths, user agents, referers — literally.

An attacker chooses every byte of the paths, user agents and referers that end up in an access
log.  Before any of it reaches an operator's terminal or the console's widgets it goes through
:func:`shown`, which escapes what a terminal would act on instead of print: control characters
(ESC starts terminal escape sequences, CR rewrites a line), DEL, the C1 range, and the invisible
Unicode "format" characters (bidi overrides can make text read backwards).  Markup is the other
half: front ends put such text in Rich ``Text`` objects or print it, never into a string that
Textual or Rich would parse as markup.  Standard library only; used by the CLI and the TUI.
"""

from __future__ import annotations

import functools
import unicodedata

_SAFE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F))


def shown(value: str, limit: int | None = None) -> str:
    """``value`` with every control or format character written as ``\\xHH`` / ``\\uHHHH``;
    cut to ``limit`` characters (with ``…``) when given."""
    text = value if _plain(value) else "".join(_escape(ch) for ch in value)
    if limit is not None and len(text) > limit:
        return text[: max(limit - 1, 0)] + "…"
    return text


def _plain(value: str) -> bool:
    return value.isascii() and all(ch in _SAFE_ASCII for ch in value)


@functools.lru_cache(maxsize=4096)
def _escape(ch: str) -> str:
    if ch in _SAFE_ASCII:
        return ch
    code = ord(ch)
    if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
        return f"\\x{code:02x}"
    category = unicodedata.category(ch)
    if category[0] == "C" or category in ("Zl", "Zp"):
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return ch


def unprefixed(message: str, server: str) -> str:
    """``message`` without the server's name in front: errors from a transport name their
    server, and a front end that shows them beside that name would say it twice."""
    for prefix in (f"{server}: ", f"{server} "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
