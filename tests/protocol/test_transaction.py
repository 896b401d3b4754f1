"""MAIL, RCPT, DATA and BDAT through the connection: extension checks and exact bytes."""

from __future__ import annotations

from typing import Any

import pytest

from smtpsubmit.protocol import (
    Bdat,
    BdatSent,
    ClientConnection,
    Data,
    EndOfData,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Rset,
    State,
)

from .helpers import ready, reply

ALL = (
    "PIPELINING",
    "SIZE 10000",
    "8BITMIME",
    "BINARYMIME",
    "CHUNKING",
    "SMTPUTF8",
    "DSN",
    "REQUIRETLS",
)


def in_transaction(*keywords: str, mail: Mail | None = None, **options: Any) -> ClientConnection:
    conn = ready(*keywords, **options)
    conn.send(mail or Mail("a@example.com"))
    reply(conn, b"250 OK\r\n")
    assert conn.state is State.TRANSACTION
    return conn


def with_recipient(*keywords: str, mail: Mail | None = None, **options: Any) -> ClientConnection:
    conn = in_transaction(*keywords, mail=mail, **options)
    conn.send(Rcpt("b@example.com"))
    reply(conn, b"250 OK\r\n")
    return conn


# -- MAIL and RCPT -------------------------------------------------------------------------


def test_mail_and_rcpt_exact_bytes(feed_mode: str) -> None:
    conn = ready()
    mail = Mail("a@example.com")
    assert conn.send(mail) == b"MAIL FROM:<a@example.com>\r\n"
    assert conn.state is State.TRANSACTION
    assert reply(conn, b"250 2.1.0 OK\r\n", feed_mode).command is mail
    rcpt = Rcpt("b@example.com")
    assert conn.send(rcpt) == b"RCPT TO:<b@example.com>\r\n"
    assert reply(conn, b"250 2.1.5 OK\r\n", feed_mode).command is rcpt
    assert conn.state is State.TRANSACTION


def test_null_reverse_path() -> None:
    conn = ready()
    assert conn.send(Mail("")) == b"MAIL FROM:<>\r\n"


@pytest.mark.parametrize("code", [b"550 5.7.1 no", b"451 later", b"354 odd"])
def test_refused_mail_ends_the_transaction(code: bytes) -> None:
    conn = ready()
    conn.send(Mail("a@example.com"))
    reply(conn, code + b"\r\n")
    assert conn.state is State.READY


def test_refused_rcpt_keeps_the_transaction() -> None:
    conn = in_transaction()
    conn.send(Rcpt("nobody@example.com"))
    reply(conn, b"550 5.1.1 no such user\r\n")
    assert conn.state is State.TRANSACTION
    conn.send(Rcpt("b@example.com"))


@pytest.mark.parametrize(
    ("mail", "keyword"),
    [
        (Mail("a@example.com", size=5), "SIZE"),
        (Mail("a@example.com", body="8BITMIME"), "8BITMIME"),
        (Mail("a@example.com", body="BINARYMIME"), "BINARYMIME"),
        (Mail("a@example.com", smtputf8=True), "SMTPUTF8"),
        (Mail("\u00fc@example.com", smtputf8=True), "SMTPUTF8"),
        (Mail("a@example.com", ret="FULL"), "DSN"),
        (Mail("a@example.com", envid="x"), "DSN"),
        (Mail("a@example.com", requiretls=True), "REQUIRETLS"),
    ],
)
def test_mail_parameter_needs_its_extension(mail: Mail, keyword: str) -> None:
    others = tuple(k for k in ALL if k.split()[0] != keyword)
    conn = ready(*others, encrypted=True)
    with pytest.raises(LocalProtocolError, match=f"MAIL uses {keyword}, which the server did"):
        conn.send(mail)
    conn = ready(*ALL, encrypted=True)
    assert conn.send(mail) == mail.render()


def test_body_7bit_needs_no_extension() -> None:
    assert ready().send(Mail("", body="7BIT")) == b"MAIL FROM:<> BODY=7BIT\r\n"


def test_unknown_params_are_passed_through_unchecked() -> None:
    conn = ready()
    mail = Mail("a@example.com", params={"X-VENDOR": "1", "MT-PRIORITY": "3"})
    assert conn.send(mail) == b"MAIL FROM:<a@example.com> X-VENDOR=1 MT-PRIORITY=3\r\n"


