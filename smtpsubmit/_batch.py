"""Several transactions in flight on one connection (RFC 2920 with RFC 3030).

Theory of operation:

- With CHUNKING, a transaction is ``[RSET,] MAIL, RCPT..., BDAT n LAST``: nothing in it
  ends a command group, so up to ``window`` transactions are written before the oldest
  one's replies are read. Each reply is matched to its command by the protocol core's FIFO,
  so per-recipient results stay exact even when a transaction in the middle is refused.
  Every transaction after the first starts with RSET (allowed anywhere in a group, RFC 2920
  3.1): whatever a refused transaction left behind on the server, the next one starts clean.
- Without CHUNKING, DATA must end a group, but message content may start one (RFC 2920
  3.1): the body and ``.`` of message N go in the same write as the envelope and DATA of
  message N+1, so each message costs one round trip. The chain takes its messages one at a
  time from a source, so a pool can keep feeding a running chain from its queue.
- If the connection fails, transactions whose data was written get
  :class:`OutcomeUnknownError`; those never written get the connection error (safe to
  retry). A batch never raises for one message's failure: it returns one outcome per item.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING

from ._errors import (
    ConnectError,
    OutcomeUnknownError,
    ProtocolViolationError,
    RecipientsRefusedError,
    ReplyError,
    SMTPError,
    TimeoutError,
)
from ._message import DSN
from ._results import SendResult
from .protocol import Bdat, Command, Data, EndOfData, Mail, MessageData, Rcpt, Reply, Rset

if TYPE_CHECKING:
    from ._client import SMTPClient

__all__ = [
    "BatchEntry",
    "Outcome",
    "Pending",
    "Settle",
    "accepted_recipients",
    "envelope_outcome",
    "evaluate",
    "finished",
    "not_sent",
    "run_data_chain",
    "run_window",
]

Outcome = SendResult | SMTPError
#: Where the outcome of the transaction at an index goes, as soon as it is known.
Settle = Callable[[int, Outcome], None]
_LINK_ERRORS = (ConnectError, TimeoutError, ProtocolViolationError, ReplyError)


@dataclass(frozen=True)
class BatchEntry:
    """One message of a batch, with its own envelope overrides and DSN requests."""

    item: Message | tuple[str, Sequence[str] | str, bytes]
    sender: str | None = None
    recipients: Sequence[str] | None = None
    dsn: DSN | None = None


@dataclass
class Pending:
    """One transaction of the batch: its commands and where its outcome goes."""

    index: int
    mail: Mail
    rcpts: list[Rcpt]
    data: bytes
    commands: list[Command] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    settled: bool = False


def envelope_outcome(
    pending: Pending,
) -> tuple[tuple[str, ...], dict[str, Reply], SMTPError | None]:
    """Accepted and refused recipients, and the error that ends the transaction, if any."""
    replies = [r for r in pending.replies if not isinstance(r.command, Rset)]
    mail_reply, rcpt_replies = replies[0], replies[1 : 1 + len(pending.rcpts)]
    outcomes = list(zip(pending.rcpts, rcpt_replies, strict=True))
    accepted = tuple(r.recipient for r, rep in outcomes if rep.is_positive)
    refused = {r.recipient: rep for r, rep in outcomes if not rep.is_positive}
    if not mail_reply.is_positive:
        return accepted, refused, ReplyError.from_reply(mail_reply, f"sender refused: {mail_reply}")
    if not accepted:
        return accepted, refused, RecipientsRefusedError(refused)
    return accepted, refused, None


def evaluate(pending: Pending, final: Reply | None) -> Outcome:
    """The outcome of a transaction from its replies (MAIL, each RCPT, then the final one).

    Batch results carry no transcript: the transactions' lines interleave on the wire (the
    ``smtpsubmit`` logger has them at DEBUG).
    """
    accepted, refused, error = envelope_outcome(pending)
    if error is not None:
        return error
    if final is None or not final.is_positive:
        reply = final or pending.replies[-1]
        return ReplyError.from_reply(reply, f"message refused: {reply}")
    return SendResult(pending.mail.sender, accepted, refused, final)


def finished(client: SMTPClient, pending: Pending, final: Reply) -> Outcome:
    """:func:`evaluate` for a transaction that got its final reply; counts it as sent."""
    outcome = evaluate(pending, final)
    if isinstance(outcome, SendResult):
        client.messages_sent += 1
    return outcome


def not_sent(exc: BaseException) -> ConnectError:
    """The outcome of a message never written because the connection failed: safe to retry."""
    return ConnectError(f"not sent: the connection failed ({exc})")


def accepted_recipients(replies: Sequence[Reply]) -> tuple[str, ...]:
    """The recipients whose RCPT got a positive reply among ``replies``."""
    return tuple(
        r.command.recipient for r in replies if isinstance(r.command, Rcpt) and r.is_positive
    )


def _unknown(pending: Pending, exc: BaseException) -> OutcomeUnknownError:
    error = OutcomeUnknownError(
        f"the connection failed after message {pending.index} was sent and before its final "
        f"reply ({exc}); it may or may not have been queued",
        accepted=accepted_recipients(pending.replies),
    )
    error.__cause__ = exc
    return error


async def run_window(client: SMTPClient, items: list[Pending], window: int, settle: Settle) -> None:
    """Send ``items`` with BDAT LAST, keeping up to ``window`` transactions in flight."""
    in_flight: deque[Pending] = deque()
    sent = 0
    try:
        for position, item in enumerate(items):
            item.commands = [*([Rset()] if position else []), item.mail, *item.rcpts]
            item.commands.append(Bdat(item.data, last=True))
            wire = b"".join(client._render(cmd) for cmd in item.commands)
            in_flight.append(item)
            await client._write(wire, "data")
            sent += 1
            while len(in_flight) >= window or (in_flight and position == len(items) - 1):
                await _collect(client, in_flight[0], settle)
                in_flight.popleft()  # only once its outcome is known: see the except below
    except _LINK_ERRORS as exc:
        if isinstance(exc, ReplyError) and exc.code != 421:
            raise
        await client._close()
        first = in_flight[0] if in_flight else None
        if first is not None and isinstance(exc, ReplyError):
            settle(first.index, exc)  # the 421 answered this transaction: not accepted
            in_flight.popleft()
        for item in in_flight:
            settle(item.index, _unknown(item, exc))
        for item in items[sent:]:
            settle(item.index, not_sent(exc))


async def _collect(client: SMTPClient, item: Pending, settle: Settle) -> None:
    item.replies = []
    for _ in item.commands:
        item.replies.append(await client._read_reply("final_reply"))
    settle(item.index, finished(client, item, item.replies[-1]))


async def run_data_chain(
    client: SMTPClient, next_item: Callable[[], Pending | None], settle: Settle
) -> BaseException | None:
    """Send the items ``next_item`` hands out (until it returns ``None``) with DATA, each body
    sharing a write with the next envelope. Each outcome is settled as soon as it is known.

    Returns the link error that ended the chain early, or ``None``; items not handed out
    yet are then the caller's to fail (or to send elsewhere).
    """

    def done(item: Pending, outcome: Outcome) -> None:
        item.settled = True
        settle(item.index, outcome)

    carry = b""  # the previous body and "." (or a RSET), written with the next envelope
    expect: list[tuple[str, Pending]] = []  # replies owed by `carry`, in order
    current: Pending | None = None  # handed out, its envelope not answered yet
    try:
        while True:
            item = current = next_item()
            wire = carry
            if item is not None:
                item.commands = [item.mail, *item.rcpts, Data()]
                wire += b"".join(client._render(cmd) for cmd in item.commands)
            await client._write(wire, "data" if carry else "command")
            carry = b""
            for kind, owner in expect:
                reply = await client._read_reply("final_reply" if kind != "rset" else "command")
                if kind == "final":
                    done(owner, finished(client, owner, reply))
            expect = []
            if item is None:
                return None
            item.replies = [await client._read_reply("command") for _ in item.commands]
            current = None
            data_reply = item.replies[-1]
            accepted = any(r.is_positive for r in item.replies[1:-1])
            if data_reply.code == 354:
                body = item.data if accepted and item.replies[0].is_positive else b""
                carry = (client._render(MessageData(body)) if body else b"") + client._render(
                    EndOfData()
                )
                expect.append(("final" if body else "discard", item))
                if not body:
                    done(item, evaluate(item, None))
            else:
                done(item, evaluate(item, None))
                carry = client._render(Rset())
                expect.append(("rset", item))
    except _LINK_ERRORS as exc:
        if isinstance(exc, ReplyError) and exc.code != 421:
            raise
        await client._close()
        for kind, owner in expect:
            if kind == "final" and not owner.settled:
                done(owner, _unknown(owner, exc))
        if current is not None:
            done(current, not_sent(exc))
        return exc
