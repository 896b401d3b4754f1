"""The transport over any anyio byte stream: TCP on trio, Unix sockets, your own stream.

anyio's streams read only when asked, so what the server pushes unasked waits in the
kernel's socket buffer, not in our heap.
"""

from __future__ import annotations

import contextlib
import ssl

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from ._base import READ_SIZE, TLSInfo, Transport
from ._errors import map_errors

__all__ = ["AnyIOTransport"]


class AnyIOTransport(Transport):
    """A transport over any anyio byte stream: TCP, Unix socket, TLS, or your own."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        # Whether the server has sent anything yet: a handshake before that is implicit
        # TLS (RFC 8314 3.3), where an answer in clear means a plain SMTP port.
        self._received = False

    @property
    def stream(self) -> anyio.abc.ByteStream:
        """The underlying anyio stream."""
        return self._stream

    async def receive(self) -> bytes:
        with map_errors("receive"):
            try:
                data = await self._stream.receive(READ_SIZE)
            except anyio.EndOfStream:
                return b""
        self._received = True
        return data

    async def send(self, data: bytes) -> None:
        with map_errors("send"):
            await self._stream.send(data)

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None) -> None:
        with map_errors("TLS handshake", implicit_tls=not self._received):
            # SMTP frames its own end (QUIT/221), so a missing close_notify is harmless.
            self._stream = await TLSStream.wrap(
                self._stream,
                hostname=server_hostname,
                ssl_context=ssl_context,
                standard_compatible=False,
            )

    async def aclose(self) -> None:
        with (
            contextlib.suppress(Exception),
            anyio.CancelScope(shield=True),
            anyio.move_on_after(1),
        ):
            await self._stream.aclose()

    @property
    def local_ip(self) -> str | None:
        address = self._stream.extra(SocketAttribute.local_address, None)
        return address[0] if isinstance(address, tuple) else None

    @property
    def remote_ip(self) -> str | None:
        address = self._stream.extra(SocketAttribute.remote_address, None)
        return str(address[0]) if isinstance(address, tuple) else None

    @property
    def tls_info(self) -> TLSInfo | None:
        ssl_object = self._stream.extra(TLSAttribute.ssl_object, None)
        if ssl_object is None:
            return None
        cert = ssl_object.getpeercert(binary_form=True)
        cipher = ssl_object.cipher()
        return TLSInfo(
            version=ssl_object.version(),
            cipher=cipher[0] if cipher else None,
            peer_certificate=cert,
        )
