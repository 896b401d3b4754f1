"""RFC 8314 policy and the security invariants, observed on the wire."""

from __future__ import annotations

import errno
import ssl
from email.message import EmailMessage
from pathlib import Path

import anyio
import certifi
import pytest
import trustme

import smtpsubmit
from smtpsubmit import TLSMode
from smtpsubmit._errors import ArgumentTypeError
from smtpsubmit.testing import FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio

USERS = {"alice": "correct horse battery staple"}


def client_lines(server: FakeSMTPServer) -> list[str]:
    """Every line any client sent to the server, across connections."""
    return [
        entry.line
        for transcript in server.transcripts
        for entry in transcript
        if entry.direction == "client"
    ]


def verbs(server: FakeSMTPServer) -> list[str]:
    return [line.split(" ")[0].upper() for line in client_lines(server)]


# -- port -> mode (no I/O) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "tls", "expected"),
    [
        (465, None, TLSMode.IMPLICIT),
        (587, None, TLSMode.STARTTLS),
        (2525, "starttls", TLSMode.STARTTLS),
        (2525, TLSMode.IMPLICIT, TLSMode.IMPLICIT),
        (25, TLSMode.INSECURE_CLEARTEXT, TLSMode.INSECURE_CLEARTEXT),
    ],
)
def test_tls_mode_follows_rfc8314_ports(port: int, tls: object, expected: TLSMode) -> None:
    client = smtpsubmit.SMTPClient("mail.example", port, tls=tls)  # type: ignore[arg-type]
    assert client.tls_mode is expected


@pytest.mark.parametrize(
    ("port", "tls", "needle"),
    [
        (25, None, "port 25 has no standard TLS mode"),
        (2525, None, "tls=TLSMode.INSECURE_CLEARTEXT"),
        (587, TLSMode.IMPLICIT, "port 587 is the STARTTLS submission port"),
        (465, TLSMode.STARTTLS, "port 465 is implicit TLS"),
        (465, TLSMode.INSECURE_CLEARTEXT, "port 465 is implicit TLS"),
        (2525, "tls-please", "unknown TLS mode"),
    ],
)
def test_contradictory_or_ambiguous_tls_mode_is_refused(
    port: int, tls: object, needle: str
) -> None:
    with pytest.raises(smtpsubmit.TLSPolicyError, match=needle):
        smtpsubmit.SMTPClient("mail.example", port, tls=tls)  # type: ignore[arg-type]


def test_default_ssl_context_verifies_and_requires_tls12() -> None:
    context = smtpsubmit.policy.default_ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


CHOICES = "'implicit', 'starttls', 'insecure-cleartext'"


@pytest.mark.parametrize(
    ("port", "tls", "error", "arguments", "message"),
    [
        (
            587,
            "{bogus}",
            smtpsubmit.TLSPolicyError,
            ("tls",),
            f"unknown TLS mode '{{bogus}}' for tls; use one of {CHOICES}",
        ),
        (
            587,
            {"tls": True},
            ArgumentTypeError,
            ("tls",),
            f"tls must be a TLSMode, one of {CHOICES}, or None (by port), not {{'tls': True}}",
        ),
        (
            25,
            None,
            smtpsubmit.TLSPolicyError,
            ("port", "tls"),
            "port 25 has no standard TLS mode: pass tls=TLSMode.IMPLICIT (like port 465), "
            "tls=TLSMode.STARTTLS (like port 587) or, only if you accept that mail crosses "
            "the network unencrypted, tls=TLSMode.INSECURE_CLEARTEXT (RFC 8314)",
        ),
        (
            587,
            TLSMode.IMPLICIT,
            smtpsubmit.TLSPolicyError,
            ("port", "tls"),
            "port 587 is the STARTTLS submission port (RFC 6409, RFC 8314 3.3); implicit TLS "
            "is port 465. Use port 465, or tls=TLSMode.STARTTLS on 587",
        ),
        (
            465,
            "starttls",
            smtpsubmit.TLSPolicyError,
            ("port", "tls"),
            "port 465 is implicit TLS (RFC 8314 3.3); tls=TLSMode.STARTTLS there would not "
            "connect. Use tls=TLSMode.IMPLICIT (the default for 465), or port 587 for STARTTLS",
        ),
    ],
    ids=["unknown-name", "wrong-type", "no-standard-mode", "implicit-on-587", "starttls-on-465"],
)
def test_each_tls_refusal_names_its_arguments_and_says_why(
    port: int, tls: object, error: type, arguments: tuple[str, ...], message: str
) -> None:
    """The CLI and the Django backend re-spell these from ``arguments`` and the template;
    a value with braces in it is quoted, not read as a template field."""
    with pytest.raises(error) as caught:
        smtpsubmit.policy.resolve_tls_mode(port, tls)  # type: ignore[arg-type]
    assert caught.value.arguments == arguments
    assert str(caught.value) == message


