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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._batch import BatchEntry
from ._client import SMTPClient
from ._errors import ConnectError, OutcomeUnknownError, SMTPError, TransientReplyError
from ._gate import loop_clock
from ._message import DSN
from ._options import ClientOptions, Unpack
from ._results import SendResult
from ._validate import check_pool_arguments

__all__ = ["SMTPPool"]

Outcome = SendResult | SMTPError


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
    entry: BatchEntry
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

    client: SMTPClient | None = None
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
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if window < 1:
            raise ValueError("window must be at least 1")
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.window = window
        self.max_messages_per_connection = max_messages_per_connection
        self.max_connection_age = max_connection_age
        self.idle_timeout = idle_timeout
        self.health_check_after = health_check_after

        def factory() -> SMTPClient:
            return SMTPClient(host, port, **options)

        factory()  # validate the options (TLS policy, auth) now, not at the first send
        self._factory = factory
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
        return sum(1 for slot in self._slots if slot.client and slot.client.is_connected)

    async def __aenter__(self) -> SMTPPool:
        if self._closed or self._task_group is not None:
            raise SMTPError("an SMTPPool can be entered only once")
        self._send, self._receive = anyio.create_memory_object_stream[_Request](
            self.max_connections * self.window
        )
        self._clock = loop_clock()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
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
    ) -> SendResult:
        """Send an ``EmailMessage`` on a pooled connection (see ``SMTPClient.send_message``)."""
        return await self._submit(BatchEntry(message, sender, recipients, dsn))

    async def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes,
        *,
        dsn: DSN | None = None,
    ) -> SendResult:
        """Send raw bytes on a pooled connection (see ``SMTPClient.sendmail``)."""
        return await self._submit(BatchEntry((sender, recipients, bytes(data)), dsn=dsn))

    # -- callers -----------------------------------------------------------------------

    async def _submit(self, entry: BatchEntry) -> SendResult:
        if self._closed:
            raise SMTPError("the pool is closed")
        if self._send is None or self._task_group is None:
            raise SMTPError("use the pool as `async with SMTPPool(...) as pool:`")
        request = _Request(entry)
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
        outcome = request.outcome
        if isinstance(outcome, SMTPError):
            raise outcome
        assert outcome is not None
        return outcome

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
                        wait = self.idle_timeout if slot.client is not None else None
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
                    batch = self._take_more(receive, first, slot.client)
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
                    if slot.client is not None and not slot.client.is_connected:
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
        client: SMTPClient | None,
    ) -> _Batch:
        # Leave a fair share to the other idle workers: with DATA a batch still costs one
        # round trip per message, so piling everything on one connection would serialise.
        queued = receive.statistics().current_buffer_used
        idle_workers = max(1, self._workers - self._busy)
        limit = min(self.window, math.ceil((queued + 1) / idle_workers))
        if self.max_messages_per_connection is not None:
            sent = client.messages_sent if client is not None else 0
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
        client, reused = await self._checkout(slot)
        requests = batch.requests  # grows while the chain runs, see more()
        unresolved = len(requests)

        def on_outcome(index: int, outcome: Outcome) -> None:
            nonlocal unresolved
            if reused and _stale(outcome):
                return  # the idle connection had died: retried below on a fresh one
            if not requests[index].done.is_set():
                unresolved -= 1
                requests[index].resolve(outcome)

        def more() -> list[BatchEntry]:
            nonlocal unresolved
            limit = self.max_messages_per_connection
            if limit is not None and client.messages_sent + unresolved >= limit:
                return []  # the connection has had its share: the next one opens afresh
            if self._too_old(client, self._clock()):
                return []
            while True:
                try:
                    request = receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    return []
                if not request.withdrawn:
                    break
            request.batch = batch
            requests.append(request)
            unresolved += 1
            return [request.entry]

        outcomes = await self._send_on(client, requests, more, on_outcome)
        if reused:
            stale = [r for r, o in zip(requests, outcomes, strict=True) if _stale(o)]
            if stale:
                # The idle connection had died under us before anything was accepted.
                await self._retire(slot)
                client = slot.client = self._factory()
                retried = dict(zip(stale, await self._send_on(client, stale), strict=True))
                outcomes = [retried.get(r, o) for r, o in zip(requests, outcomes, strict=True)]
        for request, outcome in zip(requests, outcomes, strict=True):
            if not request.done.is_set():
                request.resolve(outcome)

    async def _send_on(
        self,
        client: SMTPClient,
        batch: list[_Request],
        more: Callable[[], list[BatchEntry]] | None = None,
        on_outcome: Callable[[int, Outcome], None] | None = None,
    ) -> list[Outcome]:
        try:
            if len(batch) == 1 and more is None:
                return [await self._send_one(client, batch[0].entry)]
            entries = [r.entry for r in batch]
            return await client._send_entries(
                entries, self.window, more=more, on_outcome=on_outcome
            )
        except SMTPError as exc:  # the connection could not even be opened
            return [exc] * len(batch)

    @staticmethod
    async def _send_one(client: SMTPClient, entry: BatchEntry) -> Outcome:
        try:
            item = entry.item
            if isinstance(item, Message):
                return await client.send_message(
                    item, sender=entry.sender, recipients=entry.recipients, dsn=entry.dsn
                )
            sender, recipients, data = item
            return await client.sendmail(sender, recipients, data, dsn=entry.dsn)
        except SMTPError as exc:
            return exc

    async def _checkout(self, slot: _Slot) -> tuple[SMTPClient, bool]:
        """The slot's connection if it may be reused (NOOP first if idle long), else new."""
        client, now = slot.client, self._clock()
        if client is not None and self._fresh(client, slot.idle_since, now):
            if self.health_check_after is None or now - slot.idle_since < self.health_check_after:
                return client, True
            try:
                await client.noop()
                return client, True
            except SMTPError:
                pass
        await self._retire(slot)
        slot.client = self._factory()
        return slot.client, False

    def _fresh(self, client: SMTPClient, since: float, now: float) -> bool:
        if not client.is_connected:
            return False
        if self.idle_timeout is not None and now - since > self.idle_timeout:
            return False
        if self._too_old(client, now):
            return False
        limit = self.max_messages_per_connection
        return limit is None or client.messages_sent < limit

    def _too_old(self, client: SMTPClient, now: float) -> bool:
        age, opened = self.max_connection_age, client.connected_at
        return age is not None and opened is not None and now - opened > age

    async def _retire(self, slot: _Slot) -> None:
        """QUIT and forget the slot's connection."""
        client, slot.client = slot.client, None
        if client is not None:
            await client.quit()


def _abandon(requests: list[_Request], *, sent: bool) -> None:
    """Give requests that will get no outcome an error, so their callers wake up."""
    for request in requests:
        if not request.done.is_set():
            request.resolve(
                OutcomeUnknownError("the pool stopped while this message was being sent")
                if sent
                else ConnectError("not sent: the pool closed first")
            )


def _stale(outcome: Outcome) -> bool:
    """A dead idle connection: lost before sending, or a 421 in answer to MAIL."""
    if isinstance(outcome, TransientReplyError):
        return outcome.code == 421 and (outcome.command or "").startswith("MAIL")
    return isinstance(outcome, ConnectError) and not isinstance(outcome, OutcomeUnknownError)
