"""Each scripted fault and security drill, as a client observes it."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time

import pytest
from fake_smtp_helpers import RawClient

from smtpsubmit.testing import Fault, Mode, SMTPServerFactory, Target, ThreadedSMTPServer


def _open(server: ThreadedSMTPServer, *, timeout: float = 5.0) -> RawClient:
    client = RawClient(server.host, server.port, timeout=timeout)
    assert client.reply()[0] == 220
    return client


def _plain(factory: SMTPServerFactory, *faults: Fault) -> ThreadedSMTPServer:
    return factory(mode=Mode.PLAIN, allow_cleartext_auth=True, users={"u": "p"}, faults=faults)


# For each target: the commands leading up to it, and the command that reaches it.
ROUTES: dict[str, tuple[list[str], str]] = {
    "EHLO": ([], "EHLO c"),
    "HELO": ([], "HELO c"),
    "AUTH": (["EHLO c"], "AUTH PLAIN AHUAcA=="),
    "MAIL": (["EHLO c"], "MAIL FROM:<a@x>"),
    "RCPT": (["EHLO c", "MAIL FROM:<a@x>"], "RCPT TO:<b@x>"),
    "DATA": (["EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>"], "DATA"),
    "END_OF_DATA": (["EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA"], "."),
    "BDAT": (["EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>"], "BDAT 0"),
    "RSET": (["EHLO c"], "RSET"),
    "NOOP": (["EHLO c"], "NOOP"),
    "VRFY": (["EHLO c"], "VRFY x"),
    "QUIT": (["EHLO c"], "QUIT"),
}


@pytest.mark.parametrize("target", sorted(ROUTES))
def test_reply_fault_replaces_the_reply(
    smtp_server_factory: SMTPServerFactory, target: Target
) -> None:
    server = _plain(
        smtp_server_factory,
        Fault.reply(target, code=451, enhanced="4.3.0", text="Scripted"),
    )
    before, command = ROUTES[target]
    with _open(server) as client:
        for line in before:
            assert client.cmd(line)[0] in (250, 354)
        code, texts = client.cmd(command)
    assert code == 451
    assert texts[0].endswith("Scripted")
    assert server.messages == []


def test_reply_fault_on_starttls(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        faults=[Fault.reply("STARTTLS", code=454, text="TLS not available")]
    )
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPResponseException) as info:
            client.starttls(context=server.client_ssl_context())
    assert info.value.smtp_code == 454


def test_reply_fault_on_nth_rcpt_only(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(
        smtp_server_factory,
        Fault.reply("RCPT", nth=2, times=2, code=550, enhanced="5.1.1", text="No such user"),
    )
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        refused = client.sendmail("a@x", ["r1@x", "r2@x", "r3@x", "r4@x"], b"Subject: s\r\n\r\n")
    assert refused == {
        "r2@x": (550, b"5.1.1 No such user"),
        "r3@x": (550, b"5.1.1 No such user"),
    }
    assert server.messages[0].rcpt_to == ["r1@x", "r4@x"]


def test_faults_count_across_connections(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.disconnect("MAIL"))
    with _open(server) as client:
        client.cmd("EHLO c")
        client.send(b"MAIL FROM:<a@x>\r\n")
        with pytest.raises(EOFError):
            client.reply()
    with _open(server) as client:  # the retry on a new connection succeeds
        client.cmd("EHLO c")
        assert client.cmd("MAIL FROM:<a@x>")[0] == 250


def test_add_faults_counts_from_now(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory)
    with _open(server) as client:
        client.cmd("EHLO c")
        assert client.cmd("NOOP")[0] == 250
        server.add_faults(Fault.reply("NOOP", nth=2, code=421, text="Bye"))
        assert client.cmd("NOOP")[0] == 250
        assert client.cmd("NOOP") == (421, ["Bye"])
        assert client.at_eof()  # RFC 5321 3.8: 421 closes the connection


def test_delay_fault_makes_a_client_time_out(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.delay("EHLO", seconds=30))
    with _open(server, timeout=0.2) as client:
        client.send(b"EHLO c\r\n")
        with pytest.raises(socket.timeout):
            client.reply()


def test_delay_fault_then_normal_reply(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.delay("NOOP", seconds=0.3))
    with _open(server) as client:
        client.cmd("EHLO c")
        start = time.monotonic()
        assert client.cmd("NOOP")[0] == 250
        assert time.monotonic() - start >= 0.3


def test_disconnect_mid_data(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.disconnect_mid_data(after_bytes=10))
    with (
        smtplib.SMTP(server.host, server.port, timeout=5) as client,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        client.sendmail("a@x", ["b@x"], b"Subject: s\r\n\r\n" + b"x" * 100)
    assert server.messages == []
    assert any("disconnect mid-DATA" in line for _, line in server.transcripts[0])


def test_disconnect_right_after_354(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.disconnect_mid_data())
    with _open(server) as client:
        for line in ("EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>"):
            client.cmd(line)
        assert client.cmd("DATA")[0] == 354
        assert client.at_eof()


def test_disconnect_after_end_of_data_captures_unacknowledged(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    server = _plain(smtp_server_factory, Fault.disconnect("END_OF_DATA"))
    with (
        smtplib.SMTP(server.host, server.port, timeout=5) as client,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        client.sendmail("a@x", ["b@x"], b"Subject: s\r\n\r\nbody\r\n")
    [captured] = server.messages
    assert captured.acknowledged is False
    assert captured.data == b"Subject: s\r\n\r\nbody\r\n"


def test_disconnect_on_bdat(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.disconnect("BDAT"))
    with _open(server) as client:
        for line in ("EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>"):
            client.cmd(line)
        client.send(b"BDAT 3 LAST\r\nabc")
        with pytest.raises(EOFError):
            client.reply()


def test_shutdown_421_closes(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.shutdown_421("MAIL"))
    with _open(server) as client:
        client.cmd("EHLO c")
        assert client.cmd("MAIL FROM:<a@x>") == (421, ["4.3.2 Service shutting down"])
        assert client.at_eof()


@pytest.mark.parametrize(("code", "closes"), [(450, False), (421, True)])
def test_rate_limit(smtp_server_factory: SMTPServerFactory, code: int, closes: bool) -> None:
    server = _plain(smtp_server_factory, Fault.rate_limit(max_messages=2, window=60, code=code))  # type: ignore[arg-type]
    with _open(server) as client:
        client.cmd("EHLO c")
        for _ in range(2):
            for line in ("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA"):
                client.cmd(line)
            assert client.cmd(".")[0] == 250
        assert client.cmd("MAIL FROM:<a@x>") == (
            code,
            ["4.7.0 Rate limit exceeded, try again later"],
        )
        if closes:
            assert client.at_eof()
        else:
            assert client.cmd("NOOP")[0] == 250
    assert len(server.messages) == 2


def test_garbage_reply(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.garbage("EHLO"))
    with _open(server) as client:
        client.send(b"EHLO c\r\n")
        assert client.read_line() == b"this is not an SMTP reply\r\n"
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:  # 2nd EHLO: normal
        assert client.ehlo()[0] == 250


def test_oversized_reply(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.oversized_reply("NOOP", size=100_000))
    with _open(server) as client:
        client.cmd("EHLO c")
        client.send(b"NOOP\r\n")
        line = client.read_line()
    assert len(line) == 100_000
    assert line.startswith(b"250 xxx")


def test_greeting_554_then_503_until_quit(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.reply("GREETING", code=554, text="No service"))
    with RawClient(server.host, server.port) as client:
        assert client.reply() == (554, ["No service"])
        assert client.cmd("EHLO c") == (503, ["Bad sequence of commands"])
        assert client.cmd("QUIT")[0] == 221


def test_greeting_421_with_smtplib(smtp_server_factory: SMTPServerFactory) -> None:
    server = _plain(smtp_server_factory, Fault.shutdown_421("GREETING"))
    with pytest.raises(smtplib.SMTPConnectError) as info:
        smtplib.SMTP(server.host, server.port, timeout=5)
    assert info.value.smtp_code == 421


# -- security drills -----------------------------------------------------------------------


def test_drill_strip_starttls(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(faults=[Fault.strip_starttls()])
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.starttls(context=server.client_ssl_context())


def test_drill_response_injection_after_starttls(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(faults=[Fault.inject_after_starttls(b"250 injected\r\n")])
    with _open(server) as client:
        client.cmd("EHLO c")
        client.send(b"STARTTLS\r\n")
        # One write carries both lines, so the injected one is already readable with the 220.
        data = b""
        while b"injected" not in data:
            data += client.sock.recv(4096)
    assert data == b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n"


def test_drill_injection_fools_a_naive_client_reading_after_tls(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    # A client that keeps its plaintext read buffer across STARTTLS takes the injected line
    # for the reply to its first command over TLS: the drill is observable.
    server = smtp_server_factory(faults=[Fault.inject_after_starttls(b"250 injected\r\n")])
    with _open(server) as client:
        client.cmd("EHLO c")
        assert client.cmd("STARTTLS")[0] == 220
        assert client.buf == b"250 injected\r\n"
        client.sock = server.client_ssl_context().wrap_socket(
            client.sock, server_hostname="localhost"
        )
        assert client.cmd("EHLO c") == (250, ["injected"])


def test_drill_wrong_host_certificate(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, faults=[Fault.wrong_host_certificate()])
    context = server.client_ssl_context()
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):
        smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5)
    # Same CA: only the name is wrong.
    with (
        socket.create_connection((server.host, server.port), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname="wrong.example") as tls,
    ):
        assert tls.recv(4) == b"220 "


def test_drill_plaintext_on_implicit_tls_port(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, faults=[Fault.plaintext_on_tls_port()])
    with pytest.raises(ssl.SSLError):
        smtplib.SMTP_SSL(server.host, server.port, context=server.client_ssl_context(), timeout=5)
    with RawClient(server.host, server.port) as client:
        assert client.reply()[0] == 220


def test_fault_reprs_are_readable() -> None:
    fault = Fault.reply("RCPT", nth=2, code=550, enhanced="5.1.1", text="No such user")
    assert repr(fault) == (
        "Fault.reply(target='RCPT', nth=2, times=1, code=550, enhanced='5.1.1', "
        "text='No such user')"
    )
    with pytest.raises(ValueError, match="count from 1"):
        Fault.delay("NOOP", seconds=1, nth=0)


@pytest.mark.parametrize("target", sorted(ROUTES))
def test_a_delay_is_applied_once_per_occurrence(
    smtp_server_factory: SMTPServerFactory, target: Target
) -> None:
    # Counted from the transcript, which logs each sleep: no timing involved.
    server = _plain(smtp_server_factory, Fault.delay(target, seconds=0.01))
    before, command = ROUTES[target]
    with _open(server) as client:
        for line in before:
            assert client.cmd(line)[0] in (250, 354)
        client.cmd(command)
    delays = [line for _, line in server.transcripts[0] if line.startswith("fault: delaying")]
    assert delays == ["fault: delaying 0.01 s"]


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
def test_end_of_data_delay_is_applied_once(
    smtp_server_factory: SMTPServerFactory, chunking: bool
) -> None:
    server = _plain(smtp_server_factory, Fault.delay("END_OF_DATA", seconds=0.01))
    with _open(server) as client:
        for line in ("EHLO c", "MAIL FROM:<a@x>", "RCPT TO:<b@x>"):
            client.cmd(line)
        if chunking:
            client.send(b"BDAT 3 LAST\r\nx\r\n")
            assert client.reply()[0] == 250
        else:
            client.cmd("DATA")
            assert client.cmd("x\r\n.")[0] == 250
    delays = [line for _, line in server.transcripts[0] if line.startswith("fault: delaying")]
    assert delays == ["fault: delaying 0.01 s"]
