"""``host = "local"``: the same :class:`~opsconsole.transport.base.Transport` on this machine.

Commands run with ``asyncio.create_subprocess_exec`` (no shell), so the log follower, the controls
and the probes behave exactly as over SSH, with real ``tail``, ``stat``, ``nginx -t``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from collections.abc import Sequence

from .base import RunResult, TransportError


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal a child asyncio has not reaped yet.  Not ``proc.terminate()``: Popen polls first
    and may reap the child itself, and asyncio's watcher then logs "Unknown child process pid
    …, will report returncode 255" in front of the operator."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


STREAM_BUFFER = 1 << 20
"""Bytes a stream's pipe and reader hold: a log read back (``stats --since``) arrives in a few
hundred large reads, not thousands of 64 KiB ones."""
_F_SETPIPE_SZ = 1031  # Linux


def _widen(proc: asyncio.subprocess.Process) -> None:
    """Let the child's stdout pipe hold ``STREAM_BUFFER`` bytes (Linux; elsewhere a no-op)."""
    transport = getattr(proc, "_transport", None)
    pipe = transport.get_pipe_transport(1) if transport is not None else None
    fileobj = pipe.get_extra_info("pipe") if pipe is not None else None
    if fileobj is not None:
        with contextlib.suppress(OSError, ValueError):  # ValueError: it has closed already
            fcntl.fcntl(fileobj.fileno(), _F_SETPIPE_SZ, STREAM_BUFFER)


class LocalStream:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._stderr = b""

    async def read(self, n: int = 65536) -> bytes:
        assert self._proc.stdout is not None
        return await self._proc.stdout.read(n)

    @property
    def exit_status(self) -> int | None:
        return self._proc.returncode

    async def wait(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._proc.wait(), timeout)
        return self._proc.returncode

    async def stderr_text(self) -> str:
        if self._proc.stderr is not None and self._proc.returncode is not None:
            with contextlib.suppress(Exception):
                self._stderr += await asyncio.wait_for(self._proc.stderr.read(), 1.0)
        return self._stderr.decode("utf-8", "replace").strip()

    async def close(self) -> None:
        if self._proc.returncode is None and self._proc.stdout and self._proc.stdout.at_eof():
            # Probably exited already: let asyncio reap it.  terminate() would reap it first
            # (Popen.send_signal polls), and asyncio would then log "Unknown child process".
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 1.0)
        if self._proc.returncode is None:
            _signal(self._proc, signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), 2.0)
            except TimeoutError:
                _signal(self._proc, signal.SIGKILL)
                await self._proc.wait()


class LocalTransport:
    """Runs argument vectors on this machine.

    ``sudo=True`` (the server's ``sudo`` setting) prefixes ``sudo -n --`` to privileged commands,
    as over SSH; otherwise they run as the console's own user.
    """

    def __init__(self, name: str = "local", *, sudo: bool = False) -> None:
        self.name = name
        self.sudo = sudo

    def _argv(self, argv: Sequence[str], privileged: bool) -> list[str]:
        if not argv:
            raise ValueError("empty command")
        return ["sudo", "-n", "--", *argv] if privileged and self.sudo else list(argv)

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        argv = self._argv(argv, privileged)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            # Same meaning as a remote shell's "command not found": the command failed.
            return RunResult(127, b"", f"{argv[0]}: {e.strerror}".encode())
        try:
            out, err = await asyncio.wait_for(proc.communicate(input), timeout)
        except TimeoutError:
            _signal(proc, signal.SIGKILL)
            await proc.wait()
            raise TransportError(f"{argv[0]} timed out after {timeout:.0f}s") from None
        except asyncio.CancelledError:  # Ctrl-C: no child outlives the command, none unreaped
            _signal(proc, signal.SIGKILL)
            with contextlib.suppress(asyncio.CancelledError):
                await proc.wait()
            raise
        return RunResult(proc.returncode if proc.returncode is not None else -1, out, err)

    async def run_configured(
        self, command: str, *, timeout: float | None = 30.0, privileged: bool = False
    ) -> RunResult:
        return await self.run(["sh", "-c", command], timeout=timeout, privileged=privileged)

    async def open_stream(
        self, argv: Sequence[str], *, privileged: bool = False, input: bytes | None = None
    ) -> LocalStream:
        argv = self._argv(argv, privileged)
        pipe = asyncio.subprocess.PIPE
        stdin = asyncio.subprocess.DEVNULL if input is None else pipe
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=stdin, stdout=pipe, stderr=pipe, limit=STREAM_BUFFER
            )
            _widen(proc)
        except FileNotFoundError:
            # What a shell (and so a server) says of a missing command: status 127.
            missing = 'echo "sh: 1: $0: not found" >&2; exit 127'
            proc = await asyncio.create_subprocess_exec(
                "sh", "-c", missing, argv[0], stdout=pipe, stderr=pipe
            )
            return LocalStream(proc)
        except OSError as e:
            raise TransportError(f"{argv[0]}: {e.strerror}") from None
        if input is not None and proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(input)
                await proc.stdin.drain()
            proc.stdin.close()
        return LocalStream(proc)

    async def close(self) -> None:
        return None
