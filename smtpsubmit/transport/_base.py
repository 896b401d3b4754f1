"""The transport interface and its anyio implementation.

A transport is the smallest thing the client needs from the network: ``receive``,
``send``, ``start_tls`` and ``aclose`` (the httpcore idea). Everything above it can be
tested with a scripted stream. Errors from anyio, ``OSError`` and ``ssl`` are translated
into smtpsubmit's own exceptions here, in one place (:func:`map_errors`), and nowhere else.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import math
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from .._errors import CertificateError, ConnectError, ConnectionLostError, TLSError

__all__ = ["AnyIOTransport", "TLSInfo", "Transport", "map_errors"]

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


@contextlib.contextmanager
def map_errors(action: str) -> Iterator[None]:
    """Translate network and TLS exceptions into the public hierarchy."""
    try:
        yield
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(f"{action}: certificate verification failed: {exc}") from exc
    except ssl.SSLError as exc:
        raise TLSError(f"{action}: TLS failure: {exc}") from exc
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectionLostError(f"{action}: the connection was lost") from exc
    except OSError as exc:
        # anyio wraps several connect attempts in an OSError whose message lists them.
        raise ConnectError(f"{action}: {exc.strerror or exc}") from exc


class AnyIOTransport(Transport):
    """A transport over any anyio byte stream: TCP, Unix socket, TLS, or your own."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    @property
    def stream(self) -> anyio.abc.ByteStream:
        """The underlying anyio stream."""
        return self._stream

    async def receive(self) -> bytes:
        with map_errors("receive"):
            try:
                return await self._stream.receive(READ_SIZE)
            except anyio.EndOfStream:
                return b""

    async def send(self, data: bytes) -> None:
        with map_errors("send"):
            await self._stream.send(data)

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None) -> None:
        with map_errors("TLS handshake"):
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


async def connect_tcp(host: str, port: int, *, local_host: str | None = None) -> Transport:
    """Open TCP with happy eyeballs (RFC 8305) over every address of ``host``.

    On asyncio the connection runs on asyncio's protocol machinery (less CPU per round
    trip, see ``_asyncio.py``); on any other backend it is an anyio stream.
    """
    if _on_asyncio():
        from ._asyncio import connect_tcp_asyncio

        return await connect_tcp_asyncio(host, port, local_host=local_host)
    with map_errors(f"connect to {host}:{port}"):
        stream = await anyio.connect_tcp(host, port, local_host=local_host)
    return AnyIOTransport(stream)


def _on_asyncio() -> bool:
    try:
        return asyncio.current_task() is not None
    except RuntimeError:  # no asyncio loop running: trio, or another backend
        return False


async def connect_unix(path: str) -> AnyIOTransport:
    """Open a Unix domain socket (e.g. a local MTA's submission socket)."""
    with map_errors(f"connect to {path}"):
        stream = await anyio.connect_unix(path)
    return AnyIOTransport(stream)
