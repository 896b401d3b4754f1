"""The fake server's session and envelope commands: EHLO, HELO, STARTTLS, MAIL, RCPT and the
simple ones (RSET, NOOP, VRFY, QUIT, HELP).

Theory of operation: each handler is a function of the ``Connection`` and the command's
argument text. It asks the fault script for its target first (so ``nth`` counts every
occurrence), then checks the command in the order a real server would, and replies once.
"""

from __future__ import annotations

import ssl

import anyio
from anyio.streams.tls import TLSAttribute, TLSStream

from . import _sasl
from ._capture import Recipient
from ._codec import CommandSyntaxError, MailboxArgs, parse_mailbox_args, render_reply
from ._config import Extension, Mode
from ._conn import Connection
from ._faults import FaultKind
from ._params import ParamError, check_mail_params, check_rcpt_params

__all__ = [
    "ehlo",
    "helo",
    "help_",
    "mail",
    "noop",
    "quit_",
    "rcpt",
    "rset",
    "starttls",
    "tls_handshake",
    "vrfy",
]

_TLS_HANDSHAKE_TIMEOUT = 10.0


# -- greeting and TLS ---------------------------------------------------------------------


async def ehlo(conn: Connection, arg: str) -> None:
    """EHLO (RFC 5321 4.1.1.1): reset the transaction, list the extensions."""
    faults = conn.ctx.faults.take("EHLO")
    if await conn.apply(faults):
        return
    if not arg:
        await conn.reply(501, "Syntax: EHLO hostname", "5.5.4")
        return
    conn.reset_transaction()
    conn.greeting = "EHLO"
    conn.client_name = arg
    strip = [f for f in faults if f.kind is FaultKind.STRIP_STARTTLS]
    if _starttls_available(conn):  # otherwise there is nothing to strip
        for fault in strip:
            conn.fired(fault)
    lines = [f"{conn.cfg.hostname} Hello {arg}", *_keywords(conn, strip_starttls=bool(strip))]
    await conn.send(render_reply(250, lines))


def _keywords(conn: Connection, *, strip_starttls: bool) -> list[str]:
    cfg = conn.cfg
    words: list[str] = []
    if conn.has(Extension.PIPELINING):
        words.append("PIPELINING")
    if conn.has(Extension.SIZE):
        words.append(f"SIZE {cfg.max_message_size}" if cfg.max_message_size else "SIZE")
    if conn.has(Extension.EIGHTBITMIME):
        words.append("8BITMIME")
    if conn.has(Extension.CHUNKING):
        words.append("CHUNKING")
        if conn.has(Extension.BINARYMIME):
            words.append("BINARYMIME")  # RFC 3030 3: only together with CHUNKING
    if conn.has(Extension.SMTPUTF8):
        words.append("SMTPUTF8")
    if conn.has(Extension.DSN):
        words.append("DSN")
    if conn.has(Extension.ENHANCEDSTATUSCODES):
        words.append("ENHANCEDSTATUSCODES")
    if conn.has(Extension.REQUIRETLS) and conn.tls:
        words.append("REQUIRETLS")  # RFC 8689 2: offered only over TLS
    mechanisms = _sasl.offered(cfg.auth_mechanisms, conn.channel_binding)
    if (
        conn.has(Extension.AUTH)
        and mechanisms
        and (conn.tls or cfg.allow_cleartext_auth or cfg.auth_before_tls_advertised)
    ):
        words.append("AUTH " + " ".join(mechanisms))
    if _starttls_available(conn) and not strip_starttls:
        words.append("STARTTLS")
    return words


def _starttls_available(conn: Connection) -> bool:
    return conn.cfg.mode is Mode.STARTTLS and conn.has(Extension.STARTTLS) and not conn.tls


