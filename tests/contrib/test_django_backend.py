"""The Django EMAIL_BACKEND, driven by Django itself, against the fake server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        EMAIL_BACKEND="smtpsubmit.contrib.django.EmailBackend",
        DEFAULT_FROM_EMAIL="app@example.com",
        USE_TZ=True,
    )
    django.setup()

from django.core import mail  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

import smtpsubmit  # noqa: E402
from smtpsubmit.contrib.django import EmailBackend  # noqa: E402
from smtpsubmit.testing import ThreadedSMTPServer  # noqa: E402


@pytest.fixture
def use_server(smtp_server: ThreadedSMTPServer) -> Iterator[ThreadedSMTPServer]:
    """Point Django at the STARTTLS fake server, trusting its CA."""
    with override_settings(
        EMAIL_HOST=smtp_server.host,
        EMAIL_PORT=smtp_server.port,
        EMAIL_HOST_USER="user@example.com",
        EMAIL_HOST_PASSWORD="password",
        EMAIL_USE_TLS=True,
        SMTPSUBMIT_CA_FILE=smtp_server.ca_pem_path,
    ):
        yield smtp_server


def test_send_mail_goes_out_over_starttls_with_auth(use_server: ThreadedSMTPServer) -> None:
    count = mail.send_mail("Hi", "Body text", "Team <app@example.com>", ["Bob <bob@example.com>"])
    [captured] = use_server.wait_for_messages(1)
    assert count == 1
    assert captured.mail_from == "app@example.com"
    assert [r.address for r in captured.recipients] == ["bob@example.com"]
    assert captured.tls
    assert captured.auth_identity == "user@example.com"
    assert captured.message["Subject"] == "Hi"


def test_a_dkim_signer_setting_signs_every_message(use_server: ThreadedSMTPServer) -> None:
    from dkim_keys import signer, verifies

    with override_settings(SMTPSUBMIT_DKIM_SIGNER=signer("ed25519")):
        assert mail.send_mail("Signed", "Grüße", "app@example.com", ["b@example.com"]) == 1
    [captured] = use_server.wait_for_messages(1)
    assert captured.data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert verifies(captured.data, signer("ed25519"))


def test_alternatives_and_attachments_arrive(use_server: ThreadedSMTPServer) -> None:
    msg = mail.EmailMultiAlternatives(
        "Report", "plain", "app@example.com", ["a@example.com"], bcc=["audit@example.com"]
    )
    msg.attach_alternative("<p>html</p>", "text/html")
    msg.attach("report.csv", "a,b\n1,2\n", "text/csv")
    assert msg.send() == 1
    [captured] = use_server.wait_for_messages(1)
    received = captured.message
    assert [r.address for r in captured.recipients] == ["a@example.com", "audit@example.com"]
    assert b"audit@example.com" not in captured.data  # Bcc is envelope only
    parts = [p.get_content_type() for p in received.walk()]
    assert "text/html" in parts
    assert "text/csv" in parts


def test_get_connection_reuses_one_session(use_server: ThreadedSMTPServer) -> None:
    with mail.get_connection() as connection:
        sent = connection.send_messages(
            [
                mail.EmailMessage(f"n{i}", "x", "app@example.com", ["b@example.com"])
                for i in range(3)
            ]
        )
        sent += connection.send_messages([mail.EmailMessage("n3", "x", to=["b@example.com"])])
    use_server.wait_for_messages(4)
    assert sent == 4
    assert len(use_server.transcripts) == 1


def test_fail_silently_returns_zero_instead_of_raising(use_server: ThreadedSMTPServer) -> None:
    with override_settings(EMAIL_HOST_PASSWORD="wrong"):
        assert (
            mail.send_mail("x", "y", "app@example.com", ["b@example.com"], fail_silently=True) == 0
        )
        with pytest.raises(smtpsubmit.AuthenticationError):
            mail.send_mail("x", "y", "app@example.com", ["b@example.com"])


def test_implicit_tls_with_email_use_ssl(smtps_server: ThreadedSMTPServer) -> None:
    with override_settings(
        EMAIL_HOST=smtps_server.host,
        EMAIL_PORT=smtps_server.port,
        EMAIL_USE_SSL=True,
        EMAIL_USE_TLS=False,
        SMTPSUBMIT_CA_FILE=smtps_server.ca_pem_path,
    ):
        assert mail.send_mail("s", "b", "app@example.com", ["c@example.com"]) == 1
    assert smtps_server.wait_for_messages(1)[0].tls


def test_tls_flags_map_onto_rfc8314_modes() -> None:
    def mode(**options: object) -> object:
        return EmailBackend(host="mail.example", **options)._tls_mode()  # type: ignore[arg-type]

    assert mode(port=2525, use_ssl=True) is smtpsubmit.TLSMode.IMPLICIT
    assert mode(port=2525, use_tls=True) is smtpsubmit.TLSMode.STARTTLS
    assert mode(port=587) is None  # RFC 8314: STARTTLS required
    assert mode(port=465) is None  # RFC 8314: implicit TLS
    assert mode(port=25) is smtpsubmit.TLSMode.INSECURE_CLEARTEXT
    with pytest.raises(ValueError, match="mutually exclusive"):
        EmailBackend(use_tls=True, use_ssl=True)


def test_credentials_on_a_cleartext_port_are_refused(smtp_server_factory) -> None:  # type: ignore[no-untyped-def]
    from smtpsubmit.testing import Mode

    server = smtp_server_factory(mode=Mode.PLAIN, allow_cleartext_auth=True)
    backend = EmailBackend(
        host=server.host, port=server.port, username="user@example.com", password="password"
    )
    with pytest.raises(smtpsubmit.CleartextAuthError) as info:
        backend.send_messages([mail.EmailMessage("x", "y", "a@example.com", ["b@example.com"])])
    assert str(info.value) == (
        "refusing to send credentials over an unencrypted connection; use EMAIL_USE_SSL = "
        "True or EMAIL_USE_TLS = True, or SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH = True if you "
        "really mean it"
    )
    sent = [e.line for t in server.transcripts for e in t if e.direction == "client"]
    assert not any(line.startswith("AUTH") for line in sent)


# -- settings the client refuses: named as settings, before any connection ----------------

SECRET = "s3cret-Pa55"
#: The Python API's spelling, which must not leak into the backend's messages.
API_WORDS = ("TLSMode", "tls=", "port=", "allow_cleartext_auth", "ssl_context", "username")


@pytest.mark.parametrize(
    ("settings_", "error", "expected"),
    [
        ({"EMAIL_PORT": 70000}, smtpsubmit.ArgumentError, "EMAIL_PORT must be from 1 to 65535"),
        ({"EMAIL_PORT": -1}, smtpsubmit.ArgumentError, "EMAIL_PORT must be from 1 to 65535"),
        ({"EMAIL_PORT": "smtp"}, TypeError, "EMAIL_PORT must be an int from 1 to 65535"),
        ({"EMAIL_HOST": ""}, smtpsubmit.ArgumentError, "EMAIL_HOST is empty"),
        (
            {"EMAIL_HOST_PASSWORD": SECRET},
            smtpsubmit.ArgumentError,
            "EMAIL_HOST_PASSWORD was given without EMAIL_HOST_USER: the message would be sent "
            "without authenticating; give EMAIL_HOST_USER too, or no EMAIL_HOST_PASSWORD",
        ),
        (
            {"EMAIL_HOST_USER": "me@example.com"},
            smtpsubmit.ArgumentError,
            "EMAIL_HOST_USER was given without EMAIL_HOST_PASSWORD",
        ),
        ({"EMAIL_TIMEOUT": -1}, smtpsubmit.ArgumentError, "EMAIL_TIMEOUT must be a positive"),
        ({"EMAIL_TIMEOUT": 0}, smtpsubmit.ArgumentError, "EMAIL_TIMEOUT must be a positive"),
        ({"EMAIL_TIMEOUT": "10"}, TypeError, "EMAIL_TIMEOUT must be seconds"),
        (
            {"EMAIL_PORT": 465, "EMAIL_USE_TLS": True},
            smtpsubmit.TLSPolicyError,
            "EMAIL_PORT = 465 is implicit TLS (RFC 8314 3.3); EMAIL_USE_TLS = True there would "
            "not connect. Use EMAIL_USE_SSL = True (the default for 465), or EMAIL_PORT = 587",
        ),
        (
            {"EMAIL_PORT": 587, "EMAIL_USE_SSL": True},
            smtpsubmit.TLSPolicyError,
            "EMAIL_PORT = 587 is the STARTTLS submission port (RFC 6409, RFC 8314 3.3); "
            "implicit TLS is EMAIL_PORT = 465. Use EMAIL_PORT = 465, or EMAIL_USE_TLS = True",
        ),
        (
            {"SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH": "False"},
            TypeError,
            "SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH must be True or False, not 'False'",
        ),
        (
            {"SMTPSUBMIT_SSL_CONTEXT": "/etc/ssl/ca.pem"},
            TypeError,
            "SMTPSUBMIT_SSL_CONTEXT must be an ssl.SSLContext or None, not str",
        ),
        (
            {"SMTPSUBMIT_DKIM_SIGNER": "-----BEGIN PRIVATE KEY-----"},
            TypeError,
            "SMTPSUBMIT_DKIM_SIGNER must have a sign(message: bytes) -> bytes method",
        ),
        (
            {"SMTPSUBMIT_CA_FILE": "/nonexistent/ca.pem"},
            smtpsubmit.ArgumentError,
            "SMTPSUBMIT_CA_FILE '/nonexistent/ca.pem' cannot be used: No such file or directory",
        ),
        (
            {"EMAIL_SSL_CERTFILE": "/nonexistent/cert.pem"},
            smtpsubmit.ArgumentError,
            "EMAIL_SSL_CERTFILE/EMAIL_SSL_KEYFILE '/nonexistent/cert.pem' cannot be used",
        ),
    ],
)
@pytest.mark.parametrize("fail_silently", [False, True])
def test_bad_settings_are_refused_by_their_setting_names_before_any_connection(
    no_connection: Any,
    settings_: dict[str, object],
    error: type[Exception],
    expected: str,
    fail_silently: bool,
) -> None:
    """Configuration mistakes raise even with fail_silently: nothing was attempted."""
    values = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": no_connection.port,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        **settings_,
    }
    with override_settings(**values):
        with pytest.raises(error) as info:
            mail.send_mail(
                "x", "y", "app@example.com", ["b@example.com"], fail_silently=fail_silently
            )
    assert isinstance(info.value, smtpsubmit.ArgumentError)
    message = str(info.value)
    assert expected in message
    assert SECRET not in message
    for word in API_WORDS:
        assert word not in message, (word, message)
    assert not re.search(r"\bport \d", message)  # the library's "port 465"


def test_bad_backend_keywords_are_named_as_keywords(no_connection: Any) -> None:
    backend = EmailBackend(host="127.0.0.1", port=no_connection.port, username="", password=SECRET)
    with pytest.raises(smtpsubmit.ArgumentError) as info:
        backend.open()
    assert str(info.value).startswith(
        "the backend's password= was given without the backend's username="
    )
    assert info.value.arguments == ("password", "username")
    backend = EmailBackend(host="127.0.0.1", port=70000, use_ssl=True)
    with pytest.raises(smtpsubmit.ArgumentError, match=r"^the backend's port= must be from 1"):
        backend.open()


def test_retry_setting_sends_again_only_to_the_4xx_recipient(
    smtp_server_factory,  # type: ignore[no-untyped-def]
) -> None:
    from smtpsubmit.testing import Fault, Mode

    server = smtp_server_factory(
        mode=Mode.IMPLICIT_TLS, faults=[Fault.reply("RCPT", nth=2, code=451, text="Later")]
    )
    with override_settings(
        EMAIL_HOST=server.host,
        EMAIL_PORT=server.port,
        EMAIL_USE_SSL=True,
        EMAIL_USE_TLS=False,
        SMTPSUBMIT_CA_FILE=server.ca_pem_path,
        SMTPSUBMIT_RETRY=smtpsubmit.RetryPolicy(attempts=2, backoff=0),
        SMTPSUBMIT_RATE_LIMIT=smtpsubmit.RateLimit(per_second=100),
    ):
        sent = mail.send_mail("s", "b", "app@example.com", ["a@example.com", "b@example.com"])
    assert sent == 1
    assert [m.rcpt_to for m in server.wait_for_messages(2)] == [
        ["a@example.com"],
        ["b@example.com"],
    ]


def test_a_retry_setting_of_the_wrong_type_is_named() -> None:
    with (
        override_settings(EMAIL_HOST="mail.example", EMAIL_PORT=465, SMTPSUBMIT_RETRY=3),
        pytest.raises(smtpsubmit.ArgumentError, match="SMTPSUBMIT_RETRY"),
    ):
        EmailBackend().open()
