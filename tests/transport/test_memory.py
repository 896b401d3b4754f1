"""Bytes the server pushes unasked stay bounded in the client's heap, on both backends.

A server (or anything on the path) may send far more than the client asked for: while the
client is idle after connecting, while it writes a large body, on an idle pool connection.
The transport must leave the excess in the kernel (TCP flow control then stops the
sender), not copy it into the heap. tracemalloc measures the heap; the kernel's socket
buffers are not in it, so the peak is what the transport itself kept.
"""

from __future__ import annotations

import socket
import ssl
import tracemalloc
from collections.abc import Iterator

import anyio
import pytest

from smtpsubmit.testing import ServerCertificates
from smtpsubmit.transport import AsyncioTransport, Transport, connect_tcp
from smtpsubmit.transport._asyncio import BUFFER_LIMIT

from .peers import CHUNK, Peer, listen

pytestmark = pytest.mark.anyio

#: What the server tries to push: far more than any sane buffer.
PUSHED = 64 * 1024 * 1024
#: The body the client writes meanwhile in the sending scenario.
BODY = 16 * 1024 * 1024
#: The heap the transport may use on top of what it had: a few receive buffers' worth.
HEAP_BUDGET = 4 * 1024 * 1024


@pytest.fixture
def traced() -> Iterator[None]:
    """tracemalloc on for the test (left on if someone else turned it on)."""
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    yield
    if not already:
        tracemalloc.stop()


def reads_unasked(transport: Transport) -> bool:
    """Whether the client still takes bytes off the socket without a receive() waiting.

    anyio streams read only inside receive(). asyncio's transports read whenever the
    socket is readable, unless paused: that pause is what keeps the heap bounded.
    """
    if isinstance(transport, AsyncioTransport):
        return bool(transport._transport.is_reading())
    return False


async def connected(
    tls: bool, certificates: ServerCertificates, tg: anyio.abc.TaskGroup
) -> tuple[Transport, Peer]:
    listener, port = listen()
    with listener:
        transport = await connect_tcp("127.0.0.1", port)
        peer = await Peer.accept(listener)
    if tls:
        tg.start_soon(peer.handshake, certificates.server_ssl_context())
        await transport.start_tls(certificates.client_ssl_context(), "localhost")
    return transport, peer


async def read_back(transport: Transport, count: int) -> None:
    """Receive at least ``count`` octets: what was left in the kernel is all still there."""
    got = 0
    while got < count:
        data = await transport.receive()
        assert data, f"end of stream after {got} of {count} pushed octets"
        got += len(data)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_unasked_bytes_stay_in_the_kernel_while_the_client_is_idle(
    tls: bool, certificates: ServerCertificates, traced: None
) -> None:
    with anyio.fail_after(60):  # a hang guard only: every wait below ends on an event
        async with anyio.create_task_group() as tg:
            transport, peer = await connected(tls, certificates, tg)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        # The client is idle (it awaits the server task); the server pushes until a send
        # would block and the client has stopped reading by itself.
        pushed = await peer.push(PUSHED, keep_going=lambda: reads_unasked(transport))
        peak = tracemalloc.get_traced_memory()[1] - before
        assert pushed > 4 * len(CHUNK)  # the scenario happened: much more than one read
        assert peak < HEAP_BUDGET, f"heap grew by {peak} octets for {pushed} pushed"
        await read_back(transport, pushed)  # paused reading resumes when asked
        peer.close()
        await transport.aclose()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_unasked_bytes_stay_in_the_kernel_while_the_client_sends_a_large_body(
    tls: bool, certificates: ServerCertificates, traced: None
) -> None:
    body = memoryview(bytes(BODY))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            transport, peer = await connected(tls, certificates, tg)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        pushed = 0

        async def push() -> None:
            nonlocal pushed
            pushed = await peer.push(PUSHED, keep_going=lambda: reads_unasked(transport))

        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.drain, BODY)  # the server takes the whole body...
            tg.start_soon(push)  # ...and pushes at the same time
            for start in range(0, BODY, 65536):
                await transport.send(body[start : start + 65536])
        peak = tracemalloc.get_traced_memory()[1] - before
        assert pushed > 4 * len(CHUNK)
        assert peak < HEAP_BUDGET, f"heap grew by {peak} octets for {pushed} pushed"
        await read_back(transport, pushed)
        peer.close()
        await transport.aclose()


async def test_unasked_bytes_arriving_with_the_tls_handshake_stay_bounded(
    certificates: ServerCertificates, traced: None
) -> None:
    """The server pushes in the same breath as its last handshake message (TLS 1.2: the
    server's Finished comes last), so on asyncio the first of it reaches the client inside
    the handshake, before start_tls() has returned the transport that reading pauses on."""
    client_context = certificates.client_ssl_context()
    client_context.maximum_version = ssl.TLSVersion.TLSv1_2
    with anyio.fail_after(60):
        listener, port = listen()
        with listener:
            transport = await connect_tcp("127.0.0.1", port)
            peer = await Peer.accept(listener)
        if isinstance(transport, AsyncioTransport):
            # A receive window larger than the kernel's first one, so that the read that
            # completes the handshake carries more than BUFFER_LIMIT octets with it.
            raw = transport._transport.get_extra_info("socket")
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        pushed = 0

        async def serve() -> None:
            nonlocal pushed
            await peer.handshake(certificates.server_ssl_context())
            pushed = await peer.push(PUSHED, keep_going=lambda: reads_unasked(transport))

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            await transport.start_tls(client_context, "localhost")
            if isinstance(transport, AsyncioTransport):  # the case this test is about
                arrived = len(transport._protocol.buffer)
                assert arrived > BUFFER_LIMIT, f"only {arrived} octets came with the handshake"
        peak = tracemalloc.get_traced_memory()[1] - before
        assert pushed > 4 * len(CHUNK)
        assert peak < HEAP_BUDGET, f"heap grew by {peak} octets for {pushed} pushed"
        await read_back(transport, pushed)
        peer.close()
        await transport.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_reads_in_blocks_below_the_malloc_mmap_threshold(anyio_backend: str) -> None:
    # asyncio's default recv size (256 KiB) makes a fresh buffer per read that glibc may map,
    # shrink and unmap: three system calls per reply. The transport reads READ_SIZE instead.
    import asyncio

    from smtpsubmit.transport import connect_tcp
    from smtpsubmit.transport._base import READ_SIZE

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = await connect_tcp("127.0.0.1", port)
    try:
        socket_transport = transport._socket_transport  # type: ignore[attr-defined]
        assert socket_transport.max_size == READ_SIZE < 128 * 1024
    finally:
        await transport.aclose()
        server.close()
