"""A transport on asyncio's own protocol machinery, used when the event loop is asyncio.

anyio's socket stream adds a checkpoint and resource guards to every send and receive;
on a submission hot path of two round trips per message that is a measurable share of the
CPU time. This transport talks to asyncio directly (``Protocol`` callbacks and one future
per wait) and behaves exactly like :class:`AnyIOTransport`: same errors (through the same
:func:`map_errors`), same end-of-stream rule, same TLS details. anyio's cancel scopes work
unchanged, since they cancel the task that awaits the future. On trio the client uses
:class:`AnyIOTransport`.

Bounded memory: asyncio reads whenever the socket is readable, so without a limit a
server pushing data nobody asked for would grow the heap without end (anyio's streams, and
so trio, read only inside ``receive``). Above :data:`BUFFER_LIMIT` unread octets the
transport pauses reading, and resumes once ``receive`` has taken the buffer back down to
it: the excess stays in the kernel, and TCP flow control stops the sender.

After a reset: over TLS, asyncio's socket transport learns of the reset (a failed write)
one loop turn before the TLS layer above it does, and counts every later write into the
dead socket, logging "socket.send() raised exception." from the fifth on. So ``send`` asks
the socket transport itself whether the connection is still there, stops at the write
that failed, and ``aclose`` aborts a lost connection instead of closing it (a TLS close
would still write its close_notify).

STARTTLS: bytes that arrived before the upgrade and were not read are refused instead of
being handed out later as if they had come through TLS (RFC 3207 6, response injection).
"""

from __future__ import annotations

import asyncio
import ssl

from .._errors import ConnectionLostError, ResponseInjectionError
from ._base import READ_SIZE, TLSInfo, Transport
from ._errors import map_errors, plain_smtp_on_tls_port

__all__ = ["BUFFER_LIMIT", "AsyncioTransport", "connect_tcp_asyncio"]

#: Unread octets above which reading pauses: one receive's worth. Replies are small, so
#: only a server pushing unasked (or a huge pipelined burst) ever reaches it.
BUFFER_LIMIT = READ_SIZE


class _Protocol(asyncio.Protocol):
    """Buffers what arrives and wakes the one task waiting, with at most one timer.

    Deadlines: every wait has one (the client's phase limits), but they almost never
    expire. Instead of a timer handle per wait, one watchdog timer stays armed; when it
    fires it checks the current wait's deadline and either expires it or re-arms for it.
    A later deadline (the usual case: each wait is "now + limit") costs no timer at all.
    The deadline is the current wait's: one task waits at a time (the client's Gate
    serialises its use of the connection).
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        # The transport to pause, once known: None during a TLS upgrade, whose transport
        # exists only when loop.start_tls() returns (see AsyncioTransport.start_tls).
        self.transport: asyncio.Transport | None = None
        self.reading_paused = False  # by us, on self.transport
        self.closed = False
        self.error: BaseException | None = None
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._deadline: float | None = None  # of the current wait
        self._watchdog: asyncio.TimerHandle | None = None
        # The loop the connection lives on, kept: asyncio.get_running_loop() checks the
        # process id, a getpid() system call each time on Linux.
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # asyncio reads with recv(256 KiB) by default: a fresh 256 KiB buffer per read, which
        # glibc may serve with mmap and then shrink with mremap and unmap, three system calls
        # per read for a 40-octet reply (about +50% CPU per message, depending on the heap's
        # history). READ_SIZE stays under malloc's mmap threshold.
        if isinstance(getattr(transport, "max_size", None), int):
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > BUFFER_LIMIT:
            self.control_reading()
        self._wake()

    def control_reading(self) -> None:
        """Pause reading above :data:`BUFFER_LIMIT` unread octets, resume at or below it."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # nothing to pause yet (TLS upgrade), or nothing more will arrive
        over = len(self.buffer) > BUFFER_LIMIT
        if over and not self.reading_paused:
            self.reading_paused = True
            transport.pause_reading()
        elif not over and self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False  # close our side too: SMTP has nothing to say after the peer's EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake()
        self._release()
        self.stop_watchdog()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._release()

    async def readable(self, deadline: float | None) -> None:
        self._waiter = waiter = self._loop.create_future()
        try:
            await self._until(waiter, deadline)
        finally:
            self._waiter = None

    async def writable(self, deadline: float | None) -> None:
        self._drain = drain = self._loop.create_future()
        try:
            await self._until(drain, deadline)
        finally:
            self._drain = None

    async def _until(self, future: asyncio.Future[None], deadline: float | None) -> None:
        """Await ``future``; TimeoutError at ``deadline`` (the loop's clock, anyio's too)."""
        if deadline is not None:
            self._deadline = deadline
            watchdog = self._watchdog
            if watchdog is None or watchdog.when() > deadline:
                if watchdog is not None:
                    watchdog.cancel()
                self._watchdog = self._loop.call_at(deadline, self._check)
        try:
            await future
        finally:
            self._deadline = None

    def _check(self) -> None:
        """The watchdog fired: expire the wait whose deadline passed, or re-arm."""
        self._watchdog = None
        deadline = self._deadline
        if deadline is None:
            return  # nobody waits now; the next wait arms a new watchdog
        loop = self._loop
        if loop.time() < deadline:
            self._watchdog = loop.call_at(deadline, self._check)
            return
        for future in (self._waiter, self._drain):
            if future is not None and not future.done():
                future.set_exception(TimeoutError())

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _release(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)


