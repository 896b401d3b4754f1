"""The server's end of a connection on a raw non-blocking socket (optionally TLS).

Raw sockets, not anyio streams, so that a test sees exactly what the kernel does: when a
``send`` would block (EAGAIN) because nobody takes the bytes, and when a connection is
reset (RST) rather than closed.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
from collections.abc import Callable

import anyio
import anyio.lowlevel

WOULD_BLOCK = (BlockingIOError, ssl.SSLWantWriteError)
#: What the server pushes, one send at a time (allocated once: no heap churn to trace).
CHUNK = b"x" * 65536


def listen() -> tuple[socket.socket, int]:
    """A listening socket on 127.0.0.1 and its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    return listener, listener.getsockname()[1]


class Peer:
    """One accepted connection, driven with ``anyio.wait_readable`` / ``wait_writable``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def accept(cls, listener: socket.socket) -> Peer:
        """The next connection on ``listener``."""
        await anyio.wait_readable(listener)
        sock, _ = listener.accept()
        sock.setblocking(False)
        return cls(sock)

    async def handshake(self, context: ssl.SSLContext) -> None:
        """Become the TLS server of this connection (implicit TLS, or after STARTTLS)."""
        tls = context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        self.sock = tls
        while True:
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                await anyio.wait_readable(tls)
            except ssl.SSLWantWriteError:
                await anyio.wait_writable(tls)

    async def send_all(self, data: bytes) -> None:
        """Write all of ``data``, waiting while the kernel's buffer is full."""
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except WOULD_BLOCK:
                await anyio.wait_writable(self.sock)

    async def push(self, total: int, *, keep_going: Callable[[], bool]) -> int:
        """Push up to ``total`` octets nobody asked for; the number written.

        Stops early when a send would block (the kernel's buffers towards the client are
        full) and ``keep_going()`` says the client will not read on by itself: from then
        on nothing moves until the client reads, so the test can look at the client.
        While the client still reads, each retry follows one turn of the event loop (in
        which the client reads, or pauses), not a wait for writability: the kernel reports
        a socket writable only once a third of its buffer is free, which a client that
        read a little and paused never frees.
        """
        sent = 0
        while sent < total:
            try:
                sent += self.sock.send(CHUNK)
            except WOULD_BLOCK:
                if not keep_going():
                    return sent
                await anyio.lowlevel.checkpoint()
        return sent

    async def drain(self, total: int) -> None:
        """Read and discard ``total`` octets (the client's body)."""
        buffer = bytearray(65536)  # one buffer, reused: reading allocates nothing
        left = total
        while left > 0:
            try:
                n = self.sock.recv_into(buffer)
            except (BlockingIOError, ssl.SSLWantReadError):
                await anyio.wait_readable(self.sock)
                continue
            if n == 0:
                raise EOFError(f"the client closed with {left} octets of {total} unsent")
            left -= n

    def reset(self, client: socket.socket) -> None:
        """Abort the connection (RST instead of FIN: SO_LINGER 0) and return once the
        ``client`` socket has it, without letting the client's event loop run.

        Loopback delivers the RST within close() as a rule, but not by contract (a busy
        machine defers it to ksoftirqd): this waits for the event rather than trusting it.
        """
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()
        hangup = select.poll()
        hangup.register(client, 0)  # POLLERR and POLLHUP only: they are always reported
        assert hangup.poll(30_000), "no RST within 30 s"  # a hang guard, not a pace

    def close(self) -> None:
        """Close the socket (without TLS close_notify: SMTP frames its own end)."""
        self.sock.close()
