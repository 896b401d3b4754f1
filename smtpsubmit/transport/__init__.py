"""Transports: how bytes reach the server (TCP, TLS, Unix socket, your own stream)."""

from ._base import AnyIOTransport, TLSInfo, Transport, connect_tcp, connect_unix, map_errors

__all__ = [
    "AnyIOTransport",
    "TLSInfo",
    "Transport",
    "connect_tcp",
    "connect_unix",
    "map_errors",
]
