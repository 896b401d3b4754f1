"""Delivery policy at run time: the attempts of one message, and the rate gate.

Theory of operation:

- :class:`Delivery` keeps the attempts of one message under a :class:`RetryPolicy`. After
  each try, :meth:`Delivery.record` says whether to try again and with which recipients:
  only those refused with 4xx (or all of them when nothing was accepted and the failure
  was retryable). Recipients accepted once are never sent to again. When it is over,
  :meth:`Delivery.result` merges the attempts into one :class:`SendResult` or raises the
  last error with the history attached.
- :class:`Throttle` is a :class:`RateLimit` at run time: callers wait their turn for a
  message token (and recipient tokens), in arrival order, on the event loop's clock; a
  throttling reply slows it down for a while. The client has one; a pool has one for all
  its connections.
- The client and the pool both drive these; neither knows the rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from email.message import Message

import anyio

from . import telemetry
from ._errors import RecipientsRefusedError, SMTPError, reply_error
from ._message import DSN, check_envelope, message_envelope
from ._results import Attempt, SendResult
from ._transaction import Entry, Outcome
from .policy import RateLimit, RetryPolicy
from .policy._rate import TokenBucket, is_throttling
from .protocol import Reply

__all__ = ["BatchItem", "Delivery", "Throttle", "batch_entries", "deliver", "deliver_batch"]


class Delivery:
    """The attempts of one message (``entry``, whose recipients are ``recipients``)."""

    def __init__(self, entry: Entry, recipients: tuple[str, ...], policy: RetryPolicy) -> None:
        self.entry = entry
        self.policy = policy
        self.pending = recipients  # who the next attempt goes to
        self.history: list[Attempt] = []
        self._accepted: list[str] = []
        self._refused: dict[str, Reply] = {}
        self._last_result: SendResult | None = None

    @property
    def attempts(self) -> int:
        """How many tries were made so far."""
        return len(self.history)

    def record(self, outcome: Outcome) -> Entry | None:
        """Record the outcome of the try just made; the entry for the next try, or None.

        ``None`` means it is over: call :meth:`result`.
        """
        self.history.append(Attempt(len(self.history) + 1, self.pending, outcome))
        again: tuple[str, ...] = ()
        if isinstance(outcome, SendResult):
            self._last_result = outcome
            self._accepted.extend(outcome.accepted)
            again = self._sort_refused(outcome.refused)
        elif isinstance(outcome, RecipientsRefusedError):
            again = self._sort_refused(outcome.refused)
        elif self.policy.retryable(outcome):
            again = self.pending
        if not again or self.attempts >= self.policy.attempts:
            return None
        for recipient in again:
            self._refused.pop(recipient, None)  # it is tried again: not refused (yet)
        self.pending = again
        return replace(self.entry, recipients=list(again), envelope=None)

    def _sort_refused(self, refused: Mapping[str, Reply]) -> tuple[str, ...]:
        """Keep every refusal; the recipients refused with 4xx, to try again."""
        transient = []
        for recipient, reply in refused.items():
            self._refused[recipient] = reply
            if 400 <= reply.code < 500:
                transient.append(recipient)
        return tuple(transient)

    def delay(self) -> float:
        """Seconds to wait before the next try."""
        return self.policy.delay(self.attempts)

    def result(self) -> SendResult:
        """The merged result of every try, or the last try's error with the history."""
        last = self.history[-1].outcome
        history = tuple(self.history)
        if isinstance(last, SMTPError) and not (
            isinstance(last, RecipientsRefusedError) and self._last_result is not None
        ):
            last.history = history
            raise last
        final = self._last_result
        assert final is not None
        return replace(
            final,
            accepted=tuple(self._accepted),
            refused=dict(self._refused),
            attempts=len(history),
            history=history,
        )


