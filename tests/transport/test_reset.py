"""A connection the server reset: every later send fails cleanly, and asyncio stays quiet.

asyncio's transports count writes made after they lost the connection and log
"socket.send() raised exception." (or "SSL connection is closed") from the fifth on. Over
TLS the socket transport learns of the reset one loop turn before the TLS layer does,
so a transport that only asks the TLS layer writes on into the dead socket.
"""

from __future__ import annotations

import logging
import socket
from typing import cast

import anyio
import pytest
from anyio.abc import SocketAttribute

import smtpsubmit
from smtpsubmit.testing import ServerCertificates
from smtpsubmit.transport import AnyIOTransport, AsyncioTransport, Transport, connect_tcp

from .peers import Peer, listen

pytestmark = pytest.mark.anyio


def client_socket(transport: Transport) -> socket.socket:
    """The socket under the client's transport (to watch it, never to use it)."""
    if isinstance(transport, AsyncioTransport):
        sock = transport._transport.get_extra_info("socket")
    else:
        assert isinstance(transport, AnyIOTransport)
        sock = transport.stream.extra(SocketAttribute.raw_socket)
    assert sock is not None
    return cast(socket.socket, sock)


async def connected(tls: bool, certificates: ServerCertificates) -> tuple[Transport, Peer]:
    listener, port = listen()
    with listener:
        transport = await connect_tcp("127.0.0.1", port)
        peer = await Peer.accept(listener)
    if tls:
        async with anyio.create_task_group() as tg:
            tg.start_soon(peer.handshake, certificates.server_ssl_context())
            await transport.start_tls(certificates.client_ssl_context(), "localhost")
    return transport, peer


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_a_reset_while_receiving_is_connection_lost(
    tls: bool, certificates: ServerCertificates
) -> None:
    transport, peer = await connected(tls, certificates)
    peer.reset(client_socket(transport))
    with pytest.raises(smtpsubmit.ConnectionLostError, match="receive"):
        await transport.receive()
    await transport.aclose()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_sends_after_a_reset_raise_connection_lost_and_write_no_more(
    tls: bool, certificates: ServerCertificates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    transport, peer = await connected(tls, certificates)
    writes = count_socket_writes(transport)
    peer.reset(client_socket(transport))  # the client's socket has the RST, unread
    # Sends in a row, with no loop turn between them (nothing blocks): the first one meets
    # the reset inside asyncio's write, and no later one may write again.
    outcomes = []
    for _ in range(20):
        try:
            await transport.send(b"MAIL FROM:<a@example.com>\r\n")
            outcomes.append("sent")
        except smtpsubmit.ConnectionLostError as exc:
            lost = str(exc).startswith("send: the connection was lost")
            outcomes.append("lost" if lost else str(exc))
    await transport.aclose()  # still before asyncio's TLS layer heard of the reset
    # Let asyncio finish with the connection (a loop turn or two) before looking.
    with pytest.raises(smtpsubmit.ConnectionLostError):
        await transport.receive()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert outcomes == ["lost"] * 20  # the first one too: the reset was there before it
    assert len(writes) <= 1  # the write that met the reset; no close_notify after it


def count_socket_writes(transport: Transport) -> list[int]:
    """The sizes of the writes into asyncio's socket transport from now on (TLS records
    included); always empty on anyio, whose sends the test sees directly."""
    writes: list[int] = []
    if isinstance(transport, AsyncioTransport):
        socket_transport = transport._socket_transport
        write = socket_transport.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            writes.append(len(data))
            write(data)

        socket_transport.write = counted  # type: ignore[method-assign]
    return writes
