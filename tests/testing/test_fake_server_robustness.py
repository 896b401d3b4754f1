"""Whatever a client sends, the server answers with well-formed replies and never crashes."""

from __future__ import annotations

import re
import smtplib
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpsubmit.testing import FakeSMTPServer, Mode, SMTPServerFactory, ThreadedSMTPServer

VERBS = ["EHLO x", "HELO x", "MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA", "BDAT 3", "BDAT 2 LAST",
         "RSET", "NOOP", "VRFY x", "AUTH PLAIN", "AUTH LOGIN", "AUTH SCRAM-SHA-256", "STARTTLS",
         ".", "*", "MAIL FROM:<a@x> SIZE=x", "RCPT TO:<b@x> NOTIFY=BAD",
         "BDAT \N{SUPERSCRIPT TWO} LAST", "MAIL FROM:<a@x> SIZE=\N{SUPERSCRIPT TWO}",
         "AUTH CRAM-MD5", "qu\N{LATIN SMALL LETTER DOTLESS I}t"]  # fmt: skip
LINES = st.one_of(
    st.sampled_from(VERBS),
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40),
)
REPLY = re.compile(rb"^\d{3}([ -].*)?$")


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedSMTPServer]:
    with FakeSMTPServer(
        mode=Mode.STARTTLS, users={"u": "p"}, allow_cleartext_auth=True
    ).run_in_thread() as running:
        yield running
        assert running.errors == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(LINES, max_size=12), tail=st.binary(max_size=20))
def test_any_input_gets_wellformed_replies(
    server: ThreadedSMTPServer, lines: list[str], tail: bytes
) -> None:
    payload = b"".join(line.encode() + b"\r\n" for line in lines) + tail
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # EOF ends any DATA/BDAT/AUTH the input left open
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    replies = received.split(b"\r\n")
    assert replies[-1] == b""
    for line in replies[:-1]:
        assert REPLY.match(line), line
    assert server.errors == []


def test_ipv6_loopback(smtp_server_factory: SMTPServerFactory) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = smtp_server_factory(host="::1", mode=Mode.IMPLICIT_TLS)
    except OSError:
        pytest.skip("::1 is not available")
    context = server.client_ssl_context()
    with smtplib.SMTP_SSL("::1", server.port, context=context, timeout=5) as client:
        client.sendmail("a@x", ["b@x"], b"Subject: v6\r\n\r\n")
    [message] = server.messages
    assert message.peer[0] == "::1"
    assert message.tls
