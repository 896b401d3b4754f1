"""RFC 2920 pipelining: several commands in flight, FIFO replies, command groups."""

from __future__ import annotations

import pytest

from smtpsubmit.protocol import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    ClientConnection,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    StartTLS,
    State,
)
from smtpsubmit.protocol._commands import Command

from .helpers import ready, receive, reply


def test_without_pipelining_only_one_command_in_flight() -> None:
    conn = ready("SIZE 100")
    conn.send(Mail("a@example.com"))
    with pytest.raises(
        LocalProtocolError,
        match="can't send RCPT before the reply to MAIL: the server did not advertise PIPELINING",
    ):
        conn.send(Rcpt("b@example.com"))
    assert conn.state is State.ERROR


def test_without_pipelining_next_mail_waits_for_end_of_data_reply() -> None:
    conn = ready()
    conn.send(Mail("a@example.com"))
    reply(conn, b"250 OK\r\n")
    conn.send(Rcpt("b@example.com"))
    reply(conn, b"250 OK\r\n")
    conn.send(Data())
    reply(conn, b"354 go\r\n")
    conn.send(EndOfData())
    with pytest.raises(LocalProtocolError, match="before the reply to end of data"):
        conn.send(Mail("a@example.com"))


def test_whole_transaction_sent_before_any_reply(feed_mode: str) -> None:
    conn = ready("PIPELINING")
    mail = Mail("a@example.com")
    rcpts = [Rcpt("b@example.com"), Rcpt("nobody@example.com"), Rcpt("c@example.com")]
    data = Data()
    wire = conn.send(mail) + b"".join(conn.send(r) for r in rcpts) + conn.send(data)
    assert wire == (
        b"MAIL FROM:<a@example.com>\r\n"
        b"RCPT TO:<b@example.com>\r\n"
        b"RCPT TO:<nobody@example.com>\r\n"
        b"RCPT TO:<c@example.com>\r\n"
        b"DATA\r\n"
    )
    assert conn.in_flight == (mail, *rcpts, data)
    assert conn.state is State.DATA_SENT
    replies = receive(
        conn,
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 unknown\r\n250 2.1.5 OK\r\n354 go\r\n",
        feed_mode,
    )
    assert [r.code for r in replies if isinstance(r, Reply)] == [250, 250, 550, 250, 354]
    # FIFO: the Nth reply answers the Nth command, the very objects sent.
    commands = [r.command for r in replies if isinstance(r, Reply)]
    assert len(commands) == 5
    for got, sent in zip(commands, [mail, *rcpts, data], strict=True):
        assert got is sent
    assert conn.state is State.BODY
    assert conn.in_flight == ()


def test_pipelined_replies_in_separate_reads_match_in_order() -> None:
    conn = ready("PIPELINING")
    first, second = Rcpt("b@example.com"), Rcpt("b@example.com")  # equal, not identical
    conn.send(Mail("a@example.com"))
    conn.send(first)
    conn.send(second)
    assert reply(conn, b"250 mail\r\n").command == Mail("a@example.com")
    assert conn.in_flight == (first, second)
    assert reply(conn, b"250 one\r\n").command is first
    assert reply(conn, b"550 two\r\n").command is second


def test_refused_pipelined_mail_ends_the_transaction_and_later_replies_change_nothing() -> None:
    conn = ready("PIPELINING")
    conn.send(Mail("a@example.com"))
    conn.send(Rcpt("b@example.com"))
    conn.send(Data())
    replies = receive(conn, b"550 5.7.1 sender refused\r\n503 no MAIL\r\n503 no valid rcpt\r\n")
    assert [r.code for r in replies if isinstance(r, Reply)] == [550, 503, 503]
    assert conn.state is State.READY
    assert conn.send(Mail("a@example.com")) == b"MAIL FROM:<a@example.com>\r\n"


