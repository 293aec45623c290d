"""One SSH connection to one server (asyncssh): the remote :class:`~.base.Transport`.

Called by :class:`~opsconsole.transport.pool.ConnectionPool`, which opens, retries and hands out
these connections; nothing else in opsconsole imports asyncssh.  Imports: asyncssh, the standard
library, :mod:`opsconsole.config` and :mod:`.base`.

What this module guarantees:

- The operator's own SSH setup is used: ``~/.ssh/config`` (HostName, Port, User, IdentityFile…),
  the agent and the default keys, unless the server's config entry says otherwise.
- Host keys are checked strictly against the configured ``known_hosts``.  An unknown or changed key
  is refused with a :class:`HostKeyError` that names the host, the port and the SHA256 fingerprint
  of the key the server presented (fetched in a separate handshake that trusts nothing).
- Every command is an argument vector quoted with :func:`shlex.join` and started as ``exec …``, so
  the remote process is the channel's own and ends when the channel closes (signal requests are
  ignored by sshd for root sessions: LAB-NOTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import socket
from collections.abc import Sequence
from typing import Any

import asyncssh

from ..config import ServerConfig
from .base import RunResult, TransportError

_STDERR_KEEP = 64 * 1024
"""Bytes of a stream's stderr kept for error messages."""


class HostKeyError(TransportError):
    """The server's host key is unknown or differs from the one in known_hosts; never accepted."""

    retryable = False

    def __init__(self, message: str, *, fingerprint: str | None) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class AuthenticationError(TransportError):
    """The server refused every key offered for the user."""

    retryable = False


class ClientKeyError(TransportError):
    """A configured client key file is missing or cannot be loaded (e.g. needs a passphrase)."""

    retryable = False


class SetupError(TransportError):
    """The connection could not even be attempted: a bad ssh config value, an unknown user."""

    retryable = False


class UnreachableError(TransportError):
    """No SSH connection could be made (refused, timed out, name unknown, dropped in handshake)."""


class SessionLimitError(TransportError):
    """The server refused to open one more channel on the connection (``MaxSessions``)."""


def _where(host: str, port: int | None) -> str:
    return f"{host} port {port or 22}"


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def _remote_command(argv: Sequence[str], privileged: bool, sudo: bool) -> str:
    if not argv:
        raise ValueError("empty command")
    words = ["sudo", "-n", "--", *argv] if privileged and sudo else list(argv)
    return "exec " + shlex.join(words)


class SSHStream:
    """A remote command's stdout, read incrementally; stderr is collected on the side."""

    def __init__(self, name: str, process: asyncssh.SSHClientProcess[bytes]) -> None:
        self._name = name
        self._process = process
        self._stderr = bytearray()
        self._error: str | None = None
        self._stderr_task = asyncio.create_task(self._collect_stderr())

    async def _collect_stderr(self) -> None:
        # Drained continuously so a chatty stderr never stalls the remote command.
        with contextlib.suppress(asyncssh.Error, OSError):
            while chunk := await self._process.stderr.read(8192):
                if len(self._stderr) < _STDERR_KEEP:
                    self._stderr += chunk[: _STDERR_KEEP - len(self._stderr)]

    async def read(self, n: int = 65536) -> bytes:
        try:
            data: bytes = await self._process.stdout.read(n)
        except (asyncssh.Error, OSError) as e:
            self._error = f"{self._name}: connection lost ({_reason(e)})"
            return b""
        return data

    @property
    def exit_status(self) -> int | None:
        code: int | None = self._process.returncode
        return code

    async def wait(self, timeout: float | None = None) -> int | None:
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(self._process.wait_closed(), timeout)
        return self.exit_status

    async def stderr_text(self) -> str:
        if self._process.returncode is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        text = self._stderr.decode("utf-8", "replace").strip()
        return text or (self._error or "")

    async def close(self) -> None:
        self._process.close()
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(self._process.wait_closed(), 2.0)
        self._stderr_task.cancel()
        await asyncio.wait([self._stderr_task])


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    return data.encode() if isinstance(data, str) else bytes(data)


def _reason(e: BaseException) -> str:
    if isinstance(e, asyncssh.DisconnectError):
        return e.reason or type(e).__name__
    if isinstance(e, socket.gaierror):
        return f"the host name does not resolve ({e.strerror})"
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)  # asyncio's strerror is "Connect call failed (…)"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


