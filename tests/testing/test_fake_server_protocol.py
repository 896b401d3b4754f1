"""Protocol behaviour of the fake server, asserted on the bytes on the wire."""

from __future__ import annotations

import base64

import pytest
from fake_smtp_helpers import RawClient

from smtpsubmit.testing import Extension, Mode, SMTPServerFactory, ThreadedSMTPServer

MESSAGE = b"Subject: t\r\n\r\nhello\r\n"


@pytest.fixture
def plain(smtp_server_factory: SMTPServerFactory) -> ThreadedSMTPServer:
    return smtp_server_factory(mode=Mode.PLAIN)


def _client(server: ThreadedSMTPServer, ehlo: str | None = "EHLO client.example") -> RawClient:
    client = RawClient(server.host, server.port)
    assert client.reply()[0] == 220
    if ehlo:
        assert client.cmd(ehlo)[0] == 250
    return client


def test_pipelined_session_in_one_write_gets_replies_in_order(plain: ThreadedSMTPServer) -> None:
    # RFC 2920: two whole transactions and QUIT in a single segment; nothing may be lost.
    batch = (
        b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n"
        + MESSAGE
        + b".\r\nMAIL FROM:<d@x>\r\nRCPT TO:<e@x>\r\nDATA\r\nSubject: 2\r\n\r\n..x\r\n.\r\nQUIT\r\n"
    )
    with RawClient(plain.host, plain.port) as client:
        client.send(batch)
        replies = [client.reply() for _ in range(12)]
        assert client.at_eof()
    codes = [code for code, _ in replies]
    assert codes == [220, 250, 250, 250, 250, 354, 250, 250, 250, 354, 250, 221]
    assert replies[2][1] == ["2.1.0 Ok"]
    assert replies[3][1] == ["2.1.5 Ok"]
    first, second = plain.messages
    assert first.rcpt_to == ["b@x", "c@x"]
    assert first.data == MESSAGE
    assert second.data == b"Subject: 2\r\n\r\n.x\r\n"
    assert replies[10][1] == [f"2.0.0 Ok: queued as {second.queue_id}"]


def test_commands_sent_one_byte_at_a_time(plain: ThreadedSMTPServer) -> None:
    with _client(plain, ehlo=None) as client:
        for byte in b"EHLO c\r\nMAIL FROM:<a@x>\r\n":
            client.send(bytes([byte]))
        assert client.reply()[0] == 250
        assert client.reply() == (250, ["2.1.0 Ok"])


def test_bare_lf_dot_does_not_end_data(plain: ThreadedSMTPServer) -> None:
    # Only CRLF.CRLF ends the data (RFC 5321 4.1.1.4): no "SMTP smuggling" via LF.LF.
    with _client(plain) as client:
        client.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
        assert [client.reply()[0] for _ in range(3)] == [250, 250, 354]
        client.send(b"Subject: s\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\n")
        assert client.reply()[0] == 250
    [captured] = plain.messages
    assert captured.data == b"Subject: s\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n"


def test_bdat_chunks_are_read_by_exact_count(plain: ThreadedSMTPServer) -> None:
    chunk1 = b"Subject: b\r\n\r\nline\r\n.\r\nQUIT\r\n"  # looks like end-of-data + a command
    chunk2 = b"\x00binary\xff\r\n"
    with _client(plain) as client:
        client.send(
            b"MAIL FROM:<a@x> BODY=BINARYMIME\r\nRCPT TO:<b@x>\r\n"
            + f"BDAT {len(chunk1)}\r\n".encode()
            + chunk1
            + f"BDAT {len(chunk2)}\r\n".encode()
            + chunk2
            + b"BDAT 0 LAST\r\nNOOP\r\n"
        )
        replies = [client.reply() for _ in range(6)]
    assert [c for c, _ in replies] == [250, 250, 250, 250, 250, 250]
    assert replies[2][1] == [f"2.0.0 {len(chunk1)} octets received"]
    [captured] = plain.messages
    assert captured.via == "BDAT"
    assert captured.data == chunk1 + chunk2
    assert captured.mail_from_params == {"BODY": "BINARYMIME"}
    assert replies[4][1] == [f"2.0.0 Ok: queued as {captured.queue_id}"]


