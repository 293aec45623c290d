"""One-shot reads of a log's past over a Transport: its size, and ranges of complete lines.

Called by the app core (:mod:`opsconsole.fleet`) for ``stats --since`` and the live window's
backfill, and by :mod:`opsconsole.logs.follow` (:class:`LogFileError`).  Imports: the standard
library, :mod:`opsconsole.errors` and :mod:`opsconsole.transport.base`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import OperationError
from ..transport.base import Transport

READ_SIZE = 1 << 20
"""Bytes asked of the channel per read: large reads keep the per-call overhead off the rate."""

_RANGE = (  # reads from the descriptor it checked, so a rotation in between cannot mix files
    "export LC_ALL=C; "
    '[ -r "$1" ] || { echo "permission denied for user $(id -un)" >&2; exit 66; }; '
    'exec 3<"$1" || exit 66; '
    'if [ -n "$3" ] && [ "$(stat -L -c %d:%i /dev/fd/3)" != "$3" ]; then '
    'echo "$1: the file was replaced (rotated)" >&2; exit 65; fi; exec tail -c +"$2" <&3'
)


class LogFileError(OperationError):
    """The log cannot be read (missing, not a regular file, no permission, replaced)."""


async def file_size(
    transport: Transport, path: str, *, privileged: bool = False
) -> tuple[str, int]:
    """``(file_id, size)`` of the log now; LogFileError if it cannot be examined or is not a
    regular file (a directory, a device).  Messages name the path, not the server: whoever
    shows them says which server it is."""
    argv = ["env", "LC_ALL=C", "stat", "-L", "-c", "%d:%i %s %F", "--", path]
    result = await transport.run(argv, privileged=privileged)
    if not result.ok:
        raise LogFileError(result.error_text())
    file_id, size, kind = result.stdout.decode("utf-8", "replace").strip().split(" ", 2)
    if not kind.startswith("regular"):  # "regular file", "regular empty file"
        raise LogFileError(f"{path} is not a regular file ({kind})")
    return file_id, int(size)


async def read_range(
    transport: Transport,
    path: str,
    start: int,
    end: int | None,
    *,
    file_id: str | None = None,
    privileged: bool = False,
) -> AsyncIterator[bytes | memoryview]:
    """Stream the complete lines that *start* in ``[start, end)`` (``end=None``: up to the end),
    as bytes or read-only views of what the channel delivered (``b"".join`` takes both).

    Consecutive ranges ``[a, b)``, ``[b, c)`` therefore yield every line once.  A line that starts
    before ``end`` is read to its newline; a last line without one (being written) is left out.
    With ``file_id``, a file replaced since it was measured raises LogFileError instead.
    """
    if end is not None and end <= start:
        return
    pos = max(start - 1, 0)  # one byte early: is ``start`` at a line boundary?
    argv = ["sh", "-c", _RANGE, "sh", path, str(pos + 1), file_id or ""]
    stream = await transport.open_stream(argv, privileged=privileged)
    try:
        # ``pos`` is the offset of the first byte of ``partial`` (the unfinished line, kept as
        # pieces so that a long one is joined once).  A read's complete lines are yielded as a
        # view of it, not copied; only a line that spans reads is joined.
        skip, partial = start > 0, list[bytes]()
        while data := await stream.read(READ_SIZE):
            if skip:
                newline = data.find(b"\n")
                if newline < 0:
                    pos += len(data)
                    continue
                pos, skip, data = pos + newline + 1, False, data[newline + 1 :]
                if end is not None and pos >= end:  # no line starts in the range
                    return
            last = data.rfind(b"\n")
            if last < 0:
                partial.append(data)
                continue
            cut = 0  # where the lines that begin in this read begin
            if partial:  # the line the reads before began ends in this one
                cut = data.find(b"\n") + 1
                partial.append(data[:cut])
                line = b"".join(partial)
                partial = []
                yield line
                pos += len(line)
                if end is not None and pos >= end:
                    return
            if cut <= last:
                if end is not None and pos + last + 1 - cut > end:  # up to the line across ``end``
                    last = data.find(b"\n", cut + end - pos - 1)
                yield memoryview(data)[cut : last + 1]
                pos += last + 1 - cut
            if last + 1 < len(data):
                partial.append(data[last + 1 :])
            if end is not None and pos >= end:
                return
        if await stream.wait(10.0) != 0:
            raise LogFileError(f"cannot read {path}: {await stream.stderr_text()}")
    finally:
        await stream.close()
