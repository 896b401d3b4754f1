"""Proxies as a transport, through real Dante (SOCKS4/5) and tinyproxy (HTTP CONNECT).

What each test checks on the wire:

- the fake server saw its client at 127.0.0.2, the proxies' outgoing address (see
  ``proxy_servers.py``): the connection came through the proxy, not around it;
- the SNI the fake server received, and the certificate check, used the *mail server's*
  name, never the proxy's (a server certificate that names the proxy's address but not
  the mail server's name is refused);
- who resolved the mail server's name: the test resolver (``net_seams.Resolver``) refuses
  ``localhost`` in this process, so a send to ``localhost`` through ``socks5h``/``http``
  works only because the proxy resolved it; with ``socks5``/``socks4`` the resolver must
  have been asked.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage

import anyio
import pytest
from net_seams import Resolver, record_sni
from proxy_servers import OUTGOING, ProxyServer, dante, free_port, system_user, tinyproxy

import smtpsubmit
from smtpsubmit.testing import FakeSMTPServer, Mode, ServerCertificates
from smtpsubmit.transport import ProxyURL, connect_proxy

pytestmark = pytest.mark.anyio

#: The mail server's name when this process resolves it (socks5, socks4).
MAIL_HOST = "smtp.example.test"


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "through a proxy"
    msg.set_content("Hello.\n")
    return msg


@pytest.fixture(scope="module")
def socks() -> Iterator[ProxyServer]:
    """Dante without authentication (SOCKS4 and SOCKS5)."""
    with dante(username_auth=False) as server:
        yield server


@pytest.fixture(scope="module")
def socks_account() -> Iterator[tuple[str, str]]:
    with system_user() as account:
        yield account


@pytest.fixture(scope="module")
def socks_auth(socks_account: tuple[str, str]) -> Iterator[ProxyServer]:
    """Dante requiring a user name and password (RFC 1929)."""
    with dante(username_auth=True) as server:
        yield server


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    """This process knows MAIL_HOST only; ``localhost`` only the proxies can resolve."""
    fake = Resolver({MAIL_HOST: "127.0.0.1"}, socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture(scope="module")
def certificates() -> Iterator[ServerCertificates]:
    """The fake servers' CA; their certificate names localhost, 127.0.0.1 and MAIL_HOST."""
    certs = ServerCertificates(extra_names=(MAIL_HOST,))
    yield certs
    certs.close()


@pytest.fixture
async def server(
    request: pytest.FixtureRequest, certificates: ServerCertificates
) -> AsyncIterator[FakeSMTPServer]:
    """A fake server (implicit TLS unless the test is parametrised with a ``mode``)."""
    mode = getattr(request, "param", Mode.IMPLICIT_TLS)
    async with FakeSMTPServer(mode=mode, certificates=certificates) as fake:
        yield fake


def tls_of(server: FakeSMTPServer) -> str:
    return "implicit" if server.mode is Mode.IMPLICIT_TLS else "starttls"


async def send_through(
    proxy: str, host: str, server: FakeSMTPServer, certificates: ServerCertificates
) -> smtpsubmit.SendResult:
    return await smtpsubmit.send(
        message(),
        host=host,
        port=server.port,
        tls=tls_of(server),
        ssl_context=certificates.client_ssl_context(),
        proxy=proxy,
    )


BOTH_MODES = pytest.mark.parametrize(
    "server", [Mode.IMPLICIT_TLS, Mode.STARTTLS], indirect=True, ids=["implicit", "starttls"]
)

# -- SOCKS5 and SOCKS4 through Dante ---------------------------------------------------


@BOTH_MODES
async def test_socks5h_sends_through_the_proxy_which_resolves_the_name(
    socks: ProxyServer,
    server: FakeSMTPServer,
    certificates: ServerCertificates,
    resolver: Resolver,
) -> None:
    sni = record_sni(certificates.server_ssl_context())
    result = await send_through(socks.url("socks5h"), "localhost", server, certificates)
    [captured] = server.messages
    assert captured.peer[0] == OUTGOING  # it came from the proxy
    assert captured.tls
    assert sni == ["localhost"]  # SNI and the checked name: the mail server's
    assert "localhost" not in resolver.asked  # the proxy resolved it, not us
    assert result.accepted == ("bob@example.com",) or "bob@example.com" in result.accepted


@BOTH_MODES
@pytest.mark.parametrize("scheme", ["socks5", "socks4"])
async def test_socks5_and_socks4_resolve_the_name_here_and_send_an_address(
    scheme: str,
    socks: ProxyServer,
    server: FakeSMTPServer,
    certificates: ServerCertificates,
    resolver: Resolver,
) -> None:
    sni = record_sni(certificates.server_ssl_context())
    await send_through(socks.url(scheme), MAIL_HOST, server, certificates)
    [captured] = server.messages
    assert captured.peer[0] == OUTGOING
    assert sni == [MAIL_HOST]
    assert MAIL_HOST in resolver.asked


