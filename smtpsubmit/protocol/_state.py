"""The client session's states and its one transition table.

Rule 1: every state transition of :class:`~smtpsubmit.protocol.ClientConnection` is in
this file, as data. The connection looks transitions up; it never decides them.

Rule 2: transitions on *sending* happen when the command is rendered, because under
RFC 2920 pipelining the client commits to a command before its reply arrives.
Transitions on *replies* are keyed by the command answered, the reply's class and the
state the connection is in when the reply arrives; a reply that finds the connection in a
state not listed changes nothing (e.g. the reply to a pipelined RCPT).

Rule 3: a 421 reply, whatever it answers, moves to CLOSING (RFC 5321 3.8): the server is
going away and nothing more may be sent. A ``(state, command)`` pair missing from
``SEND`` is a :class:`LocalProtocolError` naming both.
"""

from __future__ import annotations

import enum

from . import _commands as c

__all__ = ["REPLY", "SEND", "ReplyClass", "State"]


class State(enum.Enum):
    """Where the session is, from the client's side."""

    GREETING = "waiting for the server greeting"
    REFUSED = "server refused the session (554 greeting); only QUIT is allowed"
    HELLO = "greeted; EHLO or HELO needed"
    EHLO_SENT = "EHLO/HELO sent, waiting for its reply"
    READY = "ready for a transaction"
    STARTTLS_SENT = "STARTTLS sent, waiting for its reply"
    TLS_HANDSHAKE = "server agreed to STARTTLS; waiting for the TLS handshake"
    AUTH_SENT = "AUTH in progress, waiting for the server"
    AUTH_CHALLENGE = "AUTH in progress; the server sent a challenge"
    TRANSACTION = "MAIL sent; RCPT, DATA or BDAT may follow"
    DATA_SENT = "DATA sent, waiting for 354"
    BODY = "354 received; sending the message body"
    QUIT_SENT = "QUIT sent"
    CLOSING = "the server is closing the connection (421)"
    CLOSED = "connection closed"
    ERROR = "protocol error"


