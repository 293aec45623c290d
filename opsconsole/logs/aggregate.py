"""The console side of the aggregating mode (DESIGN §4): run :mod:`.agent` on a server and
hand its summaries to the counts.

:class:`AgentFollower` is the aggregating twin of :class:`~opsconsole.logs.follow.LogFollower`:
it sends the agent's own source text to ``python3 -`` over the server's SSH connection (nothing
is installed), reads one JSON message per line, and yields each ``data`` message as an
:class:`~opsconsole.logs.summary.AgentSummary`.  Every message says which file offsets it
covers; they become :attr:`AgentFollower.files` as the summary is handed over, so a reconnect
(with backoff and jitter) or a switch to raw resumes exactly after the last summary counted.

A server whose interpreter is missing, too old or cannot run the agent raises
:class:`AgentUnavailable` once, with a sentence saying why: the pipeline then reads that server
raw.  :func:`read_rows` is the one-shot twin for history reads (``suggest``, ``stats
--since``): the agent parses the byte range on the server and ships the rows.
Imports: the standard library, this package and :mod:`opsconsole.transport.base`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.resources
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from ..transport.base import Backoff, Stream, Transport, TransportError
from .follow import Following, FollowPhase, FollowState
from .logformat import LogFormat
from .parse import ParsedChunk
from .summary import AgentSummary, RowDecoder, SummaryError, decode_summary

MIN_PYTHON = "3.6"
SHIP_CAP = 200
"""Distinct values of one list that one message ships for one log second; past it, the
largest half (the console's own second keeps 2,000 across servers): under a flood of random
paths and addresses, the tail of single requests stays on the server, and the console keeps
up."""


class AgentUnavailable(Exception):
    """The agent cannot run on this server (no python3, too old, it failed): read it raw."""

    done = 0
    """Bytes of a history read the agent had delivered (and were counted) before it failed."""


@functools.cache
def agent_program() -> bytes:
    """The text sent to ``python3 -``: this package's agent.py, byte for byte."""
    return importlib.resources.files(__package__).joinpath("agent.py").read_bytes()


def format_params(fmt: LogFormat) -> dict[str, Any]:
    """What the agent needs to parse as the console does: the compiled regex itself."""
    return {
        "regex": fmt.regex.pattern.decode("latin-1"),
        "flags": int(fmt.regex.flags),
        "groups": fmt.groups,
    }


def _argv(python: str, params: dict[str, Any]) -> list[str]:
    return [python, "-", json.dumps(params, separators=(",", ":"))]


async def _why_not(stream: Stream, python: str, server: str) -> str | None:
    """Why the agent ended before saying hello: a sentence, or None if the link broke."""
    status = await stream.wait(2.0)
    if status is None:
        return None
    if status == 127:
        return f"{python} not found on {server}"
    if status == 126:
        return f"{python} cannot be run on {server}"
    text = (await stream.stderr_text()).strip()
    last = text.splitlines()[-1] if text else f"exit status {status}"
    if "SyntaxError" in text:
        return f"{python} on {server} is too old for the agent (it needs Python {MIN_PYTHON}+)"
    return f"the agent failed on {server} ({python}: {last})"


class AgentFollower(Following):
    """Follows ``path`` on one server through the aggregating agent."""

    def __init__(
        self,
        get_transport: Callable[[], Awaitable[Transport]],
        path: str,
        fmt: LogFormat,
        *,
        server: str,
        python: str = "python3",
        files: list[tuple[str, int]] | None = None,
        on_state: Callable[[FollowState], None] | None = None,
        flush: float = 0.5,
        poll: float = 1.0,
        bucket_cap: int = SHIP_CAP,
        backoff: Callable[[], Backoff] = Backoff,
        error_backoff: Callable[[], Backoff] = lambda: Backoff(initial=5.0, maximum=60.0),
    ) -> None:
        """``files``: (file id, offset) pairs to resume from (a raw follower's positions, or
        where the window starts)."""
        super().__init__(get_transport, on_state, backoff, error_backoff)
        self.path, self.server, self.python = path, server, python
        self._params = {
            "mode": "follow",
            "path": path,
            "flush": flush,
            "poll": poll,
            "bucket_cap": bucket_cap,
            "kmv": 1024,
            **format_params(fmt),
        }
        self.files: list[tuple[str, int, bool]] = [(f, o, True) for f, o in files or []]
        """(file id, offset of the last line counted, whether it is the live file)."""
        self.version: str | None = None
        """The server's Python, once the agent runs."""
        self._size = 0
        self._server_time = 0
        self._stream: Stream | None = None

    @property
    def backlog(self) -> int:
        """Bytes of the live file not summarised yet, at the agent's last look."""
        current = next((o for _, o, cur in self.files if cur), None)
        return 0 if current is None else max(0, self._size - current)

    @property
    def server_time(self) -> int:
        return self._server_time

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(TransportError, OSError):
                await stream.close()
        self._set(FollowPhase.CLOSED)

    async def summaries(self) -> AsyncGenerator[AgentSummary, None]:
        """The agent's summaries, in order, until :meth:`close`.  Raises AgentUnavailable."""
        while not self._closed:
            try:
                transport = await self._unless_closed(self._get_transport())
                params = dict(self._params, files=[[f, o] for f, o, _ in self.files])
                stream = await transport.open_stream(
                    _argv(self.python, params), input=agent_program()
                )
            except asyncio.CancelledError:
                if self._closed:
                    break  # close() interrupted the wait for a connection
                raise
            except TransportError as e:
                if not e.retryable:
                    await self._retry(FollowPhase.ERROR, str(e), self._error_backoff)
                else:
                    await self._retry(FollowPhase.RECONNECTING, str(e), self._backoff)
                continue
            self._stream = stream
            said_hello, error = False, ""
            try:
                async for msg in _messages(stream):
                    kind = msg.get("t")
                    if kind == "hello":
                        said_hello = True
                        self.version = str(msg.get("python", ""))
                        self._backoff.reset()
                        self._error_backoff.reset()
                        self._set(FollowPhase.FOLLOWING)
                    elif kind == "data":
                        summary = decode_summary(msg)
                        self._note_files(msg)
                        self._commit(msg)  # what is handed over counts (as a raw chunk's bytes)
                        yield summary
                        if msg.get("waiting"):
                            self._set(FollowPhase.WAITING, self.path)
                        elif said_hello:
                            self._set(FollowPhase.FOLLOWING)
                    elif kind == "lost":
                        self.lost.append(str(msg.get("detail", "")))
                    elif kind == "unsupported":
                        raise AgentUnavailable(f"{self.server}: {msg.get('detail', '')}")
                    elif kind == "error":
                        error = str(msg.get("detail", "the agent failed"))
                if not said_hello and not error and not self._closed:
                    why = await _why_not(stream, self.python, self.server)
                    if why is not None:
                        raise AgentUnavailable(why)
            except SummaryError as e:
                raise AgentUnavailable(f"the agent on {self.server} sent {e}") from None
            finally:
                self._stream = None
                with contextlib.suppress(TransportError, OSError):
                    await stream.close()
            if self._closed:
                break
            if error:
                await self._retry(FollowPhase.ERROR, error, self._error_backoff)
            else:
                what = "connection lost" if said_hello else "the agent did not start"
                await self._retry(FollowPhase.RECONNECTING, f"{self.path}: {what}", self._backoff)

    def _note_files(self, msg: dict[str, Any]) -> None:
        size, now = msg.get("size"), msg.get("now")
        if isinstance(size, int) and isinstance(now, int):
            self._size, self._server_time = size, now

    def _commit(self, msg: dict[str, Any]) -> None:
        """The summary is handed over: its offsets are where a restart resumes."""
        files = msg.get("files")
        if isinstance(files, list) and all(
            isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], int)
            for f in files
        ):
            self.files = [(f[0], f[1], bool(f[2])) for f in files]