async def test_the_certificate_is_checked_against_the_mail_server_not_the_proxy(
    socks: ProxyServer, resolver: Resolver
) -> None:
    # This certificate names 127.0.0.1 (the proxy's address) but not MAIL_HOST: a check
    # against the proxy's name would pass it.
    certs = ServerCertificates()
    try:
        async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, certificates=certs) as fake:
            with pytest.raises(smtpsubmit.CertificateError, match=MAIL_HOST):
                await send_through(socks.url("socks5"), MAIL_HOST, fake, certs)
            assert fake.messages == []
    finally:
        certs.close()


async def test_socks5_user_name_and_password_are_accepted(
    socks_auth: ProxyServer,
    socks_account: tuple[str, str],
    server: FakeSMTPServer,
    certificates: ServerCertificates,
) -> None:
    user, password = socks_account
    await send_through(socks_auth.url("socks5h", user, password), "localhost", server, certificates)
    [captured] = server.messages
    assert captured.peer[0] == OUTGOING


@pytest.mark.parametrize("wrong", ["password", "none"])
async def test_socks5_refused_credentials_are_a_proxy_authentication_error(
    wrong: str,
    socks_auth: ProxyServer,
    socks_account: tuple[str, str],
    server: FakeSMTPServer,
    certificates: ServerCertificates,
) -> None:
    user, password = socks_account
    url = (
        socks_auth.url("socks5h", user, "not-" + password)
        if wrong == "password"
        else socks_auth.url("socks5h")
    )
    with pytest.raises(smtpsubmit.ProxyAuthenticationError) as raised:
        await send_through(url, "localhost", server, certificates)
    error = raised.value
    assert isinstance(error, smtpsubmit.ConnectError)
    shown = f"{user}:********@" if wrong == "password" else ""
    assert error.proxy == f"socks5h://{shown}127.0.0.1:{socks_auth.port}"
    assert ("refused the credentials" if wrong == "password" else "wants credentials") in str(error)
    assert password not in str(error)
    assert password not in repr(error)
    assert server.transcripts == []  # the mail server never heard of it


async def test_a_mail_server_unreachable_from_the_proxy_is_a_proxy_target_error(
    socks: ProxyServer, certificates: ServerCertificates
) -> None:
    closed = free_port()
    with pytest.raises(
        smtpsubmit.ProxyTargetError, match=r"refused the proxy's connection"
    ) as raised:
        await smtpsubmit.send(
            message(),
            host="127.0.0.1",
            port=closed,
            tls="implicit",
            ssl_context=certificates.client_ssl_context(),
            proxy=socks.url("socks5"),
        )
    assert raised.value.code == 5  # RFC 1928 6: connection refused


@pytest.mark.parametrize("scheme", ["socks5", "http"])
async def test_an_unreachable_proxy_is_a_proxy_connect_error(
    scheme: str, server: FakeSMTPServer, certificates: ServerCertificates
) -> None:
    url = f"{scheme}://alice:proxy-secret@127.0.0.1:{free_port()}"
    with pytest.raises(smtpsubmit.ProxyConnectError, match="the proxy cannot be reached") as raised:
        await send_through(url, "localhost", server, certificates)
    assert "proxy-secret" not in str(raised.value)
    assert raised.value.proxy == f"{scheme}://alice:********@127.0.0.1:{url.rsplit(':', 1)[1]}"


async def test_a_proxy_that_speaks_another_protocol_is_a_proxy_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        with pytest.raises(smtpsubmit.ProxyError, match="SOCKS5 failure") as raised:
            await connect_proxy(ProxyURL.parse(f"socks5://127.0.0.1:{port}"), "127.0.0.1", 25)
        group.cancel_scope.cancel()
    assert type(raised.value) is smtpsubmit.ProxyError


# -- HTTP CONNECT through tinyproxy ------------------------------------------------------


@BOTH_MODES
async def test_http_connect_sends_through_the_proxy_which_resolves_the_name(
    server: FakeSMTPServer, certificates: ServerCertificates, resolver: Resolver
) -> None:
    sni = record_sni(certificates.server_ssl_context())
    with tinyproxy(connect_ports=[server.port]) as http_proxy:
        await send_through(http_proxy.url(), "localhost", server, certificates)
    [captured] = server.messages
    assert captured.peer[0] == OUTGOING
    assert sni == ["localhost"]
    assert "localhost" not in resolver.asked


async def test_http_connect_with_basic_credentials(
    server: FakeSMTPServer, certificates: ServerCertificates
) -> None:
    with tinyproxy(connect_ports=[server.port], credentials=("alice", "Px-Secret-2")) as proxy:
        await send_through(
            proxy.url(user="alice", password="Px-Secret-2"), "localhost", server, certificates
        )
        for url in (proxy.url(user="alice", password="wrong-one"), proxy.url()):
            with pytest.raises(smtpsubmit.ProxyAuthenticationError) as raised:
                await send_through(url, "localhost", server, certificates)
            assert raised.value.code in (401, 407)  # tinyproxy: 401 to wrong ones, 407 to none
            assert "wrong-one" not in str(raised.value)
    assert len(server.messages) == 1


