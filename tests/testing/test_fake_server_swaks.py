"""Interoperability with swaks, a client we did not write (Debian package ``swaks``)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from smtpsubmit.testing import (
    Mode,
    ServerCertificates,
    SMTPServerFactory,
    ThreadedSMTPServer,
)

SWAKS = shutil.which("swaks")
pytestmark = pytest.mark.skipif(SWAKS is None, reason="swaks is not installed")


def _swaks(server: ThreadedSMTPServer, *args: str) -> subprocess.CompletedProcess[str]:
    assert SWAKS is not None
    return subprocess.run(
        [
            SWAKS,
            "--server", server.host,
            "--port", str(server.port),
            "--from", "sender@example.com",
            "--to", "one@example.com,two@example.com",
            "--header", "Subject: from swaks",
            "--timeout", "10",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_starttls_pipelining_and_auth(
    smtp_server_factory: SMTPServerFactory, mechanism: str
) -> None:
    server = smtp_server_factory(mode=Mode.STARTTLS, users={"swaks": "secret"})
    result = _swaks(
        server,
        "--tls",
        "--tls-verify",
        "--tls-ca-path", server.ca_pem_path,
        "--pipeline",
        "--auth", mechanism,
        "--auth-user", "swaks",
        "--auth-password", "secret",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    [message] = server.wait_for_messages(1)
    assert message.tls
    assert message.auth_identity == "swaks"
    assert message.rcpt_to == ["one@example.com", "two@example.com"]
    assert message.message["Subject"] == "from swaks"
    # swaks really pipelined: MAIL, both RCPTs and DATA went out before the first reply.
    wire = [line.strip() for line in result.stdout.splitlines()]
    first_reply = wire.index("<~  250 2.1.0 Ok")
    sent = [line for line in wire[:first_reply] if line.startswith("~>")]
    assert sent[-4:] == [
        "~> MAIL FROM:<sender@example.com>",
        "~> RCPT TO:<one@example.com>",
        "~> RCPT TO:<two@example.com>",
        "~> DATA",
    ]
    assert "secret" not in repr(message.transcript)


def test_swaks_implicit_tls(smtps_server: ThreadedSMTPServer) -> None:
    result = _swaks(
        smtps_server,
        "--tlsc",
        "--tls-verify",
        "--tls-ca-path", smtps_server.ca_pem_path,
        "--auth", "PLAIN",
        "--auth-user", "user@example.com",
        "--auth-password", "password",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert smtps_server.wait_for_messages(1)[0].tls


def test_swaks_refuses_a_server_from_another_ca(smtp_server: ThreadedSMTPServer) -> None:
    other = ServerCertificates()
    try:
        result = _swaks(smtp_server, "--tls", "--tls-verify", "--tls-ca-path", other.ca_pem_path)
    finally:
        other.close()
    assert result.returncode != 0
    assert smtp_server.messages == []


def test_swaks_plain_mode_with_pipelining(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN)
    result = _swaks(server, "--pipeline")
    assert result.returncode == 0, result.stdout + result.stderr
    [message] = server.wait_for_messages(1)
    assert not message.tls
    assert message.tls_version is None
