"""One transaction (MAIL, RCPT..., DATA or BDAT) and what became of it.

Theory of operation:

- A :class:`Transaction` is one message on its way: its commands, the replies they got,
  whether the end of its body was handed to the transport, and where its outcome goes (its
  ``sink``: a caller's list slot, a pool request). It is built by :func:`build` from an
  :class:`Entry`, checked against the server's extensions before any I/O.
- The outcome is decided here and only here:

  * **refused** when a reply refused it: the MAIL reply, every RCPT reply, the DATA reply,
    or the final reply (:meth:`Transaction.conclude`). What a reply already refused stays
    refused even if the connection breaks afterwards (a 550 to MAIL, then a reset, is a
    :class:`PermanentReplyError`).
  * **not sent** (safe to retry) when the connection failed before the end of its body was
    written: the transaction that met the failure gets that error (a
    :class:`TimeoutError`, a :class:`ConnectionLostError`, a 421
    :class:`TransientReplyError`...), every other one a :class:`NotSentError`; so does each
    one behind a 421, since the server then closes and processes nothing after it
    (RFC 5321 3.8).
  * **unknown** (:class:`OutcomeUnknownError`) only when the whole body was written and the
    final reply is missing: the server may have queued it.
  * **accepted**: a :class:`SendResult` with each recipient's reply.

  :func:`fail` applies these rules to every transaction a broken connection leaves
  unsettled, in wire order; it is the one lost-link handler of every strategy.
- Strategies: :func:`send_one` here (one message; a per-message transcript), and the
  window of BDAT transactions and the DATA chain in :mod:`._batch`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import BinaryIO, Literal, TypedDict

from . import telemetry
from ._body import CHUNK, Body, Stream, chunks
from ._errors import (
    MessageError,
    NotSentError,
    OutcomeUnknownError,
    ProtocolViolationError,
    RecipientsRefusedError,
    ReplyError,
    SecurityPolicyError,
    SMTPError,
    reply_error,
)
from ._message import (
    DSN,
    BodyChecker,
    Envelope,
    PreparedMessage,
    check_envelope,
    message_envelope,
    prepare_message,
    prepare_raw,
)
from ._results import SendResult, Transcript
from ._session import Session, phase_of
from ._signing import Signer, sign_prepared
from .protocol import Bdat, Command, Data, EndOfData, Mail, MessageData, Rcpt, Reply, Rset

__all__ = [
    "INLINE_BODY",
    "BuildOptions",
    "Entry",
    "Outcome",
    "Sink",
    "Transaction",
    "build",
    "build_all",
    "build_stream",
    "fail",
    "not_sent",
    "send_one",
    "slot",
]

Outcome = SendResult | SMTPError
#: Where a transaction's outcome goes, as soon as it is known.
Sink = Callable[[Outcome], None]
#: Bodies up to this size ride in the same write as the envelope with BDAT LAST.
INLINE_BODY = 1 << 20


class BuildOptions(TypedDict):
    """The client's terms for :func:`build` (its keywords)."""

    chunking: bool
    cleartext: bool
    signer: Signer | None


@dataclass(frozen=True)
class Entry:
    """One message to send, with its own envelope overrides, DSN requests and sink."""

    item: Message | tuple[str, Sequence[str] | str, bytes]
    sender: str | None = None
    recipients: Sequence[str] | None = None
    dsn: DSN | None = None
    sink: Sink | None = None
    #: The envelope already taken from an ``EmailMessage`` item (saves doing it twice).
    envelope: Envelope | None = None
    #: RFC 8689: the message must travel over TLS all the way; refused if not offered.
    requiretls: bool = False
    #: The caller's trace (an OpenTelemetry context) when telemetry is on.
    trace: object = None


