"""The message body on the fake server: DATA (RFC 5321 4.1.1.4), BDAT (RFC 3030) and the
capture of the accepted message.

Theory of operation:

Rule 1: a message is stored before its final reply is sent, so a client that has read
``250`` always finds it in ``server.messages``.
Rule 2: a BDAT chunk is always read in full, whatever the reply will be (RFC 3030 2), or
its octets would be taken for commands.
Rule 3: the ``DATA`` fault target is the start of the body however it is sent: the DATA
command, or the first BDAT chunk of a transaction. A test that scripts a slow or broken
body phase therefore gets it from a client that uses CHUNKING too.
"""

from __future__ import annotations

import secrets
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Literal

from ._capture import CapturedMessage, TranscriptEntry
from ._codec import ascii_upper, parse_number, render_reply, split_words
from ._conn import Connection
from ._faults import Fault, FaultKind

__all__ = ["bdat", "data"]


def _transaction_error(conn: Connection) -> tuple[int, str, str] | None:
    if conn.mail_from is None:
        return 503, "Need MAIL command", "5.5.1"
    if not conn.recipients:
        return 554, "No valid recipients", "5.5.1"
    return None


async def data(conn: Connection, arg: str) -> None:
    """DATA: 354, then dot-stuffed lines up to ``<CRLF>.<CRLF>`` (RFC 5321 4.5.2)."""
    faults = conn.ctx.faults.take("DATA")
    if await conn.apply(faults):
        return
    error = _transaction_error(conn)
    if arg:
        error = 501, "Syntax: DATA", "5.5.4"
    elif conn.bdat_started:
        error = 503, "DATA not allowed after BDAT", "5.5.1"
    elif conn.mail_from and conn.mail_from.params.get("BODY") == "BINARYMIME":
        error = 503, "BINARYMIME requires BDAT", "5.5.1"  # RFC 3030 3
    if error is not None:
        await conn.reply(*error)
        return
    await conn.send(render_reply(354, "End data with <CR><LF>.<CR><LF>"))
    cut = _cut(faults)
    if cut is not None and cut.after_bytes <= 0:
        conn.fired(cut)
        conn.close("fault: disconnect mid-DATA")
    limit = conn.cfg.max_message_size
    body = bytearray()
    received = 0
    oversized = False
    while True:
        line, too_long = await conn.reader.readline(
            (limit or 64 * 1024 * 1024) + 3, strict_crlf=True
        )
        if line == b".\r\n":
            break
        if line.startswith(b"."):
            line = line[1:]  # RFC 5321 4.5.2 transparency
        received += len(line)
        oversized = oversized or too_long or (limit is not None and received > limit)
        if not oversized:
            body += line
        if cut is not None and received >= cut.after_bytes:
            conn.fired(cut)
            conn.close(f"fault: disconnect mid-DATA after {received} octets")
    conn.log("event", f"<{received} octets of message data>")
    if oversized:
        conn.reset_transaction()
        await conn.reply(552, "Message size exceeds fixed maximum size", "5.3.4")
        return
    await _end_of_data(conn, bytes(body), "DATA")