class ReplyClass(enum.Enum):
    """The first digit of a reply code, as the transition table needs it."""

    POSITIVE = 2
    INTERMEDIATE = 3
    NEGATIVE = 4  # 4xx and 5xx alike: the command failed

    @classmethod
    def of(cls, code: int) -> ReplyClass:
        """Classify a reply code."""
        return _BY_DIGIT.get(code // 100, cls.NEGATIVE)


_BY_DIGIT = {2: ReplyClass.POSITIVE, 3: ReplyClass.INTERMEDIATE}


S = State
_ANYTIME: dict[type[c.Command], State] = {c.Noop: S.READY, c.Rset: S.READY, c.Quit: S.QUIT_SENT}

#: state -> command type -> state after sending it.
SEND: dict[State, dict[type[c.Command], State]] = {
    S.GREETING: {},
    S.REFUSED: {c.Quit: S.QUIT_SENT},
    S.HELLO: {c.Ehlo: S.EHLO_SENT, c.Helo: S.EHLO_SENT, c.Noop: S.HELLO, c.Rset: S.HELLO,
              c.Quit: S.QUIT_SENT},
    S.EHLO_SENT: {},
    S.READY: {c.Ehlo: S.EHLO_SENT, c.Helo: S.EHLO_SENT, c.StartTLS: S.STARTTLS_SENT,
              c.Auth: S.AUTH_SENT, c.Mail: S.TRANSACTION, **_ANYTIME},
    S.STARTTLS_SENT: {},
    S.TLS_HANDSHAKE: {},
    S.AUTH_SENT: {},
    S.AUTH_CHALLENGE: {c.AuthResponse: S.AUTH_SENT, c.AuthCancel: S.AUTH_SENT},
    S.TRANSACTION: {c.Rcpt: S.TRANSACTION, c.Data: S.DATA_SENT, c.Bdat: S.TRANSACTION,
                    c.Noop: S.TRANSACTION, c.Rset: S.READY, c.Quit: S.QUIT_SENT},
    S.DATA_SENT: {},
    S.BODY: {c.MessageData: S.BODY, c.EndOfData: S.READY},
    S.QUIT_SENT: {},
    S.CLOSING: {},
    S.CLOSED: {},
    S.ERROR: {},
}  # fmt: skip

#: (command answered or None for the greeting, reply class) -> {state now: next state}.
#: Every pair is listed, so each one is a decision; ``{}`` means the reply changes nothing.
#: A reply of the wrong class (250 to DATA, 3xx to MAIL) counts as a failure.
_P, _I, _N = ReplyClass.POSITIVE, ReplyClass.INTERMEDIATE, ReplyClass.NEGATIVE
REPLY: dict[tuple[type[c.Command] | None, ReplyClass], dict[State, State]] = {
    (None, _P): {S.GREETING: S.HELLO},
    (None, _I): {S.GREETING: S.REFUSED},
    (None, _N): {S.GREETING: S.REFUSED},
    (c.Ehlo, _P): {S.EHLO_SENT: S.READY},
    (c.Ehlo, _I): {S.EHLO_SENT: S.HELLO},
    (c.Ehlo, _N): {S.EHLO_SENT: S.HELLO},
    (c.Helo, _P): {S.EHLO_SENT: S.READY},
    (c.Helo, _I): {S.EHLO_SENT: S.HELLO},
    (c.Helo, _N): {S.EHLO_SENT: S.HELLO},
    (c.StartTLS, _P): {S.STARTTLS_SENT: S.TLS_HANDSHAKE},
    (c.StartTLS, _I): {S.STARTTLS_SENT: S.READY},
    (c.StartTLS, _N): {S.STARTTLS_SENT: S.READY},
    (c.Auth, _P): {S.AUTH_SENT: S.READY},
    (c.Auth, _I): {S.AUTH_SENT: S.AUTH_CHALLENGE},
    (c.Auth, _N): {S.AUTH_SENT: S.READY},
    (c.AuthResponse, _P): {S.AUTH_SENT: S.READY},
    (c.AuthResponse, _I): {S.AUTH_SENT: S.AUTH_CHALLENGE},
    (c.AuthResponse, _N): {S.AUTH_SENT: S.READY},
    (c.AuthCancel, _P): {S.AUTH_SENT: S.READY},
    (c.AuthCancel, _I): {S.AUTH_SENT: S.READY},
    (c.AuthCancel, _N): {S.AUTH_SENT: S.READY},
    # A refused MAIL ends the transaction the client had already begun to pipeline.
    (c.Mail, _P): {},
    (c.Mail, _I): {S.TRANSACTION: S.READY},
    (c.Mail, _N): {S.TRANSACTION: S.READY},
    # The caller counts accepted recipients; DATA with none accepted is the server's to refuse.
    (c.Rcpt, _P): {},
    (c.Rcpt, _I): {},
    (c.Rcpt, _N): {},
    (c.Data, _I): {S.DATA_SENT: S.BODY},
    (c.Data, _P): {S.DATA_SENT: S.READY},
    (c.Data, _N): {S.DATA_SENT: S.READY},
    # The state after the end of data is decided on sending (pipelining, RFC 2920 3.1).
    (c.EndOfData, _P): {},
    (c.EndOfData, _I): {},
    (c.EndOfData, _N): {},
    (c.Bdat, _P): {},
    (c.Bdat, _I): {S.TRANSACTION: S.READY},
    (c.Bdat, _N): {S.TRANSACTION: S.READY},
    (c.Rset, _P): {},
    (c.Rset, _I): {},
    (c.Rset, _N): {},
    (c.Noop, _P): {},
    (c.Noop, _I): {},
    (c.Noop, _N): {},
    (c.Quit, _P): {S.QUIT_SENT: S.CLOSED},
    (c.Quit, _I): {S.QUIT_SENT: S.CLOSED},
    (c.Quit, _N): {S.QUIT_SENT: S.CLOSED},
}
