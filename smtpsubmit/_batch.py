"""Several transactions on one connection: a window of BDAT transactions, or a DATA chain.

Theory of operation:

- With CHUNKING, a transaction is ``[RSET,] MAIL, RCPT..., BDAT n LAST``: nothing in it
  ends a command group, so up to ``window`` transactions are written before the oldest
  one's replies are read. Each reply is matched to its command by the protocol core's FIFO,
  so per-recipient results stay exact even when a transaction in the middle is refused.
  Every transaction after the first starts with RSET (allowed anywhere in a group, RFC 2920
  3.1): whatever a refused transaction left behind on the server, the next one starts clean.
- Without CHUNKING, DATA must end a group, but message content may start one (RFC 2920
  3.1): the body and ``.`` of message N go in the same write as the envelope and DATA of
  message N+1, so each message costs one round trip. The chain takes its transactions one
  at a time from a source, so a pool can keep feeding a running chain from its queue.
- Outcomes are decided by :class:`Transaction` (the acceptance rule) and, when the
  connection breaks, by :func:`._transaction.fail` (the lost-link rule): the same rules as
  a single message. A batch never raises for one message's failure; each transaction's
  sink hears its outcome as soon as it is known.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

from ._errors import ProtocolViolationError, SMTPError, reply_error
from ._results import SendResult
from ._session import Session, phase_of
from ._transaction import INLINE_BODY, Transaction, fail, not_sent, send_one
from .protocol import Bdat, Data, EndOfData, MessageData, Rset

__all__ = ["run_data_chain", "run_window", "send_many"]

#: Gives a ready session: the current one if it is idle, else a newly opened one.
SessionSource = Callable[[], Awaitable[Session]]


async def send_many(
    open_session: SessionSource,
    transactions: list[Transaction],
    window: int,
    *,
    chunking: bool,
    more: Callable[[Session], list[Transaction]] | None = None,
) -> None:
    """Send ``transactions`` the fastest way the server allows; each sink hears its outcome.

    ``more(session)`` is asked for further transactions (built for that session) whenever a
    DATA chain runs out, so a pool's queue can keep a chain going. Bodies too large for a
    window, and every message on a server without PIPELINING, go one at a time, on a new
    connection when the previous one broke. Raises only what is not an SMTP outcome
    (cancellation).
    """
    session = await open_session()
    ext = session.conn.extensions
    bdat = chunking and ext.chunking
    rest = transactions
    session.recording = False  # the transactions' lines interleave: no transcripts
    try:
        if ext.pipelining and bdat:
            await run_window(session, [t for t in rest if _small(t)], window)
            rest = [t for t in rest if not _small(t)]
        elif ext.pipelining:
            queue = deque(rest)

            def next_transaction() -> Transaction | None:
                while not queue and more is not None:
                    following = more(session)
                    if not following:
                        break
                    queue.extend(following)
                return queue.popleft() if queue else None

            failure = await run_data_chain(session, next_transaction)
            if failure is not None:
                for txn in queue:
                    txn.settle(not_sent(failure))
            rest = []
    finally:
        session.recording = True
    for txn in rest:
        try:
            session = await open_session()
        except SMTPError as exc:
            txn.settle(exc)
            continue
        with contextlib.suppress(SMTPError):  # settled: the sink has it
            await send_one(session, txn, bdat=bdat)


def _small(txn: Transaction) -> bool:
    return isinstance(txn.body, bytes) and len(txn.body) <= INLINE_BODY


async def run_window(session: Session, transactions: list[Transaction], window: int) -> None:
    """Send ``transactions`` with BDAT LAST, keeping up to ``window`` of them in flight."""
    in_flight: deque[Transaction] = deque()
    last = len(transactions) - 1
    try:
        for position, txn in enumerate(transactions):
            assert isinstance(txn.body, bytes)
            reset = position > 0 or session.needs_reset
            session.needs_reset = False
            txn.commands = [*([Rset()] if reset else []), txn.mail, *txn.rcpts]
            txn.commands.append(Bdat(txn.body, last=True))
            wire = b"".join([session.render(cmd) for cmd in txn.commands])
            in_flight.append(txn)
            txn.end_written = True
            await session.write(wire, "data")
            while len(in_flight) >= window or (in_flight and position == last):
                await _collect(session, in_flight[0])
                in_flight.popleft()  # only once its outcome is known: see fail()
    except BaseException as exc:
        await fail(session, [*in_flight, *transactions], exc)
        if not isinstance(exc, SMTPError):
            raise


async def _collect(session: Session, txn: Transaction) -> None:
    for cmd in txn.commands:
        txn.replies.append(await session.read_reply(phase_of(cmd)))
    outcome = txn.conclude(txn.replies[-1], session)
    if isinstance(outcome, ProtocolViolationError):
        raise outcome
    if not isinstance(outcome, SendResult):
        session.needs_reset = True  # cleared by the RSET that starts the next transaction


async def run_data_chain(
    session: Session, next_transaction: Callable[[], Transaction | None]
) -> SMTPError | None:
    """Send what ``next_transaction`` hands out (until it returns ``None``) with DATA, each
    body sharing a write with the next envelope; each outcome is settled once known.

    Returns the error that ended the chain early, or ``None``; transactions not handed out
    yet are then the caller's to settle.
    """
    carry = b""  # the previous body and "." (or a RSET), written with the next envelope
    expect: list[tuple[str, Transaction]] = []  # replies owed by `carry`, in order
    current: Transaction | None = None  # handed out, its envelope not answered yet
    try:
        while True:
            txn = current = next_transaction()
            wire = carry
            if txn is not None:
                txn.commands = [txn.mail, *txn.rcpts, Data()]
                wire += b"".join([session.render(cmd) for cmd in txn.commands])
            await session.write(wire, "data" if carry else "command")
            carry = b""
            for kind, owner in expect:
                reply = await session.read_reply("command" if kind == "rset" else "final_reply")
                if kind == "final":
                    outcome = owner.conclude(reply, session)
                    if isinstance(outcome, ProtocolViolationError):
                        raise outcome
            expect = []
            if txn is None:
                return None
            for _ in txn.commands:
                txn.replies.append(await session.read_reply("command"))
            current = None
            data_reply = txn.replies[-1]
            refusal = txn.refusal()
            if data_reply.code == 354:
                if refusal is None:
                    assert isinstance(txn.body, bytes)
                    carry = session.render(MessageData(txn.body)) if txn.body else b""
                    txn.end_written = True
                    expect.append(("final", txn))
                else:  # every recipient refused: end DATA with nothing (RFC 2920 3.1)
                    txn.settle(refusal)
                    expect.append(("discard", txn))
                carry += session.render(EndOfData())
            else:
                error = refusal or reply_error(data_reply, f"DATA refused: {data_reply}")
                txn.settle(error)
                if isinstance(error, ProtocolViolationError):
                    raise error
                carry = session.render(Rset())
                expect.append(("rset", txn))
    except BaseException as exc:
        owed = [owner for _, owner in expect]  # in the order their replies were due
        await fail(session, [*owed, *([current] if current is not None else [])], exc)
        if not isinstance(exc, SMTPError):
            raise
        return exc
