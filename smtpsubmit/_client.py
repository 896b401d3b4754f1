"""SMTPClient and send(): where protocol, transport, auth and policy meet.

Theory of operation:

- Policy first, before any I/O: the TLS mode comes from :func:`resolve_tls_mode`
  (RFC 8314), the message is checked and serialised (:mod:`._message`).
- The session is driven through the sans-I/O :class:`ClientConnection`: every command is
  rendered there, written here, and every reply is read here and parsed there.
- STARTTLS mode upgrades before anything else; if STARTTLS is missing, refused or fails,
  the session is closed and nothing else is sent. No AUTH and no MAIL ever leave the
  client on a cleartext channel unless ``TLSMode.INSECURE_CLEARTEXT`` was chosen (and for
  AUTH, ``allow_cleartext_auth=True`` too).
- With PIPELINING, MAIL + every RCPT + DATA (or BDAT LAST) go in one write (RFC 2920).
- Once the end of the message has been written, any failure before the final reply is
  an :class:`OutcomeUnknownError`: the server may have queued the message.
- A failure or cancellation in the middle of a transaction leaves the connection unusable;
  it is closed, and the next send opens a new one.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from email.message import Message
from types import TracebackType
from typing import BinaryIO, Literal

import anyio
import anyio.to_thread

from ._batch import (
    BatchEntry,
    Outcome,
    Pending,
    Settle,
    accepted_recipients,
    envelope_outcome,
    not_sent,
    run_data_chain,
    run_window,
)
from ._body import CHUNK, Body, Stream, chunks
from ._errors import (
    AuthenticationError,
    CleartextAuthError,
    ConnectError,
    ConnectionLostError,
    MessageError,
    NoCompatibleMechanismError,
    OutcomeUnknownError,
    ProtocolViolationError,
    ReplyError,
    SecurityPolicyError,
    SMTPError,
    StartTLSUnavailableError,
    TimeoutError,
)
from ._gate import Gate, loop_clock
from ._message import (
    DSN,
    BodyChecker,
    PreparedMessage,
    check_envelope,
    message_envelope,
    prepare_message,
    prepare_raw,
)
from ._options import ClientOptions, TransportFactory, Unpack
from ._results import SendResult, Transcript, TranscriptLine, lines_of
from ._validate import check_client_arguments
from .auth import (
    Authenticator,
    ChannelInfo,
    Mechanism,
    NoCompatibleMechanism,
    PasswordAuth,
    SASLError,
    select_mechanism,
    tls_server_end_point,
)
from .policy import Timeouts, TLSMode, default_ssl_context, ehlo_name, resolve_tls_mode
from .protocol import (
    CONNECTION_CLOSED,
    NEED_DATA,
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    ClientConnection,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Extensions,
    Helo,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    RemoteProtocolError,
    Reply,
    Rset,
    StartTLS,
    State,
)
from .transport import TLSInfo, Transport, connect_tcp, connect_unix

__all__ = ["DSN", "SMTPClient", "send"]

logger = logging.getLogger("smtpsubmit")

#: Bodies up to this size ride in the same write as the envelope with BDAT LAST.
INLINE_BODY = 1 << 20
#: RFC 4954 4: an AUTH command line may be up to 12288 octets.
MAX_AUTH_LINE = 12288
Phase = Literal["connect", "tls", "greeting", "command", "data", "final_reply"]


class SMTPClient:
    """A submission session to one server; several messages reuse the connection.

    ``tls=None`` picks the mode from the port (465 implicit TLS, 587 STARTTLS, anything
    else must be explicit; RFC 8314). Credentials are ``username``/``password`` (an empty
    username means no authentication) or an :class:`~smtpsubmit.auth.Authenticator` in
    ``auth`` (OAuth2, custom mechanisms). ``ssl_context`` replaces the default (certifi
    CAs, hostname check, TLS 1.2+). ``timeout`` is a :class:`Timeouts` or seconds for
    every phase. ``transport`` lets you bring your own stream (a proxy, a test double):
    an async callable returning a connected :class:`~smtpsubmit.transport.Transport`.
    ``unix_socket`` connects to a local socket path instead of ``host:port``, and
    ``source_address`` picks the local IP to connect from. ``local_hostname`` is the EHLO
    name; by default the host name if it is fully qualified, else our address literal.

    Use it as ``async with SMTPClient(...) as client:``; it is safe to share between tasks
    (sends are serialised), though a pool is better for concurrency.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: TLSMode | str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        auth: Authenticator | None = None,
        timeout: Timeouts | float | None = None,
        local_hostname: str | None = None,
        server_hostname: str | None = None,
        allow_cleartext_auth: bool = False,
        chunking: bool = True,
        transport: TransportFactory | None = None,
        unix_socket: str | None = None,
        source_address: str | None = None,
    ) -> None:
        check_client_arguments(
            host,
            port,
            tls=tls,
            ssl_context=ssl_context,
            username=username,
            password=password,
            auth=auth,
            timeout=timeout,
            local_hostname=local_hostname,
            server_hostname=server_hostname,
            allow_cleartext_auth=allow_cleartext_auth,
            chunking=chunking,
            transport=transport,
            unix_socket=unix_socket,
            source_address=source_address,
        )
        self.host = host
        self.port = port
        self.tls_mode = resolve_tls_mode(port, tls)
        self._ssl_context = ssl_context
        if auth is not None and username:
            raise ValueError("pass either auth= or username/password, not both")
        if username:
            auth = PasswordAuth(username, password or "")
        self._auth = auth
        self.timeouts = Timeouts.coerce(timeout)
        #: The EHLO name; when not given, chosen once connected (see ``policy.ehlo_name``).
        self.local_hostname = local_hostname
        self._source_address = source_address
        self.server_hostname = server_hostname or host
        self.allow_cleartext_auth = allow_cleartext_auth
        self.use_chunking = chunking
        self._transport_factory = transport
        self._unix_socket = unix_socket
        self._transport: Transport | None = None
        self._conn: ClientConnection | None = None
        self._lock = Gate()  # free when uncontended, see _gate.py
        self._transcript: list[Command | Reply | TranscriptLine] = []  # see Transcript
        self._clock: Callable[[], float] = anyio.current_time
        self._recording = True  # off during batches: their lines interleave, see _batch
        self.authenticated_mechanism: str | None = None
        #: Messages accepted on the current connection, and when it was opened (anyio clock).
        self.messages_sent = 0
        self.connected_at: float | None = None

    def __repr__(self) -> str:
        state = self._conn.state.name if self._conn else "DISCONNECTED"
        return (
            f"<SMTPClient {self.host}:{self.port} tls={self.tls_mode.value} "
            f"auth={self._auth!r} state={state}>"
        )

    # -- public API ----------------------------------------------------------------

    async def __aenter__(self) -> SMTPClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.quit()

    @property
    def is_connected(self) -> bool:
        """True when a session is open and ready for a transaction."""
        return _idle(self._conn)

    @property
    def extensions(self) -> Extensions:
        """What the server advertised (after TLS, when TLS is used)."""
        return self._conn.extensions if self._conn else Extensions()

    @property
    def tls_info(self) -> TLSInfo | None:
        """TLS version, cipher and certificate of the current connection, if encrypted."""
        return self._transport.tls_info if self._transport else None

    async def connect(self) -> None:
        """Connect, greet, secure and authenticate; a no-op when already connected."""
        async with self._lock:
            await self._ensure_connected()

    async def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
    ) -> SendResult:
        """Send an ``email.message.EmailMessage``; the envelope comes from its headers.

        ``sender``/``recipients`` override the envelope. Bcc is never transmitted.
        Raises :class:`RecipientsRefusedError` when nobody was accepted; a partial refusal
        is reported in ``SendResult.refused``.
        """
        envelope = message_envelope(message, sender, recipients)
        async with self._lock:
            with self._total_deadline():
                await self._ensure_connected()
                assert self._conn is not None
                prepared = prepare_message(message, envelope, self._conn.extensions)
                return await self._send_prepared(prepared, dsn)

    async def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes | BinaryIO | AsyncIterable[bytes],
        *,
        dsn: DSN | None = None,
    ) -> SendResult:
        """Send raw RFC 5322 content to an explicit envelope (``sender=""``: null path).

        ``data`` is ``bytes``, a binary file object or an async iterable of ``bytes``; files
        and iterables are streamed in chunks, so memory stays bounded by the chunk size
        whatever the message size (their lines are checked as they go; a problem found
        midway aborts the transaction and closes the connection, so nothing half-sent is
        delivered).
        """
        if isinstance(data, str):
            raise TypeError("data must be bytes; encode text first or use send_message()")
        check_envelope(sender, recipients)
        async with self._lock:
            with self._total_deadline():
                await self._ensure_connected()
                assert self._conn is not None
                ext = self._conn.extensions
                if isinstance(data, bytes | bytearray | memoryview):
                    prepared = prepare_raw(
                        sender, recipients, bytes(data), ext, binary_ok=self._binary_ok()
                    )
                    return await self._send_prepared(prepared, dsn)
                envelope = prepare_raw(sender, recipients, b"", ext)
                stream = Stream(data, BodyChecker(allow_8bit=ext.eightbitmime or envelope.smtputf8))
                mail, rcpts = self._envelope(
                    envelope, dsn, size=stream.size(), eightbit=ext.eightbitmime
                )
                return await self._run_transaction(mail, rcpts, stream)

    async def send_batch(
        self,
        items: Iterable[Message | tuple[str, Sequence[str] | str, bytes]],
        *,
        window: int = 16,
        dsn: DSN | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send many messages over this connection with several transactions in flight.

        ``items`` are ``EmailMessage`` objects or ``(sender, recipients, data)`` tuples. With
        PIPELINING and CHUNKING up to ``window`` transactions are on the wire at once; with
        PIPELINING alone each body shares a write with the next envelope (one round trip
        per message). Returns one outcome per item, in order: a :class:`SendResult`, or the
        :class:`SMTPError` that message met (nothing is raised for a single message).
        """
        return await self._send_entries([BatchEntry(item, dsn=dsn) for item in items], window)

    async def _send_entries(
        self,
        entries: list[BatchEntry],
        window: int,
        *,
        more: Callable[[], list[BatchEntry]] | None = None,
        on_outcome: Callable[[int, Outcome], None] | None = None,
    ) -> list[SendResult | SMTPError]:
        """``send_batch`` with per-message envelope overrides and DSN (used by the pool).

        For the pool: ``on_outcome(index, outcome)`` hears each outcome as soon as it is
        known, and a DATA chain (PIPELINING without CHUNKING) asks ``more()`` for further
        entries whenever it runs out, so it goes on without a round trip to end it. The
        result lists every entry, those from ``more()`` after the others.
        """
        if window < 1:
            raise ValueError("window must be at least 1")
        results: list[SendResult | SMTPError | None] = []

        def settle(index: int, outcome: Outcome) -> None:
            results[index] = outcome
            if on_outcome is not None:
                on_outcome(index, outcome)

        async with self._lock:
            with self._total_deadline():
                await self._ensure_connected()
                pending = self._prepare_batch(entries, results, settle)
                self._recording = False
                try:
                    await self._run_batch(pending, window, settle, more, results)
                except BaseException:
                    if not _idle(self._conn):
                        await self._close()
                    raise
                finally:
                    self._recording = True
        return [r if r is not None else SMTPError("not sent") for r in results]

    def _prepare_batch(
        self,
        entries: list[BatchEntry],
        results: list[SendResult | SMTPError | None],
        settle: Settle,
    ) -> list[Pending]:
        """Pending transactions for ``entries``, which get the next places in ``results``
        (an entry refused before any I/O is settled with its error at once)."""
        assert self._conn is not None
        ext = self._conn.extensions
        pending = []
        first = len(results)
        results.extend([None] * len(entries))
        for index, entry in enumerate(entries, start=first):
            item = entry.item
            try:
                if isinstance(item, Message):
                    envelope = message_envelope(item, entry.sender, entry.recipients)
                    prepared = prepare_message(item, envelope, ext)
                else:
                    sender, recipients, data = item
                    check_envelope(sender, recipients)
                    prepared = prepare_raw(
                        sender, recipients, bytes(data), ext, binary_ok=self._binary_ok()
                    )
                mail, rcpts = self._envelope(prepared, entry.dsn)
            except MessageError as exc:
                settle(index, exc)
                continue
            pending.append(Pending(index, mail, rcpts, prepared.data))
        return pending

    async def _run_batch(
        self,
        pending: list[Pending],
        window: int,
        settle: Settle,
        more: Callable[[], list[BatchEntry]] | None,
        results: list[SendResult | SMTPError | None],
    ) -> None:
        ext = self.extensions
        chunking = self.use_chunking and ext.chunking
        if ext.pipelining and chunking:
            small = [p for p in pending if len(p.data) <= INLINE_BODY]
            await run_window(self, small, window, settle)
            pending = [p for p in pending if len(p.data) > INLINE_BODY]
        elif ext.pipelining:
            queue = deque(pending)

            def next_item() -> Pending | None:
                while not queue and more is not None:
                    entries = more()
                    if not entries:
                        break
                    queue.extend(self._prepare_batch(entries, results, settle))
                return queue.popleft() if queue else None

            failure = await run_data_chain(self, next_item, settle)
            if failure is not None:
                for item in queue:
                    settle(item.index, not_sent(failure))
            pending = []
        for item in pending:  # no pipelining, or bodies too large to window
            try:
                await self._ensure_connected()
                outcome: Outcome = await self._transaction(item.mail, item.rcpts, item.data)
            except SMTPError as exc:
                outcome = exc
                if not _idle(self._conn):
                    await self._close()
            settle(item.index, outcome)

    async def noop(self) -> Reply:
        """NOOP: check the session is alive (RFC 5321 4.1.1.9)."""
        async with self._lock:
            await self._ensure_connected()
            return await self._expect_ok(Noop())

    async def quit(self) -> None:
        """Say QUIT politely and close; never raises."""
        async with self._lock:
            conn, transport = self._conn, self._transport
            if transport is not None and _idle(conn):
                with contextlib.suppress(SMTPError), anyio.move_on_after(5, shield=True):
                    await self._command(Quit(), "command")
            await self._close()

    async def aclose(self) -> None:
        """Close the connection without QUIT."""
        await self._close()

    # -- connection set-up ---------------------------------------------------------

    async def _ensure_connected(self) -> None:
        if self.is_connected:
            return
        await self._close()
        try:
            with self._total_deadline():
                await self._open()
        except BaseException:
            await self._close()
            raise

    async def _open(self) -> None:
        mode = self.tls_mode
        self._transcript = []
        self.messages_sent = 0
        self._clock = loop_clock()
        self.connected_at = self._clock()
        with self._phase("connect"):
            if self._transport_factory is not None:
                transport = await self._transport_factory()
            elif self._unix_socket is not None:
                transport = await connect_unix(self._unix_socket)
            else:
                transport = await connect_tcp(self.host, self.port, local_host=self._source_address)
        self._transport = transport
        if self.local_hostname is None:
            self.local_hostname = ehlo_name(transport.local_ip)
        if mode is TLSMode.IMPLICIT:
            await self._start_tls()
        self._conn = ClientConnection(
            encrypted=mode is TLSMode.IMPLICIT,
            allow_cleartext_auth=self.allow_cleartext_auth,
            # Every body is line-checked by the message layer (BodyChecker, same LineLimit)
            # before or while it is sent, with a MessageError naming the line; checking
            # again in the core's encoder would double the scan for nothing.
            max_data_line=None,
        )
        greeting = await self._read_reply("greeting")
        if not greeting.is_positive:
            raise ReplyError.from_reply(greeting, f"server refused the session: {greeting}")
        await self._hello()
        if mode is TLSMode.STARTTLS:
            await self._starttls()
        if self._auth is not None:
            await self._authenticate(self._auth)

    async def _hello(self) -> None:
        assert self._conn is not None
        name = self.local_hostname or "[127.0.0.1]"
        reply = await self._command(Ehlo(name), "command")
        starttls_pending = self.tls_mode is TLSMode.STARTTLS and not self._conn.encrypted
        if reply.code in (500, 502) and not starttls_pending:
            # RFC 5321 3.2: fall back to HELO for pre-ESMTP servers. Not before STARTTLS:
            # a HELO session has no extensions, so it could never be upgraded.
            reply = await self._command(Helo(name), "command")
        if not reply.is_positive:
            raise ReplyError.from_reply(reply)

    async def _start_tls(self) -> None:
        assert self._transport is not None
        context = self._ssl_context or default_ssl_context()
        with self._phase("tls"):
            await self._transport.start_tls(context, self.server_hostname)
        info = self._transport.tls_info
        if info is not None:
            logger.debug("TLS established: %s %s", info.version, info.cipher)

    async def _starttls(self) -> None:
        conn = self._conn
        assert conn is not None
        if not conn.extensions.starttls:
            raise StartTLSUnavailableError(
                f"{self.host}:{self.port} does not offer STARTTLS; refusing to continue "
                "without encryption (RFC 8314). Nothing else was sent"
            )
        reply = await self._command(StartTLS(), "command")
        if reply.code != 220:
            raise StartTLSUnavailableError(
                f"the server refused STARTTLS ({reply}); refusing to continue without encryption"
            )
        await self._start_tls()
        conn.start_tls_done()
        await self._hello()

    # -- authentication ------------------------------------------------------------

    async def _authenticate(self, authenticator: Authenticator) -> None:
        conn = self._conn
        assert conn is not None and self._transport is not None
        if not conn.encrypted and not self.allow_cleartext_auth:
            raise CleartextAuthError(
                "refusing to send credentials over an unencrypted connection; use TLS, or "
                "pass allow_cleartext_auth=True if you really mean it"
            )
        offered = conn.extensions.auth
        if not offered:
            raise NoCompatibleMechanismError(
                f"credentials were given but {self.host} offers no AUTH mechanism"
            )
        info = self._transport.tls_info
        channel = ChannelInfo(
            encrypted=conn.encrypted,
            tls_server_end_point=_channel_binding(info),
            server_hostname=self.server_hostname,
            server_mechanisms=offered,
        )
        try:
            name = select_mechanism(offered, authenticator, channel=channel)
        except NoCompatibleMechanism as exc:
            raise NoCompatibleMechanismError(str(exc)) from None
        renew = False
        while True:
            try:
                mechanism = await authenticator.start(name, channel, renew=renew)
            except SASLError as exc:  # e.g. credentials that SASLprep refuses
                raise AuthenticationError(f"cannot authenticate with {name}: {exc}") from None
            reply = await self._auth_exchange(name, mechanism)
            if reply.is_positive:
                self.authenticated_mechanism = name
                return
            if authenticator.can_renew and not renew and reply.code in (454, 535):
                renew = True  # an expired OAuth token: ask the provider once for a new one
                continue
            raise AuthenticationError(f"authentication with {name} failed: {reply}", reply)

    async def _auth_exchange(self, name: str, mechanism: Mechanism) -> Reply:
        """Run one SASL exchange (RFC 4954 4); return the server's final reply."""
        conn = self._conn
        assert conn is not None
        initial = mechanism.initial_response()
        held_back = None
        if initial is not None and 4 * (len(initial) + 2) // 3 + len(name) + 8 > MAX_AUTH_LINE:
            held_back, initial = initial, None  # too long for the AUTH line: send it at 334
        # SCRAM's PBKDF2 may take long (a server picks the iteration count): not on the loop.
        slow = name.startswith("SCRAM-")
        try:
            reply = await self._command(Auth(name, initial), "command")
            while reply.code == 334:
                challenge = conn.auth_challenge(reply)
                try:
                    if held_back is not None:
                        response, held_back = held_back, None
                    elif slow:
                        response = await anyio.to_thread.run_sync(mechanism.respond, challenge)
                    else:
                        response = mechanism.respond(challenge)
                except SASLError as exc:
                    cancel = await self._command(AuthCancel(), "command")
                    raise AuthenticationError(
                        f"authentication with {name} aborted: {exc}", cancel
                    ) from None
                reply = await self._command(AuthResponse(response), "command")
            if reply.is_positive:
                mechanism.success()
        except SASLError as exc:
            # The server claimed success without proving it knows the password (SCRAM).
            await self._close()
            raise AuthenticationError(f"authentication with {name} failed: {exc}") from None
        except RemoteProtocolError as exc:
            raise ProtocolViolationError(f"{self.host}: {exc}") from None
        return reply

    # -- transactions --------------------------------------------------------------

    async def _send_prepared(self, msg: PreparedMessage, dsn: DSN | None) -> SendResult:
        mail, rcpts = self._envelope(msg, dsn)
        return await self._run_transaction(mail, rcpts, msg.data)

    async def _run_transaction(self, mail: Mail, rcpts: list[Rcpt], body: Body) -> SendResult:
        self._transcript = []
        try:
            return await self._transaction(mail, rcpts, body)
        except BaseException:
            if not _idle(self._conn):
                await self._close()  # half a transaction on the wire: nobody may reuse it
            raise

    def _binary_ok(self) -> bool:
        """Whether content that is not valid text may go as BODY=BINARYMIME (RFC 3030 3)."""
        ext = self.extensions
        return self.use_chunking and ext.chunking and ext.binarymime

    def _envelope(
        self,
        msg: PreparedMessage,
        dsn: DSN | None,
        *,
        size: int | None = -1,
        eightbit: bool | None = None,
    ) -> tuple[Mail, list[Rcpt]]:
        """MAIL and RCPT commands for a prepared message, checked against this server.

        ``size`` and ``eightbit`` default to what ``msg.data`` says (streams pass their own).
        """
        size = len(msg.data) if size == -1 else size
        eightbit = msg.eightbit if eightbit is None else eightbit
        conn = self._conn
        assert conn is not None
        ext = conn.extensions
        if self.tls_mode is not TLSMode.INSECURE_CLEARTEXT and not conn.encrypted:
            raise SecurityPolicyError("refusing to send mail over an unencrypted connection")
        if ext.size and size is not None and size > ext.size:
            raise MessageError(
                f"the message is {size} octets; the server accepts at most {ext.size} (RFC 1870)"
            )
        if dsn is not None and not ext.dsn:
            raise MessageError("DSN options were given but the server does not offer DSN")
        mail = Mail(
            msg.sender,
            size=size if ext.size is not None else None,
            body=_body_type(msg.binary, eightbit and ext.eightbitmime),
            smtputf8=msg.smtputf8,
            ret=dsn.ret if dsn else None,
            envid=dsn.envid if dsn else None,
        )
        rcpts = [
            Rcpt(r, notify=dsn.notify if dsn else (), orcpt=r if dsn and dsn.orcpt else None)
            for r in msg.recipients
        ]
        return mail, rcpts

    async def _transaction(self, mail: Mail, rcpts: list[Rcpt], body: Body) -> SendResult:
        conn = self._conn
        assert conn is not None
        ext = conn.extensions
        bdat = self.use_chunking and ext.chunking  # always true for BINARYMIME, see _binary_ok
        envelope: list[Command] = [mail, *rcpts]
        inline = bdat and ext.pipelining and isinstance(body, bytes) and len(body) <= INLINE_BODY
        if inline:
            assert isinstance(body, bytes)
            envelope.append(Bdat(body, last=True))
        elif not bdat:
            envelope.append(Data())
        replies = await self._exchange(envelope, data_sent=inline)
        pending = Pending(0, mail, rcpts, b"", envelope, replies)
        accepted, refused, error = envelope_outcome(pending)
        if error is not None:
            if not bdat and replies[-1].code == 354:
                await self._finish_body(b"", accepted=())  # RFC 2920 3.1: close DATA
            await self._reset_after_failure()
            raise error
        if inline:
            final = replies[-1]
        elif bdat:
            final = await self._send_bdatchunks(chunks(body), accepted)
        else:
            data_reply = replies[-1]
            if data_reply.code != 354:
                await self._reset_after_failure()
                raise ReplyError.from_reply(data_reply, f"DATA refused: {data_reply}")
            final = await self._finish_body(body, accepted)
        if not final.is_positive:
            raise ReplyError.from_reply(final, f"message refused: {final}")
        self.messages_sent += 1
        return SendResult(mail.sender, accepted, refused, final, Transcript(self._transcript))

    async def _exchange(self, commands: list[Command], *, data_sent: bool) -> list[Reply]:
        """Send commands (one write when pipelining) and read one reply for each."""
        conn = self._conn
        assert conn is not None
        replies: list[Reply] = []
        if conn.extensions.pipelining:
            wire = b"".join(self._render(cmd) for cmd in commands)
            await self._write(wire, "data" if data_sent else "command")
            if not data_sent:
                return [await self._read_reply("command") for _ in commands]
            for _ in commands:
                replies.append(await self._final_reply(accepted_recipients(replies)))
            return replies
        for cmd in commands:
            reply = await self._command(cmd, "command")
            replies.append(reply)
            if isinstance(cmd, Mail) and not reply.is_positive:
                break
            last_rcpt = cmd is commands[-2] and isinstance(commands[-1], Data)
            if last_rcpt and not any(r.is_positive for r in replies[1:]):
                break  # nobody accepted: do not even send DATA
        return replies + [_SKIPPED] * (len(commands) - len(replies))

    async def _final_reply(self, accepted: tuple[str, ...]) -> Reply:
        """The reply to a complete message; a failure before it is OutcomeUnknownError."""
        try:
            return await self._read_reply("final_reply")
        except (ConnectError, TimeoutError, ProtocolViolationError) as exc:
            raise OutcomeUnknownError(
                f"the connection failed after the whole message was sent and before the "
                f"server's final reply ({exc}); the message may or may not have been queued",
                accepted=accepted,
            ) from exc

    async def _finish_body(self, body: Body, accepted: tuple[str, ...]) -> Reply:
        # Each chunk is written when the next one is known, so the last one shares its
        # write with the end-of-data marker (one segment for a small message).
        if isinstance(body, bytes) and len(body) <= CHUNK:  # the usual case, no iterator
            data = self._render(MessageData(body)) if body else b""
            await self._write(data + self._render(EndOfData()), "data")
            return await self._final_reply(accepted)
        pending = b""
        async for chunk in chunks(body):
            if pending:
                await self._write(pending, "data")
            pending = self._render(MessageData(chunk))
        await self._write(pending + self._render(EndOfData()), "data")
        return await self._final_reply(accepted)

    async def _send_bdatchunks(
        self, chunks: AsyncIterator[bytes], accepted: tuple[str, ...]
    ) -> Reply:
        """BDAT each chunk, waiting for each reply (backpressure); LAST on the final one."""
        chunk = await anext(chunks, b"")
        while True:
            following = await anext(chunks, None)
            if following is None:
                break
            reply = await self._command(Bdat(chunk), "data")
            if not reply.is_positive:
                await self._reset_after_failure()
                return reply
            chunk = following
        await self._write(self._render(Bdat(chunk, last=True)), "data")
        return await self._final_reply(accepted)

    async def _reset_after_failure(self) -> None:
        """RSET so the next transaction starts clean (RFC 5321 4.1.1.5)."""
        if not _idle(self._conn):
            return
        try:
            await self._expect_ok(Rset())
        except SMTPError:
            await self._close()

    # -- I/O primitives ------------------------------------------------------------

    def _render(self, command: Command) -> bytes:
        assert self._conn is not None
        try:
            data = self._conn.send(command)
        except LocalProtocolError as exc:
            raise SMTPError(f"internal protocol misuse: {exc}") from exc
        self._wire(command)
        return data

    async def _command(self, command: Command, phase: Phase) -> Reply:
        await self._write(self._render(command), phase)
        return await self._read_reply(phase)

    async def _expect_ok(self, command: Command) -> Reply:
        reply = await self._command(command, "command")
        if not reply.is_positive:
            raise ReplyError.from_reply(reply)
        return reply

    async def _write(self, data: bytes, phase: Phase) -> None:
        transport = self._transport
        if transport is None:
            raise ConnectionLostError("not connected")
        limit: float | None = getattr(self.timeouts, phase)
        deadline = None if limit is None else self._clock() + limit
        try:
            await transport.send_by(data, deadline)
        except builtins.TimeoutError as exc:
            raise self._timed_out(exc, phase, limit) from None

    async def _read_reply(self, phase: Phase) -> Reply:
        """The next reply; the phase's time limit runs from the first wait for bytes.

        Replies already buffered (pipelined replies usually arrive together) come back
        without waiting; waits carry a deadline to the transport, which on asyncio costs a
        timer handle rather than a cancel scope (this is the per-message hot path).
        """
        conn, transport = self._conn, self._transport
        assert conn is not None
        assert transport is not None
        deadline: float | None = None
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as exc:
                raise ProtocolViolationError(f"{self.host}: {exc}") from None
            if event is NEED_DATA:
                # The phase's limit runs from the first wait for this reply's bytes.
                limit: float | None = getattr(self.timeouts, phase)
                if deadline is None and limit is not None:
                    deadline = self._clock() + limit
                try:
                    data = await transport.receive_by(deadline)
                except builtins.TimeoutError as exc:
                    raise self._timed_out(exc, phase, limit) from None
                conn.receive_data(data)
                continue
            if event is CONNECTION_CLOSED:
                raise ConnectionLostError(f"{self.host} closed the connection")
            assert isinstance(event, Reply)
            self._wire(event)
            if event.code == 421:
                raise ReplyError.from_reply(event, f"the server is closing the connection: {event}")
            return event

    @contextlib.contextmanager
    def _phase(self, phase: Phase) -> Iterator[None]:
        limit: float | None = getattr(self.timeouts, phase)
        if limit is None:
            yield
            return
        with self._timeout_error(phase, limit), anyio.fail_after(limit):
            yield

    @contextlib.contextmanager
    def _timeout_error(self, phase: str, limit: float | None) -> Iterator[None]:
        """Turn anyio's TimeoutError into ours, naming the phase (inner scopes win)."""
        try:
            yield
        except builtins.TimeoutError as exc:
            raise self._timed_out(exc, phase, limit) from None

    def _timed_out(
        self, exc: builtins.TimeoutError, phase: str, limit: float | None
    ) -> builtins.TimeoutError:
        """Our TimeoutError naming the phase, for the builtin one a deadline raised.

        One that is already ours (an inner phase's) is returned as it is. (Called from
        plain ``try`` blocks on the per-message path, where a context manager costs more.)
        """
        if isinstance(exc, TimeoutError):
            return exc
        where = f" with {self.host}:{self.port}" if phase != "total" else ""
        return TimeoutError(
            f"{phase.replace('_', ' ')}{where} timed out after {limit} s",
            phase=phase,
            timeout=limit,
        )

    def _total_deadline(self) -> contextlib.AbstractContextManager[object]:
        total = self.timeouts.total
        if total is None:
            return _NO_LIMIT  # the usual case, once per message: no generator, no scope
        return self._total_scope(total)

    @contextlib.contextmanager
    def _total_scope(self, total: float) -> Iterator[None]:
        with self._timeout_error("total", total), anyio.fail_after(total):
            yield

    def _wire(self, item: Command | Reply) -> None:
        """Record a command sent or a reply received: transcript and DEBUG log.

        The transcript keeps the object and renders its text only when read; the log
        formats only when DEBUG is on. (Secrets: ``Command.log_line()`` redacts them.)
        """
        if self._recording:
            if isinstance(item, MessageData | Bdat | Auth | AuthResponse):
                # Rendered now: these hold a chunk of the body (which the transcript must
                # not keep alive) or a secret (which only its redacted line may outlive).
                self._transcript.append(TranscriptLine("C", item.log_line()))
            else:
                self._transcript.append(item)
        if logger.isEnabledFor(logging.DEBUG):
            for line in lines_of(item):
                logger.debug("%s %s: %s", self.host, line.direction, line.text)

    async def _close(self) -> None:
        transport, self._transport = self._transport, None
        self._conn = None
        self.authenticated_mechanism = None
        self.connected_at = None
        if transport is not None:
            await transport.aclose()


_SKIPPED = Reply(0, ("not sent",))
_NO_LIMIT = contextlib.nullcontext()


def _body_type(binary: bool, eightbit: bool) -> Literal["BINARYMIME", "8BITMIME"] | None:
    """The MAIL BODY parameter (RFC 3030 3, RFC 6152 2); None for plain 7-bit."""
    if binary:
        return "BINARYMIME"
    return "8BITMIME" if eightbit else None


def _idle(conn: ClientConnection | None) -> bool:
    """Ready for a new transaction: READY with no reply outstanding."""
    return conn is not None and conn.state is State.READY and not conn.in_flight


def _channel_binding(info: TLSInfo | None) -> bytes | None:
    """RFC 5929 tls-server-end-point data for SCRAM-*-PLUS, when the certificate allows."""
    if info is None or not info.peer_certificate:
        return None
    try:
        return tls_server_end_point(info.peer_certificate)
    except ValueError:
        return None


async def send(
    message: Message,
    *,
    host: str,
    port: int,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    dsn: DSN | None = None,
    **options: Unpack[ClientOptions],
) -> SendResult:
    """Connect, send one ``EmailMessage``, QUIT.

    ``options`` are the keywords of :class:`SMTPClient` (``tls``, ``username``,
    ``password``, ``auth``, ``ssl_context``, ``timeout``, ...).
    """
    async with SMTPClient(host, port, **options) as client:
        return await client.send_message(message, sender=sender, recipients=recipients, dsn=dsn)
