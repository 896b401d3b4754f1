"""One SMTP connection on the fake server: the command loop and its dispatch table.

Theory of operation:

Rule 1: one coroutine per connection reads one command, replies, then reads the next. Replies
therefore leave in command order however the client pipelines (RFC 2920 3.1).
Rule 2: every target (command, greeting, end of data, TLS handshake) asks the fault script
exactly once per occurrence, before doing anything else, so ``nth`` is predictable.
Rule 3: the connection's state lives in its ``Connection`` (``_conn``) only; the handlers
are functions of it, one module per concern: ``_commands`` (greeting, TLS, envelope, simple
commands), ``_data`` (DATA, BDAT, capture) and ``_auth`` (AUTH).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import ByteStream

from . import _auth, _commands, _data
from ._codec import MAX_AUTH_LINE, MAX_COMMAND_LINE, split_command
from ._config import Extension, Mode
from ._conn import Close, Connection, ServerContext
from ._faults import FaultKind
from ._reader import ConnectionClosed, IdleTimeout

__all__ = ["ServerContext", "Session"]

_CLOSE_TIMEOUT = 5.0

logger = logging.getLogger("smtpsubmit.testing")

Handler = Callable[[Connection, str], Awaitable[None]]

#: Every command the server knows, by verb; BDAT only when CHUNKING is configured.
_HANDLERS: dict[str, Handler] = {
    "EHLO": _commands.ehlo,
    "HELO": _commands.helo,
    "STARTTLS": _commands.starttls,
    "AUTH": _auth.auth,
    "MAIL": _commands.mail,
    "RCPT": _commands.rcpt,
    "DATA": _data.data,
    "BDAT": _data.bdat,
    "RSET": _commands.rset,
    "NOOP": _commands.noop,
    "VRFY": _commands.vrfy,
    "QUIT": _commands.quit_,
    "HELP": _commands.help_,
}


class Session:
    """The server side of one SMTP connection."""

    def __init__(self, ctx: ServerContext, stream: ByteStream) -> None:
        self._ctx = ctx
        self._conn = Connection(ctx, stream)
        self._handlers = dict(_HANDLERS)
        if Extension.CHUNKING not in ctx.config.extensions:
            del self._handlers["BDAT"]

    async def run(self) -> None:
        """Serve the connection until QUIT, a disconnect or a fault ends it."""
        conn = self._conn
        try:
            await self._serve()
        except anyio.get_cancelled_exc_class():
            # The server is stopping: no goodbye, no waiting for the peer.
            with anyio.CancelScope(shield=True):
                await anyio.aclose_forcefully(conn.stream)
            raise
        except IdleTimeout as exc:
            conn.log("event", f"closing connection: {exc}")
            logger.info("fake SMTP server: closing the connection from %s:%s: %s", *conn.peer, exc)
            if exc.sending:
                # Unsent octets would keep a graceful close waiting on the same client.
                with anyio.CancelScope(shield=True):
                    await anyio.aclose_forcefully(conn.stream)
                return
            with contextlib.suppress(Close, IdleTimeout):
                await conn.reply(421, f"{conn.cfg.hostname} Error: timeout exceeded", "4.4.2")
        except Exception as exc:
            # A bug in the fake server: keep it for ``server.errors`` (the pytest fixtures fail
            # the test on it) before the client can see the connection go away.
            self._ctx.errors.append(exc)
            conn.log("event", f"internal error: {exc!r}")
            with contextlib.suppress(Exception):
                await conn.reply(421, "Internal error in the fake server", "4.3.0")
        # Over TLS, aclose() sends close_notify and waits for the peer's (RFC 8446 6.1),
        # which well-behaved clients (anyio's TLSStream included) expect; the deadline keeps
        # a peer that never answers from holding the session open.
        with anyio.move_on_after(_CLOSE_TIMEOUT):
            # The peer may already be gone; there is nothing left to tell it.
            with contextlib.suppress(OSError, ssl.SSLError, anyio.BrokenResourceError):
                await conn.stream.aclose()

    async def _serve(self) -> None:
        try:
            if self._ctx.config.mode is Mode.IMPLICIT_TLS:
                await _commands.tls_handshake(self._conn)
            await self._greet()
            while True:
                await self._one_command()
        except (Close, ConnectionClosed):
            pass

    async def _greet(self) -> None:
        conn = self._conn
        faults = self._ctx.faults.take("GREETING")
        replacing = conn.replacement(faults)
        if replacing is not None and replacing.kind is FaultKind.REPLY and replacing.code >= 400:
            # RFC 5321 3.1: after a 554 greeting, wait for QUIT, answering 503 meanwhile.
            conn.reject_all = True
        if not await conn.apply(faults):
            await conn.reply(220, f"{self._ctx.config.hostname} ESMTP smtpsubmit fake server")

    async def _one_command(self) -> None:
        conn = self._conn
        raw, too_long = await conn.reader.readline(MAX_AUTH_LINE)
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        verb, arg = split_command(line)
        if verb == "AUTH" and " " in arg:
            conn.log("client", f"AUTH {arg.split(' ', 1)[0]} <redacted>")
        else:
            conn.log("client", line.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        if too_long or (verb != "AUTH" and len(raw) > MAX_COMMAND_LINE):
            # RFC 5321 4.5.3.1.4 (512) and RFC 4954 4 (12288 for AUTH).
            await conn.reply(500, "Line too long", "5.5.2")
            return
        if conn.reject_all and verb != "QUIT":
            await conn.reply(503, "Bad sequence of commands", "5.5.1")
            return
        handler = self._handlers.get(verb)
        if handler is None:
            await conn.reply(500, "Command unrecognized", "5.5.2")
            return
        await handler(conn, arg)