def test_default_ssl_context_trusts_certifi_or_only_the_given_cafile(tmp_path: Path) -> None:
    certifi_count = Path(certifi.where()).read_text().count("BEGIN CERTIFICATE")
    assert len(smtpsubmit.policy.default_ssl_context().get_ca_certs()) == certifi_count
    cafile = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(cafile))
    context = smtpsubmit.policy.default_ssl_context(cafile=str(cafile))
    assert len(context.get_ca_certs()) == 1


def test_a_missing_cafile_is_a_file_not_found_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(FileNotFoundError) as caught:
        smtpsubmit.policy.default_ssl_context(cafile=missing)
    assert caught.value.errno == errno.ENOENT
    assert caught.value.strerror == f"cafile {missing!r} does not exist"
    assert caught.value.filename == missing


def test_a_cafile_without_a_certificate_is_an_ssl_error_naming_it(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificate here\n")
    with pytest.raises(ssl.SSLError) as caught:
        smtpsubmit.policy.default_ssl_context(cafile=str(empty))
    assert caught.value.errno is not None
    assert caught.value.strerror == f"cafile {str(empty)!r} holds no usable PEM certificate"


# -- STARTTLS ---------------------------------------------------------------------------


async def test_starttls_not_advertised_fails_with_no_auth_and_no_mail_on_the_wire(
    message: EmailMessage,
) -> None:
    async with FakeSMTPServer(users=USERS, faults=(Fault.strip_starttls(),)) as server:
        with pytest.raises(smtpsubmit.StartTLSUnavailableError, match="does not offer STARTTLS"):
            await smtpsubmit.send(
                message,
                host=server.host,
                port=server.port,
                tls="starttls",
                ssl_context=server.client_ssl_context(),
                username="alice",
                password=USERS["alice"],
            )
        sent = verbs(server)
    assert sent == ["EHLO"]
    assert server.messages == []


async def test_starttls_refused_with_454_fails_closed(message: EmailMessage) -> None:
    fault = Fault.reply("STARTTLS", code=454, enhanced="4.7.0", text="TLS not available")
    async with FakeSMTPServer(users=USERS, faults=(fault,)) as server:
        with pytest.raises(smtpsubmit.StartTLSUnavailableError, match="454"):
            await smtpsubmit.send(
                message,
                host=server.host,
                port=server.port,
                tls="starttls",
                ssl_context=server.client_ssl_context(),
                username="alice",
                password=USERS["alice"],
            )
        sent = verbs(server)
    assert sent == ["EHLO", "STARTTLS"]


async def test_bytes_injected_after_starttls_reply_abort_the_session(
    message: EmailMessage,
) -> None:
    async with FakeSMTPServer(users=USERS, faults=(Fault.inject_after_starttls(),)) as server:
        with pytest.raises(smtpsubmit.ProtocolViolationError, match="response injection"):
            await smtpsubmit.send(
                message,
                host=server.host,
                port=server.port,
                tls="starttls",
                ssl_context=server.client_ssl_context(),
                username="alice",
                password=USERS["alice"],
            )
        sent = verbs(server)
    assert "AUTH" not in sent
    assert "MAIL" not in sent


@pytest.mark.parametrize("mode", [Mode.STARTTLS, Mode.IMPLICIT_TLS])
async def test_certificate_for_the_wrong_host_is_refused(message: EmailMessage, mode: Mode) -> None:
    tls = "starttls" if mode is Mode.STARTTLS else "implicit"
    async with FakeSMTPServer(
        mode=mode, users=USERS, faults=(Fault.wrong_host_certificate(),)
    ) as server:
        with pytest.raises(smtpsubmit.CertificateError, match="certificate"):
            await smtpsubmit.send(
                message,
                host=server.host,
                port=server.port,
                tls=tls,
                ssl_context=server.client_ssl_context(),
                username="alice",
                password=USERS["alice"],
            )
        assert "AUTH" not in verbs(server)


async def test_untrusted_ca_is_refused_by_the_default_context(message: EmailMessage) -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, users=USERS) as server:
        with pytest.raises(smtpsubmit.CertificateError):
            await smtpsubmit.send(
                message, host=server.host, port=server.port, tls="implicit", timeout=10
            )
        assert client_lines(server) == []


