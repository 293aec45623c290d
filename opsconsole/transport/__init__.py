"""Reaching servers: one :class:`Transport` interface, over SSH or on this machine.

The public API of the package; callers import from here, not from the modules behind it::

    pool = ConnectionPool(config.servers, max_handshakes=8)
    transport = await pool.get("web1")
    result = await transport.run(["nginx", "-t"], privileged=True)
"""

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
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

__getattr__ = exports(
    __name__,
    {
        "Backoff": ".base",
        "LinkState": ".base",
        "RunResult": ".base",
        "ServerStatus": ".base",
        "Stream": ".base",
        "Transport": ".base",
        "TransportError": ".base",
        "Unreachable": ".base",
        "LocalTransport": ".local",
        "ConnectionPool": ".pool",
        "StatusListener": ".pool",
        "AuthenticationError": ".ssh",
        "ClientKeyError": ".ssh",
        "HostKeyError": ".ssh",
        "SessionLimitError": ".ssh",
        "SetupError": ".ssh",
        "SSHTransport": ".ssh",
        "UnreachableError": ".ssh",
        "connect_ssh": ".ssh",
    },
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