class Transaction:
    """One message on the wire: commands, replies so far, and its outcome once known."""

    __slots__ = (
        "body",
        "commands",
        "end_written",
        "mail",
        "outcome",
        "rcpts",
        "replies",
        "sink",
        "span",
    )

    def __init__(self, mail: Mail, rcpts: list[Rcpt], body: Body, sink: Sink | None) -> None:
        self.mail = mail
        self.rcpts = rcpts
        self.body = body
        self.sink = sink
        self.commands: list[Command] = []
        self.replies: list[Reply] = []
        #: The end of the body (``.`` or ``BDAT ... LAST``) was handed to the transport.
        self.end_written = False
        self.outcome: Outcome | None = None
        #: Its span, when telemetry is on (ended by :meth:`settle`).
        self.span: telemetry.TransactionSpan | None = None

    def __repr__(self) -> str:
        return f"<Transaction from {self.mail.sender!r} to {len(self.rcpts)} -> {self.outcome!r}>"

    # -- the acceptance rule ---------------------------------------------------------

    def _envelope_replies(self) -> list[Reply]:
        return [r for r in self.replies if not isinstance(r.command, Rset)]

    def accepted(self) -> tuple[str, ...]:
        """The recipients whose RCPT got a 2xx reply so far."""
        return tuple(
            r.command.recipient
            for r in self.replies
            if isinstance(r.command, Rcpt) and r.is_positive
        )

    def refusal(self) -> SMTPError | None:
        """The error that the envelope replies received so far make final, if any.

        The MAIL reply refused it, or every recipient's reply is in and none accepted. A
        reply code that is neither success nor failure (a 354 to RCPT) is a protocol
        violation.
        """
        replies = self._envelope_replies()
        if not replies:
            return None
        mail_reply = replies[0]
        if not mail_reply.is_positive:
            return reply_error(mail_reply, f"sender refused: {mail_reply}")
        rcpt_replies = replies[1 : 1 + len(self.rcpts)]
        for reply in rcpt_replies:
            if not (reply.is_positive or 400 <= reply.code < 600):
                return reply_error(reply)
        if len(rcpt_replies) == len(self.rcpts) and not any(r.is_positive for r in rcpt_replies):
            return RecipientsRefusedError(
                {r.recipient: rep for r, rep in zip(self.rcpts, rcpt_replies, strict=True)}
            )
        return None

    def conclude(self, final: Reply, session: Session, *, with_transcript: bool = False) -> Outcome:
        """Settle with the outcome the envelope replies and ``final`` give; returned too.

        An accepted message counts in ``session.messages_sent``.
        """
        outcome: Outcome | None = self.refusal()
        if outcome is None:
            if final.is_positive:
                replies = self._envelope_replies()[1 : 1 + len(self.rcpts)]
                accepted, refused = [], {}
                for rcpt, reply in zip(self.rcpts, replies, strict=True):
                    if reply.is_positive:
                        accepted.append(rcpt.recipient)
                    else:
                        refused[rcpt.recipient] = reply
                transcript = Transcript(session.transcript) if with_transcript else ()
                outcome = SendResult(self.mail.sender, tuple(accepted), refused, final, transcript)
                session.messages_sent += 1
            else:
                outcome = reply_error(final, f"message refused: {final}")
        self.settle(outcome)
        return outcome

    def settle(self, outcome: Outcome) -> None:
        """Record the outcome and hand it to the sink (once; later calls are ignored)."""
        if self.outcome is None:
            self.outcome = outcome
            if self.span is not None:
                self.span.end(self, outcome)
            if self.sink is not None:
                self.sink(outcome)


def slot(results: list[Outcome | None]) -> Sink:
    """A sink that fills the next place of ``results`` (a batch's order)."""
    index = len(results)
    results.append(None)

    def sink(outcome: Outcome) -> None:
        results[index] = outcome

    return sink


def not_sent(cause: BaseException, why: str | None = None) -> NotSentError:
    """The outcome of a message that never (wholly) left: safe to send again."""
    error = NotSentError(f"not sent: {why or f'the connection failed ({cause})'}")
    error.__cause__ = cause
    return error


def _fate(txn: Transaction, exc: BaseException, *, first: bool) -> SMTPError:
    """What a transaction left unsettled by ``exc`` became (see the module docstring)."""
    refusal = txn.refusal()
    if refusal is not None:
        return refusal
    if (
        first
        and isinstance(exc, SMTPError)
        and (not txn.end_written or isinstance(exc, ReplyError))
    ):
        # What it met itself: a failure before its end (a timeout, a lost connection, its
        # own body's problem), or a 421 in answer to one of its commands.
        return exc
    if isinstance(exc, ReplyError):  # a 421 to an earlier command (RFC 5321 3.8)
        return not_sent(exc, f"the server closed the connection before it ({exc})")
    if txn.end_written:
        error = OutcomeUnknownError(
            f"the connection failed after the whole message was sent and before the "
            f"server's final reply ({exc}); the message may or may not have been queued",
            accepted=txn.accepted(),
        )
        error.__cause__ = exc
        return error
    return not_sent(exc)


async def fail(session: Session, transactions: Iterable[Transaction], exc: BaseException) -> None:
    """The one lost-link handler: close the session and settle every transaction ``exc``
    left without an outcome.

    ``transactions`` are in wire order, starting with the one whose reply was awaited when
    ``exc`` came (settled or not): a 421 or a protocol violation answers that one only.
    """
    await session.close()
    for index, txn in enumerate(transactions):
        if txn.outcome is None:
            txn.settle(_fate(txn, exc, first=index == 0))


