"""AUTH on the fake server (RFC 4954): the command's checks and the SASL exchange's I/O.

Theory of operation: the mechanisms themselves (``_sasl``) know no I/O; this module reads
the client's base64 lines, handles cancellation (``*``) and decoding errors (RFC 4954 4),
and turns the mechanism's verdict into the final reply. SASL payloads never reach the
transcript: only ``<redacted>`` or ``*`` does.
"""

from __future__ import annotations

import base64
import binascii

from . import _sasl
from ._codec import MAX_AUTH_LINE
from ._config import Extension
from ._conn import Connection

__all__ = ["auth"]


async def auth(conn: Connection, arg: str) -> None:
    """AUTH mechanism [initial-response] (RFC 4954 4)."""
    faults = conn.ctx.faults.take("AUTH")
    if await conn.apply(faults):
        return
    cfg = conn.cfg
    name, _, initial_text = arg.partition(" ")
    if not conn.has(Extension.AUTH) or not cfg.auth_mechanisms:
        await conn.reply(502, "Command not implemented", "5.5.1")
    elif conn.greeting != "EHLO":
        await conn.reply(503, "Send EHLO first", "5.5.1")
    elif not name:
        await conn.reply(501, "Syntax: AUTH mechanism [initial-response]", "5.5.4")
    elif conn.auth_identity is not None:
        await conn.reply(503, "Already authenticated", "5.5.1")  # RFC 4954 4
    elif conn.mail_from is not None:
        await conn.reply(503, "AUTH not permitted during a mail transaction", "5.5.1")
    elif not conn.tls and not cfg.allow_cleartext_auth:
        await conn.reply(
            538, "Encryption required for requested authentication mechanism", "5.7.11"
        )
    else:
        mech = _sasl.create(
            name,
            cfg.users,
            cfg.oauth_tokens,
            cfg.hostname,
            offered=_sasl.offered(cfg.auth_mechanisms, conn.channel_binding),
            channel_binding=conn.channel_binding,
            scram_salt=cfg.scram_salt,
            scram_nonce=cfg.scram_nonce,
            faults=faults,
            on_fire=conn.fired,
        )
        if mech is None:
            await conn.reply(504, "Unrecognized authentication type", "5.5.4")
            return
        await _exchange(conn, mech, initial_text.strip())


async def _exchange(conn: Connection, mech: _sasl.Mechanism, initial_text: str) -> None:
    initial: bytes | None = None
    if initial_text:
        # RFC 4954 4: "=" is an empty initial response.
        initial = _b64decode(initial_text) if initial_text != "=" else b""
        if initial is None:
            await conn.reply(501, "Cannot decode response", "5.5.2")
            return
    step = mech.start(initial)
    while isinstance(step, _sasl.Challenge):
        await conn.send(step.line())
        raw, too_long = await conn.reader.readline(MAX_AUTH_LINE)
        text = raw.rstrip(b"\r\n").decode("ascii", "replace").strip()
        conn.log("client", "*" if text == "*" else "<redacted>")
        if too_long:
            await conn.reply(500, "Authentication exchange line is too long", "5.5.6")
            return
        if text == "*":
            await conn.reply(501, "Authentication cancelled", "5.7.0")  # RFC 4954 4
            return
        decoded = _b64decode(text)
        if decoded is None:
            await conn.reply(501, "Cannot decode response", "5.5.2")
            return
        step = mech.respond(decoded)
    if isinstance(step, _sasl.Success):
        conn.auth_identity = step.identity
        conn.log("event", f"authenticated as {step.identity!r}")
        await conn.reply(235, "Authentication successful", "2.7.0")
    else:
        await conn.reply(step.code, step.text, step.enhanced)


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
