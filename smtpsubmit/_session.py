"""Session: the one driver of the protocol core over a transport.

Theory of operation:

- Everything the client layer says to a server goes through :class:`Session`: a command is
  rendered by :class:`ClientConnection` (:meth:`Session.render`), its bytes are written by
  :meth:`Session.write`, and what comes back is fed to the core until it yields a
  :class:`Reply` (:meth:`Session.read_reply`). Nothing else in the client layer touches the
  core's ``send``/``receive_data``/``next_event`` or the transport's ``send``/``receive``
  (the handshake's TLS upgrade goes through :meth:`Session.start_tls`).
- This is the one edge where the core's and the clock's exceptions become
  :class:`SMTPError`\\ s (:meth:`Session.error_for`): a :class:`LocalProtocolError` is our
  bug, a :class:`RemoteProtocolError` the server's (:class:`ProtocolViolationError`, or
  :class:`ResponseInjectionError` for RFC 3207 6), an expired deadline a
  :class:`TimeoutError` naming the phase, and a 421 reply a :class:`TransientReplyError`
  (the server is closing, RFC 5321 3.8). Network errors were already translated by the
  transport (:func:`smtpsubmit.transport.map_errors`).
- Every wait carries the deadline of its phase (:class:`Timeouts`); a reply's limit runs
  from the first wait for its bytes, so replies that arrived together cost no timer.
- The session records what crosses the wire: the transcript of the current transaction
  (commands and replies kept as objects, rendered only when read) and the DEBUG log
  (formatted only when DEBUG is on). Secrets never reach either (``Command.log_line``
  redacts AUTH; :meth:`Session.scrub` removes a secret a server echoes back).
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import ssl
from collections.abc import Callable, Iterator
from typing import Literal

import anyio

from ._errors import (
    ConnectionLostError,
    ProtocolViolationError,
    ResponseInjectionError,
    SMTPError,
    TimeoutError,
    reply_error,
)
from ._results import TranscriptLine, lines_of
from .policy import Timeouts
from .protocol import (
    CONNECTION_CLOSED,
    NEED_DATA,
    Auth,
    AuthResponse,
    Bdat,
    ClientConnection,
    Command,
    EndOfData,
    LocalProtocolError,
    MessageData,
    RemoteProtocolError,
    Reply,
    ResponseInjection,
    State,
)
from .transport import TLSInfo, Transport

__all__ = ["Phase", "Session", "phase_of", "timeout_error", "total_deadline"]

logger = logging.getLogger("smtpsubmit")

Phase = Literal["connect", "tls", "greeting", "command", "data", "final_reply"]


def phase_of(command: Command) -> Phase:
    """The phase whose time limit governs the wait for ``command``'s reply.

    The reply to the end of a message (``.`` or ``BDAT ... LAST``) may take the server long
    (RFC 5321 4.5.3.2.6): ``final_reply``. A non-last BDAT chunk is ``data``. Everything
    else, including MAIL and RCPT pipelined ahead of a body, is ``command``.
    """
    if isinstance(command, Bdat):
        return "final_reply" if command.last else "data"
    if isinstance(command, EndOfData):
        return "final_reply"
    return "command"


class Session:
    """One open connection: a transport, the protocol core driving it, and their clock.

    ``host`` and ``port`` name the server in errors and logs. Messages accepted on this
    connection are counted in :attr:`messages_sent`; :attr:`opened_at` is when it was
    opened (the event loop's clock, :attr:`clock`).
    """

    def __init__(
        self,
        transport: Transport,
        conn: ClientConnection,
        *,
        host: str,
        port: int,
        timeouts: Timeouts,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        self.conn = conn
        self.host = host
        self.port = port
        self.timeouts = timeouts
        self.clock = clock
        self.opened_at = clock()
        self.messages_sent = 0
        self.authenticated_mechanism: str | None = None
        #: The name this client gave in EHLO (set by the handshake).
        self.ehlo_name: str | None = None
        #: The current transaction's lines (see :class:`~smtpsubmit.Transcript`).
        self.transcript: list[Command | Reply | TranscriptLine] = []
        #: Off while several transactions share the wire (their lines would interleave).
        self.recording = True
        #: A transaction ended in a refusal that RSET has not cleared yet: the server may
        #: still hold its state (RFC 3030 2: after a failed BDAT the client MAY RSET; we
        #: do, before the next MAIL).
        self.needs_reset = False
        self._secrets: tuple[str, ...] = ()
        self._closed = False

    def __repr__(self) -> str:
        return f"<Session {self.host}:{self.port} state={self.conn.state.name}>"

    # -- state -----------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Open and ready for a new transaction: READY with no reply outstanding."""
        conn = self.conn
        return not self._closed and conn.state is State.READY and not conn.in_flight

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    @property
    def tls_info(self) -> TLSInfo | None:
        """TLS version, cipher and certificate, when the connection is encrypted."""
        return self.transport.tls_info

    # -- the wire --------------------------------------------------------------------

    def render(self, command: Command) -> bytes:
        """The bytes of ``command``, checked by the core against the session's state."""
        try:
            data = self.conn.send(command)
        except LocalProtocolError as exc:
            raise self.error_for(exc, "command") from exc
        self.record(command)
        return data

    async def write(self, data: bytes, phase: Phase) -> None:
        """Write ``data`` within ``phase``'s limit."""
        if self._closed:
            raise ConnectionLostError(f"{self.host}: the connection is closed")
        limit: float | None = getattr(self.timeouts, phase)
        deadline = None if limit is None else self.clock() + limit
        try:
            await self.transport.send_by(data, deadline)
        except builtins.TimeoutError as exc:
            raise self.error_for(exc, phase) from None

    async def read_reply(self, phase: Phase) -> Reply:
        """The next reply; ``phase``'s limit runs from the first wait for its bytes.

        Replies already buffered (pipelined replies usually arrive together) come back
        without waiting; a wait carries its deadline to the transport, which on asyncio
        costs a timer check rather than a cancel scope (this is the per-message hot path).
        """
        conn, transport = self.conn, self.transport
        deadline: float | None = None
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                raise self.error_for(exc, phase) from None
            if event is NEED_DATA:
                if deadline is None:
                    limit: float | None = getattr(self.timeouts, phase)
                    if limit is not None:
                        deadline = self.clock() + limit
                try:
                    data = await transport.receive_by(deadline)
                except builtins.TimeoutError as exc:
                    raise self.error_for(exc, phase) from None
                conn.receive_data(data)
                continue
            if event is CONNECTION_CLOSED:
                raise ConnectionLostError(f"{self.host} closed the connection")
            assert isinstance(event, Reply)
            if self._secrets:
                shown = self.scrub(event)
                self.record(shown)
                if event.code != 334:  # a challenge goes to the mechanism as it came
                    event = shown
            else:
                self.record(event)
            if event.code == 421:
                raise reply_error(event, f"the server is closing the connection: {event}")
            return event

    async def command(self, command: Command, phase: Phase = "command") -> Reply:
        """Write one command and read its reply."""
        await self.write(self.render(command), phase)
        return await self.read_reply(phase)

    async def expect_ok(self, command: Command) -> Reply:
        """:meth:`command`, raising the fitting :class:`ReplyError` unless it is 2xx."""
        reply = await self.command(command)
        if not reply.is_positive:
            raise reply_error(reply)
        return reply

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Upgrade the transport to TLS within the ``tls`` phase's limit."""
        with self.phase("tls"):
            await self.transport.start_tls(context, server_hostname)
        info = self.transport.tls_info
        if info is not None:
            logger.debug("TLS established: %s %s", info.version, info.cipher)

    async def close(self) -> None:
        """Close the transport (no QUIT); the session cannot be used again."""
        if not self._closed:
            self._closed = True
            await self.transport.aclose()

    # -- secrets -----------------------------------------------------------------------

    @contextlib.contextmanager
    def secret(self, *values: str) -> Iterator[None]:
        """Scrub ``values`` from every reply read in this block (a server may echo them):
        from the transcript, the log and the reply returned, except a 334 challenge's,
        which the SASL mechanism needs as it came (its recorded line is scrubbed)."""
        previous = self._secrets
        self._secrets = previous + tuple(v for v in values if v)
        try:
            yield
        finally:
            self._secrets = previous

    def scrub(self, reply: Reply) -> Reply:
        """``reply`` with every current secret replaced by ``********``."""
        lines = reply.lines
        for secret in self._secrets:
            lines = tuple(line.replace(secret, "********") for line in lines)
        if lines == reply.lines:
            return reply
        return Reply(reply.code, lines, reply.enhanced, reply.command)

    # -- time and errors -------------------------------------------------------------

    @contextlib.contextmanager
    def phase(self, phase: Phase) -> Iterator[None]:
        """A block bounded by ``phase``'s limit (connect, TLS handshake)."""
        limit: float | None = getattr(self.timeouts, phase)
        if limit is None:
            yield
            return
        try:
            with anyio.fail_after(limit):
                yield
        except builtins.TimeoutError as exc:
            raise self.error_for(exc, phase) from None

    def error_for(self, exc: BaseException, phase: str) -> SMTPError:
        """The :class:`SMTPError` for an exception met while talking to the server.

        The one translation of the core's and the clock's exceptions (network errors come
        translated from the transport). An :class:`SMTPError` is returned as it is.
        """
        if isinstance(exc, SMTPError):
            return exc
        if isinstance(exc, builtins.TimeoutError):
            return timeout_error(self.timeouts, phase, self.host, self.port)
        if isinstance(exc, RemoteProtocolError):
            if isinstance(exc, ResponseInjection):
                return ResponseInjectionError(f"{self.host}: {exc}")
            return ProtocolViolationError(f"{self.host}: {exc}")
        if isinstance(exc, LocalProtocolError):
            return SMTPError(f"internal protocol misuse: {exc}")
        return SMTPError(f"{self.host}: {exc}")

    def record(self, item: Command | Reply) -> None:
        """Record a command sent or a reply received: transcript and DEBUG log.

        The transcript keeps the object and renders its text only when read; the log
        formats only when DEBUG is on. (Secrets: ``Command.log_line()`` redacts them.)
        """
        if self.recording:
            if isinstance(item, MessageData | Bdat | Auth | AuthResponse):
                # Rendered now: these hold a chunk of the body (which the transcript must
                # not keep alive) or a secret (which only its redacted line may outlive).
                self.transcript.append(TranscriptLine("C", item.log_line()))
            else:
                self.transcript.append(item)
        if logger.isEnabledFor(logging.DEBUG):
            for line in lines_of(item):
                logger.debug("%s %s: %s", self.host, line.direction, line.text)


def timeout_error(timeouts: Timeouts, phase: str, host: str, port: int) -> TimeoutError:
    """Our :class:`TimeoutError` for ``phase`` (``"total"``: the whole call's deadline)."""
    limit: float | None = getattr(timeouts, phase)
    where = f" with {host}:{port}" if phase != "total" else ""
    return TimeoutError(
        f"{phase.replace('_', ' ')}{where} timed out after {limit} s", phase=phase, timeout=limit
    )


_NO_LIMIT = contextlib.nullcontext()


def total_deadline(
    timeouts: Timeouts, host: str, port: int
) -> contextlib.AbstractContextManager[object]:
    """A block bounded by ``timeouts.total`` (one whole call), raising our
    :class:`TimeoutError` with phase ``"total"``; nothing at all when there is no total."""
    if timeouts.total is None:
        return _NO_LIMIT  # the usual case, once per message: no generator, no scope
    return _total_scope(timeouts, host, port)


@contextlib.contextmanager
def _total_scope(timeouts: Timeouts, host: str, port: int) -> Iterator[None]:
    assert timeouts.total is not None
    try:
        with anyio.fail_after(timeouts.total):
            yield
    except builtins.TimeoutError as exc:
        if isinstance(exc, SMTPError):
            raise  # an inner phase's, already ours
        raise timeout_error(timeouts, "total", host, port) from None