# -- building ----------------------------------------------------------------------


def build(
    entry: Entry,
    session: Session,
    *,
    chunking: bool,
    cleartext: bool,
    signer: Signer | None = None,
) -> Transaction:
    """The transaction for ``entry`` on this session, checked before any I/O.

    ``chunking``: the caller allows BDAT; ``cleartext``: the caller chose to send without
    encryption; ``signer`` signs the octets as they will be sent (after serialisation and
    any 7-bit re-encoding for this server). Raises :class:`MessageError` or
    :class:`SecurityPolicyError`.
    """
    ext = session.conn.extensions
    item = entry.item
    if isinstance(item, Message):
        envelope = entry.envelope or message_envelope(item, entry.sender, entry.recipients)
        prepared = prepare_message(item, envelope, ext)
    else:
        sender, recipients, data = item
        if entry.recipients is not None:  # a retry's subset
            recipients = entry.recipients
        check_envelope(sender, recipients)
        # Content that is not text (BINARYMIME) has no line structure a verifier would
        # canonicalise the same way: with a signer it is refused like any invalid text.
        binary_ok = chunking and ext.chunking and ext.binarymime and signer is None
        prepared = prepare_raw(sender, recipients, bytes(data), ext, binary_ok=binary_ok)
    if signer is not None:
        prepared = sign_prepared(prepared, signer)
    return _transaction(prepared, prepared.data, entry, session, cleartext=cleartext)


def build_all(
    entries: Iterable[Entry],
    session: Session,
    *,
    chunking: bool,
    cleartext: bool,
    signer: Signer | None = None,
) -> list[Transaction]:
    """Transactions for ``entries``; an entry refused before any I/O hears its error at
    once (through its sink) and gets no transaction."""
    transactions = []
    for entry in entries:
        try:
            transactions.append(
                build(entry, session, chunking=chunking, cleartext=cleartext, signer=signer)
            )
        except SMTPError as exc:
            if entry.sink is not None:
                entry.sink(exc)
    return transactions


def build_stream(
    sender: str,
    recipients: Sequence[str] | str,
    source: BinaryIO | AsyncIterable[bytes],
    entry: Entry,
    session: Session,
    *,
    cleartext: bool,
) -> Transaction:
    """The transaction for a body read lazily from a file or an async iterable."""
    ext = session.conn.extensions
    envelope = prepare_raw(sender, recipients, b"", ext)
    stream = Stream(source, BodyChecker(allow_8bit=ext.eightbitmime or envelope.smtputf8))
    return _transaction(
        envelope, stream, entry, session, cleartext=cleartext, size=stream.size(), eightbit=True
    )


def _transaction(
    msg: PreparedMessage,
    body: Body,
    entry: Entry,
    session: Session,
    *,
    cleartext: bool,
    size: int | None = -1,
    eightbit: bool | None = None,
) -> Transaction:
    conn = session.conn
    ext = conn.extensions
    if not cleartext and not conn.encrypted:
        raise SecurityPolicyError("refusing to send mail over an unencrypted connection")
    size = len(msg.data) if size == -1 else size
    if ext.size and size is not None and size > ext.size:
        raise MessageError(
            f"the message is {size} octets; the server accepts at most {ext.size} (RFC 1870)"
        )
    dsn = entry.dsn
    if dsn is not None and not ext.dsn:
        raise MessageError("DSN options were given but the server does not offer DSN")
    if entry.requiretls and not ext.requiretls:
        raise SecurityPolicyError(
            "REQUIRETLS was asked for but the server does not offer it (RFC 8689); nothing was sent"
        )
    eightbit = (msg.eightbit if eightbit is None else eightbit) and ext.eightbitmime
    mail = Mail(
        msg.sender,
        size=size if ext.size is not None else None,
        body=_body_type(msg.binary, eightbit),
        smtputf8=msg.smtputf8,
        ret=dsn.ret if dsn else None,
        envid=dsn.envid if dsn else None,
        requiretls=entry.requiretls,
    )
    rcpts = [
        Rcpt(r, notify=dsn.notify if dsn else (), orcpt=r if dsn and dsn.orcpt else None)
        for r in msg.recipients
    ]
    txn = Transaction(mail, rcpts, body, entry.sink)
    tel = telemetry.current()
    if tel is not None:
        txn.span = tel.transaction(session.host, session.port, len(rcpts), size, entry.trace)
    return txn


def _body_type(binary: bool, eightbit: bool) -> Literal["BINARYMIME", "8BITMIME"] | None:
    """The MAIL BODY parameter (RFC 3030 3, RFC 6152 2); None for plain 7-bit."""
    if binary:
        return "BINARYMIME"
    return "8BITMIME" if eightbit else None


