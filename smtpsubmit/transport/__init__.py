"""Transports: how bytes reach the server (TCP, TLS, Unix socket, your own stream)."""

from ._asyncio import AsyncioTransport
from ._base import AnyIOTransport, TLSInfo, Transport, connect_tcp, connect_unix, map_errors

__all__ = [
    "AnyIOTransport",
    "AsyncioTransport",
    "TLSInfo",
    "Transport",
    "connect_tcp",
    "connect_unix",
    "map_errors",
]
