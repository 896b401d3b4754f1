"""SMTPPool: many tasks share up to N authenticated connections to one server.

Theory of operation:

- Callers put requests on one FIFO queue and wait; up to ``max_connections`` worker tasks,
  owned by the pool's task group, take them in arrival order (fair). The bounded queue is
  the backpressure: a burst of sends waits instead of piling up.
- A worker owns at most one connection. It takes the oldest request and, without waiting,
  every other request already queued (up to ``window``, a fair share when other workers
  are idle), and sends them together with the client's batch path: several transactions
  in flight (RFC 2920/3030), so under load a message costs one round trip or less instead
  of two or more. Each caller hears its outcome as soon as it is known, not when the batch
  ends. With DATA (no CHUNKING) the chain of bodies and envelopes also takes requests
  queued while it runs, one per round trip, until the queue is empty or the connection
  has reached ``max_messages_per_connection`` or ``max_connection_age``: under steady
  load a connection never stops to end its chain. Pooled results carry no transcript.
- Before reuse, a connection idle longer than ``health_check_after`` gets a NOOP; one too
  old (``max_connection_age``), with ``max_messages_per_connection`` sent, or idle past
  ``idle_timeout`` is closed. A failure or 421 leaves the client disconnected, and the
  worker drops it (eviction).
- A reused connection that turns out dead before anything of a message was accepted (the
  server timed it out while idle) is retried once on a fresh connection. Nothing is
  retried after a message was sent: that is :class:`OutcomeUnknownError`.
- A caller cancelled while its request waits in the queue withdraws it. Once a worker has
  it, the send is stopped only when every caller of that batch has gone (the client then
  closes the connection it left mid-transaction, and the worker drops it); otherwise it
  completes for the others. No connection is ever reused half-used.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from email.message import Message
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import telemetry
from ._batch import send_many
from ._delivery import BatchItem, Throttle, deliver
from ._errors import NotSentError, OutcomeUnknownError, SMTPError, TransientReplyError
from ._gate import loop_clock
from ._handshake import Settings, open_session
from ._message import DSN, check_envelope, message_envelope
from ._options import ClientOptions, Unpack
from ._results import SendResult
from ._session import Session
from ._transaction import Entry, Outcome, Transaction, build_all
from ._validate import check_pool_arguments
from .protocol import Noop, Quit

__all__ = ["SMTPPool"]


@dataclass(eq=False)
class _Batch:
    """Requests a worker sends together; cancelled when every caller has gone."""

    requests: list[_Request]
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    def withdrawn(self) -> None:
        if all(r.withdrawn for r in self.requests):
            self.scope.cancel()  # nobody waits for these any more: stop mid-transaction


@dataclass(eq=False)
class _Request:
    entry: Entry
    done: anyio.Event = field(default_factory=anyio.Event)
    outcome: Outcome | None = None
    withdrawn: bool = False
    batch: _Batch | None = None

    def resolve(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done.set()

    def withdraw(self) -> None:
        self.withdrawn = True
        if self.batch is not None:
            self.batch.withdrawn()


@dataclass(eq=False)
class _Slot:
    """A worker's connection (``None`` when it has none open)."""

    session: Session | None = None
    idle_since: float = 0.0