async def bdat(conn: Connection, arg: str) -> None:
    """BDAT size [LAST] (RFC 3030 2): one chunk of the message, exactly ``size`` octets."""
    first = not conn.bdat_started
    # Rule 3: the first chunk is where the body starts, the DATA target's occurrence.
    faults = conn.ctx.faults.take("DATA") if first else []
    faults += conn.ctx.faults.take("BDAT")
    words = split_words(arg)
    size = parse_number(words[0]) if 1 <= len(words) <= 2 else None
    if size is None or (len(words) == 2 and ascii_upper(words[1]) != "LAST"):
        await conn.reply(501, "Syntax: BDAT size [LAST]", "5.5.4")
        return
    last = len(words) == 2
    if first:  # a body starts here (again, after a refused first chunk)
        conn.body_cut = _cut(faults)
        conn.body_received = 0
    cut = conn.body_cut
    if (
        cut is not None
        and _transaction_error(conn) is None
        and conn.body_received + size >= cut.after_bytes
    ):
        cut_at = max(0, cut.after_bytes - conn.body_received)
        await conn.reader.skip(cut_at)
        conn.fired(cut)
        conn.close(f"fault: disconnect mid-BDAT after {conn.body_received + cut_at} octets")
    limit = conn.cfg.max_message_size
    # RFC 3030 2: the chunk is read whatever the reply will be, or the stream desyncs.
    if limit is not None and len(conn.chunks) + size > limit:
        await conn.reader.skip(size)
        chunk = None
    else:
        chunk = await conn.reader.readexactly(size)
    conn.body_received += size
    conn.log("event", f"<{size} octets of BDAT data>")
    if await conn.apply(faults):
        conn.reset_transaction()
        return
    error = _transaction_error(conn)
    if error is not None:
        await conn.reply(*error)
        return
    if chunk is None:
        conn.reset_transaction()
        await conn.reply(552, "Message size exceeds fixed maximum size", "5.3.4")
        return
    conn.bdat_started = True
    conn.chunks += chunk
    if last:
        await _end_of_data(conn, bytes(conn.chunks), "BDAT")
    else:
        await conn.reply(250, f"{size} octets received", "2.0.0")


def _cut(faults: list[Fault]) -> Fault | None:
    return next((f for f in faults if f.kind is FaultKind.DISCONNECT_MID_DATA), None)


async def _end_of_data(conn: Connection, body: bytes, via: Literal["DATA", "BDAT"]) -> None:
    faults = conn.ctx.faults.take("END_OF_DATA")
    await conn.delay(faults)
    replacing = conn.replacement(faults)
    if replacing is not None and replacing.kind is FaultKind.REPLY:
        conn.reset_transaction()  # a scripted refusal: nothing is captured
        await conn.replace(faults)
        return
    queue_id = secrets.token_hex(6).upper()
    reply = conn.render(250, f"Ok: queued as {queue_id}", "2.0.0")
    # A disconnect or garbage here is the duplicate-delivery window of RFC 5321 6.1: the
    # message is taken, the client never learns it.
    _store_message(conn, body, via, queue_id, reply, acknowledged=replacing is None)
    conn.reset_transaction()
    if not await conn.replace(faults):
        await conn.send(reply)


def _store_message(
    conn: Connection,
    body: bytes,
    via: Literal["DATA", "BDAT"],
    queue_id: str,
    reply: bytes,
    *,
    acknowledged: bool,
) -> None:
    assert conn.mail_from is not None
    transcript = [
        *conn.transcript,
        *(TranscriptEntry("server", line) for line in reply.decode().split("\r\n")[:-1]),
    ]
    # The email package works with "\n" line ends; parsing CRLF text would leave "\r" in
    # every payload. Binary MIME (RFC 3030) is parsed untouched: its CRs may be content.
    binary = conn.mail_from.params.get("BODY") == "BINARYMIME"
    parsed = body if binary else body.replace(b"\r\n", b"\n")
    message = BytesParser(_class=EmailMessage, policy=policy.default).parsebytes(parsed)
    captured = CapturedMessage(
        queue_id=queue_id,
        mail_from=conn.mail_from.address,
        mail_from_params=dict(conn.mail_from.params),
        recipients=tuple(conn.recipients),
        data=body,
        message=message,
        via=via,
        tls=conn.tls,
        tls_version=conn.tls_version,
        auth_identity=conn.auth_identity,
        client_name=conn.client_name,
        peer=conn.peer,
        transcript=tuple(transcript),
        acknowledged=acknowledged,
    )
    conn.ctx.faults.message_accepted()
    conn.ctx.store.add(captured)
    if conn.cfg.on_message is not None:
        conn.cfg.on_message(captured)
