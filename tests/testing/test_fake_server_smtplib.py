"""The fake server driven by a client we did not write: the stdlib's smtplib."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest

from smtpsubmit.testing import Mode, SMTPServerFactory, ThreadedSMTPServer
from smtpsubmit.testing._plugin import DEFAULT_USERS

USER, PASSWORD = next(iter(DEFAULT_USERS.items()))


def _message(subject: str = "Hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@example.com"
    msg["To"] = "rcpt@example.com"
    msg["Subject"] = subject
    msg.set_content("First line\n.leading dot\n..two dots\n")
    return msg


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtplib_starttls_login_and_send(smtp_server: ThreadedSMTPServer, mechanism: str) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.starttls(context=smtp_server.client_ssl_context())
        client.ehlo()
        client.user, client.password = USER, PASSWORD
        code, _ = client.auth(
            mechanism, getattr(client, "auth_" + mechanism.lower().replace("-", "_"))
        )
        assert code == 235
        client.send_message(_message())

    [captured] = smtp_server.wait_for_messages(1)
    assert captured.tls
    assert captured.tls_version in ("TLSv1.2", "TLSv1.3")
    assert captured.auth_identity == USER
    assert captured.mail_from == "sender@example.com"
    assert captured.rcpt_to == ["rcpt@example.com"]
    assert captured.message["Subject"] == "Hello"
    # Dot-unstuffing (RFC 5321 4.5.2): the content is exactly what smtplib meant to send.
    assert b"\r\n.leading dot\r\n..two dots\r\n" in captured.data
    assert captured.message.get_content() == "First line\n.leading dot\n..two dots\n"
    assert captured.peer[0] == "127.0.0.1"
    # No secret in the transcript.
    assert PASSWORD not in repr(captured.transcript)
    assert ("client", "<redacted>") in captured.transcript or any(
        line.endswith("<redacted>") for _, line in captured.transcript
    )


def test_smtplib_smtp_ssl_on_implicit_tls(smtps_server: ThreadedSMTPServer) -> None:
    context = smtps_server.client_ssl_context()
    with smtplib.SMTP_SSL(smtps_server.host, smtps_server.port, context=context, timeout=5) as c:
        c.login(USER, PASSWORD)
        c.send_message(_message())
    [captured] = smtps_server.wait_for_messages(1)
    assert captured.tls
    assert captured.auth_identity == USER


def test_smtplib_several_messages_on_one_connection(smtp_server: ThreadedSMTPServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.starttls(context=smtp_server.client_ssl_context())
        client.login(USER, PASSWORD)
        for i in range(3):
            client.send_message(_message(f"n{i}"))
    messages = smtp_server.wait_for_messages(3)
    assert [m.message["Subject"] for m in messages] == ["n0", "n1", "n2"]
    assert len({m.queue_id for m in messages}) == 3
    assert len(smtp_server.transcripts) == 1


def test_smtplib_reads_queue_id_from_final_reply(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN)
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo()
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        code, text = client.data(b"Subject: x\r\n\r\nbody\r\n")
    [captured] = server.messages
    assert code == 250
    assert text == f"2.0.0 Ok: queued as {captured.queue_id}".encode()


def test_smtplib_login_with_bad_password_is_rejected(smtp_server: ThreadedSMTPServer) -> None:
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as client:
        client.starttls(context=smtp_server.client_ssl_context())
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            client.login(USER, "wrong")
    assert info.value.smtp_code == 535
    # typeshed says str; smtplib really stores the reply text as bytes.
    assert info.value.smtp_error.startswith(b"5.7.8")  # type: ignore[arg-type]