class SSHTransport:
    """Runs argument vectors on one server over one authenticated asyncssh connection."""

    def __init__(self, server: ServerConfig, conn: asyncssh.SSHClientConnection) -> None:
        self.name = server.name
        self.server = server
        self._conn = conn

    @property
    def closed(self) -> bool:
        closed: bool = self._conn.is_closed()
        return closed

    async def wait_closed(self) -> None:
        """Return when the connection has ended, whoever ended it."""
        await self._conn.wait_closed()

    def _command(self, argv: Sequence[str], privileged: bool) -> str:
        return _remote_command(argv, privileged, self.server.sudo)

    def _lost(self, what: str, e: BaseException) -> TransportError:
        if isinstance(e, asyncssh.ChannelOpenError):
            return SessionLimitError(
                f"{self.name}: the server refused a new session for {what} ({e.reason}); "
                "too many at once for its MaxSessions?"
            )
        return TransportError(f"{self.name}: connection lost while running {what} ({_reason(e)})")

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = 30.0,
        privileged: bool = False,
    ) -> RunResult:
        command = self._command(argv, privileged)
        stdin: Any = asyncssh.DEVNULL if input is None else asyncssh.PIPE
        try:
            process = await self._conn.create_process(command, stdin=stdin, encoding=None)
        except (asyncssh.Error, OSError) as e:
            raise self._lost(argv[0], e) from None
        if input is not None:
            try:
                process.stdin.write(input)
                process.stdin.write_eof()
            except (BrokenPipeError, ConnectionResetError):
                pass  # it ended before reading its input (not found…): its exit status says why
        try:
            done = await process.wait(timeout=timeout)
        except asyncssh.TimeoutError:
            process.close()  # ends the exec'd command with its channel
            raise TransportError(f"{self.name}: {argv[0]} timed out after {timeout:.0f}s") from None
        except (asyncssh.Error, OSError) as e:
            process.close()
            raise self._lost(argv[0], e) from None
        if done.exit_status is None and done.exit_signal is None:
            # Neither an exit status nor a signal: the channel closed under the command.
            raise TransportError(f"{self.name}: connection lost while running {argv[0]}")
        status = done.returncode if done.returncode is not None else -1
        return RunResult(status, _as_bytes(done.stdout), _as_bytes(done.stderr))

    async def run_configured(
        self, command: str, *, timeout: float | None = 30.0, privileged: bool = False
    ) -> RunResult:
        return await self.run(["sh", "-c", command], timeout=timeout, privileged=privileged)

    async def open_stream(
        self, argv: Sequence[str], *, privileged: bool = False, input: bytes | None = None
    ) -> SSHStream:
        try:
            process = await self._conn.create_process(
                self._command(argv, privileged),
                stdin=asyncssh.DEVNULL if input is None else asyncssh.PIPE,
                encoding=None,
                window=STREAM_WINDOW,
                max_pktsize=STREAM_PACKET,
            )
        except (asyncssh.Error, OSError) as e:
            raise self._lost(argv[0], e) from None
        if input is not None:
            try:
                process.stdin.write(input)
                process.stdin.write_eof()
            except (BrokenPipeError, ConnectionResetError):
                pass  # it ended before reading its input: its exit status says why
        return SSHStream(self.name, process)

    async def close(self) -> None:
        self._conn.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._conn.wait_closed()


