"""The transport interface: what the client needs from the network, and nothing else.

A transport is the smallest thing the client needs from the network: ``receive``,
``send``, ``start_tls`` and ``aclose`` (the httpcore idea). Everything above it can be
tested with a scripted stream.

Rule: this module imports no implementation. The anyio one lives in ``_anyio.py``, the
asyncio one in ``_asyncio.py``, the choice between them in ``_connect.py``, and the
translation of network errors into smtpsubmit's own in ``_errors.py``.
"""

from __future__ import annotations

import abc
import math
import ssl
from dataclasses import dataclass, field

import anyio

__all__ = ["READ_SIZE", "TLSInfo", "Transport"]

#: The most octets one :meth:`Transport.receive` of ours returns.
READ_SIZE = 65536


@dataclass(frozen=True)
class TLSInfo:
    """What was negotiated: protocol version, cipher and the server's DER certificate."""

    version: str | None
    cipher: str | None
    peer_certificate: bytes | None = field(repr=False)


class Transport(abc.ABC):
    """A bidirectional byte stream to the server. Implement it to bring your own network."""

    @abc.abstractmethod
    async def receive(self) -> bytes:
        """Up to some octets from the server; ``b""`` when the server closed the stream."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Write all of ``data``."""

    @abc.abstractmethod
    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Upgrade this stream to TLS in place (STARTTLS, RFC 3207)."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the stream; never raises."""

    @property
    @abc.abstractmethod
    def tls_info(self) -> TLSInfo | None:
        """Details of the TLS session, or ``None`` when the stream is not encrypted."""

    async def receive_by(self, deadline: float | None) -> bytes:
        """:meth:`receive`, raising ``TimeoutError`` at ``deadline`` (anyio's clock)."""
        with anyio.fail_at(math.inf if deadline is None else deadline):
            return await self.receive()

    async def send_by(self, data: bytes, deadline: float | None) -> None:
        """:meth:`send`, raising ``TimeoutError`` at ``deadline`` (anyio's clock)."""
        with anyio.fail_at(math.inf if deadline is None else deadline):
            await self.send(data)

    @property
    def local_ip(self) -> str | None:
        """The local IP address of the connection, if it has one (for the EHLO name)."""
        return None

    @property
    def remote_ip(self) -> str | None:
        """The server's IP address, if the connection has one."""
        return None
