"""The state and the I/O of one fake-server connection, shared by the command modules.

Theory of operation:

Rule 1: ``Connection`` holds everything one connection knows (TLS, greeting, identity, the
mail transaction). The command handlers in ``_commands``, ``_data`` and ``_auth`` read and
change it; nothing else keeps per-connection state.
Rule 2: ``reset_session`` (after STARTTLS, RFC 3207 4.2) and ``reset_transaction`` (RSET,
EHLO, end of data) are the only resets.
Rule 3: every byte to the client goes through ``send``, which also writes the transcript.
Rule 4: faults are applied here, by ``apply`` (or its two phases, ``delay`` then ``replace``,
for a caller with work in between), so each fault acts once per occurrence. Whatever
applies a fault calls ``fired`` at the moment it takes effect, and only then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NoReturn

import anyio
from anyio.abc import ByteStream, SocketAttribute

from ._capture import MessageStore, Recipient, TranscriptEntry
from ._codec import MailboxArgs, render_reply
from ._config import Extension, ServerConfig
from ._faults import Fault, FaultKind, FaultScript
from ._params import Advertised
from ._reader import IdleTimeout, Reader
from ._tls import ServerCertificates

__all__ = ["Close", "Connection", "ServerContext"]

_REPLACING = frozenset({FaultKind.REPLY, FaultKind.DISCONNECT, FaultKind.RAW})


@dataclass(frozen=True)
class ServerContext:
    """What all sessions of one server share."""

    config: ServerConfig
    certificates: ServerCertificates
    faults: FaultScript
    store: MessageStore
    #: Unexpected exceptions raised inside sessions.
    errors: list[BaseException] = field(default_factory=list)


class Close(Exception):
    """Unwind the session and close the connection."""


class Connection:
    """The server side of one SMTP connection: its state, its stream and its transcript."""

    def __init__(self, ctx: ServerContext, stream: ByteStream) -> None:
        self.ctx = ctx
        self.cfg = ctx.config
        self.stream = stream
        self.reader = Reader(stream, idle_timeout=ctx.config.idle_timeout)
        self.transcript = ctx.store.new_transcript()
        remote = stream.extra(SocketAttribute.remote_address, None)
        self.peer: tuple[str, int] = (
            (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else (str(remote), 0)
        )
        self.tls = False
        self.tls_version: str | None = None
        self.channel_binding: bytes | None = None  # RFC 5929 4, known once TLS is up
        #: After a 554 greeting: 503 to everything but QUIT (RFC 5321 3.1).
        self.reject_all = False
        self.reset_session()

    # -- state ----------------------------------------------------------------------------

    def reset_session(self) -> None:
        """Forget the greeting, the identity and the transaction (RFC 3207 4.2)."""
        self.greeting: Literal["EHLO", "HELO"] | None = None
        self.client_name = ""
        self.auth_identity: str | None = None
        self.reset_transaction()

    def reset_transaction(self) -> None:
        """Forget the mail transaction (RFC 5321 4.1.1.5)."""
        self.mail_from: MailboxArgs | None = None
        self.recipients: list[Recipient] = []
        self.chunks = bytearray()
        self.bdat_started = False
        #: A ``disconnect_mid_data`` fault that cuts this body, and the body octets so far:
        #: over BDAT the cut is counted across chunks.
        self.body_cut: Fault | None = None
        self.body_received = 0

    def has(self, ext: Extension) -> bool:
        """Whether the server is configured with ``ext``."""
        return ext in self.cfg.extensions

    def advertised(self) -> Advertised:
        """What the client may rely on now (nothing after HELO, RFC 5321 4.1.1.11)."""
        return Advertised(
            extensions=self.cfg.extensions if self.greeting == "EHLO" else frozenset(),
            tls=self.tls,
            max_message_size=self.cfg.max_message_size,
        )

    @property
    def enhanced(self) -> bool:
        """Whether replies carry enhanced status codes."""
        # RFC 2034 3: enhanced codes once the extension has been advertised (EHLO only).
        return self.greeting == "EHLO" and self.has(Extension.ENHANCEDSTATUSCODES)

    # -- I/O ------------------------------------------------------------------------------

    def log(self, direction: Literal["client", "server", "event"], line: str) -> None:
        """Append a transcript line, shortened if very long."""
        if len(line) > 300:
            line = f"{line[:300]}... ({len(line)} characters)"
        self.transcript.append(TranscriptEntry(direction, line))

    async def send(self, data: bytes) -> None:
        """Write ``data`` and log its lines; a broken connection unwinds with ``Close``, a
        client that reads nothing for the idle timeout with ``IdleTimeout``."""
        for line in data.decode("utf-8", "replace").split("\r\n")[:-1] or [repr(data)]:
            self.log("server", line)
        idle_timeout = self.cfg.idle_timeout
        try:
            # A client that stops reading is as gone as one that stops writing.
            with anyio.move_on_after(idle_timeout) as idle:
                await self.stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise Close from exc
        if idle.cancelled_caught:
            assert idle_timeout is not None
            raise IdleTimeout(idle_timeout, sending=True)

    def render(self, code: int, text: str | list[str], enhanced: str | None = None) -> bytes:
        """Render a reply, with its enhanced code only when the extension is in effect."""
        return render_reply(code, text, enhanced if self.enhanced else None)

    async def reply(self, code: int, text: str | list[str], enhanced: str | None = None) -> None:
        """Render and send a reply."""
        await self.send(self.render(code, text, enhanced))

    def close(self, why: str) -> NoReturn:
        """Log why, then unwind the session and close the connection."""
        self.log("event", f"closing connection: {why}")
        raise Close

    async def apply(self, faults: list[Fault]) -> bool:
        """Apply delays, then a replacing fault; True when the normal reply must not follow."""
        await self.delay(faults)
        return await self.replace(faults)

    def fired(self, fault: Fault) -> None:
        """Record that ``fault`` takes effect now (see ``FaultScript.mark_fired``)."""
        self.ctx.faults.mark_fired(fault)

    async def delay(self, faults: list[Fault]) -> None:
        """First phase of ``apply``: sleep for each delay fault."""
        for fault in faults:
            if fault.kind is FaultKind.DELAY:
                self.fired(fault)
                self.log("event", f"fault: delaying {fault.seconds} s")
                await anyio.sleep(fault.seconds)

    @staticmethod
    def replacement(faults: list[Fault]) -> Fault | None:
        """The fault that replaces the normal reply, if any: the first reply, disconnect or
        raw fault (the others of this occurrence do not fire)."""
        return next((f for f in faults if f.kind in _REPLACING), None)

    async def replace(self, faults: list[Fault]) -> bool:
        """Second phase of ``apply``: send the ``replacement`` instead of the normal reply;
        True when there was one."""
        fault = self.replacement(faults)
        if fault is None:
            return False
        self.fired(fault)
        if fault.kind is FaultKind.DISCONNECT:
            self.close(f"fault: disconnect on {fault.target}")
        if fault.kind is FaultKind.RAW:
            await self.send(fault.data)
            return True
        await self.reply(fault.code, fault.text, fault.enhanced)
        if fault.code == 421:
            self.close("421 sent")  # RFC 5321 3.8
        return True