class SMTPPool:
    """A pool of :class:`SMTPClient` connections to one server, shared by many tasks.

    Use it as ``async with SMTPPool(...) as pool:``. ``options`` are the connection
    keywords of :class:`SMTPClient`. ``max_connections`` bounds concurrency; ``window``
    bounds how many queued messages one connection sends together;
    ``max_messages_per_connection`` and ``max_connection_age`` (seconds) recycle
    connections; ``idle_timeout`` closes connections unused for that long;
    ``health_check_after`` sends NOOP before reusing a connection idle for that long.
    Pooled results carry no transcript: a connection's messages share its writes (the
    ``smtpsubmit`` logger has every line at DEBUG; ``SMTPClient`` gives one per message).
    ``retry`` and ``rate_limit`` (in ``options``) apply to every message: a retried
    message goes back into the queue after its delay, waiting in its caller's task, and
    one rate limit paces all the pool's connections together.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int = 8,
        window: int = 16,
        max_messages_per_connection: int | None = 1000,
        max_connection_age: float | None = 600.0,
        idle_timeout: float | None = 60.0,
        health_check_after: float | None = 5.0,
        **options: Unpack[ClientOptions],
    ) -> None:
        check_pool_arguments(
            host,
            port,
            max_connections=max_connections,
            window=window,
            max_messages_per_connection=max_messages_per_connection,
            max_connection_age=max_connection_age,
            idle_timeout=idle_timeout,
            health_check_after=health_check_after,
            **options,
        )
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.window = window
        self.max_messages_per_connection = max_messages_per_connection
        self.max_connection_age = max_connection_age
        self.idle_timeout = idle_timeout
        self.health_check_after = health_check_after

        # The options are checked (TLS policy, auth) now, not at the first send.
        self._settings = Settings.from_options(host, port, **options)
        rate_limit = self._settings.rate_limit
        self._throttle = Throttle(rate_limit) if rate_limit is not None else None
        self._send: MemoryObjectSendStream[_Request] | None = None
        self._receive: MemoryObjectReceiveStream[_Request] | None = None
        self._task_group: TaskGroup | None = None
        self._workers = 0
        self._busy = 0
        self._slots: set[_Slot] = set()
        self._closed = False
        self._clock: Callable[[], float] = anyio.current_time  # the loop's, once entered

    def __repr__(self) -> str:
        return (
            f"<SMTPPool {self.host}:{self.port} connections={self._connections()} "
            f"busy={self._busy} max={self.max_connections}>"
        )

    @property
    def stats(self) -> dict[str, int]:
        """Open connections, workers sending right now, and requests waiting."""
        waiting = self._send.statistics().current_buffer_used if self._send else 0
        return {"connections": self._connections(), "busy": self._busy, "waiting": waiting}

    def _connections(self) -> int:
        return sum(1 for slot in self._slots if slot.session and slot.session.idle)

    def _connection_counts(self) -> tuple[int, int]:
        """Connections sending (workers serving a batch) and open but idle (telemetry)."""
        opened = sum(1 for slot in self._slots if slot.session and not slot.session.closed)
        return self._busy, max(0, opened - self._busy)

    async def __aenter__(self) -> SMTPPool:
        if self._closed or self._task_group is not None:
            raise SMTPError("an SMTPPool can be entered only once")
        self._send, self._receive = anyio.create_memory_object_stream[_Request](
            self.max_connections * self.window
        )
        self._clock = loop_clock()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        telemetry.track_pool(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
        telemetry.untrack_pool(self)
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            if exc is not None:
                task_group.cancel_scope.cancel()
            await task_group.__aexit__(exc_type, exc, tb)
        if self._receive is not None:
            while True:
                try:
                    request = self._receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                _abandon([request], sent=False)
            await self._receive.aclose()

    async def aclose(self) -> None:
        """Stop taking requests; queued ones are still sent, then connections QUIT."""
        self._closed = True
        if self._send is not None:
            await self._send.aclose()

    async def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send an ``EmailMessage`` on a pooled connection (see ``SMTPClient.send_message``)."""
        envelope = message_envelope(message, sender, recipients)  # checked before queueing
        entry = Entry(message, sender, recipients, dsn, envelope=envelope, requiretls=requiretls)
        return await self._deliver(entry, envelope.recipients)

    async def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes,
        *,
        dsn: DSN | None = None,
        requiretls: bool = False,
    ) -> SendResult:
        """Send raw bytes on a pooled connection (see ``SMTPClient.sendmail``)."""
        check_envelope(sender, recipients)
        rcpts = (recipients,) if isinstance(recipients, str) else tuple(recipients)
        entry = Entry((sender, recipients, bytes(data)), dsn=dsn, requiretls=requiretls)
        return await self._deliver(entry, rcpts)

    async def send_batch(
        self, items: Iterable[BatchItem], *, dsn: DSN | None = None
    ) -> list[SendResult | SMTPError]:
        """Send every item; one outcome per item, in order, never raising for one message.

        ``items`` are ``EmailMessage`` objects or ``(sender, recipients, data)`` tuples. Each
        outcome is a :class:`SendResult` or the :class:`SMTPError` that message met (a
        message refused before any I/O included). The messages share the pool's
        connections, retry policy and rate limit like separate calls would.
        """
        items = list(items)
        outcomes: list[SendResult | SMTPError | None] = [None] * len(items)
        async for index, outcome in self.send_iter(items, dsn=dsn):
            outcomes[index] = outcome
        return [o if o is not None else SMTPError("not sent") for o in outcomes]

    async def send_iter(
        self, items: Iterable[BatchItem], *, dsn: DSN | None = None
    ) -> AsyncIterator[tuple[int, SendResult | SMTPError]]:
        """Like :meth:`send_batch`, but yield ``(index, outcome)`` as each one is known
        (for progress reports). Leaving the loop early stops the messages not yet sent."""
        items = list(items)
        if self._task_group is None:
            raise SMTPError("use the pool as `async with SMTPPool(...) as pool:`")
        send, receive = anyio.create_memory_object_stream[tuple[int, Outcome]](len(items) or 1)
        # The senders run in the pool's task group (not in one of ours around the yields,
        # which would leak our cancel scope into the caller's loop body); each has a
        # scope, cancelled if the caller stops listening early.
        scopes = [anyio.CancelScope() for _ in items]

        async def one(index: int, item: BatchItem) -> None:
            with scopes[index]:
                try:
                    if isinstance(item, Message):
                        outcome: Outcome = await self.send_message(item, dsn=dsn)
                    else:
                        sender, recipients, data = item
                        outcome = await self.sendmail(sender, recipients, data, dsn=dsn)
                except SMTPError as exc:
                    outcome = exc
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    send.send_nowait((index, outcome))  # unless the caller stopped listening

        for index, item in enumerate(items):
            self._task_group.start_soon(one, index, item)
        try:
            for _ in items:
                yield await receive.receive()
        finally:
            for scope in scopes:
                scope.cancel()
            send.close()
            receive.close()

    # -- callers -----------------------------------------------------------------------

    async def _deliver(self, entry: Entry, recipients: tuple[str, ...]) -> SendResult:
        """Send under the rate limit and the retry policy: each try goes back into the
        queue and waits for its turn in the caller's task, so a worker never sleeps."""
        return await deliver(
            entry,
            recipients,
            self._submit,
            self._settings.retry,
            self._throttle,
            server=(self.host, self.port),
        )

    async def _submit(self, entry: Entry) -> Outcome:
        """Queue one try and wait for its outcome."""
        if self._closed:
            raise SMTPError("the pool is closed")
        if self._send is None or self._task_group is None:
            raise SMTPError("use the pool as `async with SMTPPool(...) as pool:`")
        request = _Request(telemetry.traced(entry))  # sent from a worker's task
        try:
            try:
                self._send.send_nowait(request)
            except anyio.WouldBlock:  # the queue is full: wait for room (backpressure)
                self._spawn_if_needed()
                await self._send.send(request)
            self._spawn_if_needed()
            await request.done.wait()
        except BaseException:
            request.withdraw()  # skipped if still queued; stops the send if it was alone
            raise
        assert request.outcome is not None
        return request.outcome

    def _spawn_if_needed(self) -> None:
        """One more worker (and so connection) when requests outnumber idle workers."""
        assert self._task_group is not None
        if self._workers < self.max_connections and self._waiting() > self._idle_workers():
            self._workers += 1
            self._task_group.start_soon(self._worker)

    def _waiting(self) -> int:
        return self._send.statistics().current_buffer_used if self._send else 0

    def _idle_workers(self) -> int:
        return self._workers - self._busy

    # -- workers -----------------------------------------------------------------------

    async def _worker(self) -> None:
        telemetry.isolate()  # not the trace of the caller whose request started it
        assert self._receive is not None
        receive = self._receive.clone()
        clock = self._clock
        slot = _Slot(idle_since=clock())
        self._slots.add(slot)
        try:
            async with receive:
                while True:
                    try:  # under load a request is already queued: no timer, no wait
                        first = receive.receive_nowait()
                    except anyio.WouldBlock:
                        wait = self.idle_timeout if slot.session is not None else None
                        with anyio.move_on_after(math.inf if wait is None else wait) as idle:
                            try:
                                first = await receive.receive()
                            except anyio.EndOfStream:
                                return
                        if idle.cancelled_caught:
                            await self._retire(slot)
                            continue
                    except anyio.EndOfStream:
                        return
                    batch = self._take_more(receive, first, slot.session)
                    if not batch.requests:
                        continue
                    self._busy += 1
                    try:
                        with batch.scope:
                            await self._serve(slot, batch, receive)
                    finally:
                        self._busy -= 1
                        # Whatever stopped the worker (a bug, the pool shutting down), no
                        # caller may wait forever for an outcome.
                        _abandon(batch.requests, sent=True)
                    if slot.session is not None and not slot.session.idle:
                        await self._retire(slot)  # e.g. the send was cut off mid-transaction
                    slot.idle_since = clock()
        finally:
            self._workers -= 1
            self._slots.discard(slot)
            with anyio.CancelScope(shield=True):
                await self._retire(slot)

    def _take_more(
        self,
        receive: MemoryObjectReceiveStream[_Request],
        first: _Request,
        session: Session | None,
    ) -> _Batch:
        # Leave a fair share to the other idle workers: with DATA a batch still costs one
        # round trip per message, so piling everything on one connection would serialise.
        queued = receive.statistics().current_buffer_used
        idle_workers = max(1, self._workers - self._busy)
        limit = min(self.window, math.ceil((queued + 1) / idle_workers))
        if self.max_messages_per_connection is not None:
            sent = session.messages_sent if session is not None else 0
            limit = max(1, min(limit, self.max_messages_per_connection - sent))
        batch = [first]
        while len(batch) < limit:
            try:
                batch.append(receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
        taken = _Batch([r for r in batch if not r.withdrawn])
        for request in taken.requests:
            request.batch = taken
        return taken

    async def _serve(
        self, slot: _Slot, batch: _Batch, receive: MemoryObjectReceiveStream[_Request]
    ) -> None:
        """Send the batch; callers hear each outcome as soon as it is known.

        With DATA (no CHUNKING) the chain also takes requests queued meanwhile, one per
        round trip, so under load a connection never pauses to end its chain.
        """
        reused = await self._checkout(slot)
        stale: list[_Request] = []
        unresolved = len(batch.requests)

        def sink(request: _Request) -> Callable[[Outcome], None]:
            def hear(outcome: Outcome) -> None:
                nonlocal unresolved
                unresolved -= 1
                if reused and _stale(outcome):
                    stale.append(request)  # the idle connection had died: retried below
                else:
                    request.resolve(outcome)

            return hear

        def more(session: Session) -> list[Transaction]:
            nonlocal unresolved
            limit = self.max_messages_per_connection
            if limit is not None and session.messages_sent + unresolved >= limit:
                return []  # the connection has had its share: the next one opens afresh
            if self._too_old(session, self._clock()):
                return []
            while True:
                try:
                    request = receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    return []
                if not request.withdrawn:
                    break
            request.batch = batch
            batch.requests.append(request)
            unresolved += 1
            return self._build([request], session, sink)

        await self._send_on(slot, batch.requests, sink, more)
        if stale:
            # The idle connection had died under us before anything was accepted.
            reused = False
            await self._retire(slot)
            await self._send_on(slot, stale, sink)

    def _build(
        self,
        requests: list[_Request],
        session: Session,
        sink: Callable[[_Request], Callable[[Outcome], None]],
    ) -> list[Transaction]:
        entries = [replace(r.entry, sink=sink(r)) for r in requests]
        settings = self._settings
        return build_all(
            entries,
            session,
            chunking=settings.chunking,
            cleartext=settings.cleartext,
            signer=settings.signer,
        )

    async def _send_on(
        self,
        slot: _Slot,
        requests: list[_Request],
        sink: Callable[[_Request], Callable[[Outcome], None]],
        more: Callable[[Session], list[Transaction]] | None = None,
    ) -> None:
        async def ready() -> Session:
            session = slot.session
            if session is None or not session.idle:
                await self._retire(slot)
                session = slot.session = await open_session(self._settings)
            return session

        try:
            session = await ready()
        except SMTPError as exc:  # the connection could not even be opened
            for request in requests:
                request.resolve(exc)
            return
        transactions = self._build(requests, session, sink)
        await send_many(
            ready, transactions, self.window, chunking=self._settings.chunking, more=more
        )

    async def _checkout(self, slot: _Slot) -> bool:
        """Keep the slot's connection if it may be reused (NOOP first if idle long), else
        close it; whether it is reused."""
        session, now = slot.session, self._clock()
        if session is not None and self._fresh(session, slot.idle_since, now):
            if self.health_check_after is None or now - slot.idle_since < self.health_check_after:
                return True
            try:
                await session.expect_ok(Noop())
                return True
            except SMTPError:
                pass
        await self._retire(slot)
        return False

    def _fresh(self, session: Session, since: float, now: float) -> bool:
        if not session.idle:
            return False
        if self.idle_timeout is not None and now - since > self.idle_timeout:
            return False
        if self._too_old(session, now):
            return False
        limit = self.max_messages_per_connection
        return limit is None or session.messages_sent < limit

    def _too_old(self, session: Session, now: float) -> bool:
        age = self.max_connection_age
        return age is not None and now - session.opened_at > age

    async def _retire(self, slot: _Slot) -> None:
        """QUIT and forget the slot's connection."""
        session, slot.session = slot.session, None
        if session is not None:
            await _quit(session)


async def _quit(session: Session) -> None:
    """Say QUIT politely and close; never raises."""
    if session.idle:
        with contextlib.suppress(SMTPError), anyio.move_on_after(5, shield=True):
            await session.command(Quit())
    await session.close()


def _abandon(requests: list[_Request], *, sent: bool) -> None:
    """Give requests that will get no outcome an error, so their callers wake up."""
    for request in requests:
        if not request.done.is_set():
            request.resolve(
                OutcomeUnknownError("the pool stopped while this message was being sent")
                if sent
                else NotSentError("not sent: the pool closed first")
            )


def _stale(outcome: Outcome) -> bool:
    """A dead idle connection: lost before sending, or a 421 in answer to MAIL."""
    if isinstance(outcome, TransientReplyError):
        return outcome.code == 421 and outcome.verb == "MAIL"
    return isinstance(outcome, NotSentError)