async def helo(conn: Connection, arg: str) -> None:
    """HELO (RFC 5321 4.1.1.1): like EHLO, without extensions."""
    if await conn.apply(conn.ctx.faults.take("HELO")):
        return
    if not arg:
        await conn.reply(501, "Syntax: HELO hostname", "5.5.4")
        return
    conn.reset_transaction()
    conn.greeting = "HELO"
    conn.client_name = arg
    await conn.reply(250, conn.cfg.hostname)  # RFC 5321 4.1.1.1: no extensions


async def starttls(conn: Connection, arg: str) -> None:
    """STARTTLS (RFC 3207): 220, then the handshake, then a fresh session."""
    faults = conn.ctx.faults.take("STARTTLS")
    if await conn.apply(faults):
        return
    if not _starttls_available(conn):
        if conn.tls:
            await conn.reply(503, "TLS already active", "5.5.1")
        else:
            await conn.reply(502, "Command not implemented", "5.5.1")
        return
    if arg:
        await conn.reply(501, "Syntax: STARTTLS", "5.5.4")
        return
    injected = [f for f in faults if f.kind is FaultKind.INJECT_AFTER_STARTTLS]
    extra = b"".join(f.data for f in injected)
    for fault in injected:
        conn.fired(fault)
    if extra:
        conn.log("event", "fault: injecting bytes after the STARTTLS reply")
    await conn.send(conn.render(220, "Ready to start TLS", "2.0.0") + extra)
    # RFC 3207 6: anything the client pipelined after STARTTLS arrived in plaintext and
    # could have been injected by an attacker, so it is thrown away, never executed.
    dropped = conn.reader.discard_buffer()
    if dropped:
        conn.log("event", f"discarded {dropped} octets sent in plaintext after STARTTLS")
    await tls_handshake(conn)
    conn.reset_session()  # RFC 3207 4.2: forget everything, expect a new EHLO


async def tls_handshake(conn: Connection) -> None:
    """Run the server side of a TLS handshake (STARTTLS or implicit TLS, RFC 8314 3.3)."""
    faults = conn.ctx.faults.take("TLS")
    plaintext = [f for f in faults if f.kind is FaultKind.PLAINTEXT_ON_TLS_PORT]
    if plaintext and conn.cfg.mode is Mode.IMPLICIT_TLS:
        for fault in plaintext:
            conn.fired(fault)
        conn.log("event", "fault: skipping TLS on the implicit TLS port")
        return
    wrong_host = [f for f in faults if f.kind is FaultKind.WRONG_HOST_CERTIFICATE]
    for fault in wrong_host:
        conn.fired(fault)
    wrong = bool(wrong_host)
    if wrong:
        conn.log("event", "fault: presenting a certificate for wrong.example")
    context = conn.ctx.certificates.server_ssl_context(wrong_host=wrong)
    try:
        with anyio.fail_after(_TLS_HANDSHAKE_TIMEOUT):
            tls = await TLSStream.wrap(
                conn.stream, server_side=True, ssl_context=context, standard_compatible=True
            )
    except (
        ssl.SSLError,
        OSError,
        TimeoutError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
    ) as exc:
        conn.close(f"TLS handshake failed: {exc!r}")
    conn.stream = tls
    conn.reader.stream = tls
    conn.tls = True
    conn.tls_version = tls.extra(TLSAttribute.tls_version, None)
    conn.channel_binding = _sasl.end_point_binding(conn.ctx.certificates, wrong_host=wrong)
    conn.log("event", f"TLS established ({conn.tls_version})")


# -- the envelope ---------------------------------------------------------------------------


