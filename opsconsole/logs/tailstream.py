"""One ``tail`` stream of a followed log: its complete lines, and tail's own messages in-band.

Used by :mod:`opsconsole.logs.follow` only.  tail runs with ``2>&1``, so its diagnostics arrive
at their exact place in the byte stream; PATH is given to it in a spelling unique to each stream
(:func:`spell`), so a log line can never pass for one.  Imports: the standard library and
:mod:`opsconsole.transport.base`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field

from ..transport.base import Stream

log = logging.getLogger("opsconsole.logs.follow")

PATHLESS = (  # tail's messages that name no file: recognised only as a whole line
    b"tail: inotify cannot be used, reverting to polling\n",
    b"tail: inotify resources exhausted\n",
    b"tail: no files remaining\n",
)


def spell(path: str) -> str:
    """PATH as tail will print it: the same file, named in a way no log line can guess."""
    bits = secrets.randbits(64)
    return "/" + "".join("./" if bits >> i & 1 else "/" for i in range(64)) + path.lstrip("/")


@dataclass(eq=False)
class TailFile:
    """One file being read: the live log, or an old one drained after a rotation."""

    file_id: str
    path: str
    offset: int
    current: bool = True
    stream: Stream | None = None
    reader: asyncio.Task[None] | None = None
    gen: int = 0
    """Bumped at every (re)start: data still queued from an older stream is dropped."""
    spelled: bytes = b""
    pending: bytearray = field(default_factory=bytearray)
    skip: bool = False
    """Started one byte early; the bytes up to the first newline are not a line of ours."""
    last_data: float = field(default_factory=time.monotonic)
    message: str = ""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Complete lines of the stream so far, and whether tail said "file truncated"."""
        self.last_data = time.monotonic()
        self.pending += data
        last = self.pending.rfind(b"\n")
        complete = bytes(self.pending[: last + 1])
        del self.pending[: last + 1]
        if b"tail: " not in complete and not self.skip:
            self.offset += len(complete)
            return complete, False
        out, carry, truncated = bytearray(), b"", False
        for piece in complete.split(b"\n")[:-1]:
            line, carry = carry + piece + b"\n", b""
            at = line.find(self.spelled)
            start = line.rfind(b"tail: ", 0, at) if at >= 0 else (0 if line in PATHLESS else -1)
            if start < 0:
                self.offset += len(line)
                out += b"" if self.skip else line
                self.skip = False
                continue
            message = line[start:].decode("utf-8", "replace").strip()
            message = message.replace(self.spelled.decode(), self.path)
            log.info("%s", message)
            if message.endswith(": file truncated"):
                self.offset, self.skip, truncated = 0, False, True  # the rest of the line is gone
            else:
                carry = line[:start]  # the line continues after it
                if line not in PATHLESS or not self.message:  # "no files remaining" says less
                    self.message = message  # than the "cannot open …: Permission denied" before
        self.pending[:0] = carry
        return bytes(out), truncated