def test_bdat_without_transaction_still_consumes_the_chunk(plain: ThreadedSMTPServer) -> None:
    with _client(plain) as client:
        client.send(b"BDAT 6\r\nNOOP\r\nNOOP\r\n")
        assert client.reply() == (503, ["5.5.1 Need MAIL command"])
        assert client.reply() == (250, ["2.0.0 Ok"])


def test_binarymime_with_data_is_refused(plain: ThreadedSMTPServer) -> None:
    with _client(plain) as client:
        client.cmd("MAIL FROM:<a@x> BODY=BINARYMIME")
        client.cmd("RCPT TO:<b@x>")
        assert client.cmd("DATA") == (503, ["5.5.1 BINARYMIME requires BDAT"])


def test_size_declared_too_big_is_refused(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN, max_message_size=100)
    with _client(server) as client:
        assert client.cmd("MAIL FROM:<a@x> SIZE=101") == (
            552,
            ["5.3.4 Message size exceeds fixed maximum size"],
        )
        assert client.cmd("MAIL FROM:<a@x> SIZE=100")[0] == 250


def test_data_over_size_limit_gets_552(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN, max_message_size=100)
    with _client(server) as client:
        ehlo = client.cmd("EHLO again")
        assert "SIZE 100" in ehlo[1]
        client.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n")
        assert [client.reply()[0] for _ in range(3)] == [250, 250, 354]
        client.send(b"x" * 200 + b"\r\n.\r\n")
        assert client.reply()[0] == 552
        client.send(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 101 LAST\r\n" + b"y" * 101)
        assert [client.reply()[0] for _ in range(3)] == [250, 250, 552]
        assert client.cmd("NOOP")[0] == 250
    assert server.messages == []


def test_dsn_parameters_are_recorded_xtext_decoded(plain: ThreadedSMTPServer) -> None:
    with _client(plain) as client:
        assert client.cmd("MAIL FROM:<a@x> RET=HDRS ENVID=id+2B1")[0] == 250
        assert client.cmd("RCPT TO:<b@x> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bz@x")[0] == 250
        assert client.cmd("RCPT TO:<c@x> NOTIFY=NEVER")[0] == 250
        assert client.cmd("RCPT TO:<d@x> NOTIFY=NEVER,SUCCESS")[0] == 501
        client.cmd("DATA")
        assert client.cmd(".")[0] == 250
    [captured] = plain.messages
    assert captured.mail_from_params == {"RET": "HDRS", "ENVID": "id+1"}
    assert captured.recipients[0].params == {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;b+z@x"}
    assert captured.recipients[1].params == {"NOTIFY": "NEVER"}


def test_smtputf8_addresses(plain: ThreadedSMTPServer) -> None:
    with _client(plain) as client:
        assert client.cmd("MAIL FROM:<jörg@x>") == (553, ["5.6.7 Non-ASCII address needs SMTPUTF8"])
        assert client.cmd("MAIL FROM:<jörg@x> SMTPUTF8 BODY=8BITMIME")[0] == 250
        assert client.cmd("RCPT TO:<用户@例子.广告>")[0] == 250
        client.cmd("DATA")
        client.send("Subject: ü\r\n\r\nü\r\n".encode())
        assert client.cmd(".")[0] == 250
    [captured] = plain.messages
    assert captured.mail_from == "jörg@x"
    assert captured.mail_from_params == {"SMTPUTF8": None, "BODY": "8BITMIME"}
    assert captured.rcpt_to == ["用户@例子.广告"]


@pytest.mark.parametrize(
    ("disabled", "command"),
    [
        (Extension.SMTPUTF8, "MAIL FROM:<a@x> SMTPUTF8"),
        (Extension.EIGHTBITMIME, "MAIL FROM:<a@x> BODY=8BITMIME"),
        (Extension.BINARYMIME, "MAIL FROM:<a@x> BODY=BINARYMIME"),
        (Extension.DSN, "MAIL FROM:<a@x> RET=FULL"),
        (Extension.SIZE, "MAIL FROM:<a@x> SIZE=10"),
        (Extension.REQUIRETLS, "MAIL FROM:<a@x> REQUIRETLS"),
    ],
)
def test_parameters_of_disabled_extensions_are_refused(
    smtp_server_factory: SMTPServerFactory, disabled: Extension, command: str
) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN, extensions=frozenset(Extension) - {disabled})
    with _client(server) as client:
        code, texts = client.cmd(command)
    assert code == 555
    assert texts[0].startswith("5.5.4 ")


@pytest.mark.parametrize("extension", list(Extension))
def test_each_extension_can_be_switched_off(
    smtp_server_factory: SMTPServerFactory, extension: Extension
) -> None:
    on = smtp_server_factory(mode=Mode.STARTTLS, auth_before_tls_advertised=True)
    off = smtp_server_factory(
        mode=Mode.STARTTLS,
        auth_before_tls_advertised=True,
        extensions=frozenset(Extension) - {extension},
    )

    def keywords(server: ThreadedSMTPServer) -> set[str]:
        with _client(server, ehlo=None) as client:
            _, texts = client.cmd("EHLO c")
            if extension is Extension.REQUIRETLS and Extension.STARTTLS in server.config.extensions:
                client.starttls(server.client_ssl_context())
                _, texts = client.cmd("EHLO c")
        return {t.split()[0] for t in texts[1:]}

    assert extension.value in keywords(on)
    assert extension.value not in keywords(off)


def test_requiretls_only_over_tls(smtp_server: ThreadedSMTPServer) -> None:
    with _client(smtp_server) as client:
        assert client.cmd("MAIL FROM:<a@x> REQUIRETLS")[0] == 555
        client.starttls(smtp_server.client_ssl_context())
        assert "REQUIRETLS" in client.cmd("EHLO c")[1]
        assert client.cmd("MAIL FROM:<a@x> REQUIRETLS") == (250, ["2.1.0 Ok"])


def test_enhanced_status_codes_only_when_advertised(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    server = smtp_server_factory(
        mode=Mode.PLAIN, extensions=frozenset(Extension) - {Extension.ENHANCEDSTATUSCODES}
    )
    with _client(server) as client:
        assert client.cmd("MAIL FROM:<a@x>") == (250, ["Ok"])
        assert client.cmd("FOO") == (500, ["Command unrecognized"])


def test_helo_gets_no_extensions_and_no_enhanced_codes(plain: ThreadedSMTPServer) -> None:
    with _client(plain, ehlo=None) as client:
        assert client.cmd("HELO c") == (250, ["fake-smtp.localhost"])
        assert client.cmd("MAIL FROM:<a@x>") == (250, ["Ok"])
        assert client.cmd("RSET") == (250, ["Ok"])
        assert client.cmd("MAIL FROM:<a@x> SIZE=1")[0] == 555  # no parameters after HELO


def test_simple_commands(plain: ThreadedSMTPServer) -> None:
    with _client(plain) as client:
        assert client.cmd("NOOP") == (250, ["2.0.0 Ok"])
        assert client.cmd("VRFY someone")[0] == 252
        assert client.cmd("XYZZY") == (500, ["5.5.2 Command unrecognized"])
        assert client.cmd("RCPT TO:<b@x>") == (503, ["5.5.1 Need MAIL command"])
        assert client.cmd("MAIL FROM:<a@x>")[0] == 250
        assert client.cmd("MAIL FROM:<a@x>") == (503, ["5.5.1 Nested MAIL command"])
        assert client.cmd("DATA") == (554, ["5.5.1 No valid recipients"])
        assert client.cmd("RSET") == (250, ["2.0.0 Ok"])
        assert client.cmd("RCPT TO:<b@x>")[0] == 503
        assert client.cmd("MAIL FROM:<>")[0] == 250  # the null reverse path
        assert client.cmd("MAIL FROM:a@x")[0] == 503
        assert client.cmd("QUIT") == (221, ["2.0.0 Bye"])
        assert client.at_eof()


def test_mail_before_ehlo_is_refused(plain: ThreadedSMTPServer) -> None:
    with _client(plain, ehlo=None) as client:
        assert client.cmd("MAIL FROM:<a@x>") == (503, ["Send HELO/EHLO first"])


def test_command_line_limits(plain: ThreadedSMTPServer) -> None:
    with _client(plain) as client:
        ok = "NOOP " + "x" * (512 - 7)  # exactly 512 octets with CRLF
        assert client.cmd(ok)[0] == 250
        assert client.cmd(ok + "x") == (500, ["5.5.2 Line too long"])
        huge = "NOOP " + "x" * 20000
        assert client.cmd(huge) == (500, ["5.5.2 Line too long"])
        # AUTH lines may reach 12288 octets (RFC 4954 4); this one is parsed (and refused
        # for lack of TLS), not rejected as too long.
        auth = "AUTH PLAIN " + base64.b64encode(b"\0u\0" + b"p" * 6000).decode()
        assert len(auth) > 512
        assert client.cmd(auth)[0] == 538
        assert client.cmd("NOOP")[0] == 250


def test_starttls_resets_state_and_stops_advertising_starttls(
    smtp_server: ThreadedSMTPServer,
) -> None:
    with _client(smtp_server, ehlo=None) as client:
        before = client.cmd("EHLO c")[1]
        assert "STARTTLS" in before
        assert not any(t.startswith("AUTH") for t in before)  # like smtpd_tls_auth_only
        assert client.cmd("MAIL FROM:<a@x>")[0] == 250
        client.starttls(smtp_server.client_ssl_context())
        assert client.cmd("RCPT TO:<b@x>") == (503, ["Need MAIL command"])
        assert client.cmd("MAIL FROM:<a@x>") == (503, ["Send HELO/EHLO first"])
        after = client.cmd("EHLO c")[1]
        assert "STARTTLS" not in after
        assert any(t.startswith("AUTH PLAIN") for t in after)
        assert client.cmd("STARTTLS") == (503, ["5.5.1 TLS already active"])


def test_plaintext_pipelined_after_starttls_is_discarded(smtp_server: ThreadedSMTPServer) -> None:
    # RFC 3207 6 (CVE-2011-0411): commands sent before the handshake must not run after it.
    with _client(smtp_server) as client:
        client.send(b"STARTTLS\r\nMAIL FROM:<injected@x>\r\n")
        assert client.reply()[0] == 220
        client.sock = smtp_server.client_ssl_context().wrap_socket(
            client.sock, server_hostname="localhost"
        )
        assert client.cmd("EHLO c")[0] == 250
        assert client.cmd("MAIL FROM:<a@x>") == (250, ["2.1.0 Ok"])  # not "Nested MAIL"
    [transcript] = smtp_server.transcripts
    assert ("event", "discarded 24 octets sent in plaintext after STARTTLS") in transcript


def test_auth_before_tls_is_refused_with_538(smtp_server: ThreadedSMTPServer) -> None:
    with _client(smtp_server) as client:
        assert client.cmd("AUTH PLAIN AHVAcA==") == (
            538,
            ["5.7.11 Encryption required for requested authentication mechanism"],
        )


def test_auth_advertised_before_tls_when_asked(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(auth_before_tls_advertised=True)
    with _client(server, ehlo=None) as client:
        assert any(t.startswith("AUTH ") for t in client.cmd("EHLO c")[1])
        assert client.cmd("AUTH PLAIN AHVAcA==")[0] == 538


def test_require_auth_and_require_tls(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(require_auth=True, require_tls=True, users={"u": "p"})
    with _client(server) as client:
        assert client.cmd("MAIL FROM:<a@x>") == (
            530,
            ["5.7.0 Must issue a STARTTLS command first"],
        )
        client.starttls(server.client_ssl_context())
        client.cmd("EHLO c")
        assert client.cmd("MAIL FROM:<a@x>") == (530, ["5.7.0 Authentication required"])
        client.auth("PLAIN", initial=b"\0u\0p")
        assert client.last == (235, ["2.7.0 Authentication successful"])
        assert client.cmd("MAIL FROM:<a@x>")[0] == 250


def test_max_recipients(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN, max_recipients=1)
    with _client(server) as client:
        client.cmd("MAIL FROM:<a@x>")
        assert client.cmd("RCPT TO:<b@x>")[0] == 250
        assert client.cmd("RCPT TO:<c@x>") == (452, ["4.5.3 Too many recipients"])


def test_address_syntax_errors(plain: ThreadedSMTPServer) -> None:
    with _client(plain) as client:
        assert client.cmd("MAIL FROM:<a@x") == (501, ["5.5.4 Bad address syntax: missing >"])
        assert client.cmd("MAIL TO:<a@x>")[0] == 501
        assert client.cmd("MAIL FROM:<a@x> BOGUS=1")[0] == 555
        assert client.cmd("MAIL FROM:<a@x> ENVID=bad+zz")[0] == 501
        assert client.cmd('MAIL FROM:<"odd >"@x>')[0] == 250
        assert client.cmd("RCPT TO:<>") == (501, ["5.1.3 Bad recipient address syntax"])
