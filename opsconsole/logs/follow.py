"""Follow one access log on one server and deliver every complete line exactly once.

Called by the app core (one :class:`LogFollower` per service and server); one-shot reads of a
log's past live in :mod:`opsconsole.logs.history`, one tail stream's parsing in
:mod:`opsconsole.logs.tailstream`.  Imports: the standard library, that module and
:mod:`opsconsole.transport.base`; it reaches the server only through a Transport.

How offsets stay exact:

- The server runs ``tail -c +N -f -- PATH 2>&1`` (``-f`` follows the open file, so lines nginx
  still writes to a renamed log are read).  Each delivered chunk ends at a newline and advances
  :attr:`LogFollower.offset`, the end of the last complete line delivered; a partial last line is
  held back, and a restart resumes at the start of that line.
- tail's diagnostics arrive in-band (``2>&1``), at their exact place in the byte stream: glibc's
  ``error()`` flushes stdout before writing to stderr (tests/test_follow_local.py checks it).
  ``file truncated`` means tail went back to byte 0, so the offset becomes 0 right there.
- A log line must never pass for a diagnostic: PATH is given to tail in a spelling unique to each
  stream (64 random ``./`` or ``/`` steps after the root), so a line naming that spelling can only
  come from tail.  The few diagnostics without a file name count only as a whole line.
- A stat poll every ``poll_interval`` catches a new inode at PATH (rotation: the old stream drains
  until idle, the new file is read from 0) and a truncation tail did not report.  On reconnect each
  file resumes at its offset: at PATH if it is still there, at ``PATH.1`` if it was rotated away.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

from ..transport.base import Backoff, Stream, Transport, TransportError
from .tailstream import TailFile, spell

log = logging.getLogger(__name__)

_TAIL = 'export LC_ALL=C; exec tail -c +"$1" -f -- "$2" 2>&1'
_STAT = (  # three lines: the server's clock, then PATH and PATH.1, each a stat line or an error
    'export LC_ALL=C; date +%s; for f in "$1" "$1.1"; do '
    "stat -L -c '%d:%i %s %Y %F' -- \"$f\" 2>&1; done"
)
_STAT_LINE = re.compile(r"(\d+:\d+) (\d+) (\d+) (.+)")


class FollowPhase(enum.Enum):
    STARTING = "starting"
    FOLLOWING = "following"
    WAITING = "waiting for file"
    RECONNECTING = "reconnecting"
    ERROR = "error"
    CLOSED = "closed"


@dataclass(frozen=True)
class FollowState:
    phase: FollowPhase
    detail: str = ""
    retry_at: float | None = None
    """time.monotonic() of the next attempt, while RECONNECTING or ERROR."""

    def describe(self) -> str:
        """ "following", "reconnecting in 4s: …", "error: … (retrying in 30s)"."""
        left = "" if self.retry_at is None else f"{max(0.0, self.retry_at - time.monotonic()):.0f}s"
        if self.phase is FollowPhase.ERROR and left:
            return f"error: {self.detail} (retrying in {left})"
        text = f"{self.phase.value} in {left}" if left else self.phase.value
        return f"{text}: {self.detail}" if self.detail else text


class FileStat(NamedTuple):
    file_id: str
    """``device:inode``: the identity of a file across renames."""
    size: int
    mtime: int
    kind: str


class Following:
    """What a follower of one log keeps besides its data, shared by :class:`LogFollower` and
    the aggregating twin (:class:`opsconsole.logs.aggregate.AgentFollower`): its state and who
    hears of it, closing, and retrying with backoff — each wait cut short by :meth:`close`."""

    def __init__(
        self,
        get_transport: Callable[[], Awaitable[Transport]],
        on_state: Callable[[FollowState], None] | None,
        backoff: Callable[[], Backoff],
        error_backoff: Callable[[], Backoff],
    ) -> None:
        self._get_transport = get_transport
        self._on_state = on_state
        self._backoff, self._error_backoff = backoff(), error_backoff()
        self.state = FollowState(FollowPhase.STARTING)
        self.lost: list[str] = []
        """Gaps that could not be read back (an old file gone while disconnected)."""
        self._closed = False
        self._wake = asyncio.Event()

    def _set(self, phase: FollowPhase, detail: str = "", retry_at: float | None = None) -> None:
        new = FollowState(phase, detail, retry_at)
        if new != self.state and (phase is FollowPhase.CLOSED or not self._closed):
            self.state = new
            if self._on_state is not None:
                self._on_state(new)

    async def _retry(self, phase: FollowPhase, detail: str, backoff: Backoff) -> None:
        delay = backoff.next_delay()
        self._set(phase, detail, time.monotonic() + delay)
        await self._pause(delay)

    async def _unless_closed(self, waiting: Awaitable[Transport]) -> Transport:
        """``await waiting`` (the pool may retry for long), cancelled by :meth:`close`."""
        task, woken = asyncio.ensure_future(waiting), asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([task, woken], return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
        return task.result()  # raises CancelledError when close() came first

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)


class LogFollower(Following):
    """Follows ``path`` through the transport that ``get_transport()`` returns (the pool's)."""

    def __init__(
        self,
        get_transport: Callable[[], Awaitable[Transport]],
        path: str,
        *,
        start_offset: int | None = None,
        start_file_id: str | None = None,
        on_state: Callable[[FollowState], None] | None = None,
        poll_interval: float = 1.0,
        drain_idle: float = 5.0,
        drain_max_idle: float = 60.0,
        truncate_grace: float = 3.0,
        privileged: bool = False,
        backoff: Callable[[], Backoff] = Backoff,
        error_backoff: Callable[[], Backoff] = lambda: Backoff(initial=5.0, maximum=60.0),
    ) -> None:
        """``start_offset=None`` starts at the end of the file; an offset (with ``start_file_id``,
        the file it belongs to) resumes a saved position.  An old file is closed once idle for
        ``drain_idle`` s after the new one got data, or ``drain_max_idle`` s anyway."""
        super().__init__(get_transport, on_state, backoff, error_backoff)
        self.path = path
        self._start = (start_offset, start_file_id)
        self.poll_interval, self.truncate_grace = poll_interval, truncate_grace
        self.drain_idle, self.drain_max_idle = drain_idle, drain_max_idle
        self._privileged = privileged
        self._files: list[TailFile] = []
        self._transport: Transport | None = None
        self._running = self._waited = False
        self._queue: asyncio.Queue[tuple[TailFile, int, bytes] | None] = asyncio.Queue(16)
        self._server_time = self._seen_time = 0
        """The server's clock at the last look at the files (0: never looked), and at this one."""
        self._next_poll = 0.0
        self._truncated_since: float | None = None
        self._size_seen: tuple[str, int] | None = None
        """(file id, size) of the live file at the last look."""

    @property
    def offset(self) -> int:
        """End of the last complete line delivered from the current file."""
        current = self._current()
        return current.offset if current else (self._start[0] or 0)

    @property
    def inode(self) -> str | None:
        """``device:inode`` of the current file (save it with :attr:`offset` to resume)."""
        current = self._current()
        return current.file_id if current else self._start[1]

    def positions(self) -> list[tuple[str, int, bool]]:
        """(file id, offset of the last complete line delivered, whether it is the live file) of
        every file being read: where another reader resumes (after :meth:`close`, exact)."""
        if not self._files:
            offset, file_id = self._start
            return [(file_id, offset or 0, True)] if file_id else []
        return [(f.file_id, f.offset, f.current) for f in self._files]

    @property
    def backlog(self) -> int:
        """Bytes the live file held at the last look (about once a second) beyond what was
        delivered: lines written on the server and not read yet (0 when caught up)."""
        current, seen = self._current(), self._size_seen
        if current is None or seen is None or seen[0] != current.file_id:
            return 0
        return max(0, seen[1] - current.offset)

    @property
    def server_time(self) -> int:
        """The server's clock (epoch seconds) at the last look at the files (0: never)."""
        return self._server_time

    def _current(self) -> TailFile | None:
        return next((f for f in self._files if f.current), None)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)
        await self._stop_all()
        self._set(FollowPhase.CLOSED)

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """Complete lines as bytes, one or more per chunk, until :meth:`close`."""
        try:
            while not self._closed:
                if not self._running:
                    await self._open()
                    continue
                item = await self._next_event()
                if self._closed:
                    break
                if item is None:
                    await self._poll()
                    continue
                f, gen, data = item
                if gen != f.gen or f not in self._files:
                    continue  # from a stream already replaced
                if not data:
                    await self._ended(f)
                    continue
                out, truncated = f.feed(data)
                if truncated:
                    self._truncated_since = None
                if out:
                    self._backoff.reset()
                    yield out
        finally:
            await self._stop_all()

    # -- opening and re-opening -----------------------------------------------------------

    async def _open(self) -> None:
        try:
            self._transport = transport = await self._unless_closed(self._get_transport())
            main, old = await self._stat(transport)
        except TransportError as e:
            if not e.retryable:  # a refused host key or login: the operator has to act
                return await self._retry(FollowPhase.ERROR, str(e), self._error_backoff)
            return await self._retry(FollowPhase.RECONNECTING, str(e), self._backoff)
        except asyncio.CancelledError:
            if self._closed:
                return  # close() interrupted the wait for a connection
            raise
        if isinstance(main, FileStat) and not main.kind.startswith("regular"):
            main = f"{self.path} is not a regular file ({main.kind})"
        if isinstance(main, str):
            return await self._retry(FollowPhase.ERROR, main, self._error_backoff)
        if main is None and not self._files:
            self._waited = True  # the file, once it appears, is read from its start
        else:
            self._resolve(main, old)
        if not self._files:
            self._set(FollowPhase.WAITING, self.path)
            return await self._pause(self.poll_interval)
        try:
            for f in self._files:
                await self._start_stream(transport, f)
        except TransportError as e:
            await self._stop_all()
            return await self._retry(FollowPhase.RECONNECTING, str(e), self._backoff)
        self._running, self._server_time = True, self._seen_time
        self._next_poll = time.monotonic() + self.poll_interval
        self._error_backoff.reset()
        self._set(FollowPhase.FOLLOWING)

    def _resolve(self, main: FileStat | None, old: FileStat | None) -> None:
        """Decide which files to read, and from where, after a (re)start."""
        if not self._files and main is not None:
            offset, file_id = self._start
            if self._waited or self._server_time:
                offset, file_id = 0, main.file_id  # a file that appeared while we watched
            elif offset is None:
                offset, file_id = main.size, main.file_id
            self._files = [TailFile(file_id or main.file_id, self.path, offset)]
        at = {s.file_id: p for s, p in ((main, self.path), (old, self.path + ".1")) if s}
        current = self._current()
        for f in list(self._files):
            if f.file_id in at:
                f.path = at[f.file_id]
            else:
                message = f"{f.path} (file {f.file_id}) is gone: lines after byte {f.offset} lost"
                log.warning("%s", message)
                self.lost.append(message)
                self._files.remove(f)
        if main is not None and (current is None or current.file_id != main.file_id):
            self._rotated(main, old)

    def _rotated(self, main: FileStat, old: FileStat | None) -> None:
        known = {f.file_id for f in self._files}
        for f in self._files:
            f.current, f.last_data = False, time.monotonic()
        # A file that came and went between two looks (rotated twice, or while disconnected):
        # PATH.1 is unknown but written since the last look, so it is read from its start.
        if old and old.file_id not in known | {main.file_id} and 0 < self._server_time <= old.mtime:
            log.info("%s.1 (file %s) came and went between two looks", self.path, old.file_id)
            self._files.append(TailFile(old.file_id, self.path + ".1", 0, current=False))
        if main.file_id in known:
            next(f for f in self._files if f.file_id == main.file_id).current = True
        else:
            self._files.append(TailFile(main.file_id, self.path, 0))

    async def _start_stream(self, transport: Transport, f: TailFile) -> None:
        await self._stop_stream(f)
        first = max(f.offset - 1, 0)  # from the newline before: proves we are at a line start
        spelled = spell(f.path)
        argv = ["sh", "-c", _TAIL, "sh", str(first + 1), spelled]
        f.stream = await transport.open_stream(argv, privileged=self._privileged)
        f.gen += 1
        f.spelled, f.pending, f.skip, f.offset = spelled.encode(), bytearray(), f.offset > 0, first
        f.message = ""
        f.reader = asyncio.create_task(self._pump(f, f.gen, f.stream))
        if self._closed:
            await self._stop_stream(f)

    async def _pump(self, f: TailFile, gen: int, stream: Stream) -> None:
        while True:
            data = await stream.read(65536)
            await self._queue.put((f, gen, data))  # bounded: a slow reader slows the tail down
            if not data:
                return

    async def _stop_stream(self, f: TailFile) -> None:
        f.gen += 1
        reader, stream, f.reader, f.stream = f.reader, f.stream, None, None
        if f.skip:
            f.offset, f.skip = f.offset + 1, False  # back to the line boundary it began from
        if reader is not None:
            reader.cancel()
            await asyncio.wait([reader])  # not `await reader`: that would swallow our own cancel
        if stream is not None:
            with contextlib.suppress(TransportError, OSError):
                await stream.close()

    async def _stop_all(self) -> None:
        self._running = False
        for f in list(self._files):
            await self._stop_stream(f)

    async def _ended(self, f: TailFile) -> None:
        """A tail ended: it failed (its message came in-band) or it was killed or cut off."""
        message = f.message
        status = await f.stream.wait(1.0) if f.stream is not None else None
        await self._stop_all()
        if message:
            return await self._retry(FollowPhase.ERROR, message, self._error_backoff)
        why = "connection lost" if status is None else f"tail ended with status {status}"
        await self._retry(FollowPhase.RECONNECTING, f"{self.path}: {why}", self._backoff)

    # -- following -------------------------------------------------------------------------

    async def _next_event(self) -> tuple[TailFile, int, bytes] | None:
        left = self._next_poll - time.monotonic()
        if left <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), left)
        except TimeoutError:
            return None

    async def _stat(self, transport: Transport) -> tuple[FileStat | str | None, FileStat | None]:
        """PATH and PATH.1: a FileStat, None if missing, or (for PATH) the error text."""
        argv = ["sh", "-c", _STAT, "sh", self.path]
        result = await transport.run(argv, timeout=10.0, privileged=self._privileged)
        lines = result.stdout.decode("utf-8", "replace").splitlines()
        if len(lines) != 3 or not lines[0].isdigit():
            return f"cannot examine {self.path}: {result.error_text()}", None
        self._seen_time = int(lines[0])
        parsed: list[FileStat | str | None] = []
        for text in lines[1:]:
            if m := _STAT_LINE.fullmatch(text):
                parsed.append(FileStat(m[1], int(m[2]), int(m[3]), m[4]))
            else:
                missing = text.endswith("No such file or directory")
                parsed.append(None if missing else text)
        return parsed[0], parsed[1] if isinstance(parsed[1], FileStat) else None

    async def _poll(self) -> None:
        self._next_poll = time.monotonic() + self.poll_interval
        transport = self._transport  # the streams' own: if it broke, their end says so
        assert transport is not None  # set by _open before anything runs
        try:
            main, old = await self._stat(transport)
        except TransportError as e:
            log.info("%s: stat poll failed: %s", self.path, e)
            return
        current = self._current()
        self._size_seen = (main.file_id, main.size) if isinstance(main, FileStat) else None
        if isinstance(main, FileStat) and (current is None or main.file_id != current.file_id):
            log.info("%s rotated: now file %s", self.path, main.file_id)
            self._rotated(main, old)
            for f in self._files:
                if f.stream is None:
                    with contextlib.suppress(TransportError):
                        await self._start_stream(transport, f)
        elif isinstance(main, FileStat) and current is not None and main.size < current.offset:
            await self._truncated(transport, current)
        else:
            self._truncated_since = None
        self._server_time = self._seen_time
        await self._close_drained()
        self._backoff.reset()

    async def _truncated(self, transport: Transport, current: TailFile) -> None:
        """Truncated in place, and tail has not said so (yet): restart at 0 after a grace."""
        now = time.monotonic()
        if self._truncated_since is None:
            self._truncated_since = now
        elif now - self._truncated_since >= self.truncate_grace:
            log.info("%s truncated without a tail message: reading from 0", self.path)
            self._truncated_since = None
            await self._stop_stream(current)
            current.offset = 0
            with contextlib.suppress(TransportError):
                await self._start_stream(transport, current)

    async def _close_drained(self) -> None:
        """Close old files idle for drain_idle once the new one has data (the server reopened
        it), or idle for drain_max_idle whatever happens."""
        now, current = time.monotonic(), self._current()
        new_data = current.last_data if current is not None and current.offset > 0 else None
        for f in [f for f in self._files if not f.current]:
            idle = now - f.last_data
            moved_on = new_data is not None and new_data > f.last_data
            if (idle >= self.drain_idle and moved_on) or idle >= self.drain_max_idle:
                log.info("%s: done with old file %s at byte %d", self.path, f.file_id, f.offset)
                await self._stop_stream(f)
                self._files.remove(f)