# -- one message ---------------------------------------------------------------------


async def send_one(session: Session, txn: Transaction, *, bdat: bool) -> SendResult:
    """Send one transaction (``bdat``: with CHUNKING); its result, or raise its error.

    The result carries this transaction's transcript. A refusal leaves the session ready
    for the next message (RSET); any other failure closes it.
    """
    session.transcript = []
    try:
        await _one(session, txn, bdat)
    except BaseException as exc:
        await fail(session, [txn], exc)
        if not isinstance(exc, SMTPError):
            raise
    outcome = txn.outcome
    if isinstance(outcome, SMTPError):
        raise outcome
    assert outcome is not None
    return outcome


async def _one(session: Session, txn: Transaction, bdat: bool) -> None:
    if session.needs_reset:  # a window's last transaction was refused
        session.needs_reset = False
        await session.expect_ok(Rset())
    pipelining = session.conn.extensions.pipelining
    body = txn.body
    inline = bdat and pipelining and isinstance(body, bytes) and len(body) <= INLINE_BODY
    txn.commands = commands = [txn.mail, *txn.rcpts]
    if inline:
        assert isinstance(body, bytes)
        commands.append(Bdat(body, last=True))
    elif not bdat:
        commands.append(Data())
    if pipelining:  # RFC 2920: the whole envelope (and a small body) in one write
        wire = b"".join([session.render(cmd) for cmd in commands])
        txn.end_written = inline
        await session.write(wire, "data" if inline else "command")
        for cmd in commands:
            txn.replies.append(await session.read_reply(phase_of(cmd)))
    else:
        for cmd in commands:
            txn.replies.append(await session.command(cmd))
            if txn.refusal() is not None:
                break  # MAIL refused, or nobody accepted: not even DATA
    refusal = txn.refusal()
    if refusal is not None:
        if not bdat and txn.replies[-1].code == 354:
            await _finish_data(session, txn, b"", discard=True)  # RFC 2920 3.1: close DATA
        txn.settle(refusal)
        await _reset(session)
        return
    if inline:
        final = txn.replies[-1]
    elif bdat:
        final = await _send_chunks(session, txn, chunks(body))
    else:
        data_reply = txn.replies[-1]
        if data_reply.code != 354:
            _settle_or_raise(txn, reply_error(data_reply, f"DATA refused: {data_reply}"))
            await _reset(session)
            return
        final = await _finish_data(session, txn, body)
    outcome = txn.conclude(final, session, with_transcript=True)
    if isinstance(outcome, ProtocolViolationError):
        raise outcome


def _settle_or_raise(txn: Transaction, error: SMTPError) -> None:
    """Settle ``txn`` with ``error``; a protocol violation also ends the session."""
    txn.settle(error)
    if isinstance(error, ProtocolViolationError):
        raise error


async def _finish_data(
    session: Session, txn: Transaction, body: Body, *, discard: bool = False
) -> Reply:
    """Write the body after a 354 and the end-of-data marker; the final reply.

    ``discard``: only end a DATA that nobody should receive (every recipient refused).
    """
    # Each chunk is written when the next one is known, so the last one shares its write
    # with the end-of-data marker (one segment for a small message).
    if isinstance(body, bytes) and len(body) <= CHUNK:  # the usual case, no iterator
        data = session.render(MessageData(body)) if body else b""
        txn.end_written = not discard
        await session.write(data + session.render(EndOfData()), "data")
        return await session.read_reply("final_reply")
    pending = b""
    async for chunk in chunks(body):
        if pending:
            await session.write(pending, "data")
        pending = session.render(MessageData(chunk))
    txn.end_written = True
    await session.write(pending + session.render(EndOfData()), "data")
    return await session.read_reply("final_reply")


async def _send_chunks(session: Session, txn: Transaction, pieces: AsyncIterator[bytes]) -> Reply:
    """BDAT each chunk, waiting for each reply (backpressure); LAST on the final one."""
    chunk = await anext(pieces, b"")
    while True:
        following = await anext(pieces, None)
        if following is None:
            break
        reply = await session.command(Bdat(chunk), "data")
        if not reply.is_positive:
            await _reset(session)
            return reply
        chunk = following
    txn.end_written = True
    await session.write(session.render(Bdat(chunk, last=True)), "data")
    return await session.read_reply("final_reply")


async def _reset(session: Session) -> None:
    """RSET so the next transaction starts clean (RFC 5321 4.1.1.5); else close."""
    if not session.idle:
        return
    try:
        await session.expect_ok(Rset())
    except SMTPError:
        await session.close()