def test_refused_mail_while_rcpts_are_in_flight_returns_to_ready() -> None:
    conn = ready("PIPELINING")
    conn.send(Mail("a@example.com"))
    conn.send(Rcpt("b@example.com"))
    reply(conn, b"550 no\r\n")
    assert conn.state is State.READY
    reply(conn, b"503 need MAIL\r\n")
    assert conn.state is State.READY


def test_end_of_data_followed_at_once_by_the_next_mail(feed_mode: str) -> None:
    conn = ready("PIPELINING")
    conn.send(Mail("a@example.com"))
    conn.send(Rcpt("b@example.com"))
    conn.send(Data())
    receive(conn, b"250 OK\r\n250 OK\r\n354 go\r\n")
    conn.send(MessageData(b"body\r\n"))
    end = EndOfData()
    wire = conn.send(end)
    mail2, rcpt2, data2 = Mail("c@example.com"), Rcpt("d@example.com"), Data()
    wire += conn.send(mail2) + conn.send(rcpt2) + conn.send(data2)
    assert wire == b".\r\nMAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n"
    assert conn.in_flight == (end, mail2, rcpt2, data2)
    replies = receive(conn, b"554 5.6.0 rejected\r\n250 OK\r\n250 OK\r\n354 go\r\n", feed_mode)
    assert [(r.code, r.command) for r in replies if isinstance(r, Reply)] == [
        (554, end),
        (250, mail2),
        (250, rcpt2),
        (354, data2),
    ]
    assert conn.state is State.BODY  # the first message's refusal did not touch the second


def test_windowed_bdat_transactions_refused_middle_mail_does_not_disturb_the_current_one(
    feed_mode: str,
) -> None:
    conn = ready("PIPELINING", "CHUNKING")
    wire = b""
    for i in (1, 2, 3):
        wire += conn.send(Mail(f"s{i}@example.com"))
        wire += conn.send(Rcpt(f"r{i}@example.com"))
        wire += conn.send(Bdat(f"message {i}\r\n".encode(), last=i < 3))
    assert wire == (
        b"MAIL FROM:<s1@example.com>\r\nRCPT TO:<r1@example.com>\r\nBDAT 11 LAST\r\nmessage 1\r\n"
        b"MAIL FROM:<s2@example.com>\r\nRCPT TO:<r2@example.com>\r\nBDAT 11 LAST\r\nmessage 2\r\n"
        b"MAIL FROM:<s3@example.com>\r\nRCPT TO:<r3@example.com>\r\nBDAT 11\r\nmessage 3\r\n"
    )
    assert len(conn.in_flight) == 9
    assert conn.state is State.TRANSACTION  # the third transaction is open
    replies = receive(
        conn,
        b"250 OK\r\n250 OK\r\n250 queued 1\r\n"
        b"550 5.7.1 sender 2 refused\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n",
        feed_mode,
    )
    assert [r.code for r in replies if isinstance(r, Reply)] == [250, 250, 250, 550, 503, 503]
    assert conn.state is State.TRANSACTION
    receive(conn, b"250 OK\r\n250 OK\r\n250 11 octets\r\n", feed_mode)
    assert conn.state is State.TRANSACTION
    assert conn.send(Bdat(b"", last=True)) == b"BDAT 0 LAST\r\n"
    assert conn.state is State.READY


def test_windowed_bdat_refusal_of_an_earlier_chunk_does_not_end_the_current_one() -> None:
    conn = ready("PIPELINING", "CHUNKING")
    for i in (1, 2):
        conn.send(Mail(f"s{i}@example.com"))
        conn.send(Rcpt(f"r{i}@example.com"))
        conn.send(Bdat(b"x", last=i == 1))
    receive(conn, b"250 OK\r\n250 OK\r\n552 too big\r\n")
    assert conn.state is State.TRANSACTION


