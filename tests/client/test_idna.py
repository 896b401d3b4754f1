"""A non-ASCII server name is one A-label everywhere: DNS lookup, SNI, certificate check.

The bug this guards: the name used raw meant asyncio looked it up and TLS sent and checked
it with the standard library's IDNA 2003 codec (``straße`` -> ``strasse``), while anyio's
lookup on trio uses IDNA 2008 (``straße`` -> ``xn--strae-oqa``): one name looked up, another
verified. Now ``Settings`` encodes it once (IDNA 2008, UTS 46) and every layer gets ASCII.

Test seam: ``socket.getaddrinfo`` is replaced for the test (asyncio's resolver and trio's,
through anyio, both end there). It resolves only the A-label, to the fake server on
127.0.0.1, records every name it is asked, and answers "no such name" for anything else,
so an IDNA 2003 lookup (``strasse.example``) or a raw one would fail the connection. The
fake server's certificate names only the A-label and its TLS context records the SNI.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from net_seams import Resolver, record_sni

import smtpsubmit
from smtpsubmit.cli import probe_main
from smtpsubmit.cli._probe import ProbeOptions, probe
from smtpsubmit.cli._x509 import CertificateSummary, hostname_matches
from smtpsubmit.testing import FakeSMTPServer, Mode, ServerCertificates

NAME = "Straße.example"
A_LABEL = "xn--strae-oqa.example"  # IDNA 2008 (UTS 46, non-transitional)
IDNA_2003 = "strasse.example"  # what the standard library's codec makes of it

pytestmark = pytest.mark.anyio


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver({A_LABEL: "127.0.0.1"}, socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def certificates() -> Iterator[tuple[ServerCertificates, list[str | None]]]:
    """A CA and a server certificate for the A-label only; the SNI names the server saw."""
    certs = ServerCertificates(extra_names=(A_LABEL,))
    yield certs, record_sni(certs.server_ssl_context())
    certs.close()


@pytest.mark.parametrize(
    ("mode", "tls"), [(Mode.IMPLICIT_TLS, "implicit"), (Mode.STARTTLS, "starttls")]
)
async def test_non_ascii_host_is_looked_up_sent_and_verified_as_one_a_label(
    mode: Mode,
    tls: str,
    resolver: Resolver,
    certificates: tuple[ServerCertificates, list[str | None]],
    message: EmailMessage,
) -> None:
    certs, sni = certificates
    async with FakeSMTPServer(mode=mode, certificates=certs) as server:
        client = smtpsubmit.SMTPClient(
            NAME, server.port, tls=tls, ssl_context=certs.client_ssl_context()
        )
        async with client:
            await client.send_message(message)
    assert set(resolver.asked) == {A_LABEL}
    assert sni == [A_LABEL]  # and the certificate, valid for it only, was accepted
    assert client.host == client.server_hostname == A_LABEL
    assert len(server.messages) == 1


async def test_explicit_non_ascii_server_hostname_is_sent_as_its_a_label(
    resolver: Resolver,
    certificates: tuple[ServerCertificates, list[str | None]],
    message: EmailMessage,
) -> None:
    certs, sni = certificates
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, certificates=certs) as server:
        async with smtpsubmit.SMTPClient(
            "127.0.0.1",
            server.port,
            tls="implicit",
            server_hostname="STRASSE.example".replace("SS", "ß").lower(),
            ssl_context=certs.client_ssl_context(),
        ) as client:
            await client.send_message(message)
    assert resolver.asked == []
    assert sni == [A_LABEL]


def test_a_name_without_an_a_label_is_refused_before_any_io(no_connection: object) -> None:
    with pytest.raises(smtpsubmit.ArgumentError, match=r"host.*IDNA 2008") as raised:
        smtpsubmit.SMTPClient("☃.example", 465)
    assert raised.value.arguments == ("host",)
    with pytest.raises(smtpsubmit.ArgumentError) as raised:
        smtpsubmit.SMTPClient("127.0.0.1", 465, server_hostname="☃.example")
    assert raised.value.arguments == ("server_hostname",)


def test_ascii_names_are_kept_as_given() -> None:
    # IDNA 2008 would refuse "_", but such names exist in DNS: only non-ASCII is encoded.
    client = smtpsubmit.SMTPClient("mail_relay.Example.com", 465)
    assert client.host == "mail_relay.Example.com"


def _summary(*dns_names: str) -> CertificateSummary:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    return CertificateSummary(
        subject="CN=x",
        issuer="CN=ca",
        common_name=None,
        dns_names=dns_names,
        ip_addresses=(),
        not_before=now,
        not_after=now,
        sha256="",
    )


def test_probe_matches_a_non_ascii_host_against_the_a_label_in_the_certificate() -> None:
    assert hostname_matches(NAME, _summary(A_LABEL))
    assert hostname_matches("mail.straße.example", _summary("*." + A_LABEL))
    assert not hostname_matches(NAME, _summary(IDNA_2003))  # IDNA 2003 is another name
    assert not hostname_matches("☃.example", _summary(A_LABEL))


async def test_probe_connects_sends_sni_and_matches_the_a_label(
    resolver: Resolver,
    certificates: tuple[ServerCertificates, list[str | None]],
) -> None:
    certs, sni = certificates
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, certificates=certs) as server:
        options = ProbeOptions(timeout=10, cafile=certs.ca_pem_path)
        [report] = await probe(NAME, [(server.port, "implicit")], options)
    assert report.facts.host == A_LABEL
    assert set(resolver.asked) == {A_LABEL}
    assert sni[0] == A_LABEL
    assert report.facts.tls is not None
    assert report.facts.tls.verified
    assert report.verdict == "ok", report.findings


def test_probe_refuses_a_host_without_an_a_label(capsys: pytest.CaptureFixture[str]) -> None:
    assert probe_main(["☃.example"]) == 2
    assert "IDNA 2008" in capsys.readouterr().err