def test_binarymime_needs_chunking() -> None:
    conn = ready("BINARYMIME")
    with pytest.raises(LocalProtocolError, match="BINARYMIME needs CHUNKING"):
        conn.send(Mail("a@example.com", body="BINARYMIME"))


def test_requiretls_needs_an_encrypted_channel() -> None:
    conn = ready("REQUIRETLS")
    with pytest.raises(LocalProtocolError, match="REQUIRETLS needs an encrypted channel"):
        conn.send(Mail("a@example.com", requiretls=True))
    conn = ready("REQUIRETLS", encrypted=True)
    assert conn.send(Mail("a@example.com", requiretls=True)) == (
        b"MAIL FROM:<a@example.com> REQUIRETLS\r\n"
    )


@pytest.mark.parametrize(
    "rcpt",
    [Rcpt("b@example.com", notify=("NEVER",)), Rcpt("b@example.com", orcpt="b@example.com")],
)
def test_rcpt_dsn_parameters_need_dsn(rcpt: Rcpt) -> None:
    with pytest.raises(LocalProtocolError, match="RCPT uses DSN parameters"):
        in_transaction().send(rcpt)
    assert in_transaction("DSN").send(rcpt) == rcpt.render()


def test_utf8_recipient_needs_smtputf8_on_mail() -> None:
    rcpt = Rcpt("\u00fcser@b\u00fccher.example")
    with pytest.raises(LocalProtocolError, match="MAIL needs SMTPUTF8"):
        in_transaction("SMTPUTF8").send(rcpt)
    conn = in_transaction("SMTPUTF8", mail=Mail("a@example.com", smtputf8=True))
    assert conn.send(rcpt) == "RCPT TO:<\u00fcser@b\u00fccher.example>\r\n".encode()


def test_smtputf8_of_one_transaction_does_not_carry_over() -> None:
    conn = ready("SMTPUTF8")
    conn.send(Mail("a@example.com", smtputf8=True))
    reply(conn, b"250 OK\r\n")
    conn.send(Rset())
    reply(conn, b"250 OK\r\n")
    conn.send(Mail("a@example.com"))
    reply(conn, b"250 OK\r\n")
    with pytest.raises(LocalProtocolError, match="not ASCII"):
        conn.send(Rcpt("\u00fc@example.com"))


# -- DATA ----------------------------------------------------------------------------------


def test_data_transaction_exact_bytes(feed_mode: str) -> None:
    conn = with_recipient()
    assert conn.send(Data()) == b"DATA\r\n"
    assert conn.state is State.DATA_SENT
    assert reply(conn, b"354 go ahead\r\n", feed_mode).command == Data()
    assert conn.state is State.BODY
    assert conn.send(MessageData(b"Subject: x\n\n.hidden\r")) == b"Subject: x\r\n\r\n..hidden"
    assert conn.in_flight == ()  # message data gets no reply of its own
    assert conn.send(MessageData(b"\nlast line")) == b"\r\nlast line"
    end = EndOfData()
    assert conn.send(end) == b"\r\n.\r\n"
    assert conn.state is State.READY
    got = reply(conn, b"250 2.0.0 queued as 12345\r\n", feed_mode)
    assert got.command is end
    assert conn.state is State.READY


def test_each_message_gets_a_fresh_encoder() -> None:
    conn = with_recipient()
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    assert conn.send(MessageData(b"a\r")) == b"a"
    assert conn.send(EndOfData()) == b"\r\n.\r\n"
    reply(conn, b"250 OK\r\n")
    conn.send(Mail("a@example.com"))
    reply(conn, b"250 OK\r\n")
    conn.send(Rcpt("b@example.com"))
    reply(conn, b"250 OK\r\n")
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    assert conn.send(MessageData(b".x")) == b"..x"  # first line again, no pending CR
    assert conn.send(EndOfData()) == b"\r\n.\r\n"


def test_empty_body() -> None:
    conn = with_recipient()
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    assert conn.send(EndOfData()) == b".\r\n"


@pytest.mark.parametrize("code", [b"554 no valid recipients", b"451 later", b"250 odd"])
def test_data_refused_returns_to_ready(code: bytes) -> None:
    conn = with_recipient()
    conn.send(Data())
    reply(conn, code + b"\r\n")
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError, match="can't send message data when state=READY"):
        conn.send(MessageData(b"x"))


def test_data_before_any_rcpt_refused() -> None:
    with pytest.raises(LocalProtocolError, match="can't send DATA before any RCPT"):
        in_transaction().send(Data())