async def test_plaintext_server_on_implicit_tls_port_gives_a_tls_error_not_a_hang(
    message: EmailMessage,
) -> None:
    async with FakeSMTPServer(mode=Mode.PLAIN) as server:
        with anyio.fail_after(10):  # the guard against a hang; the client must fail first
            with pytest.raises(smtpsubmit.TLSError):
                await smtpsubmit.send(
                    message,
                    host=server.host,
                    port=server.port,
                    tls="implicit",
                    ssl_context=server.client_ssl_context(),
                    timeout=5,
                )


# -- cleartext --------------------------------------------------------------------------


async def test_auth_over_cleartext_is_refused_before_sending_credentials(
    message: EmailMessage,
) -> None:
    async with FakeSMTPServer(mode=Mode.PLAIN, users=USERS, allow_cleartext_auth=True) as server:
        with pytest.raises(smtpsubmit.CleartextAuthError, match="unencrypted"):
            await smtpsubmit.send(
                message,
                host=server.host,
                port=server.port,
                tls=TLSMode.INSECURE_CLEARTEXT,
                username="alice",
                password=USERS["alice"],
            )
        sent = verbs(server)
    assert "AUTH" not in sent
    assert "MAIL" not in sent


async def test_cleartext_auth_works_only_when_explicitly_allowed(message: EmailMessage) -> None:
    async with FakeSMTPServer(mode=Mode.PLAIN, users=USERS, allow_cleartext_auth=True) as server:
        result = await smtpsubmit.send(
            message,
            host=server.host,
            port=server.port,
            tls=TLSMode.INSECURE_CLEARTEXT,
            username="alice",
            password=USERS["alice"],
            allow_cleartext_auth=True,
        )
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert result.accepted == ("bob@example.com",)
    assert captured.auth_identity == "alice"
    assert captured.tls is False


async def test_credentials_with_a_server_that_offers_no_auth_is_an_error(
    message: EmailMessage,
) -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, auth_mechanisms=()) as server:
        with pytest.raises(smtpsubmit.NoCompatibleMechanismError, match="offers no AUTH"):
            await smtpsubmit.send(
                message,
                host=server.host,
                port=server.port,
                tls="implicit",
                ssl_context=server.client_ssl_context(),
                username="alice",
                password="pw",
            )
        assert "MAIL" not in verbs(server)


async def test_empty_username_means_no_authentication(message: EmailMessage) -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        await smtpsubmit.send(
            message,
            host=server.host,
            port=server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            username="",
            password="",
        )
        assert "AUTH" not in verbs(server)
        assert "MAIL" in verbs(server)
