"""One SMTP connection on the fake server: the command loop and the transaction state.

Theory of operation:

Rule 1: one coroutine per connection reads one command, replies, then reads the next. Replies
therefore leave in command order however the client pipelines (RFC 2920 3.1).
Rule 2: every target (command, greeting, end of data, TLS handshake) asks the fault script
exactly once per occurrence, before doing anything else, so ``nth`` is predictable.
Rule 3: the session state lives in this object only; ``_reset_session`` (after STARTTLS,
RFC 3207 4.2) and ``_reset_transaction`` (RSET, EHLO, end of data) are the only resets.
Rule 4: a message is stored before its final reply is sent, so a client that has read
``250`` always finds it in ``server.messages``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Literal, NoReturn

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute, TLSStream

from . import _sasl
from ._capture import CapturedMessage, MessageStore, Recipient, TranscriptEntry
from ._codec import (
    MAX_AUTH_LINE,
    MAX_COMMAND_LINE,
    CommandSyntaxError,
    MailboxArgs,
    parse_mailbox_args,
    render_reply,
    split_command,
)
from ._config import Extension, Mode, ServerConfig
from ._faults import Fault, FaultKind, FaultScript
from ._params import Advertised, ParamError, check_mail_params, check_rcpt_params
from ._reader import ConnectionClosed, Reader
from ._tls import ServerCertificates

__all__ = ["ServerContext", "Session"]

_TLS_HANDSHAKE_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServerContext:
    """What all sessions of one server share."""

    config: ServerConfig
    certificates: ServerCertificates
    faults: FaultScript
    store: MessageStore
    #: Unexpected exceptions raised inside sessions.
    errors: list[BaseException] = field(default_factory=list)


class _Close(Exception):
    """Unwind the session and close the connection."""


class Session:
    """The server side of one SMTP connection."""

    def __init__(self, ctx: ServerContext, stream: ByteStream) -> None:
        self._ctx = ctx
        self._cfg = ctx.config
        self._stream = stream
        self._reader = Reader(stream)
        self._transcript = ctx.store.new_transcript()
        remote = stream.extra(SocketAttribute.remote_address, None)
        self._peer: tuple[str, int] = (
            (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else (str(remote), 0)
        )
        self._tls = False
        self._tls_version: str | None = None
        self._channel_binding: bytes | None = None  # RFC 5929 4, known once TLS is up
        self._reject_all = False
        self._reset_session()
        self._handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "EHLO": self._ehlo,
            "HELO": self._helo,
            "STARTTLS": self._starttls,
            "AUTH": self._auth,
            "MAIL": self._mail,
            "RCPT": self._rcpt,
            "DATA": self._data,
            "RSET": self._rset,
            "NOOP": self._noop,
            "VRFY": self._vrfy,
            "QUIT": self._quit,
            "HELP": self._help,
        }
        if Extension.CHUNKING in self._cfg.extensions:
            self._handlers["BDAT"] = self._bdat

    # -- state ----------------------------------------------------------------------------

    def _reset_session(self) -> None:
        self._greeting: Literal["EHLO", "HELO"] | None = None
        self._client_name = ""
        self._auth_identity: str | None = None
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self._mail_from: MailboxArgs | None = None
        self._recipients: list[Recipient] = []
        self._chunks = bytearray()
        self._bdat_started = False

    def _has(self, ext: Extension) -> bool:
        return ext in self._cfg.extensions

    def _advertised(self) -> Advertised:
        return Advertised(
            extensions=self._cfg.extensions if self._greeting == "EHLO" else frozenset(),
            tls=self._tls,
            max_message_size=self._cfg.max_message_size,
        )

    @property
    def _enhanced(self) -> bool:
        # RFC 2034 3: enhanced codes once the extension has been advertised (EHLO only).
        return self._greeting == "EHLO" and self._has(Extension.ENHANCEDSTATUSCODES)

    # -- I/O ------------------------------------------------------------------------------

    def _log(self, direction: Literal["client", "server", "event"], line: str) -> None:
        if len(line) > 300:
            line = f"{line[:300]}... ({len(line)} characters)"
        self._transcript.append(TranscriptEntry(direction, line))

    async def _send(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").split("\r\n")[:-1] or [repr(data)]:
            self._log("server", line)
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise _Close from exc

    def _render(self, code: int, text: str | list[str], enhanced: str | None = None) -> bytes:
        return render_reply(code, text, enhanced if self._enhanced else None)

    async def _reply(self, code: int, text: str | list[str], enhanced: str | None = None) -> None:
        await self._send(self._render(code, text, enhanced))

    def _close(self, why: str) -> NoReturn:
        self._log("event", f"closing connection: {why}")
        raise _Close

    async def _apply(self, faults: list[Fault]) -> bool:
        """Apply delays, then a replacing fault; True when the normal reply must not follow."""
        for fault in faults:
            if fault.kind is FaultKind.DELAY:
                self._log("event", f"fault: delaying {fault.seconds} s")
                await anyio.sleep(fault.seconds)
        for fault in faults:
            if fault.kind is FaultKind.REPLY:
                await self._reply(fault.code, fault.text, fault.enhanced)
                if fault.code == 421:
                    self._close("421 sent")  # RFC 5321 3.8
                return True
            if fault.kind is FaultKind.DISCONNECT:
                self._close(f"fault: disconnect on {fault.target}")
            if fault.kind is FaultKind.RAW:
                await self._send(fault.data)
                return True
        return False

    # -- main loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until QUIT, a disconnect or a fault ends it."""
        try:
            await self._serve()
        except anyio.get_cancelled_exc_class():
            # The server is stopping: no goodbye, no waiting for the peer.
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(self._stream)
            raise
        except Exception as exc:
            # A bug in the fake server: keep it for ``server.errors`` (the pytest fixtures fail
            # the test on it) before the client can see the connection go away.
            self._ctx.errors.append(exc)
            self._log("event", f"internal error: {exc!r}")
            with contextlib.suppress(Exception):
                await self._reply(421, "Internal error in the fake server", "4.3.0")
        # Over TLS, aclose() sends close_notify and waits for the peer's (RFC 8446 6.1),
        # which well-behaved clients (anyio's TLSStream included) expect; the deadline keeps
        # a peer that never answers from holding the session open.
        with anyio.move_on_after(_CLOSE_TIMEOUT):
            # The peer may already be gone; there is nothing left to tell it.
            with contextlib.suppress(OSError, ssl.SSLError, anyio.BrokenResourceError):
                await self._stream.aclose()

    async def _serve(self) -> None:
        try:
            if self._cfg.mode is Mode.IMPLICIT_TLS:
                await self._tls_handshake()
            await self._greet()
            while True:
                await self._one_command()
        except (_Close, ConnectionClosed):
            pass

    async def _greet(self) -> None:
        faults = self._ctx.faults.take("GREETING")
        for fault in faults:
            if fault.kind is FaultKind.REPLY and fault.code >= 400:
                # RFC 5321 3.1: after a 554 greeting, wait for QUIT, answering 503 meanwhile.
                self._reject_all = True
        if not await self._apply(faults):
            await self._reply(220, f"{self._cfg.hostname} ESMTP smtpsubmit fake server")

    async def _one_command(self) -> None:
        raw, too_long = await self._reader.readline(MAX_AUTH_LINE)
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        verb, arg = split_command(line)
        if verb == "AUTH" and " " in arg:
            self._log("client", f"AUTH {arg.split(' ', 1)[0]} <redacted>")
        else:
            self._log("client", line.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        if too_long or (verb != "AUTH" and len(raw) > MAX_COMMAND_LINE):
            # RFC 5321 4.5.3.1.4 (512) and RFC 4954 4 (12288 for AUTH).
            await self._reply(500, "Line too long", "5.5.2")
            return
        if self._reject_all and verb != "QUIT":
            await self._reply(503, "Bad sequence of commands", "5.5.1")
            return
        handler = self._handlers.get(verb)
        if handler is None:
            await self._reply(500, "Command unrecognized", "5.5.2")
            return
        await handler(arg)

    # -- session commands -----------------------------------------------------------------

    async def _ehlo(self, arg: str) -> None:
        faults = self._ctx.faults.take("EHLO")
        if await self._apply(faults):
            return
        if not arg:
            await self._reply(501, "Syntax: EHLO hostname", "5.5.4")
            return
        self._reset_transaction()
        self._greeting = "EHLO"
        self._client_name = arg
        strip = any(f.kind is FaultKind.STRIP_STARTTLS for f in faults)
        lines = [f"{self._cfg.hostname} Hello {arg}", *self._keywords(strip_starttls=strip)]
        await self._send(render_reply(250, lines))

    def _keywords(self, *, strip_starttls: bool) -> list[str]:
        cfg = self._cfg
        words: list[str] = []
        if self._has(Extension.PIPELINING):
            words.append("PIPELINING")
        if self._has(Extension.SIZE):
            words.append(f"SIZE {cfg.max_message_size}" if cfg.max_message_size else "SIZE")
        if self._has(Extension.EIGHTBITMIME):
            words.append("8BITMIME")
        if self._has(Extension.CHUNKING):
            words.append("CHUNKING")
            if self._has(Extension.BINARYMIME):
                words.append("BINARYMIME")  # RFC 3030 3: only together with CHUNKING
        if self._has(Extension.SMTPUTF8):
            words.append("SMTPUTF8")
        if self._has(Extension.DSN):
            words.append("DSN")
        if self._has(Extension.ENHANCEDSTATUSCODES):
            words.append("ENHANCEDSTATUSCODES")
        if self._has(Extension.REQUIRETLS) and self._tls:
            words.append("REQUIRETLS")  # RFC 8689 2: offered only over TLS
        mechanisms = _sasl.offered(cfg.auth_mechanisms, self._channel_binding)
        if (
            self._has(Extension.AUTH)
            and mechanisms
            and (self._tls or cfg.allow_cleartext_auth or cfg.auth_before_tls_advertised)
        ):
            words.append("AUTH " + " ".join(mechanisms))
        if self._starttls_available and not strip_starttls:
            words.append("STARTTLS")
        return words

    @property
    def _starttls_available(self) -> bool:
        return self._cfg.mode is Mode.STARTTLS and self._has(Extension.STARTTLS) and not self._tls

    async def _helo(self, arg: str) -> None:
        if await self._apply(self._ctx.faults.take("HELO")):
            return
        if not arg:
            await self._reply(501, "Syntax: HELO hostname", "5.5.4")
            return
        self._reset_transaction()
        self._greeting = "HELO"
        self._client_name = arg
        await self._reply(250, self._cfg.hostname)  # RFC 5321 4.1.1.1: no extensions

    async def _starttls(self, arg: str) -> None:
        faults = self._ctx.faults.take("STARTTLS")
        if await self._apply(faults):
            return
        if not self._starttls_available:
            if self._tls:
                await self._reply(503, "TLS already active", "5.5.1")
            else:
                await self._reply(502, "Command not implemented", "5.5.1")
            return
        if arg:
            await self._reply(501, "Syntax: STARTTLS", "5.5.4")
            return
        extra = b"".join(f.data for f in faults if f.kind is FaultKind.INJECT_AFTER_STARTTLS)
        if extra:
            self._log("event", "fault: injecting bytes after the STARTTLS reply")
        await self._send(self._render(220, "Ready to start TLS", "2.0.0") + extra)
        # RFC 3207 6: anything the client pipelined after STARTTLS arrived in plaintext and
        # could have been injected by an attacker, so it is thrown away, never executed.
        dropped = self._reader.discard_buffer()
        if dropped:
            self._log("event", f"discarded {dropped} octets sent in plaintext after STARTTLS")
        await self._tls_handshake()
        self._reset_session()  # RFC 3207 4.2: forget everything, expect a new EHLO

    async def _tls_handshake(self) -> None:
        faults = self._ctx.faults.take("TLS")
        kinds = {f.kind for f in faults}
        if FaultKind.PLAINTEXT_ON_TLS_PORT in kinds and self._cfg.mode is Mode.IMPLICIT_TLS:
            self._log("event", "fault: skipping TLS on the implicit TLS port")
            return
        wrong = FaultKind.WRONG_HOST_CERTIFICATE in kinds
        if wrong:
            self._log("event", "fault: presenting a certificate for wrong.example")
        context = self._ctx.certificates.server_ssl_context(wrong_host=wrong)
        try:
            with anyio.fail_after(_TLS_HANDSHAKE_TIMEOUT):
                tls = await TLSStream.wrap(
                    self._stream, server_side=True, ssl_context=context, standard_compatible=True
                )
        except (
            ssl.SSLError,
            OSError,
            TimeoutError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
        ) as exc:
            self._close(f"TLS handshake failed: {exc!r}")
        self._stream = tls
        self._reader.stream = tls
        self._tls = True
        self._tls_version = tls.extra(TLSAttribute.tls_version, None)
        self._channel_binding = _sasl.end_point_binding(self._ctx.certificates, wrong_host=wrong)
        self._log("event", f"TLS established ({self._tls_version})")

    async def _auth(self, arg: str) -> None:
        faults = self._ctx.faults.take("AUTH")
        if await self._apply(faults):
            return
        cfg = self._cfg
        name, _, initial_text = arg.partition(" ")
        if not self._has(Extension.AUTH) or not cfg.auth_mechanisms:
            await self._reply(502, "Command not implemented", "5.5.1")
        elif self._greeting != "EHLO":
            await self._reply(503, "Send EHLO first", "5.5.1")
        elif not name:
            await self._reply(501, "Syntax: AUTH mechanism [initial-response]", "5.5.4")
        elif self._auth_identity is not None:
            await self._reply(503, "Already authenticated", "5.5.1")  # RFC 4954 4
        elif self._mail_from is not None:
            await self._reply(503, "AUTH not permitted during a mail transaction", "5.5.1")
        elif not self._tls and not cfg.allow_cleartext_auth:
            await self._reply(
                538, "Encryption required for requested authentication mechanism", "5.7.11"
            )
        else:
            mech = _sasl.create(
                name,
                cfg.users,
                cfg.oauth_tokens,
                cfg.hostname,
                offered=_sasl.offered(cfg.auth_mechanisms, self._channel_binding),
                channel_binding=self._channel_binding,
                scram_salt=cfg.scram_salt,
                scram_nonce=cfg.scram_nonce,
                faults=faults,
            )
            if mech is None:
                await self._reply(504, "Unrecognized authentication type", "5.5.4")
                return
            await self._sasl_exchange(mech, initial_text.strip())

    async def _sasl_exchange(self, mech: _sasl.Mechanism, initial_text: str) -> None:
        initial: bytes | None = None
        if initial_text:
            # RFC 4954 4: "=" is an empty initial response.
            initial = _b64decode(initial_text) if initial_text != "=" else b""
            if initial is None:
                await self._reply(501, "Cannot decode response", "5.5.2")
                return
        step = mech.start(initial)
        while isinstance(step, _sasl.Challenge):
            await self._send(step.line())
            raw, too_long = await self._reader.readline(MAX_AUTH_LINE)
            text = raw.rstrip(b"\r\n").decode("ascii", "replace").strip()
            self._log("client", "*" if text == "*" else "<redacted>")
            if too_long:
                await self._reply(500, "Authentication exchange line is too long", "5.5.6")
                return
            if text == "*":
                await self._reply(501, "Authentication cancelled", "5.7.0")  # RFC 4954 4
                return
            decoded = _b64decode(text)
            if decoded is None:
                await self._reply(501, "Cannot decode response", "5.5.2")
                return
            step = mech.respond(decoded)
        if isinstance(step, _sasl.Success):
            self._auth_identity = step.identity
            self._log("event", f"authenticated as {step.identity!r}")
            await self._reply(235, "Authentication successful", "2.7.0")
        else:
            await self._reply(step.code, step.text, step.enhanced)

    # -- the mail transaction -------------------------------------------------------------

    async def _mail(self, arg: str) -> None:
        if await self._apply(self._ctx.faults.take("MAIL")):
            return
        cfg = self._cfg
        if self._greeting is None:
            await self._reply(503, "Send HELO/EHLO first", "5.5.1")
            return
        if self._mail_from is not None:
            await self._reply(503, "Nested MAIL command", "5.5.1")
            return
        if cfg.require_tls and not self._tls:
            await self._reply(530, "Must issue a STARTTLS command first", "5.7.0")
            return
        if cfg.require_auth and self._auth_identity is None:
            await self._reply(530, "Authentication required", "5.7.0")  # RFC 4954 6
            return
        limited = self._ctx.faults.rate_limited()
        if limited is not None:
            await self._reply(limited.code, limited.text, limited.enhanced)
            if limited.code == 421:
                self._close("rate limit")
            return
        try:
            args = parse_mailbox_args(arg, "FROM:")
            params = check_mail_params(args.params, self._advertised())
        except ParamError as exc:
            await self._reply(exc.code, exc.text, exc.enhanced)
            return
        except CommandSyntaxError as exc:
            await self._reply(501, str(exc), "5.5.4")
            return
        if not args.address.isascii() and "SMTPUTF8" not in params:
            await self._reply(553, "Non-ASCII address needs SMTPUTF8", "5.6.7")  # RFC 6531 3.7
            return
        self._mail_from = MailboxArgs(args.address, params)
        await self._reply(250, "Ok", "2.1.0")

    async def _rcpt(self, arg: str) -> None:
        if await self._apply(self._ctx.faults.take("RCPT")):
            return
        if self._mail_from is None:
            await self._reply(503, "Need MAIL command", "5.5.1")
            return
        try:
            args = parse_mailbox_args(arg, "TO:")
            params = check_rcpt_params(args.params, self._advertised())
        except ParamError as exc:
            await self._reply(exc.code, exc.text, exc.enhanced)
            return
        except CommandSyntaxError as exc:
            await self._reply(501, str(exc), "5.5.4")
            return
        if not args.address:
            await self._reply(501, "Bad recipient address syntax", "5.1.3")
            return
        if not args.address.isascii() and "SMTPUTF8" not in self._mail_from.params:
            await self._reply(553, "Non-ASCII address needs SMTPUTF8", "5.6.7")
            return
        limit = self._cfg.max_recipients
        if limit is not None and len(self._recipients) >= limit:
            await self._reply(452, "Too many recipients", "4.5.3")  # RFC 5321 4.5.3.1.10
            return
        self._recipients.append(Recipient(args.address, params))
        await self._reply(250, "Ok", "2.1.5")

    def _transaction_error(self) -> tuple[int, str, str] | None:
        if self._mail_from is None:
            return 503, "Need MAIL command", "5.5.1"
        if not self._recipients:
            return 554, "No valid recipients", "5.5.1"
        return None

    async def _data(self, arg: str) -> None:
        faults = self._ctx.faults.take("DATA")
        if await self._apply(faults):
            return
        error = self._transaction_error()
        if arg:
            error = 501, "Syntax: DATA", "5.5.4"
        elif self._bdat_started:
            error = 503, "DATA not allowed after BDAT", "5.5.1"
        elif self._mail_from and self._mail_from.params.get("BODY") == "BINARYMIME":
            error = 503, "BINARYMIME requires BDAT", "5.5.1"  # RFC 3030 3
        if error is not None:
            await self._reply(*error)
            return
        await self._send(render_reply(354, "End data with <CR><LF>.<CR><LF>"))
        cut = next((f for f in faults if f.kind is FaultKind.DISCONNECT_MID_DATA), None)
        if cut is not None and cut.after_bytes <= 0:
            self._close("fault: disconnect mid-DATA")
        limit = self._cfg.max_message_size
        data = bytearray()
        received = 0
        oversized = False
        while True:
            line, too_long = await self._reader.readline(
                (limit or 64 * 1024 * 1024) + 3, strict_crlf=True
            )
            if line == b".\r\n":
                break
            if line.startswith(b"."):
                line = line[1:]  # RFC 5321 4.5.2 transparency
            received += len(line)
            oversized = oversized or too_long or (limit is not None and received > limit)
            if not oversized:
                data += line
            if cut is not None and received >= cut.after_bytes:
                self._close(f"fault: disconnect mid-DATA after {received} octets")
        self._log("event", f"<{received} octets of message data>")
        if oversized:
            self._reset_transaction()
            await self._reply(552, "Message size exceeds fixed maximum size", "5.3.4")
            return
        await self._end_of_data(bytes(data), "DATA")

    async def _bdat(self, arg: str) -> None:
        faults = self._ctx.faults.take("BDAT")
        words = arg.split()
        if not (1 <= len(words) <= 2 and words[0].isdigit()) or (
            len(words) == 2 and words[1].upper() != "LAST"
        ):
            await self._reply(501, "Syntax: BDAT size [LAST]", "5.5.4")
            return
        size, last = int(words[0]), len(words) == 2
        limit = self._cfg.max_message_size
        # RFC 3030 2: the chunk is read whatever the reply will be, or the stream desyncs.
        if limit is not None and len(self._chunks) + size > limit:
            await self._reader.skip(size)
            chunk = None
        else:
            chunk = await self._reader.readexactly(size)
        self._log("event", f"<{size} octets of BDAT data>")
        if await self._apply(faults):
            self._reset_transaction()
            return
        error = self._transaction_error()
        if error is not None:
            await self._reply(*error)
            return
        if chunk is None:
            self._reset_transaction()
            await self._reply(552, "Message size exceeds fixed maximum size", "5.3.4")
            return
        self._bdat_started = True
        self._chunks += chunk
        if last:
            await self._end_of_data(bytes(self._chunks), "BDAT")
        else:
            await self._reply(250, f"{size} octets received", "2.0.0")

    async def _end_of_data(self, data: bytes, via: Literal["DATA", "BDAT"]) -> None:
        faults = self._ctx.faults.take("END_OF_DATA")
        replaced = [f for f in faults if f.kind is FaultKind.REPLY]
        if replaced:
            self._reset_transaction()
            await self._apply(faults)
            return
        for fault in faults:
            if fault.kind is FaultKind.DELAY:
                self._log("event", f"fault: delaying {fault.seconds} s")
                await anyio.sleep(fault.seconds)
        queue_id = secrets.token_hex(6).upper()
        reply = self._render(250, f"Ok: queued as {queue_id}", "2.0.0")
        dropped = any(f.kind in (FaultKind.DISCONNECT, FaultKind.RAW) for f in faults)
        self._store_message(data, via, queue_id, reply, acknowledged=not dropped)
        self._reset_transaction()
        if not await self._apply(faults):
            await self._send(reply)

    def _store_message(
        self,
        data: bytes,
        via: Literal["DATA", "BDAT"],
        queue_id: str,
        reply: bytes,
        *,
        acknowledged: bool,
    ) -> None:
        assert self._mail_from is not None
        transcript = [
            *self._transcript,
            *(TranscriptEntry("server", line) for line in reply.decode().split("\r\n")[:-1]),
        ]
        # The email package works with "\n" line ends; parsing CRLF text would leave "\r" in
        # every payload. Binary MIME (RFC 3030) is parsed untouched: its CRs may be content.
        binary = self._mail_from.params.get("BODY") == "BINARYMIME"
        parsed = data if binary else data.replace(b"\r\n", b"\n")
        message = BytesParser(_class=EmailMessage, policy=policy.default).parsebytes(parsed)
        captured = CapturedMessage(
            queue_id=queue_id,
            mail_from=self._mail_from.address,
            mail_from_params=dict(self._mail_from.params),
            recipients=tuple(self._recipients),
            data=data,
            message=message,
            via=via,
            tls=self._tls,
            tls_version=self._tls_version,
            auth_identity=self._auth_identity,
            client_name=self._client_name,
            peer=self._peer,
            transcript=tuple(transcript),
            acknowledged=acknowledged,
        )
        self._ctx.faults.message_accepted()
        self._ctx.store.add(captured)
        if self._cfg.on_message is not None:
            self._cfg.on_message(captured)

    # -- simple commands ------------------------------------------------------------------

    async def _rset(self, arg: str) -> None:
        if await self._apply(self._ctx.faults.take("RSET")):
            return
        self._reset_transaction()
        await self._reply(250, "Ok", "2.0.0")

    async def _noop(self, arg: str) -> None:
        if await self._apply(self._ctx.faults.take("NOOP")):
            return
        await self._reply(250, "Ok", "2.0.0")

    async def _vrfy(self, arg: str) -> None:
        if await self._apply(self._ctx.faults.take("VRFY")):
            return
        if not arg:
            await self._reply(501, "Syntax: VRFY address", "5.5.4")
            return
        # RFC 5321 3.5.3: 252 when the server will not verify but would accept.
        await self._reply(252, "Cannot VRFY user, but will accept message", "2.5.0")

    async def _quit(self, arg: str) -> None:
        if await self._apply(self._ctx.faults.take("QUIT")):
            return
        await self._reply(221, "Bye", "2.0.0")
        self._close("QUIT")

    async def _help(self, arg: str) -> None:
        await self._reply(214, "See RFC 5321", "2.0.0")


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