def _ciphers() -> list[str]:
    """asyncssh's default ciphers, AES-GCM first: decrypted here by OpenSSL with the CPU's AES
    instructions, it reads a log about twice as fast as ChaCha20-Poly1305 (asyncssh's first
    choice); every other default stays allowed, for servers without AES-GCM."""
    algs = [a.decode("ascii") for a in asyncssh.encryption.get_default_encryption_algs()]
    first = [a for a in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com") if a in algs]
    return first + [a for a in algs if a not in first]


STREAM_WINDOW = 8 << 20
"""Bytes a log stream's server may send ahead of our reads (asyncssh's default is 2 MiB)."""
STREAM_PACKET = 256 << 10
"""The largest data packet we accept on a log stream (default 32 KiB): fewer, larger packets
cost less per byte in this Python process, where the channel is decrypted."""


async def connect_ssh(
    server: ServerConfig,
    *,
    connect_timeout: float = 10.0,
    keepalive_interval: float = 15.0,
    ssh_config: Sequence[str] | None = None,
) -> SSHTransport:
    """Open and authenticate one connection; raise a TransportError subclass saying what failed.

    ``ssh_config`` replaces the default ``~/.ssh/config`` (an empty list reads none).
    """
    kw: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "keepalive_interval": keepalive_interval,
        "keepalive_count_max": 3,
        "config": () if ssh_config is None else list(ssh_config),
    }
    if not ssh_config:  # an OpenSSH config given may choose its own Ciphers: never override it
        kw["encryption_algs"] = _ciphers()
    if server.port is not None:
        kw["port"] = server.port
    if server.user is not None:
        kw["username"] = server.user
    if server.client_keys:
        keys = [_expand(k) for k in server.client_keys]
        for key in keys:
            if not os.path.isfile(key):
                raise ClientKeyError(f"{server.name}: client key file {key} does not exist")
        kw["client_keys"] = keys
    known_hosts = _expand(server.known_hosts or "~/.ssh/known_hosts")
    host, port, user = _resolved(server, kw)
    where = _where(host, port)
    if not os.path.isfile(known_hosts):
        # asyncssh would fall back to ~/.ssh/known_hosts: the configured file is the only truth.
        raise await _host_key_error(server, kw, known_hosts, missing=True)
    kw["known_hosts"] = known_hosts
    try:
        conn = await asyncssh.connect(server.host, **kw)
    except asyncssh.HostKeyNotVerifiable:
        raise await _host_key_error(server, kw, known_hosts) from None
    except asyncssh.PermissionDenied as e:
        raise AuthenticationError(
            f"{server.name}: {where} refused to log in user {user!r} ({e.reason}); "
            "check the key (client_keys, agent, ~/.ssh) and the server's authorized_keys"
        ) from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as e:
        raise ClientKeyError(f"{server.name}: cannot load a client key: {e}") from None
    except ValueError as e:  # asyncssh's word for a bad option, e.g. from ~/.ssh/config
        raise SetupError(f"{server.name}: cannot set up SSH to {where}: {e}") from None
    except TimeoutError:
        raise UnreachableError(
            f"{server.name}: no SSH answer from {where} within {connect_timeout:.0f}s"
        ) from None
    except asyncssh.DisconnectError as e:
        raise UnreachableError(
            f"{server.name}: {where} closed the connection during the handshake ({_reason(e)}); "
            "a server busy with other handshakes does this (MaxStartups)"
        ) from None
    except (asyncssh.Error, OSError) as e:
        raise UnreachableError(f"{server.name}: cannot reach {where}: {_reason(e)}") from None
    return SSHTransport(server, conn)


def _resolved(server: ServerConfig, kw: dict[str, Any]) -> tuple[str, int, str]:
    """Host, port and user after ~/.ssh/config, for messages and known_hosts lookups."""
    try:  # only to read the config: these options never connect, hence known_hosts=None
        opts = asyncssh.SSHClientConnectionOptions(
            host=server.host,
            port=kw.get("port", ()),
            username=kw.get("username", ()),
            config=kw["config"],
            known_hosts=None,
            client_keys=None,
        )
        return str(opts.host), int(opts.port), str(opts.username)
    except Exception:
        return server.host, server.port or 22, server.user or "?"


async def _host_key_error(
    server: ServerConfig, kw: dict[str, Any], known_hosts: str, *, missing: bool = False
) -> HostKeyError:
    host, port, _ = _resolved(server, kw)
    where = _where(host, port)
    trusted: Sequence[asyncssh.SSHKey] = ()
    if not missing:
        with contextlib.suppress(Exception):
            lookup_port = None if port == 22 else port
            trusted = asyncssh.match_known_hosts(known_hosts, host, host, lookup_port)[0]
    algs = [a.decode() for key in trusted for a in key.sig_algorithms] or ()
    presented = None
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(
                server.host,
                kw.get("port", ()),
                config=kw["config"],
                server_host_key_algs=algs,
            ),
            kw["connect_timeout"],
        )
        if key is not None:
            presented = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
    except (asyncssh.Error, OSError, TimeoutError):
        pass
    if missing:
        why = f"the known_hosts file {known_hosts} does not exist"
    elif trusted:
        why = (
            f"it does NOT match the key recorded for it in {known_hosts} "
            "(the server was reinstalled, or someone is in the middle)"
        )
    else:
        why = f"it is not in {known_hosts}"
    shown = f"the server presented {presented}" if presented else "its key could not be fetched"
    return HostKeyError(
        f"{server.name}: host key of {where} refused: {why}; {shown}. "
        "Verify it out of band, then add it to known_hosts (never accepted automatically).",
        fingerprint=presented.split()[-1] if presented else None,
    )
