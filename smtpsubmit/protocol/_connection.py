"""The client side of an SMTP session, without I/O (the h11 model).

Theory of operation:

- :meth:`ClientConnection.send` validates a command against the state, the server's
  extensions and the security settings, updates the state and returns the bytes to
  write. Nothing is written by us; nothing is remembered if it raises.
- :meth:`ClientConnection.receive_data` only buffers; ``b""`` means the server closed
  the connection (EOF). :meth:`ClientConnection.next_event` parses and returns a
  :class:`Reply` (with ``.command`` set to the command it answers), :data:`NEED_DATA`, or
  :data:`CONNECTION_CLOSED`.
- Replies are matched to commands through a FIFO of commands in flight, which is what
  makes RFC 2920 pipelining safe: the Nth reply answers the Nth command.
- Without PIPELINING only one command may be in flight; with it, a command that must end
  a group (EHLO, STARTTLS, AUTH, DATA, NOOP, QUIT; RFC 2920 3.1) must be answered first.
  Message content may start a group (RFC 2920 3.1), so the next MAIL may follow the end
  of data at once.
- After the 220 reply to STARTTLS, any byte already received is a response injection
  attack (RFC 3207 6): RemoteProtocolError. :meth:`ClientConnection.start_tls_done`
  forgets the extensions and requires a new EHLO.
- After a LocalProtocolError or RemoteProtocolError the state is ERROR for good.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections import deque
from dataclasses import dataclass
from typing import Final, NoReturn

from . import _commands as c
from ._data import MAX_TEXT_LINE, DataEncoder
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError, ResponseInjection
from ._extensions import Extensions
from ._replies import DEFAULT_MAX_LINE, DEFAULT_MAX_REPLY, EnhancedStatus, Reply, ReplyParser
from ._state import REPLY, SEND, ReplyClass, State

__all__ = [
    "CONNECTION_CLOSED",
    "NEED_DATA",
    "ClientConnection",
    "Event",
    "Sentinel",
]


class Sentinel(enum.Enum):
    """Non-reply results of :meth:`ClientConnection.next_event`."""

    NEED_DATA = "NEED_DATA"
    CONNECTION_CLOSED = "CONNECTION_CLOSED"


NEED_DATA: Final = Sentinel.NEED_DATA
CONNECTION_CLOSED: Final = Sentinel.CONNECTION_CLOSED
Event = Reply | Sentinel

#: States in which a transaction is open (MAIL sent and not yet ended).
_OPEN = frozenset({State.TRANSACTION, State.DATA_SENT, State.BODY})


@dataclass
class _InFlight:
    command: c.Command
    transaction: int  # serial of the MAIL transaction the command belongs to (0: none)


def _decode_challenge(reply: Reply) -> bytes:
    text = reply.lines[0].strip()
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError("334 challenge is not valid base64") from None


class ClientConnection:
    """One SMTP client session as a state machine: commands in, bytes out, replies out.

    ``encrypted`` says whether the channel is already TLS (implicit TLS, RFC 8314 3.3).
    ``allow_cleartext_auth`` must be set explicitly to render AUTH on an unencrypted
    channel; without it AUTH raises :class:`LocalProtocolError` (RFC 8314 3, RFC 4954 4).
    """

    def __init__(
        self,
        *,
        encrypted: bool = False,
        allow_cleartext_auth: bool = False,
        max_reply_line: int = DEFAULT_MAX_LINE,
        max_reply: int = DEFAULT_MAX_REPLY,
        max_data_line: int | None = MAX_TEXT_LINE,
    ) -> None:
        self.encrypted = encrypted
        self.allow_cleartext_auth = allow_cleartext_auth
        self.max_data_line = max_data_line
        self.extensions = Extensions()
        self.authenticated = False
        self._state = State.GREETING
        self._parser = ReplyParser(max_line=max_reply_line, max_reply=max_reply)
        self._in_flight: deque[_InFlight] = deque()
        self._eof = False
        self._error: ProtocolError | None = None
        self._encoder: DataEncoder | None = None
        self._transaction = 0  # serial of the open transaction, 0 when none
        self._serial = 0
        self._transaction_utf8 = False
        self._transaction_kind: type[c.Command] | None = None  # Data or Bdat, once chosen
        self._rcpts_sent = 0
        self._binarymime = False

    # -- introspection -------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def in_flight(self) -> tuple[c.Command, ...]:
        """Commands sent whose replies have not arrived yet, oldest first."""
        return tuple(entry.command for entry in self._in_flight)

    def __repr__(self) -> str:
        return (
            f"<ClientConnection state={self._state.name} encrypted={self.encrypted} "
            f"in_flight={len(self._in_flight)}>"
        )

    # -- sending -------------------------------------------------------------------

    def send(self, command: c.Command) -> bytes:
        """Validate ``command`` here and now, advance the state, return the bytes to write."""
        self._check_not_errored()
        try:
            return self._send(command)
        except LocalProtocolError as exc:
            self._fail(exc)

    def _send(self, command: c.Command) -> bytes:
        kind = type(command)
        target = SEND[self._state].get(kind)
        if target is None:
            raise LocalProtocolError(
                f"can't send {command.verb} when state={self._state.name} ({self._state.value})"
            )
        self._check_pipelining(command)
        self._check_extensions(command)
        if kind is c.MessageData or kind is c.EndOfData:
            data = self._encode_body(command)
        else:
            data = command.render()
        self._commit(command, target)
        return data

    def _check_pipelining(self, command: c.Command) -> None:
        if not command.expects_reply or not self._in_flight:
            return
        pending = self._in_flight[-1].command
        if not self.extensions.pipelining:
            raise LocalProtocolError(
                f"can't send {command.verb} before the reply to {pending.verb}: "
                "the server did not advertise PIPELINING"
            )
        if pending.ends_group:
            raise LocalProtocolError(
                f"can't pipeline {command.verb} after {pending.verb}, which must end a "
                "command group (RFC 2920 3.1)"
            )

    def _check_extensions(self, command: c.Command) -> None:
        # By exact type, like the SEND table (which refuses any other type anyway); the
        # transaction's commands first, since they are sent for every message.
        ext = self.extensions
        kind = type(command)
        if kind is c.MessageData or kind is c.EndOfData:
            return
        if kind is c.Mail:
            assert isinstance(command, c.Mail)
            self._check_mail(command)
        elif kind is c.Rcpt:
            assert isinstance(command, c.Rcpt)
            self._check_rcpt(command)
        elif kind is c.Data:
            self._check_body_kind(c.Data)
            if self._binarymime:
                raise LocalProtocolError("BODY=BINARYMIME requires BDAT, not DATA (RFC 3030 3)")
            if not self._rcpts_sent:
                raise LocalProtocolError("can't send DATA before any RCPT")
        elif kind is c.Bdat:
            if not ext.chunking:
                raise LocalProtocolError("the server did not advertise CHUNKING (RFC 3030)")
            self._check_body_kind(c.Bdat)
            if not self._rcpts_sent:
                raise LocalProtocolError("can't send BDAT before any RCPT")
        elif kind is c.StartTLS:
            if self.encrypted:
                raise LocalProtocolError("the channel is already encrypted")
            if not ext.starttls:
                raise LocalProtocolError("the server did not advertise STARTTLS")
        elif isinstance(command, c.Auth):
            if not self.encrypted and not self.allow_cleartext_auth:
                raise LocalProtocolError(
                    "refusing to send AUTH over an unencrypted channel (RFC 8314 3); "
                    "cleartext authentication must be allowed explicitly"
                )
            if self.authenticated:
                raise LocalProtocolError("already authenticated (RFC 4954 4)")
            if command.mechanism not in ext.auth:
                raise LocalProtocolError(
                    f"the server did not advertise AUTH {command.mechanism} "
                    f"(it offers: {' '.join(sorted(ext.auth)) or 'none'})"
                )

    def _check_body_kind(self, kind: type[c.Command]) -> None:
        if self._transaction_kind not in (None, kind):
            raise LocalProtocolError("can't mix DATA and BDAT in one transaction (RFC 3030 3)")

    def _check_mail(self, mail: c.Mail) -> None:
        ext = self.extensions
        needs = {
            "SIZE": mail.size is not None,
            "8BITMIME": mail.body == "8BITMIME",
            "BINARYMIME": mail.body == "BINARYMIME",
            "SMTPUTF8": mail.smtputf8,
            "DSN": mail.ret is not None or mail.envid is not None,
            "REQUIRETLS": mail.requiretls,
        }
        for keyword, needed in needs.items():
            if needed and keyword not in ext:
                raise LocalProtocolError(f"MAIL uses {keyword}, which the server did not advertise")
        if mail.body == "BINARYMIME" and not ext.chunking:
            raise LocalProtocolError("BODY=BINARYMIME needs CHUNKING (RFC 3030 3)")
        if mail.requiretls and not self.encrypted:
            raise LocalProtocolError("REQUIRETLS needs an encrypted channel (RFC 8689 4.1)")

    def _check_rcpt(self, rcpt: c.Rcpt) -> None:
        if (rcpt.notify or rcpt.orcpt is not None) and not self.extensions.dsn:
            raise LocalProtocolError("RCPT uses DSN parameters, which the server did not advertise")
        if not rcpt.recipient.isascii() and not self._transaction_utf8:
            raise LocalProtocolError(
                f"recipient {rcpt.recipient!r} is not ASCII: MAIL needs SMTPUTF8 (RFC 6531 3.4)"
            )

    def _encode_body(self, command: c.Command) -> bytes:
        if self._encoder is None:
            self._encoder = DataEncoder(max_line=self.max_data_line)
        if isinstance(command, c.MessageData):
            return self._encoder.feed(command.data)
        data = self._encoder.end()
        self._encoder = None
        return data

    def _commit(self, command: c.Command, target: State) -> None:
        """Record a command that is about to be written."""
        kind = type(command)
        if kind is c.Mail:
            assert isinstance(command, c.Mail)
            self._serial += 1
            self._transaction = self._serial
            self._transaction_utf8 = command.smtputf8
            self._binarymime = command.body == "BINARYMIME"
            self._transaction_kind = None
            self._rcpts_sent = 0
        elif kind is c.Rcpt:
            self._rcpts_sent += 1
        elif kind is c.Data or kind is c.Bdat:
            self._transaction_kind = kind
            if isinstance(command, c.Bdat) and command.last:
                target = State.READY
        if command.expects_reply:
            self._in_flight.append(_InFlight(command, self._transaction))
        self._state = target
        self._end_transaction_unless_open()

    def _end_transaction_unless_open(self) -> None:
        if self._state not in _OPEN:
            self._transaction = 0

    # -- receiving -----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server; ``b""`` means the server closed the connection."""
        self._check_not_errored()
        if self._eof and data:
            self._fail(RemoteProtocolError("data received after end of stream"))
        if not data:
            self._eof = True
            return
        self._parser.feed(data)

    def next_event(self) -> Event:
        """Parse the next reply; :data:`NEED_DATA` or :data:`CONNECTION_CLOSED` otherwise."""
        self._check_not_errored()
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._fail(exc)

    def _next_event(self) -> Event:
        if self._state is State.TLS_HANDSHAKE and self._parser.in_reply:
            raise ResponseInjection(
                "the server sent data after agreeing to STARTTLS and before the TLS "
                "handshake (response injection, RFC 3207 6)"
            )
        parts = self._parser.next_parts()
        if parts is None:
            if not self._eof:
                return NEED_DATA
            if self._parser.in_reply:
                raise RemoteProtocolError("connection closed in the middle of a reply")
            self._state = State.CLOSED
            return CONNECTION_CLOSED
        return self._handle_reply(*parts)

    def _handle_reply(
        self, code: int, lines: tuple[str, ...], enhanced: EnhancedStatus | None
    ) -> Reply:
        entry: _InFlight | None = None
        if self._in_flight:
            entry = self._in_flight.popleft()
        elif self._state is not State.GREETING and code != 421:
            reply = Reply(code, lines, enhanced)
            raise RemoteProtocolError(f"unexpected reply with no command pending: {reply}")
        command = entry.command if entry else None
        # A BDAT reply records the command without its chunk (memory: see BdatSent).
        answered = command.sent() if isinstance(command, c.Bdat) else command
        reply = Reply(code, lines, enhanced, answered)
        if reply.code == 421:
            self._in_flight.clear()
            self._state = State.CLOSING
            return reply
        kind = type(command) if command is not None else None
        if (
            (kind is c.Mail or kind is c.Bdat)
            and entry is not None
            and entry.transaction != self._transaction
        ):
            return reply  # an earlier transaction's reply cannot end the current one
        transitions = REPLY.get((kind, ReplyClass.of(reply.code)), {})
        self._state = transitions.get(self._state, self._state)
        self._after_reply(reply, command)
        return reply

    def _after_reply(self, reply: Reply, command: c.Command | None) -> None:
        self._end_transaction_unless_open()
        if isinstance(command, c.Ehlo) and reply.is_positive:
            # HELO is an Ehlo subclass; it advertises nothing (RFC 5321 4.1.1.1).
            self.extensions = (
                Extensions.parse(reply.lines) if type(command) is c.Ehlo else Extensions()
            )
            self._parser.enhanced_status_codes = self.extensions.enhancedstatuscodes
        elif isinstance(command, c.Auth | c.AuthResponse) and reply.is_positive:
            self.authenticated = True
        if self._state is State.TLS_HANDSHAKE and self._parser.in_reply:
            raise ResponseInjection(
                "the server sent data right after agreeing to STARTTLS "
                "(response injection, RFC 3207 6)"
            )

    def start_tls_done(self) -> None:
        """Tell the core the TLS handshake after STARTTLS succeeded.

        RFC 3207 4.2: the client MUST discard what it knew from the server before TLS, so
        the extensions are forgotten and a new EHLO is required.
        """
        self._check_not_errored()
        if self._state is not State.TLS_HANDSHAKE:
            self._fail(
                LocalProtocolError(
                    f"start_tls_done() when state={self._state.name}: no STARTTLS agreed"
                )
            )
        if self._parser.in_reply:
            self._fail(
                ResponseInjection(
                    "the server sent data before the TLS handshake (response injection, RFC 3207 6)"
                )
            )
        self.encrypted = True
        self.authenticated = False  # RFC 3207 4.2: the session is back to its initial state
        self.extensions = Extensions()
        self._parser.enhanced_status_codes = False
        self._state = State.HELLO

    def auth_challenge(self, reply: Reply) -> bytes:
        """The base64-decoded challenge of the 334 reply just received (RFC 4954 4).

        A challenge that is not valid base64 is the server's protocol error: the connection
        goes to ERROR like for any other RemoteProtocolError.
        """
        self._check_not_errored()
        if self._state is not State.AUTH_CHALLENGE or reply.code != 334:
            self._fail(
                LocalProtocolError(
                    f"no AUTH challenge to decode when state={self._state.name} "
                    f"(reply {reply.code})"
                )
            )
        try:
            return _decode_challenge(reply)
        except RemoteProtocolError as exc:
            self._fail(exc)

    # -- errors --------------------------------------------------------------------

    def _fail(self, exc: ProtocolError) -> NoReturn:
        # Every public method checks _check_not_errored() first, so this runs once.
        self._error = exc
        self._state = State.ERROR
        raise exc

    def _check_not_errored(self) -> None:
        if self._error is not None:
            error_type = type(self._error)
            raise error_type(f"connection is in state ERROR after: {self._error}")
