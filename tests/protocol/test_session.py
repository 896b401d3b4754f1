"""ClientConnection: greeting, EHLO/HELO, QUIT, RSET, NOOP, 421, ERROR, EOF."""

from __future__ import annotations

import pytest

from smtpsubmit.protocol import (
    CONNECTION_CLOSED,
    NEED_DATA,
    ClientConnection,
    Data,
    Ehlo,
    EnhancedStatus,
    Extensions,
    Helo,
    LocalProtocolError,
    Mail,
    Noop,
    Quit,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    StartTLS,
    State,
)

from .helpers import GREETING, ehlo_reply, greeted, ready, receive, reply

# -- greeting --------------------------------------------------------------------------------


def test_greeting_220_moves_to_hello(feed_mode: str) -> None:
    conn = ClientConnection()
    assert conn.state is State.GREETING
    assert conn.next_event() is NEED_DATA
    got = reply(conn, b"220-mx.example ESMTP\r\n220 welcome\r\n", feed_mode)
    assert got == Reply(220, ("mx.example ESMTP", "welcome"))
    assert got.command is None
    assert conn.state is State.HELLO


def test_nothing_can_be_sent_before_the_greeting() -> None:
    conn = ClientConnection()
    with pytest.raises(LocalProtocolError, match="can't send EHLO when state=GREETING"):
        conn.send(Ehlo("client.example"))


@pytest.mark.parametrize("greeting", [b"554 no service for you\r\n", b"354 odd\r\n"])
def test_refusing_greeting_allows_only_quit(greeting: bytes, feed_mode: str) -> None:
    conn = ClientConnection()
    got = reply(conn, greeting, feed_mode)
    assert got.command is None
    assert conn.state is State.REFUSED
    for command in [Ehlo("client.example"), Helo("client.example"), Noop(), Rset()]:
        probe = ClientConnection()
        reply(probe, greeting)
        with pytest.raises(LocalProtocolError, match="when state=REFUSED"):
            probe.send(command)
    assert conn.send(Quit()) == b"QUIT\r\n"
    assert reply(conn, b"221 bye\r\n", feed_mode).code == 221
    assert conn.state is State.CLOSED


def test_greeting_421_moves_to_closing_and_nothing_may_be_sent(feed_mode: str) -> None:
    conn = ClientConnection()
    assert reply(conn, b"421 mx.example busy\r\n", feed_mode).code == 421
    assert conn.state is State.CLOSING
    with pytest.raises(LocalProtocolError, match="can't send QUIT when state=CLOSING"):
        conn.send(Quit())


def test_greeting_with_enhanced_looking_text_keeps_it_as_text() -> None:
    conn = ClientConnection()
    assert reply(conn, b"220 2.0.0 ready\r\n").lines == ("2.0.0 ready",)


# -- EHLO / HELO -------------------------------------------------------------------------------


def test_ehlo_reply_sets_extensions(feed_mode: str) -> None:
    conn = greeted()
    assert conn.send(Ehlo("client.example")) == b"EHLO client.example\r\n"
    assert conn.state is State.EHLO_SENT
    assert conn.in_flight == (Ehlo("client.example"),)
    data = ehlo_reply("PIPELINING", "SIZE 1000", "AUTH PLAIN LOGIN", "8BITMIME")
    got = reply(conn, data, feed_mode)
    assert got.command == Ehlo("client.example")
    assert got.lines[0] == "mx.example greets client.example"
    assert conn.state is State.READY
    assert conn.in_flight == ()
    assert conn.extensions.pipelining
    assert conn.extensions.size == 1000
    assert conn.extensions.auth == {"PLAIN", "LOGIN"}
    assert conn.extensions.eightbitmime


@pytest.mark.parametrize("code", [b"500", b"502"])
def test_ehlo_not_recognised_falls_back_to_helo(code: bytes, feed_mode: str) -> None:
    conn = greeted()
    conn.send(Ehlo("client.example"))
    got = reply(conn, code + b" 5.5.1 command unrecognized\r\n", feed_mode)
    assert got.code == int(code)
    assert got.enhanced is None  # nothing advertised ENHANCEDSTATUSCODES
    assert conn.state is State.HELLO
    assert conn.send(Helo("client.example")) == b"HELO client.example\r\n"
    got = reply(conn, b"250 mx.example\r\n", feed_mode)
    assert got.command == Helo("client.example")
    assert conn.state is State.READY
    assert conn.extensions == Extensions()


def test_helo_reply_advertises_nothing_even_if_it_looks_like_ehlo() -> None:
    conn = greeted()
    conn.send(Helo("client.example"))
    reply(conn, ehlo_reply("PIPELINING", "STARTTLS"))
    assert conn.extensions == Extensions()
    with pytest.raises(LocalProtocolError, match="did not advertise STARTTLS"):
        conn.send(StartTLS())