async def mail(conn: Connection, arg: str) -> None:
    """MAIL FROM (RFC 5321 4.1.1.2) with the parameters of the advertised extensions."""
    if await conn.apply(conn.ctx.faults.take("MAIL")):
        return
    cfg = conn.cfg
    if conn.greeting is None:
        await conn.reply(503, "Send HELO/EHLO first", "5.5.1")
        return
    if conn.mail_from is not None:
        await conn.reply(503, "Nested MAIL command", "5.5.1")
        return
    if cfg.require_tls and not conn.tls:
        await conn.reply(530, "Must issue a STARTTLS command first", "5.7.0")
        return
    if cfg.require_auth and conn.auth_identity is None:
        await conn.reply(530, "Authentication required", "5.7.0")  # RFC 4954 6
        return
    limited = conn.ctx.faults.rate_limited()
    if limited is not None:
        await conn.reply(limited.code, limited.text, limited.enhanced)
        if limited.code == 421:
            conn.close("rate limit")
        return
    try:
        args = parse_mailbox_args(arg, "FROM:")
        params = check_mail_params(args.params, conn.advertised())
    except ParamError as exc:
        await conn.reply(exc.code, exc.text, exc.enhanced)
        return
    except CommandSyntaxError as exc:
        await conn.reply(501, str(exc), "5.5.4")
        return
    if not args.address.isascii() and "SMTPUTF8" not in params:
        await conn.reply(553, "Non-ASCII address needs SMTPUTF8", "5.6.7")  # RFC 6531 3.7
        return
    conn.mail_from = MailboxArgs(args.address, params)
    await conn.reply(250, "Ok", "2.1.0")


async def rcpt(conn: Connection, arg: str) -> None:
    """RCPT TO (RFC 5321 4.1.1.3) with the DSN parameters when advertised."""
    if await conn.apply(conn.ctx.faults.take("RCPT")):
        return
    if conn.mail_from is None:
        await conn.reply(503, "Need MAIL command", "5.5.1")
        return
    try:
        args = parse_mailbox_args(arg, "TO:")
        params = check_rcpt_params(args.params, conn.advertised())
    except ParamError as exc:
        await conn.reply(exc.code, exc.text, exc.enhanced)
        return
    except CommandSyntaxError as exc:
        await conn.reply(501, str(exc), "5.5.4")
        return
    if not args.address:
        await conn.reply(501, "Bad recipient address syntax", "5.1.3")
        return
    if not args.address.isascii() and "SMTPUTF8" not in conn.mail_from.params:
        await conn.reply(553, "Non-ASCII address needs SMTPUTF8", "5.6.7")
        return
    limit = conn.cfg.max_recipients
    if limit is not None and len(conn.recipients) >= limit:
        await conn.reply(452, "Too many recipients", "4.5.3")  # RFC 5321 4.5.3.1.10
        return
    conn.recipients.append(Recipient(args.address, params))
    await conn.reply(250, "Ok", "2.1.5")


# -- simple commands --------------------------------------------------------------------------


async def rset(conn: Connection, arg: str) -> None:
    """RSET (RFC 5321 4.1.1.5)."""
    if await conn.apply(conn.ctx.faults.take("RSET")):
        return
    conn.reset_transaction()
    await conn.reply(250, "Ok", "2.0.0")


async def noop(conn: Connection, arg: str) -> None:
    """NOOP (RFC 5321 4.1.1.9)."""
    if await conn.apply(conn.ctx.faults.take("NOOP")):
        return
    await conn.reply(250, "Ok", "2.0.0")


async def vrfy(conn: Connection, arg: str) -> None:
    """VRFY (RFC 5321 3.5.3): 252, the server will not verify but would accept."""
    if await conn.apply(conn.ctx.faults.take("VRFY")):
        return
    if not arg:
        await conn.reply(501, "Syntax: VRFY address", "5.5.4")
        return
    await conn.reply(252, "Cannot VRFY user, but will accept message", "2.5.0")


async def quit_(conn: Connection, arg: str) -> None:
    """QUIT (RFC 5321 4.1.1.10): 221, then close."""
    if await conn.apply(conn.ctx.faults.take("QUIT")):
        return
    await conn.reply(221, "Bye", "2.0.0")
    conn.close("QUIT")


async def help_(conn: Connection, arg: str) -> None:
    """HELP (RFC 5321 4.1.1.8)."""
    await conn.reply(214, "See RFC 5321", "2.0.0")