def test_refused_mail_of_the_current_window_ends_it() -> None:
    conn = ready("PIPELINING", "CHUNKING")
    conn.send(Mail("s1@example.com"))
    conn.send(Rcpt("r1@example.com"))
    conn.send(Bdat(b"x", last=True))
    conn.send(Mail("s2@example.com"))
    conn.send(Rcpt("r2@example.com"))
    receive(conn, b"250 OK\r\n250 OK\r\n250 OK\r\n550 no\r\n")
    assert conn.state is State.READY
    reply(conn, b"503 no MAIL\r\n")
    assert conn.state is State.READY


def test_rset_mail_rcpt_may_start_or_fill_a_group() -> None:
    conn = ready("PIPELINING")
    wire = b"".join(
        conn.send(c) for c in [Rset(), Mail("a@example.com"), Rcpt("b@example.com"), Rset(), Quit()]
    )
    assert wire == (
        b"RSET\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRSET\r\nQUIT\r\n"
    )
    assert conn.state is State.QUIT_SENT
    receive(conn, b"250 OK\r\n550 no\r\n250 OK\r\n250 OK\r\n221 bye\r\n")
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    ("ender", "after"),
    [
        (Noop(), Rset()),
        (Noop(), Mail("a@example.com")),
        (Noop(), Noop()),
        (Ehlo("client.example"), Mail("a@example.com")),
        (Helo("client.example"), Noop()),
        (StartTLS(), Noop()),
        (Auth("PLAIN", b"\0u\0p"), Mail("a@example.com")),
        (Quit(), Rset()),
    ],
)
def test_group_ending_command_must_be_answered_first(ender: Command, after: Command) -> None:
    conn = ready("PIPELINING", "STARTTLS", "AUTH PLAIN", encrypted=False, allow_cleartext_auth=True)
    conn.send(ender)
    with pytest.raises(LocalProtocolError, match=r"must end a command group|can't send"):
        conn.send(after)


def test_noop_ends_a_group_inside_a_transaction() -> None:
    conn = ready("PIPELINING")
    conn.send(Mail("a@example.com"))
    conn.send(Noop())
    with pytest.raises(LocalProtocolError, match="can't pipeline RCPT after NOOP"):
        conn.send(Rcpt("b@example.com"))


def test_data_ends_a_group() -> None:
    conn = ready("PIPELINING")
    conn.send(Mail("a@example.com"))
    conn.send(Rcpt("b@example.com"))
    conn.send(Data())
    with pytest.raises(LocalProtocolError, match="can't send message data when state=DATA_SENT"):
        conn.send(MessageData(b"too early"))


def test_auth_response_ends_a_group() -> None:
    conn = ready("PIPELINING", "AUTH LOGIN", encrypted=True)
    conn.send(Auth("LOGIN"))
    reply(conn, b"334 VXNlcm5hbWU6\r\n")
    conn.send(AuthResponse(b"user"))
    with pytest.raises(LocalProtocolError, match="when state=AUTH_SENT"):
        conn.send(AuthCancel())


@pytest.mark.parametrize(
    ("command", "ends"),
    [
        (Ehlo, True),
        (Helo, True),
        (StartTLS, True),
        (Auth, True),
        (AuthResponse, True),
        (AuthCancel, True),
        (Data, True),
        (Noop, True),
        (Quit, True),
        (Mail, False),
        (Rcpt, False),
        (Rset, False),
        (Bdat, False),
        (EndOfData, False),
        (MessageData, False),
    ],
)
def test_which_commands_end_a_group(command: type[Command], ends: bool) -> None:
    assert command.ends_group is ends


def test_pipelining_is_forgotten_after_helo() -> None:
    conn = ready("PIPELINING")
    conn.send(Helo("client.example"))
    reply(conn, b"250 mx.example\r\n")
    conn.send(Mail("a@example.com"))
    with pytest.raises(LocalProtocolError, match="did not advertise PIPELINING"):
        conn.send(Rcpt("b@example.com"))


def test_in_flight_is_empty_on_a_fresh_connection() -> None:
    assert ClientConnection().in_flight == ()