def test_failed_helo_returns_to_hello() -> None:
    conn = greeted()
    conn.send(Helo("client.example"))
    reply(conn, b"501 bad\r\n")
    assert conn.state is State.HELLO


def test_ehlo_may_be_repeated_and_replaces_extensions() -> None:
    conn = ready("PIPELINING", "CHUNKING")
    assert conn.send(Ehlo("client.example")) == b"EHLO client.example\r\n"
    reply(conn, ehlo_reply("DSN"))
    assert conn.state is State.READY
    assert dict(conn.extensions.keywords) == {"DSN": ""}


def test_enhanced_status_codes_parsed_only_after_they_are_advertised() -> None:
    conn = ready()
    conn.send(Noop())
    assert reply(conn, b"250 2.0.0 OK\r\n") == Reply(250, ("2.0.0 OK",))
    conn = ready("ENHANCEDSTATUSCODES")
    conn.send(Noop())
    got = reply(conn, b"250 2.0.0 OK\r\n")
    assert (got.enhanced, got.lines) == (EnhancedStatus(2, 0, 0), ("OK",))


def test_mail_needs_a_successful_ehlo_first() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError, match="can't send MAIL when state=HELLO"):
        conn.send(Mail("a@example.com"))


# -- QUIT, RSET, NOOP ----------------------------------------------------------------------


@pytest.mark.parametrize("code", [b"221 bye", b"500 what", b"354 odd"])
def test_quit_reply_of_any_class_closes(code: bytes, feed_mode: str) -> None:
    conn = ready()
    assert conn.send(Quit()) == b"QUIT\r\n"
    assert conn.state is State.QUIT_SENT
    got = reply(conn, code + b"\r\n", feed_mode)
    assert got.command == Quit()
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="state=CLOSED"):
        conn.send(Noop())


def test_quit_before_ehlo() -> None:
    conn = greeted()
    assert conn.send(Quit()) == b"QUIT\r\n"
    reply(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("state_setup", ["hello", "ready", "transaction"])
@pytest.mark.parametrize("code", [b"250 OK", b"500 no"])
def test_noop_keeps_the_state(state_setup: str, code: bytes, feed_mode: str) -> None:
    conn = greeted() if state_setup == "hello" else ready("PIPELINING")
    if state_setup == "transaction":
        conn.send(Mail("a@example.com"))
        reply(conn, b"250 OK\r\n")
    before = conn.state
    assert conn.send(Noop()) == b"NOOP\r\n"
    got = reply(conn, code + b"\r\n", feed_mode)
    assert got.command == Noop()
    assert conn.state is before


def test_rset_ends_the_transaction(feed_mode: str) -> None:
    conn = ready()
    conn.send(Mail("a@example.com"))
    reply(conn, b"250 OK\r\n")
    assert conn.state is State.TRANSACTION
    assert conn.send(Rset()) == b"RSET\r\n"
    assert conn.state is State.READY
    assert reply(conn, b"250 flushed\r\n", feed_mode).command == Rset()
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError, match="can't send RCPT when state=READY"):
        conn.send(Rcpt("b@example.com"))


@pytest.mark.parametrize("code", [b"250 OK", b"500 no"])
def test_rset_in_hello_and_ready_keeps_the_state(code: bytes) -> None:
    for conn in [greeted(), ready()]:
        before = conn.state
        assert conn.send(Rset()) == b"RSET\r\n"
        reply(conn, code + b"\r\n")
        assert conn.state is before


# -- 421 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setup",
    [
        [],
        [Ehlo("client.example")],
        [Mail("a@example.com")],
        [Mail("a@example.com"), Rcpt("b@example.com"), Data()],
    ],
)
def test_421_at_any_point_moves_to_closing(setup: list[object], feed_mode: str) -> None:
    conn = ready("PIPELINING")
    for command in setup:
        conn.send(command)  # type: ignore[arg-type]
    got = reply(conn, b"421-4.3.2 shutting down\r\n421 bye\r\n", feed_mode)
    assert got.code == 421
    assert got.command == (setup[0] if setup else None)
    assert conn.state is State.CLOSING
    assert conn.in_flight == ()
    with pytest.raises(LocalProtocolError, match="state=CLOSING"):
        conn.send(Quit())


def test_after_421_the_connection_closes_at_eof() -> None:
    conn = ready()
    reply(conn, b"421 bye\r\n")
    conn.receive_data(b"")
    assert conn.next_event() is CONNECTION_CLOSED
    assert conn.state is State.CLOSED


def test_reply_after_421_is_remote_error() -> None:
    conn = ready()
    reply(conn, b"421 bye\r\n")
    conn.receive_data(b"250 what\r\n")
    with pytest.raises(RemoteProtocolError, match="unexpected reply with no command pending"):
        conn.next_event()