class AsyncioTransport(Transport):
    """A TCP (optionally TLS) connection driven through an asyncio ``Protocol``."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport  # the TLS transport after start_tls()
        self._socket_transport = transport  # the socket's, under TLS too
        self._protocol = protocol
        self._closed = False  # by aclose()
        # Whether receive() has returned anything yet: a handshake before that is implicit
        # TLS (RFC 8314 3.3), where an answer in clear means a plain SMTP port.
        self._received = False

    def _lost(self) -> bool:
        """The connection is gone, or going: nothing more may be written to it."""
        return (
            self._protocol.closed
            or self._socket_transport.is_closing()
            or self._transport.is_closing()
        )

    async def receive(self) -> bytes:
        return await self.receive_by(None)

    async def receive_by(self, deadline: float | None) -> bytes:
        protocol = self._protocol
        while not protocol.buffer:
            if protocol.closed:
                if protocol.error is not None:
                    with map_errors("receive"):
                        raise protocol.error
                return b""
            await protocol.readable(deadline)
        data = bytes(protocol.buffer[:READ_SIZE])
        del protocol.buffer[:READ_SIZE]
        if protocol.reading_paused:
            protocol.control_reading()
        self._received = True
        return data

    async def send(self, data: bytes) -> None:
        await self.send_by(data, None)

    async def send_by(self, data: bytes, deadline: float | None) -> None:
        protocol = self._protocol
        transport = self._transport
        # self._lost(), inline: this is the hot path.
        if protocol.closed or self._socket_transport.is_closing() or transport.is_closing():
            raise ConnectionLostError("send: the connection was lost") from protocol.error
        transport.write(data)
        if self._socket_transport.is_closing():
            # This very write failed (a reset): asyncio tells the protocol a turn later.
            raise ConnectionLostError("send: the connection was lost")
        while protocol.paused and not protocol.closed:
            await protocol.writable(deadline)
        if protocol.closed and protocol.error is not None:
            raise ConnectionLostError("send: the connection was lost") from protocol.error

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None) -> None:
        if self._protocol.buffer:
            if not self._received:
                # A TLS server waits for the client's hello; this one spoke first, in clear.
                raise plain_smtp_on_tls_port("TLS handshake")
            raise ResponseInjectionError(
                "the server sent data before the TLS handshake (response injection, RFC 3207 6)"
            )
        loop = asyncio.get_running_loop()
        # The plain transport is not the one to pause from now on, and the TLS one is not
        # known before start_tls() returns, while data may already arrive through it (the
        # handshake's last callback delivers what came with it).
        protocol = self._protocol
        protocol.transport = None
        with map_errors("TLS handshake", implicit_tls=not self._received):
            upgraded = await loop.start_tls(
                self._transport, protocol, ssl_context, server_hostname=server_hostname
            )
        if upgraded is None:  # pragma: no cover - the transport closed during the handshake
            raise ConnectionLostError("TLS handshake: the connection was lost")
        self._transport = protocol.transport = upgraded
        protocol.control_reading()  # for what arrived before start_tls() returned

    async def aclose(self) -> None:
        if self._closed:
            return  # and no abort(): it would drop what the first close is still flushing
        self._closed = True
        self._protocol.stop_watchdog()
        if self._lost():
            self._transport.abort()  # nothing to flush, and no close_notify to write
        else:
            self._transport.close()

    @property
    def local_ip(self) -> str | None:
        address = self._transport.get_extra_info("sockname")
        return address[0] if isinstance(address, tuple) else None

    @property
    def remote_ip(self) -> str | None:
        address = self._transport.get_extra_info("peername")
        return str(address[0]) if isinstance(address, tuple) else None

    @property
    def tls_info(self) -> TLSInfo | None:
        ssl_object = self._transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        cipher = ssl_object.cipher()
        return TLSInfo(
            version=ssl_object.version(),
            cipher=cipher[0] if cipher else None,
            peer_certificate=ssl_object.getpeercert(binary_form=True),
        )


async def connect_tcp_asyncio(
    host: str, port: int, *, local_host: str | None = None
) -> AsyncioTransport:
    """Open TCP on asyncio with happy eyeballs (RFC 8305), like anyio's connect_tcp."""
    loop = asyncio.get_running_loop()
    with map_errors(f"connect to {host}:{port}"):
        transport, protocol = await loop.create_connection(
            _Protocol,
            host,
            port,
            local_addr=(local_host, 0) if local_host else None,
            happy_eyeballs_delay=0.25,
        )
    return AsyncioTransport(transport, protocol)
