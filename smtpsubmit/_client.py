"""SMTPClient and send(): the public API of one submission session.

Theory of operation:

- Policy first, before any I/O: the connection keywords are checked and the TLS mode is
  chosen (RFC 8314) when the client is made (:class:`._handshake.Settings`); a message is
  checked and serialised before its first command is written (:func:`._transaction.build`).
- The client owns at most one :class:`._session.Session` at a time, opened by
  :func:`._handshake.open_session` (connect, TLS, EHLO, STARTTLS, AUTH) when needed.
  Sends are serialised by a :class:`._gate.Gate`; a session left mid-transaction by a
  failure or a cancellation is closed and the next call opens a new one.
- Sending is the transaction layer's: :func:`._transaction.send_one` for one message,
  :func:`._batch.send_many` for a batch. This module only builds the transactions and
  hands the outcomes back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import replace
from email.message import Message
from types import TracebackType
from typing import BinaryIO

import anyio

from ._batch import send_many
from ._delivery import Throttle, batch_entries, deliver, deliver_batch
from ._errors import SMTPError
from ._gate import Gate
from ._handshake import Settings, open_session
from ._message import DSN, check_envelope, message_envelope
from ._options import ClientOptions, Unpack
from ._results import SendResult
from ._session import Session, total_deadline
from ._signing import refuse_stream
from ._transaction import (
    BuildOptions,
    Entry,
    Outcome,
    Transaction,
    build,
    build_all,
    build_stream,
    send_one,
    slot,
)
from .policy import Timeouts, TLSMode
from .protocol import Extensions, Noop, Quit, Reply
from .transport import TLSInfo

__all__ = ["DSN", "SMTPClient", "send"]


class SMTPClient:
    """A submission session to one server; several messages reuse the connection.

    ``tls=None`` picks the mode from the port (465 implicit TLS, 587 STARTTLS, anything else
    must be explicit; RFC 8314). Credentials are ``username``/``password`` (both empty or
    both ``None``: no authentication; one without the other is refused) or an
    :class:`~smtpsubmit.auth.Authenticator` in ``auth`` (OAuth2, custom mechanisms).
    ``ssl_context`` replaces the default (certifi CAs, hostname check, TLS 1.2+).
    ``timeout`` is a :class:`Timeouts` or seconds for every phase. ``transport`` lets you
    bring your own stream (a proxy, a test double): an async callable returning a connected
    :class:`~smtpsubmit.transport.Transport`. ``unix_socket`` connects to a local socket
    path instead of ``host:port``, and ``source_address`` picks the local IP to connect
    from. ``local_hostname`` is the EHLO name; by default the host name if it is fully
    qualified, else our address literal. ``cafile`` trusts only the CAs in that PEM file (a
    private CA) instead of certifi's.

    ``retry`` (a :class:`RetryPolicy`; default ``None``, one attempt) tries a message again
    after a transient failure, only ever to the recipients refused with 4xx, never after an
    unknown outcome unless asked. One attempt is the default because a call that may wait
    minutes between tries should be something the caller chose; a task queue often has its
    own retries. ``rate_limit`` (a :class:`RateLimit`) paces messages and recipients and
    slows down when the server says it is sending too fast.

    ``proxy`` connects through a proxy: ``"socks5://user:password@host:1080"``,
    ``"socks5h://..."`` (the proxy resolves the server's name), ``"socks4://..."`` (SOCKS
    needs the ``smtpsubmit[socks]`` extra) or ``"http://..."`` (HTTP CONNECT). TLS is
    unchanged: it runs end to end with the mail server and is checked against the
    server's name, never the proxy's; the proxy's password is masked wherever the URL is
    shown. A non-ASCII ``host`` is used as its A-label (IDNA 2008) for the address
    lookup, SNI and the certificate check alike (``host`` returns it).

    ``signer`` (a :class:`~smtpsubmit.dkim.Signer` such as
    :class:`~smtpsubmit.dkim.DKIMSigner`) signs each message as it goes on the wire: after
    serialisation for this server and any 7-bit re-encoding, so the signature covers the
    exact octets sent. A streamed body cannot be signed (``sendmail`` refuses it).

    Use it as ``async with SMTPClient(...) as client:``; it is safe to share between tasks
    (sends are serialised), though a pool is better for concurrency.
    """

    def __init__(self, host: str, port: int, **options: Unpack[ClientOptions]) -> None:
        # The keywords are spelled out, checked and documented once: Settings.from_options.
        self._settings = Settings.from_options(host, port, **options)
        rate_limit = self._settings.rate_limit
        self._throttle = Throttle(rate_limit) if rate_limit is not None else None
        self._session: Session | None = None
        self._lock = Gate()  # free when uncontended, see _gate.py
        #: The EHLO name; when not given, chosen once connected (see ``policy.ehlo_name``).
        self.local_hostname = self._settings.local_hostname

    def __repr__(self) -> str:
        session = self._session
        state = session.conn.state.name if session and not session.closed else "DISCONNECTED"
        return (
            f"<SMTPClient {self.host}:{self.port} tls={self.tls_mode.value} "
            f"auth={self._settings.auth!r} state={state}>"
        )

    # -- what it is connected to -----------------------------------------------------

    @property
    def host(self) -> str:
        """The server's host name or address."""
        return self._settings.host

    @property
    def port(self) -> int:
        """The server's port."""
        return self._settings.port

    @property
    def tls_mode(self) -> TLSMode:
        """How the connection is protected, as chosen from the port or given (RFC 8314)."""
        return self._settings.tls_mode

    @property
    def server_hostname(self) -> str:
        """The name the server's certificate is checked against (``host`` by default)."""
        return self._settings.server_hostname

    @property
    def allow_cleartext_auth(self) -> bool:
        """Whether AUTH may cross an unencrypted channel (an explicit opt-in)."""
        return self._settings.allow_cleartext_auth

    @property
    def timeouts(self) -> Timeouts:
        """The per-phase time limits."""
        return self._settings.timeouts

    @property
    def is_connected(self) -> bool:
        """True when a session is open and ready for a transaction."""
        return self._session is not None and self._session.idle

    @property
    def extensions(self) -> Extensions:
        """What the server advertised (after TLS, when TLS is used)."""
        session = self._session
        return session.conn.extensions if session is not None else Extensions()

    @property
    def tls_info(self) -> TLSInfo | None:
        """TLS version, cipher and certificate of the current connection, if encrypted."""
        session = self._session
        return session.tls_info if session is not None and not session.closed else None

    @property
    def authenticated_mechanism(self) -> str | None:
        """The SASL mechanism that authenticated the current connection, if any."""
        session = self._session
        return session.authenticated_mechanism if self.is_connected and session else None

    @property
    def messages_sent(self) -> int:
        """Messages accepted on the current connection."""
        return self._session.messages_sent if self._session is not None else 0

    @property
    def connected_at(self) -> float | None:
        """When the current connection was opened (the event loop's clock)."""
        return self._session.opened_at if self.is_connected and self._session else None

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

    async def connect(self) -> None:
        """Connect, greet, secure and authenticate; a no-op when already connected."""
        async with self._lock:
            await self._ready()

    async def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send an ``email.message.EmailMessage``; the envelope comes from its headers.

        ``sender``/``recipients`` override the envelope. Bcc is never transmitted.
        Raises :class:`RecipientsRefusedError` when nobody was accepted; a partial refusal
        is reported in ``SendResult.refused``. ``requiretls`` asks that the message travel
        over TLS all the way (RFC 8689); it is refused when the server does not offer it.
        """
        envelope = message_envelope(message, sender, recipients)  # checked before any I/O
        entry = Entry(message, sender, recipients, dsn, envelope=envelope, requiretls=requiretls)
        return await self._deliver(entry, envelope.recipients)

    async def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes | BinaryIO | AsyncIterable[bytes],
        *,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send raw RFC 5322 content to an explicit envelope (``sender=""``: null path).

        ``data`` is ``bytes``, a binary file object or an async iterable of ``bytes``; files
        and iterables are streamed in chunks, so memory stays bounded by the chunk size
        whatever the message size (their lines are checked as they go; a problem found
        midway aborts the transaction and closes the connection, so nothing half-sent is
        delivered). A streamed body can be read once, so it gets one attempt whatever the
        retry policy. On a client with a ``signer`` a streamed body is refused with
        :class:`MessageError` before any I/O: signing needs the whole message first.
        """
        if isinstance(data, str):
            raise TypeError("data must be bytes; encode text first or use send_message()")
        check_envelope(sender, recipients)
        rcpts = (recipients,) if isinstance(recipients, str) else tuple(recipients)
        if isinstance(data, bytes | bytearray | memoryview):
            entry = Entry((sender, recipients, bytes(data)), dsn=dsn, requiretls=requiretls)
            return await self._deliver(entry, rcpts)
        if self._settings.signer is not None:
            raise refuse_stream()
        entry = Entry((sender, recipients, b""), dsn=dsn, requiretls=requiretls)
        return await self._deliver(entry, rcpts, stream=data)

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
        if window < 1:
            raise ValueError("window must be at least 1")
        entries, refused_early = batch_entries(items, dsn)

        async def send_round(round_entries: list[Entry]) -> list[Outcome]:
            results: list[Outcome | None] = []
            with_sinks = [replace(e, sink=slot(results)) for e in round_entries]
            async with self._lock:
                session = await self._ready()
                transactions = build_all(with_sinks, session, **self._policy())
                try:
                    await send_many(
                        self._ready, transactions, window, chunking=self._settings.chunking
                    )
                finally:
                    if self._session is not None and not self._session.idle:
                        await self._close()
            return [r if r is not None else SMTPError("not sent") for r in results]

        with self._total_deadline():
            sent = iter(
                await deliver_batch(
                    entries,
                    send_round,
                    self._settings.retry,
                    self._throttle,
                    server=(self.host, self.port),
                )
            )
        total = len(entries) + len(refused_early)
        return [refused_early[i] if i in refused_early else next(sent) for i in range(total)]

    async def noop(self) -> Reply:
        """NOOP: check the session is alive (RFC 5321 4.1.1.9)."""
        async with self._lock:
            session = await self._ready()
            try:
                return await session.expect_ok(Noop())
            except BaseException:
                if not session.idle:
                    await self._close()
                raise

    async def quit(self) -> None:
        """Say QUIT politely and close; never raises."""
        async with self._lock:
            session = self._session
            if session is not None and session.idle:
                with contextlib.suppress(SMTPError), anyio.move_on_after(5, shield=True):
                    await session.command(Quit())
            await self._close()

    async def aclose(self) -> None:
        """Close the connection without QUIT."""
        await self._close()

    # -- internals -----------------------------------------------------------------

    def _policy(self) -> BuildOptions:
        """The keywords that build a transaction on this client's terms."""
        settings = self._settings
        return {
            "chunking": settings.chunking,
            "cleartext": settings.cleartext,
            "signer": settings.signer,
        }

    async def _deliver(
        self,
        entry: Entry,
        recipients: tuple[str, ...],
        stream: BinaryIO | AsyncIterable[bytes] | None = None,
    ) -> SendResult:
        """Send ``entry`` under the rate limit and the retry policy (a stream, read once,
        gets one try); the (merged) result, or the last try's error."""

        async def send_once(entry: Entry) -> Outcome:
            try:
                async with self._lock:
                    session = await self._ready()
                    if stream is None:
                        txn = build(entry, session, **self._policy())
                    else:
                        assert not isinstance(entry.item, Message)
                        sender, rcpts, _ = entry.item
                        cleartext = self._settings.cleartext
                        txn = build_stream(
                            sender, rcpts, stream, entry, session, cleartext=cleartext
                        )
                    return await self._send(session, txn)
            except SMTPError as exc:
                return exc

        retry = self._settings.retry if stream is None else None
        with self._total_deadline():
            return await deliver(
                entry, recipients, send_once, retry, self._throttle, server=(self.host, self.port)
            )

    async def _ready(self) -> Session:
        """The open session, or a new one (the old one closed first)."""
        session = self._session
        if session is not None and session.idle:
            return session
        await self._close()
        with self._total_deadline():
            session = await open_session(self._settings)
        self._session = session
        if self.local_hostname is None:
            self.local_hostname = session.ehlo_name
        return session

    async def _send(self, session: Session, txn: Transaction) -> SendResult:
        bdat = self._settings.chunking and session.conn.extensions.chunking
        try:
            return await send_one(session, txn, bdat=bdat)
        except BaseException:
            if not session.idle:
                await self._close()  # half a transaction on the wire: nobody may reuse it
            raise

    def _total_deadline(self) -> contextlib.AbstractContextManager[object]:
        return total_deadline(self._settings.timeouts, self.host, self.port)

    async def _close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


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
