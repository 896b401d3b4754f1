"""The transition table is complete, consistent, and the connection obeys it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import smtpsubmit.protocol as protocol
from smtpsubmit.protocol import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    BdatSent,
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
    Rset,
    StartTLS,
    State,
)
from smtpsubmit.protocol._commands import Command
from smtpsubmit.protocol._state import REPLY, SEND, ReplyClass

from .helpers import GREETING, greeted, ready, reply


def command_types() -> set[type[Command]]:
    found: set[type[Command]] = set()
    todo = [Command]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            # BdatSent records a BDAT already written (Reply.command); it is never sent.
            if not sub.__name__.startswith("_") and sub is not BdatSent:
                found.add(sub)
    return found


def test_every_public_command_class_is_exported() -> None:
    assert {t.__name__ for t in command_types()} <= set(protocol.__all__)
    assert len(command_types()) == 15


def test_every_state_has_a_send_row() -> None:
    assert set(SEND) == set(State)


def test_every_target_is_a_state() -> None:
    for row in SEND.values():
        assert all(isinstance(target, State) for target in row.values())
    for transitions in REPLY.values():
        for before, after in transitions.items():
            assert isinstance(before, State)
            assert isinstance(after, State)


def test_every_command_type_can_be_sent_somewhere() -> None:
    sendable = {kind for row in SEND.values() for kind in row}
    assert sendable == command_types()


def test_reply_table_has_a_decision_for_every_command_and_reply_class() -> None:
    answered = [None, *(t for t in command_types() if t.expects_reply)]
    assert set(REPLY) == {(kind, cls) for kind in answered for cls in ReplyClass}
    assert MessageData not in {kind for kind, _ in REPLY}


def test_reply_transitions_start_from_a_state_the_command_leads_to() -> None:
    for (kind, _), transitions in REPLY.items():
        if kind is None:
            assert set(transitions) == {State.GREETING}
            continue
        after_send = {row[kind] for row in SEND.values() if kind in row}
        assert set(transitions) <= after_send, kind


def test_every_state_is_reachable_from_greeting() -> None:
    edges: dict[State, set[State]] = {state: set(SEND[state].values()) for state in State}
    for transitions in REPLY.values():
        for before, after in transitions.items():
            edges[before].add(after)
    edges[State.TLS_HANDSHAKE].add(State.HELLO)  # start_tls_done()
    seen, todo = {State.GREETING}, [State.GREETING]
    while todo:
        for nxt in edges[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    # The two left are reached by rules, not rows: Rule 3 (421) and the error rule.
    assert set(State) - seen == {State.CLOSING, State.ERROR}


def test_reply_class_of_codes() -> None:
    assert ReplyClass.of(250) is ReplyClass.POSITIVE
    assert ReplyClass.of(334) is ReplyClass.INTERMEDIATE
    assert ReplyClass.of(451) is ReplyClass.NEGATIVE
    assert ReplyClass.of(554) is ReplyClass.NEGATIVE


# -- the connection obeys SEND for every (state, command) pair ------------------------------

EVERYTHING = ("PIPELINING", "STARTTLS", "AUTH PLAIN", "CHUNKING", "SIZE 100")


def _sent(conn: ClientConnection, *commands: Command) -> ClientConnection:
    for command in commands:
        conn.send(command)
    return conn


def _answered(conn: ClientConnection, command: Command, data: bytes) -> ClientConnection:
    conn.send(command)
    reply(conn, data)
    return conn


def _opts() -> dict[str, object]:
    return {"allow_cleartext_auth": True}


def _in_transaction() -> ClientConnection:
    conn = _answered(ready(*EVERYTHING, **_opts()), Mail(""), b"250 OK\r\n")
    return _answered(conn, Rcpt("b@example.com"), b"250 OK\r\n")


def _refused() -> ClientConnection:
    conn = ClientConnection()
    reply(conn, b"554 go away\r\n")
    return conn


def _closing() -> ClientConnection:
    conn = ready(*EVERYTHING)
    reply(conn, b"421 bye\r\n")
    return conn


def _closed() -> ClientConnection:
    conn = ClientConnection()
    reply(conn, GREETING)
    conn.receive_data(b"")
    conn.next_event()
    return conn


SESSIONS: dict[State, Callable[[], ClientConnection]] = {
    State.GREETING: ClientConnection,
    State.REFUSED: _refused,
    State.HELLO: lambda: greeted(**_opts()),
    State.EHLO_SENT: lambda: _sent(greeted(), Ehlo("client.example")),
    State.READY: lambda: ready(*EVERYTHING, **_opts()),
    State.STARTTLS_SENT: lambda: _sent(ready(*EVERYTHING), StartTLS()),
    State.TLS_HANDSHAKE: lambda: _answered(ready(*EVERYTHING), StartTLS(), b"220 go\r\n"),
    State.AUTH_SENT: lambda: _sent(ready(*EVERYTHING, **_opts()), Auth("PLAIN")),
    State.AUTH_CHALLENGE: lambda: _answered(
        ready(*EVERYTHING, **_opts()), Auth("PLAIN"), b"334 \r\n"
    ),
    State.TRANSACTION: _in_transaction,
    State.DATA_SENT: lambda: _sent(_in_transaction(), Data()),
    State.BODY: lambda: _answered(_in_transaction(), Data(), b"354 go\r\n"),
    State.QUIT_SENT: lambda: _sent(ready(*EVERYTHING), Quit()),
    State.CLOSING: _closing,
    State.CLOSED: _closed,
}

SAMPLES: list[Command] = [
    Ehlo("client.example"),
    Helo("client.example"),
    StartTLS(),
    Rset(),
    Noop(),
    Quit(),
    Data(),
    Auth("PLAIN", b"\0u\0p"),
    AuthResponse(b"x"),
    AuthCancel(),
    Mail(""),
    Rcpt("b@example.com"),
    MessageData(b"x"),
    EndOfData(),
    Bdat(b"x"),
]


def test_samples_cover_every_command_type_and_sessions_every_state() -> None:
    assert {type(c) for c in SAMPLES} == command_types()
    assert set(SESSIONS) == set(State) - {State.ERROR}


def expected_wire(command: Command) -> bytes:
    if isinstance(command, EndOfData):
        return b".\r\n"  # the encoder's terminator for an empty body
    return command.render()


@pytest.mark.parametrize("state", list(SESSIONS), ids=lambda s: s.name)
def test_connection_sends_exactly_what_the_table_allows(state: State) -> None:
    assert SESSIONS[state]().state is state
    for command in SAMPLES:
        conn = SESSIONS[state]()
        target = SEND[state].get(type(command))
        if target is None:
            with pytest.raises(LocalProtocolError, match=f"can't send .* when state={state.name}"):
                conn.send(command)
            assert conn.state is State.ERROR
        else:
            assert conn.send(command) == expected_wire(command)
            assert conn.state is target


def test_last_bdat_chunk_ends_the_transaction_on_sending() -> None:
    conn = _in_transaction()
    assert conn.send(Bdat(b"x", last=True)) == b"BDAT 1 LAST\r\nx"
    assert conn.state is State.READY
