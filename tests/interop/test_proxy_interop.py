"""Postfix through real proxies: Dante (SOCKS5 with a user name, RFC 1929) and tinyproxy
(HTTP CONNECT), started here on loopback (tests/proxy_servers.py).

The proxies connect out from 127.0.0.2, and Postfix writes the client's address in its
Received header, so a delivered message says it came through the proxy. The name given is
the certificate's (``localhost``), resolved by the proxy: TLS is verified end to end
against the mail server's name, over both TLS modes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from proxy_servers import OUTGOING, ProxyServer, dante, system_user, tinyproxy

import smtpsubmit

pytestmark = [pytest.mark.interop, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def socks_proxy() -> Iterator[tuple[ProxyServer, str, str]]:
    with system_user() as (user, password), dante(username_auth=True) as server:
        yield server, user, password


@pytest.fixture(scope="module")
def http_proxy(interop_servers) -> Iterator[ProxyServer]:  # type: ignore[no-untyped-def]
    pf = interop_servers.postfix
    with tinyproxy(connect_ports=[pf.starttls_port, pf.implicit_port]) as server:
        yield server


async def deliver_through(servers, proxy_url: str, tls: str) -> str:  # type: ignore[no-untyped-def]
    pf = servers.postfix
    rcpt = servers.unique_address("proxy")
    message = (
        f"From: <{servers.sender}>\r\nTo: <{rcpt}>\r\nSubject: proxy {uuid.uuid4().hex}\r\n"
        "\r\nthrough a proxy\r\n"
    ).encode()
    async with smtpsubmit.SMTPClient(
        servers.tls_server_name,  # resolved by the proxy, checked against the certificate
        pf.starttls_port if tls == "starttls" else pf.implicit_port,
        tls=tls,
        ssl_context=servers.ssl_context(),
        username=servers.user,
        password=servers.password,
        timeout=30,
        proxy=proxy_url,
    ) as client:
        result = await client.sendmail(servers.sender, [rcpt], message)
        assert client.tls_info is not None
    assert result.accepted == (rcpt,)
    [delivered] = servers.postfix.wait_for_messages(rcpt)
    assert delivered.submitted == message
    return delivered.received_header


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_postfix_through_socks5h_with_a_user_name(
    interop_servers,  # type: ignore[no-untyped-def]
    socks_proxy: tuple[ProxyServer, str, str],
    tls: str,
) -> None:
    server, user, password = socks_proxy
    received = await deliver_through(interop_servers, server.url("socks5h", user, password), tls)
    assert f"[{OUTGOING}]" in received
    assert "ESMTPSA" in received  # TLS and AUTH, end to end with Postfix


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_postfix_through_http_connect(
    interop_servers,  # type: ignore[no-untyped-def]
    http_proxy: ProxyServer,
    tls: str,
) -> None:
    received = await deliver_through(interop_servers, http_proxy.url(), tls)
    assert f"[{OUTGOING}]" in received
    assert "ESMTPSA" in received
