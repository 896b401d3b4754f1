"""Implicit TLS against a port that speaks plain SMTP: a TLSModeMismatchError (RFC 8314).

The server greets in clear ("220 ..."), either before the client's hello arrives or in
answer to it; OpenSSL reads "220 " as a record header with a wrong version number. After
STARTTLS the same answer is a plain TLSError: the port does speak STARTTLS.
"""

from __future__ import annotations

import ssl

import anyio
import pytest

import smtpsubmit
from smtpsubmit.testing import ServerCertificates
from smtpsubmit.transport import AsyncioTransport, Transport, connect_tcp, map_errors

from .peers import Peer, listen

pytestmark = pytest.mark.anyio

GREETING = b"220 plain.example ESMTP\r\n"
HINT = "the server seems to speak plain SMTP on this port, not implicit TLS (use STARTTLS)"


async def connected() -> tuple[Transport, Peer]:
    listener, port = listen()
    with listener:
        transport = await connect_tcp("127.0.0.1", port)
        peer = await Peer.accept(listener)
    return transport, peer


async def until_buffered(transport: Transport) -> None:
    """On asyncio, until the protocol holds what the server sent (anyio reads only when
    asked: there the bytes wait in the kernel, for the handshake to read)."""
    if isinstance(transport, AsyncioTransport):
        await transport._protocol.readable(None)


async def test_implicit_tls_to_a_server_that_greets_in_clear_is_a_mode_mismatch(
    certificates: ServerCertificates,
) -> None:
    transport, peer = await connected()
    await peer.send_all(GREETING)
    await until_buffered(transport)  # the greeting is there before the handshake starts
    with pytest.raises(smtpsubmit.TLSModeMismatchError) as caught:
        await transport.start_tls(certificates.client_ssl_context(), "localhost")
    assert caught.value.server_speaks == "plain"
    assert str(caught.value) == f"TLS handshake: {HINT}"
    assert isinstance(caught.value, smtpsubmit.TLSError)  # callers catching TLSError see it
    peer.close()
    await transport.aclose()


async def test_implicit_tls_answered_in_clear_is_a_mode_mismatch(
    certificates: ServerCertificates,
) -> None:
    transport, peer = await connected()

    async def answer_the_hello_in_clear() -> None:
        await anyio.wait_readable(peer.sock)  # the client's hello
        await peer.send_all(GREETING)

    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_the_hello_in_clear)
        with pytest.raises(smtpsubmit.TLSModeMismatchError) as caught:
            await transport.start_tls(certificates.client_ssl_context(), "localhost")
    assert caught.value.server_speaks == "plain"
    assert str(caught.value) == f"TLS handshake: {HINT}"
    assert isinstance(caught.value.__cause__, ssl.SSLError)
    peer.close()
    await transport.aclose()


async def test_starttls_answered_in_clear_is_a_tls_error_not_a_mode_mismatch(
    certificates: ServerCertificates,
) -> None:
    transport, peer = await connected()
    await peer.send_all(b"220 ready to start TLS\r\n")
    assert await transport.receive() == b"220 ready to start TLS\r\n"

    async def answer_the_hello_in_clear() -> None:
        await anyio.wait_readable(peer.sock)
        await peer.send_all(b"250 ok\r\n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(answer_the_hello_in_clear)
        with pytest.raises(smtpsubmit.TLSError, match="an answer in clear") as caught:
            await transport.start_tls(certificates.client_ssl_context(), "localhost")
    assert not isinstance(caught.value, smtpsubmit.TLSModeMismatchError)
    peer.close()
    await transport.aclose()


@pytest.mark.parametrize(
    "reason", ["WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"]
)
def test_map_errors_knows_the_openssl_reasons_for_a_reply_in_clear(reason: str) -> None:
    error = ssl.SSLError(1, f"[SSL: {reason}] ...")
    error.reason = reason  # what the ssl module sets on the errors it raises
    with pytest.raises(smtpsubmit.TLSModeMismatchError, match="plain SMTP"):
        with map_errors("TLS handshake", implicit_tls=True):
            raise error
    with pytest.raises(smtpsubmit.TLSError, match="an answer in clear") as caught:
        with map_errors("TLS handshake"):
            raise error
    assert not isinstance(caught.value, smtpsubmit.TLSModeMismatchError)
