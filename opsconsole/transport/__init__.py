"""Reaching servers: one :class:`Transport` interface, over SSH or on this machine.

The public API of the package; callers import from here, not from the modules behind it::

    pool = ConnectionPool(config.servers, max_handshakes=8)
    transport = await pool.get("web1")
    result = await transport.run(["nginx", "-t"], privileged=True)
"""

from .base import (
    Backoff,
    LinkState,
    RunResult,
    ServerStatus,
    Stream,
    Transport,
    TransportError,
    Unreachable,
)
from .local import LocalTransport
from .pool import ConnectionPool, StatusListener
from .ssh import (
    AuthenticationError,
    ClientKeyError,
    HostKeyError,
    SessionLimitError,
    SetupError,
    SSHTransport,
    UnreachableError,
    connect_ssh,
)

__all__ = [
    "AuthenticationError",
    "Backoff",
    "ClientKeyError",
    "ConnectionPool",
    "HostKeyError",
    "LinkState",
    "LocalTransport",
    "RunResult",
    "SSHTransport",
    "ServerStatus",
    "SessionLimitError",
    "SetupError",
    "StatusListener",
    "Stream",
    "Transport",
    "TransportError",
    "Unreachable",
    "UnreachableError",
    "connect_ssh",
]