async def _messages(stream: Stream) -> AsyncIterator[dict[str, Any]]:
    """The agent's JSON messages, one per line (SummaryError for anything else)."""
    pending = b""
    while True:
        data = await stream.read(1 << 20)
        if not data:
            return
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        if len(pending) > 64 << 20:
            raise SummaryError("a message of more than 64 MiB")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                raise SummaryError(f"something that is not JSON: {line[:80]!r}") from None
            if not isinstance(msg, dict):
                raise SummaryError("a message that is not an object")
            yield msg


async def read_rows(
    transport: Transport,
    path: str,
    fmt: LogFormat,
    start: int,
    end: int,
    *,
    server: str,
    python: str = "python3",
) -> AsyncIterator[tuple[ParsedChunk, int]]:
    """The rows of bytes ``[start, end)`` of ``path``, parsed on the server by the agent, with
    how many bytes each batch covers.  Raises AgentUnavailable (read raw instead) or
    TransportError."""
    params = {"mode": "read", "path": path, "start": start, "end": end, **format_params(fmt)}
    stream = await transport.open_stream(_argv(python, params), input=agent_program())
    decoder = RowDecoder(fmt.ngroups)
    done = 0
    ended = False
    try:
        async for msg in _messages(stream):
            kind = msg.get("t")
            if kind == "rows":
                parsed = decoder.decode(msg)
                covered = msg.get("done")
                step = covered - done if isinstance(covered, int) else 0
                done += step
                yield parsed, step
            elif kind == "end":
                ended = True
            elif kind == "unsupported":
                raise AgentUnavailable(f"{server}: {msg.get('detail', '')}")
            elif kind == "error":
                raise TransportError(f"{server}: {msg.get('detail', 'the agent failed')}")
        if not ended:
            why = await _why_not(stream, python, server)
            if why is None:
                raise TransportError(f"{server}: connection lost while reading {path}")
            raise AgentUnavailable(why)
    except SummaryError as e:
        raise AgentUnavailable(f"the agent on {server} sent {e}") from None
    finally:
        with contextlib.suppress(TransportError, OSError):
            await stream.close()