def test_unsolicited_reply_is_remote_error(feed_mode: str) -> None:
    conn = ready()
    with pytest.raises(RemoteProtocolError, match="unexpected reply"):
        receive(conn, b"250 surprise\r\n", feed_mode)
    assert conn.state is State.ERROR


# -- ERROR is for good -------------------------------------------------------------------


def check_errored(conn: ClientConnection, error: type[Exception]) -> None:
    assert conn.state is State.ERROR
    calls = [
        lambda: conn.send(Noop()),
        lambda: conn.send(Quit()),
        lambda: conn.receive_data(b"250 OK\r\n"),
        lambda: conn.receive_data(b""),
        conn.next_event,
        conn.start_tls_done,
    ]
    for call in calls:
        with pytest.raises(error, match="state ERROR") as info:
            call()
        assert type(info.value) is error
    assert conn.state is State.ERROR


def test_local_error_from_send_leaves_connection_in_error() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError, match="can't send RCPT when state=READY"):
        conn.send(Rcpt("b@example.com"))
    check_errored(conn, LocalProtocolError)


def test_local_error_message_of_later_calls_names_the_first_problem() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send(Data())
    with pytest.raises(LocalProtocolError, match="after: can't send DATA when state=READY"):
        conn.send(Noop())


def test_remote_error_from_next_event_leaves_connection_in_error() -> None:
    conn = ready()
    conn.send(Noop())
    conn.receive_data(b"250-a\r\n251 b\r\n")
    with pytest.raises(RemoteProtocolError, match="changed code"):
        conn.next_event()
    check_errored(conn, RemoteProtocolError)


def test_nothing_is_written_or_queued_when_send_raises() -> None:
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send(Mail("a@example.com", size=10))  # SIZE not advertised
    assert conn.in_flight == ()


def test_repr_shows_state_and_flight() -> None:
    conn = ready("PIPELINING")
    conn.send(Mail("a@example.com"))
    assert repr(conn) == "<ClientConnection state=TRANSACTION encrypted=False in_flight=1>"


# -- EOF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [ClientConnection, greeted, ready])
def test_eof_with_nothing_half_parsed_is_connection_closed(make: object) -> None:
    conn = make()  # type: ignore[operator]
    conn.receive_data(b"")
    assert conn.next_event() is CONNECTION_CLOSED
    assert conn.state is State.CLOSED
    assert conn.next_event() is CONNECTION_CLOSED


def test_replies_received_before_eof_come_first() -> None:
    conn = ready()
    conn.send(Quit())
    conn.receive_data(b"221 bye\r\n")
    conn.receive_data(b"")
    assert conn.next_event() == Reply(221, ("bye",))
    assert conn.next_event() is CONNECTION_CLOSED


@pytest.mark.parametrize("partial", [b"2", b"250 no end", b"250-one\r\n", b"250-one\r\n250 tw"])
def test_eof_in_the_middle_of_a_reply_is_remote_error(partial: bytes) -> None:
    conn = ready()
    conn.send(Noop())
    conn.receive_data(partial)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed in the middle of a reply"):
        conn.next_event()
    assert conn.state is State.ERROR


def test_eof_in_the_middle_of_the_greeting_is_remote_error() -> None:
    conn = ClientConnection()
    conn.receive_data(GREETING[:5])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a reply"):
        conn.next_event()


def test_data_after_eof_is_remote_error() -> None:
    conn = ready()
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="data received after end of stream"):
        conn.receive_data(b"250 late\r\n")
    check_errored(conn, RemoteProtocolError)


def test_repeated_eof_is_harmless() -> None:
    conn = ready()
    conn.receive_data(b"")
    conn.receive_data(b"")
    assert conn.next_event() is CONNECTION_CLOSED


# -- reply size bounds through the connection ------------------------------------------------


def test_ten_megabytes_without_newline_fail_fast_and_stay_bounded() -> None:
    conn = ready()
    conn.send(Noop())
    piece = b"2" * 65536
    fed = []

    def flood() -> None:
        for _ in range(10 * 1024 * 1024 // len(piece)):
            conn.receive_data(piece)
            fed.append(len(piece))
            assert conn.next_event() is NEED_DATA

    with pytest.raises(RemoteProtocolError, match="reply line longer than 4096"):
        flood()
    assert fed == [len(piece)]
    assert conn._parser.buffered == len(piece)
    with pytest.raises(RemoteProtocolError, match="state ERROR"):
        conn.receive_data(piece)
    assert conn._parser.buffered == len(piece)


def test_connection_reply_limits_are_configurable() -> None:
    conn = ClientConnection(max_reply_line=16, max_reply=32)
    conn.receive_data(b"220-0123456789\r\n220-0123456789\r\n220 x\r\n")
    with pytest.raises(RemoteProtocolError, match="reply longer than 32 octets"):
        conn.next_event()