async def test_http_connect_to_a_port_the_proxy_forbids_is_a_proxy_refused_error(
    server: FakeSMTPServer, certificates: ServerCertificates
) -> None:
    with tinyproxy(connect_ports=[server.port + 1 if server.port < 65535 else 1]) as proxy:
        with pytest.raises(smtpsubmit.ProxyRefusedError) as raised:
            await send_through(proxy.url(), "localhost", server, certificates)
    assert raised.value.code == 403
    assert server.transcripts == []


async def test_http_connect_to_a_closed_port_is_a_proxy_target_error(
    certificates: ServerCertificates,
) -> None:
    closed = free_port()
    with tinyproxy(connect_ports=[closed]) as proxy:
        with pytest.raises(smtpsubmit.ProxyTargetError) as raised:
            await smtpsubmit.send(
                message(),
                host="localhost",
                port=closed,
                tls="implicit",
                ssl_context=certificates.client_ssl_context(),
                proxy=proxy.url(),
            )
    assert raised.value.code is not None
    assert 500 <= raised.value.code < 600


# -- the HTTP CONNECT handshake, byte for byte (no Debian package needed) ---------------


@pytest.mark.parametrize("pieces", [1, 3], ids=["one-segment", "byte-by-byte"])
async def test_http_connect_leaves_the_greeting_that_came_with_the_200_for_the_session(
    pieces: int,
) -> None:
    # A server speaks first: its greeting may ride in the proxy's segment with the 200
    # (tinyproxy does just that on loopback). python-socks' one receive would swallow it.
    answer = b"HTTP/1.1 200 Connection established\r\nProxy-agent: test\r\n\r\n"
    greeting = b"220 mail.example ESMTP\r\n"
    request = bytearray()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            while not request.endswith(b"\r\n\r\n"):
                request.extend(await stream.receive())
            data = answer + greeting
            if pieces == 1:
                await stream.send(data)
            else:
                for octet in data:
                    await stream.send(bytes([octet]))
            await stream.receive()  # until the client closes

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        proxy = ProxyURL.parse(f"http://bob:s%3Acret@127.0.0.1:{port}")
        transport = await connect_proxy(proxy, "mail.example", 587)
        received = b""
        while len(received) < len(greeting):
            received += await transport.receive()
        await transport.aclose()
        group.cancel_scope.cancel()
    assert received == greeting
    assert bytes(request) == (
        b"CONNECT mail.example:587 HTTP/1.1\r\nHost: mail.example:587\r\n"
        b"Proxy-Authorization: Basic Ym9iOnM6Y3JldA==\r\n\r\n"  # bob:s:cret
    )


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", smtpsubmit.ProxyError, "did not answer CONNECT in HTTP"),
        (b"HTTP/1.1 405 Method Not Allowed\r\n\r\n", smtpsubmit.ProxyError, "405 Method"),
        (b"HTTP/1.1 200 OK\r\n", smtpsubmit.ProxyError, "closed the connection"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 5000, smtpsubmit.ProxyError, "over 16384"),
        (b"HTTP/1.1 403 Bad\x1b[31m\r\n\r\n", smtpsubmit.ProxyRefusedError, r"Bad\\x1b"),
    ],
    ids=["not-http", "other-status", "eof", "oversized", "escaped-reason"],
)
async def test_http_connect_failures_are_proxy_errors(
    answer: bytes, error: type[Exception], words: str
) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(answer)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        with pytest.raises(error, match=words):
            await connect_proxy(ProxyURL.parse(f"http://127.0.0.1:{port}"), "mail.example", 25)
        group.cancel_scope.cancel()


@pytest.mark.parametrize("scheme", ["socks5h", "http"])
async def test_source_address_is_the_local_end_of_the_connection_to_the_proxy(
    scheme: str, socks: ProxyServer, server: FakeSMTPServer, certificates: ServerCertificates
) -> None:
    async def accepted(proxy: ProxyServer) -> None:
        await smtpsubmit.send(
            message(),
            host="localhost",
            port=server.port,
            tls="implicit",
            ssl_context=certificates.client_ssl_context(),
            proxy=proxy.url(scheme),
            source_address="127.0.0.3",
        )

    if scheme == "http":
        # tinyproxy refuses clients it does not Allow (only 127.0.0.1): a 403 proves it
        # saw the connection come from 127.0.0.3.
        with tinyproxy(connect_ports=[server.port]) as http_proxy:
            with pytest.raises(smtpsubmit.ProxyRefusedError):
                await accepted(http_proxy)
        assert server.messages == []
    else:
        await accepted(socks)
        assert "127.0.0.3" in socks.log.read_text()  # Dante logs each client's address
        [captured] = server.messages
        assert captured.peer[0] == OUTGOING
