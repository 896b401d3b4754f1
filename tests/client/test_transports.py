"""Transports: happy-eyeballs TCP by name, Unix sockets, bring-your-own streams."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import anyio
import anyio.abc
import pytest

import smtpsubmit
import smtpsubmit.testing
from smtpsubmit.testing import FakeSMTPServer, Mode
from smtpsubmit.transport import AnyIOTransport, map_errors

pytestmark = pytest.mark.anyio


async def test_hostname_with_several_addresses_connects_by_happy_eyeballs() -> None:
    # "localhost" may resolve to ::1 first; the server listens on 127.0.0.1 only.
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPClient(
            "localhost", server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            result = await client.sendmail("a@example.com", ["b@example.com"], b"x")
    assert result.accepted == ("b@example.com",)


async def test_implicit_tls_to_a_port_that_speaks_plain_smtp_names_the_mismatch() -> None:
    faults = [smtpsubmit.testing.Fault.plaintext_on_tls_port()]
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=faults) as server:
        client = smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        )
        with pytest.raises(smtpsubmit.TLSModeMismatchError, match="use STARTTLS") as caught:
            await client.connect()
    assert caught.value.server_speaks == "plain"


async def _pipe(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
    """Copy until the source ends or either side closes."""
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


async def test_unix_socket_transport(tmp_path: Path) -> None:
    path = str(tmp_path / "smtp.sock")
    async with FakeSMTPServer(mode=Mode.STARTTLS) as server:
        listener = await anyio.create_unix_listener(path)
        relay_done = anyio.Event()

        async def relay(client_side: anyio.abc.SocketStream) -> None:
            async with client_side, await anyio.connect_tcp(server.host, server.port) as up:
                async with anyio.create_task_group() as pipes:
                    pipes.start_soon(_pipe, up, client_side)
                    await _pipe(client_side, up)  # ends when the client hangs up
                    await up.aclose()  # which ends the other direction without cancelling
            relay_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, relay)
            async with smtpsubmit.SMTPClient(
                "localhost",
                0,
                tls="starttls",
                ssl_context=server.client_ssl_context(),
                unix_socket=path,
            ) as client:
                await client.sendmail("a@example.com", ["b@example.com"], b"via unix")
            # Cancel only the idle accept loop: closing a Unix stream whose receive was just
            # cancelled trips InvalidStateError in anyio's asyncio backend (anyio#1267).
            await relay_done.wait()
            tg.cancel_scope.cancel()
        await server.wait_for_messages(1)
        assert server.messages[0].data == b"via unix"
        assert server.messages[0].tls


async def test_connection_refused_is_a_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # now nothing listens there
    client = smtpsubmit.SMTPClient("127.0.0.1", port, tls="implicit", timeout=5)
    with pytest.raises(smtpsubmit.ConnectError, match=f"127.0.0.1:{port}"):
        await client.connect()


class _EndedStream(anyio.abc.ByteStream):
    """A byte stream whose peer has already closed."""

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream

    async def send(self, item: bytes) -> None:
        raise anyio.BrokenResourceError

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_end_of_stream_reads_as_empty_bytes_and_send_failure_is_translated() -> None:
    transport = AnyIOTransport(_EndedStream())
    assert await transport.receive() == b""
    assert transport.tls_info is None
    with pytest.raises(smtpsubmit.ConnectionLostError):
        await transport.send(b"x")


def test_map_errors_translates_at_the_edge() -> None:
    import ssl

    with pytest.raises(smtpsubmit.CertificateError):
        with map_errors("x"):
            raise ssl.SSLCertVerificationError("bad cert")
    with pytest.raises(smtpsubmit.TLSError):
        with map_errors("x"):
            raise ssl.SSLError("bad")
    with pytest.raises(smtpsubmit.ConnectionLostError):
        with map_errors("x"):
            raise anyio.BrokenResourceError
    with pytest.raises(smtpsubmit.ConnectError):
        with map_errors("x"):
            raise OSError(111, "Connection refused")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionResetError(104, "Connection reset by peer"), smtpsubmit.ConnectionLostError),
        (BrokenPipeError(32, "Broken pipe"), smtpsubmit.ConnectionLostError),
        (
            ConnectionAbortedError(103, "Software caused connection abort"),
            smtpsubmit.ConnectionLostError,
        ),
        (ConnectionRefusedError(111, "Connection refused"), smtpsubmit.ConnectError),
        (OSError(113, "No route to host"), smtpsubmit.ConnectError),
    ],
)
def test_map_errors_tells_a_lost_connection_from_one_never_made(
    error: OSError, expected: type[smtpsubmit.ConnectError]
) -> None:
    """asyncio hands over the OSError of a reset where anyio raises BrokenResourceError:
    both are a lost connection, on either backend."""
    with pytest.raises(smtpsubmit.ConnectError) as caught:
        with map_errors("receive"):
            raise error
    assert type(caught.value) is expected


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_transport_is_used_on_asyncio_and_behaves_like_the_anyio_one(
    anyio_backend: str,
) -> None:
    from smtpsubmit.transport import AsyncioTransport, connect_tcp

    async def greet_then_close(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.send(b"220 hi\r\n")
            assert await stream.receive() == b"QUIT\r\n"

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, greet_then_close)
        transport = await connect_tcp("127.0.0.1", port)
        assert isinstance(transport, AsyncioTransport)
        assert transport.local_ip == "127.0.0.1"
        assert transport.remote_ip == "127.0.0.1"
        assert transport.tls_info is None
        assert await transport.receive() == b"220 hi\r\n"
        await transport.send(b"QUIT\r\n")
        assert await transport.receive() == b""  # the server closed: end of stream
        with pytest.raises(smtpsubmit.ConnectionLostError):
            await transport.send(b"NOOP\r\n")
        await transport.aclose()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_transport_refuses_starttls_over_unread_bytes(anyio_backend: str) -> None:
    from smtpsubmit.transport import connect_tcp

    async with FakeSMTPServer(mode=Mode.STARTTLS) as server:
        transport = await connect_tcp(server.host, server.port)
        await transport.receive()  # the greeting
        # Bytes that arrived after the 220 to STARTTLS but were not read yet: RFC 3207 6.
        transport._protocol.buffer += b"250 injected\r\n"  # type: ignore[attr-defined]
        with pytest.raises(smtpsubmit.ProtocolViolationError, match="response injection"):
            await transport.start_tls(server.client_ssl_context(), "localhost")
        await transport.aclose()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_transport_deadlines_use_one_watchdog_and_expire_only_when_due(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One timer serves every wait: a later deadline re-arms it when it fires, an earlier
    one replaces it. The loop's clock is the test's and moves only when the server side
    moves it, so no deadline passes by itself: the order of events is the test's, not a
    race with real time (a loaded machine cannot make the first wait time out)."""
    from smtpsubmit.transport import connect_tcp

    loop = asyncio.get_running_loop()
    clock = [0.0]
    first_deadline = later = earlier = 0.0

    async def server(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            assert await stream.receive() == b"1"
            await stream.send(b"a")
            # The client now waits for "b" until `later`, on the watchdog armed for its
            # first wait: a later deadline costs no timer.
            assert await stream.receive() == b"2"
            assert protocol._watchdog is first_watchdog
            clock[0] = first_deadline  # due: it fires, finds `later` ahead, re-arms for it
            # Sent after: the watchdog fires in the loop turn that delivers "b" at the
            # latest, and the client's wait resumes only in a later turn.
            await stream.send(b"b")
            assert await stream.receive() == b"3"
            # The client waits until `earlier`: that replaced the watchdog.
            assert protocol._watchdog.when() == earlier
            clock[0] = earlier  # due: the wait expires
            assert await stream.receive() == b"4"
            await stream.send(b"c")
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                await stream.receive()  # silent until the client goes

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, server)
        transport = await connect_tcp("127.0.0.1", port)
        protocol = transport._protocol  # type: ignore[attr-defined]
        clock[0] = loop.time()
        monkeypatch.setattr(loop, "time", lambda: clock[0])
        try:
            await transport.send(b"1")
            first_deadline = clock[0] + 1
            assert await transport.receive_by(first_deadline) == b"a"  # time stands still
            first_watchdog = protocol._watchdog
            assert first_watchdog.when() == first_deadline  # armed for the first wait
            later = clock[0] + 30
            await transport.send(b"2")
            assert await transport.receive_by(later) == b"b"  # not expired when it fired
            assert protocol._watchdog is not first_watchdog
            assert protocol._watchdog.when() == later  # re-armed when it fired
            earlier = clock[0] + 1
            await transport.send(b"3")
            with pytest.raises(TimeoutError):
                await transport.receive_by(earlier)
            await transport.send(b"4")
            assert await transport.receive_by(clock[0] + 30) == b"c"
            assert protocol._watchdog is not None  # still armed, for nobody
            await transport.aclose()
            assert protocol._watchdog is None  # closing stops it
        finally:
            monkeypatch.undo()  # the real clock again before anything else waits on it
        tg.cancel_scope.cancel()