class Throttle:
    """A :class:`RateLimit` at run time on the event loop's clock (see the module doc)."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._messages: TokenBucket | None = None
        self._recipients: TokenBucket | None = None

    def _buckets(self, now: float) -> tuple[TokenBucket, TokenBucket | None]:
        if self._messages is None:  # made on first use, on the loop's clock
            limit = self.limit
            self._messages = TokenBucket(
                limit.per_second, limit.burst, now, cooldown=limit.cooldown
            )
            if limit.recipients_per_second is not None:
                self._recipients = TokenBucket(
                    limit.recipients_per_second,
                    limit.recipient_burst or max(1, int(limit.recipients_per_second)),
                    now,
                    cooldown=limit.cooldown,
                )
        return self._messages, self._recipients

    async def acquire(self, messages: int = 1, recipients: int = 0) -> None:
        """Wait until ``messages`` (and ``recipients``) may be sent under the limit."""
        now = anyio.current_time()
        message_bucket, recipient_bucket = self._buckets(now)
        wait = message_bucket.reserve(messages, now)
        if recipient_bucket is not None and recipients:
            wait = max(wait, recipient_bucket.reserve(recipients, now))
        if wait > 0:
            await anyio.sleep(wait)

    def observe(self, outcome: Outcome) -> None:
        """Slow down when ``outcome`` is a throttling reply (or has one per recipient)."""
        throttled = isinstance(outcome, SMTPError) and is_throttling(outcome)
        if isinstance(outcome, SendResult | RecipientsRefusedError):
            throttled = throttled or any(
                is_throttling(reply_error(reply)) for reply in outcome.refused.values()
            )
        if throttled:
            now = anyio.current_time()
            message_bucket, recipient_bucket = self._buckets(now)
            message_bucket.slow_down(now)
            if recipient_bucket is not None:
                recipient_bucket.slow_down(now)


#: Sends one round of entries; one outcome per entry, in order.
SendRound = Callable[[list[Entry]], Awaitable[list[Outcome]]]
#: Makes one try of one entry; its outcome (an error is returned, not raised).
SendOnce = Callable[[Entry], Awaitable[Outcome]]


async def deliver(
    entry: Entry,
    recipients: tuple[str, ...],
    send_once: SendOnce,
    policy: RetryPolicy | None,
    throttle: Throttle | None,
    *,
    server: tuple[str, int] | None = None,
) -> SendResult:
    """Send one message under the rate limit and the retry policy (waiting between tries
    in the caller's task); its (merged) result, or raise the last try's error.

    ``server`` (host, port) names the server in the call's span and metrics.
    """
    tel = telemetry.current()
    if tel is not None and server is not None:

        def run() -> Awaitable[SendResult]:
            return _deliver(entry, recipients, send_once, policy, throttle)

        return await tel.send("send", server, run, lambda result: (result,))
    return await _deliver(entry, recipients, send_once, policy, throttle)


async def _deliver(
    entry: Entry,
    recipients: tuple[str, ...],
    send_once: SendOnce,
    policy: RetryPolicy | None,
    throttle: Throttle | None,
) -> SendResult:
    delivery = Delivery(entry, recipients, policy) if policy and policy.attempts > 1 else None
    following: Entry | None = entry
    pending = recipients
    while True:
        if throttle is not None:
            await throttle.acquire(1, len(pending))
        assert following is not None
        outcome = await send_once(following)
        if throttle is not None:
            throttle.observe(outcome)
        if delivery is None:
            if isinstance(outcome, SMTPError):
                raise outcome
            return outcome
        following = delivery.record(outcome)
        if following is None:
            return delivery.result()
        pending = delivery.pending
        await anyio.sleep(delivery.delay())


async def deliver_batch(
    entries: list[tuple[Entry, tuple[str, ...]]],
    send_round: SendRound,
    policy: RetryPolicy | None,
    throttle: Throttle | None,
    *,
    server: tuple[str, int] | None = None,
) -> list[Outcome]:
    """Send ``(entry, recipients)`` pairs in rounds: each round sends every message still
    due (in groups the rate limit allows), the next round only what the retry policy
    sends again, after the longest of their delays. One outcome per entry, in order."""
    tel = telemetry.current()
    if tel is not None and server is not None:

        def run() -> Awaitable[list[Outcome]]:
            return _deliver_batch(entries, send_round, policy, throttle)

        return await tel.send("send_batch", server, run, lambda outcomes: outcomes)
    return await _deliver_batch(entries, send_round, policy, throttle)


async def _deliver_batch(
    entries: list[tuple[Entry, tuple[str, ...]]],
    send_round: SendRound,
    policy: RetryPolicy | None,
    throttle: Throttle | None,
) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(entries)
    due: list[tuple[int, Delivery | None, Entry]] = [
        (index, Delivery(entry, rcpts, policy) if policy and policy.attempts > 1 else None, entry)
        for index, (entry, rcpts) in enumerate(entries)
    ]
    while due:
        group = max(1, throttle.limit.burst) if throttle is not None else len(due)
        sent: list[Outcome] = []
        for start in range(0, len(due), group):
            chunk = due[start : start + group]
            if throttle is not None:
                recipients = sum(len(entries[index][1]) for index, _, _ in chunk)
                await throttle.acquire(len(chunk), recipients)
            round_outcomes = await send_round([entry for _, _, entry in chunk])
            if throttle is not None:
                for outcome in round_outcomes:
                    throttle.observe(outcome)
            sent.extend(round_outcomes)
        again = []
        for (index, delivery, _), outcome in zip(due, sent, strict=True):
            following = delivery.record(outcome) if delivery is not None else None
            if following is not None and delivery is not None:
                again.append((index, delivery, following))
            elif delivery is None:
                outcomes[index] = outcome
            else:
                try:
                    outcomes[index] = delivery.result()
                except SMTPError as exc:
                    outcomes[index] = exc
        if again:
            await anyio.sleep(max(delivery.delay() for _, delivery, _ in again))
        due = [(index, delivery, entry) for index, delivery, entry in again]
    return [o if o is not None else SMTPError("not sent") for o in outcomes]


#: An item of a batch: a message, or ``(sender, recipients, data)``.
BatchItem = Message | tuple[str, Sequence[str] | str, bytes]


def batch_entries(
    items: Iterable[BatchItem], dsn: DSN | None
) -> tuple[list[tuple[Entry, tuple[str, ...]]], dict[int, SMTPError]]:
    """Each item as an entry with its recipients; the items refused before any I/O (a bad
    envelope) by their index, with their error."""
    entries: list[tuple[Entry, tuple[str, ...]]] = []
    refused: dict[int, SMTPError] = {}
    for index, item in enumerate(items):
        try:
            if isinstance(item, Message):
                envelope = message_envelope(item)
                entries.append((Entry(item, dsn=dsn, envelope=envelope), envelope.recipients))
            else:
                check_envelope(item[0], item[1])
                rcpts = (item[1],) if isinstance(item[1], str) else tuple(item[1])
                entries.append((Entry(item, dsn=dsn), rcpts))
        except SMTPError as exc:  # this one alone fails, before any I/O
            refused[index] = exc
    return entries, refused