def test_body_before_354_refused() -> None:
    conn = with_recipient()
    conn.send(Data())
    with pytest.raises(LocalProtocolError, match="can't send message data when state=DATA_SENT"):
        conn.send(MessageData(b"x"))


def test_long_line_in_body_refused_across_chunks() -> None:
    conn = with_recipient()
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    conn.send(MessageData(b"x" * 600))
    with pytest.raises(LocalProtocolError, match="longer than 998"):
        conn.send(MessageData(b"x" * 399))
    assert conn.state is State.ERROR


def test_body_line_limit_is_configurable() -> None:
    conn = with_recipient(max_data_line=None)
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    assert conn.send(MessageData(b"x" * 5000)) == b"x" * 5000


def test_only_body_or_end_of_data_while_sending_the_body() -> None:
    conn = with_recipient()
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    for command in [Noop(), Rset(), Quit(), Mail("a@example.com")]:
        probe = with_recipient()
        probe.send(Data())
        reply(probe, b"354 go\r\n")
        with pytest.raises(LocalProtocolError, match="when state=BODY"):
            probe.send(command)


def test_binarymime_forbids_data() -> None:
    conn = with_recipient(*ALL, mail=Mail("a@example.com", body="BINARYMIME"))
    with pytest.raises(LocalProtocolError, match="BINARYMIME requires BDAT, not DATA"):
        conn.send(Data())


def test_binarymime_allows_bdat() -> None:
    conn = with_recipient(*ALL, mail=Mail("a@example.com", body="BINARYMIME"))
    assert conn.send(Bdat(b"\x00\x01\r", last=True)) == b"BDAT 3 LAST\r\n\x00\x01\r"


# -- BDAT ----------------------------------------------------------------------------------


def test_bdat_chunks_exact_bytes(feed_mode: str) -> None:
    conn = with_recipient("CHUNKING")
    first = Bdat(b"Subject: x\r\n\r\n.body")
    assert conn.send(first) == b"BDAT 19\r\nSubject: x\r\n\r\n.body"  # no stuffing
    assert conn.state is State.TRANSACTION
    # The reply records the command without its chunk: a kept reply keeps no content.
    answered = reply(conn, b"250 2.0.0 19 octets received\r\n", feed_mode).command
    assert answered == BdatSent(19, last=False) == first.sent()
    assert answered.render() == b"BDAT 19\r\n"
    assert answered.log_line() == first.log_line() == "BDAT 19"
    last = Bdat(b"\n", last=True)
    assert conn.send(last) == b"BDAT 1 LAST\r\n\n"
    assert conn.state is State.READY
    assert reply(conn, b"250 2.0.0 queued\r\n", feed_mode).command == BdatSent(1, last=True)
    assert conn.state is State.READY


def test_bdat_needs_chunking() -> None:
    with pytest.raises(LocalProtocolError, match="did not advertise CHUNKING"):
        with_recipient().send(Bdat(b"x", last=True))


def test_bdat_before_any_rcpt_refused() -> None:
    with pytest.raises(LocalProtocolError, match="can't send BDAT before any RCPT"):
        in_transaction("CHUNKING").send(Bdat(b"x", last=True))


@pytest.mark.parametrize("code", [b"552 too big", b"354 odd"])
def test_refused_bdat_ends_the_transaction(code: bytes) -> None:
    conn = with_recipient("CHUNKING")
    conn.send(Bdat(b"x"))
    reply(conn, code + b"\r\n")
    assert conn.state is State.READY


def test_no_data_after_bdat_in_one_transaction() -> None:
    conn = with_recipient("CHUNKING")
    conn.send(Bdat(b"x"))
    reply(conn, b"250 OK\r\n")
    with pytest.raises(LocalProtocolError, match="can't mix DATA and BDAT"):
        conn.send(Data())


def test_no_bdat_after_last_chunk() -> None:
    conn = with_recipient("CHUNKING")
    conn.send(Bdat(b"x", last=True))
    with pytest.raises(LocalProtocolError, match="can't send BDAT when state=READY"):
        conn.send(Bdat(b"y"))


def test_bdat_then_new_transaction_may_use_data() -> None:
    conn = with_recipient("CHUNKING")
    conn.send(Bdat(b"x", last=True))
    reply(conn, b"250 OK\r\n")
    conn.send(Mail("a@example.com"))
    reply(conn, b"250 OK\r\n")
    conn.send(Rcpt("b@example.com"))
    reply(conn, b"250 OK\r\n")
    assert conn.send(Data()) == b"DATA\r\n"
