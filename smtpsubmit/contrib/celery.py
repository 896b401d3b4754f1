"""Send mail through Celery workers on Redis, exactly once or reported.

::

    from celery import Celery
    from smtpsubmit.contrib.celery import register_smtp_task

    app = Celery("proj", broker="redis://localhost:6379/0", backend="redis://localhost:6379/1")
    mail = register_smtp_task(app, "smtp.example.com", 587, username="me", password="...")
    result = mail.send_message(msg)     # a Celery AsyncResult
    result.get()["status"]              # "sent", "failed", "unknown" or "duplicate"

Theory of operation:

- :func:`register_smtp_task` puts one task on the user's app, configured with the
  connection keywords of :class:`smtpsubmit.SMTPPool`. Those stay in the worker's
  configuration: credentials never travel through the broker or into a result.
- Each worker process opens its own :class:`smtpsubmit.sync.SMTPPool` on its first task
  (fork-safe: a prefork child never uses its parent's) and closes it on
  ``worker_process_shutdown`` (prefork) or ``worker_shutdown`` (threads, solo). The pool
  makes one try per task: retries go through Celery.
- A task is one attempt of one message. Its JSON result (:class:`OutcomeJSON`) says per
  recipient what happened. When recipients were refused with 4xx (or the whole try met a
  retryable failure), the task re-queues itself with ``countdown`` from the
  :class:`~smtpsubmit.RetryPolicy` and only those recipients: the worker is free
  meanwhile, and the same task id carries the final result.
- Exactly once or reported: the task is ``acks_late`` and ``reject_on_worker_lost``, so a
  lost worker's task is delivered again; an idempotency record per (message key,
  attempt) in Redis (see ``_celery_store``) decides what a task that finds one does:
  ``done`` -> return the stored result without sending; ``inflight`` and the owner is
  dead -> report ``unknown``, never send again (unless ``resend_in_flight=True``);
  ``inflight`` with a live or unknowable owner -> wait up to ``in_flight_wait`` seconds
  for its result, else report ``unknown``; a record of another task -> ``duplicate``.
- ``shared_rate_limit`` is one token bucket in Redis for every worker on every machine,
  taken before the record is claimed, on top of each pool's own ``rate_limit``. A short
  wait is slept in the worker; a longer one re-queues the task with a countdown.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from email.message import Message
from typing import Any

from .. import sync
from .._errors import SMTPError
from .._handshake import Settings
from .._message import DSN
from .._options import PoolOptions, Unpack
from .._results import SendResult
from ..policy import RateLimit, RetryPolicy
from ._celery_batch import BatchRun, BatchSummary
from ._celery_codec import (
    OutcomeJSON,
    Payload,
    conclude,
    decode_message,
    decode_payload,
    dsn_from_json,
    duplicate_outcome,
    encode_message,
    encode_raw,
    lost_outcome,
    throttled,
)
from ._celery_store import Bucket, MemoryStore, Record, RedisStore, Store

__all__ = [
    "BatchRun",
    "BatchSummary",
    "MemoryStore",
    "OutcomeJSON",
    "Record",
    "RedisStore",
    "SMTPTask",
    "Store",
    "register_smtp_task",
]

logger = logging.getLogger("smtpsubmit.contrib.celery")

#: A batch item: an ``EmailMessage``, or ``(sender, recipients, data)``.
BatchItem = Message | tuple[str, Sequence[str] | str, bytes]

_POOL_ONLY = frozenset(
    {
        "max_connections",
        "window",
        "max_messages_per_connection",
        "max_connection_age",
        "idle_timeout",
        "health_check_after",
    }
)
_WEEK = 7 * 24 * 3600.0
_HOST = socket.gethostname()


class _ProcessPool:
    """One :class:`smtpsubmit.sync.SMTPPool` per process, opened on first use."""

    def __init__(self, factory: Callable[[], sync.SMTPPool]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pool: sync.SMTPPool | None = None
        self._pid = 0

    def get(self) -> sync.SMTPPool:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = self._factory()  # a forked child's inherited pool is dropped
                self._pid = os.getpid()
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None and self._pid == os.getpid():
                pool.close()


def _owner_alive(record: Record) -> bool:
    """Whether the process that claimed ``record`` may still be running.

    Only a process of this host can be checked; any other counts as alive.
    """
    pid = record["pid"]
    if record["host"] != _HOST or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped is a zombie: dead all the same
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


class SMTPTask:
    """A sending task on a Celery app (made by :func:`register_smtp_task`).

    ``task`` is the Celery task itself (for ``signature``, routing, ``chain``...).
    """

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        name: str,
        store: Store,
        shared_rate_limit: RateLimit | None,
        rate_limit_key: str,
        record_ttl: float,
        in_flight_wait: float,
        resend_in_flight: bool,
        max_rate_wait: float,
        options: PoolOptions,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.store = store
        self.shared_rate_limit = shared_rate_limit
        self.rate_limit_key = rate_limit_key
        self.record_ttl = record_ttl
        self.in_flight_wait = in_flight_wait
        self.resend_in_flight = resend_in_flight
        self.max_rate_wait = max_rate_wait
        pool_options: PoolOptions = dict(options)  # type: ignore[assignment]
        #: Retries go through Celery (one try per task), so the pool itself never retries.
        self.retry_policy: RetryPolicy | None = pool_options.pop("retry", None)
        client_options = {k: v for k, v in pool_options.items() if k not in _POOL_ONLY}
        Settings.from_options(host, port, **client_options)  # type: ignore[arg-type]
        self._pool = _ProcessPool(lambda: sync.SMTPPool(host, port, **pool_options))

        def send(task: Any, payload: object) -> OutcomeJSON:
            return self.run(task, decode_payload(payload))

        self.task: Any = app.task(
            name=name,
            bind=True,
            shared=False,
            acks_late=True,
            reject_on_worker_lost=True,
            max_retries=None,
            serializer="json",
            ignore_result=False,
        )(send)

    def __repr__(self) -> str:
        return f"<SMTPTask {self.name} {self.host}:{self.port} store={self.store!r}>"

    # -- the caller's side -----------------------------------------------------------

    def signature(self, item: BatchItem, *, dsn: DSN | None = None, key: str | None = None) -> Any:
        """The Celery signature that sends ``item`` (for groups, chains, ``apply_async``)."""
        if isinstance(item, Message):
            payload = encode_message(item, dsn=dsn, key=key)
        else:
            sender, recipients, data = item
            payload = encode_raw(sender, recipients, data, dsn=dsn, key=key)
        return self.task.signature((payload,), argsrepr=_describe(payload))

    def send_message(
        self,
        message: Message,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        key: str | None = None,
        **apply_options: Any,
    ) -> Any:
        """Queue an ``EmailMessage``; its envelope is checked now. Returns the
        ``AsyncResult``, whose value is an :class:`OutcomeJSON`.

        ``key`` is the idempotency key (default: the Message-ID, else a random one);
        ``apply_options`` go to ``apply_async`` (``queue``, ``countdown``, ...).
        """
        payload = encode_message(message, sender=sender, recipients=recipients, dsn=dsn, key=key)
        return self.task.apply_async((payload,), argsrepr=_describe(payload), **apply_options)

    def sendmail(
        self,
        sender: str,
        recipients: Sequence[str] | str,
        data: bytes,
        *,
        dsn: DSN | None = None,
        key: str | None = None,
        **apply_options: Any,
    ) -> Any:
        """Queue raw RFC 5322 octets with an envelope (see :meth:`send_message`)."""
        payload = encode_raw(sender, recipients, data, dsn=dsn, key=key)
        return self.task.apply_async((payload,), argsrepr=_describe(payload), **apply_options)

    def send_batch(
        self, items: Iterable[BatchItem], *, dsn: DSN | None = None, **apply_options: Any
    ) -> BatchRun:
        """Queue every item as one Celery group; :class:`BatchRun` follows their progress."""
        from celery import group

        signatures = [self.signature(item, dsn=dsn) for item in items]
        keys = [s.args[0]["key"] for s in signatures]
        return BatchRun(group(signatures).apply_async(**apply_options), keys)

    def records(self, key: str) -> list[Record]:
        """The idempotency records of a message key, one per attempt so far (for finding
        out what happened to a message reported ``unknown``)."""
        found = []
        attempt = 1
        while (record := self.store.get(key, attempt)) is not None:
            found.append(record)
            attempt += 1
        return found

    def in_flight(self) -> list[Record]:
        """Every record still in flight: messages being sent now, or whose worker was lost
        while sending (those are the ``unknown`` ones)."""
        return self.store.in_flight()

    def close(self) -> None:
        """Close this process's pool (done for you on worker shutdown)."""
        self._pool.close()

    # -- the worker's side -----------------------------------------------------------

    def run(self, task: Any, payload: Payload) -> OutcomeJSON:
        """One attempt of one message, inside the Celery task ``task`` (bound)."""
        task_id: str = task.request.id or "local"
        key, attempt = payload["key"], payload["attempt"]
        record = self.store.get(key, attempt)
        if record is not None:
            known = self._resolve(task, payload, record, task_id)
            if known is not None:
                return known
        self._pace(task, payload)
        mine = self._record("inflight", payload, task_id)
        if not self.store.claim(mine, self.record_ttl):
            record = self.store.get(key, attempt)
            if record is not None:
                known = self._resolve(task, payload, record, task_id)
                if known is not None:
                    return known
            self.store.put(mine, self.record_ttl)  # taking over (resend_in_flight=True)
        try:
            outcome = self._send(payload)
        except Exception as exc:  # a bug or a time limit: the message may have gone
            logger.exception("message %s: unexpected error while sending", key)
            result = lost_outcome(payload, f"{type(exc).__name__} while sending: {exc}")
            self.store.put(self._record("done", payload, task_id, result), self.record_ttl)
            return result
        buckets = self._buckets(payload)
        if buckets and throttled(outcome):
            assert self.shared_rate_limit is not None
            self.store.slow_down(buckets, self.shared_rate_limit.cooldown)
        result, again = conclude(payload, outcome, self.retry_policy)
        if again:
            assert self.retry_policy is not None
            following: Payload = {
                **payload,
                "recipients": again,
                "attempt": attempt + 1,
                "earlier": result,
            }
            retried = self._record("retried", payload, task_id, result, following)
            self.store.put(retried, self.record_ttl)
            self._publish(task, retried, following, self.retry_policy.delay(attempt))
        self.store.put(self._record("done", payload, task_id, result), self.record_ttl)
        if result["status"] == "unknown":
            logger.warning("message %s: outcome unknown: %s", key, result["error"])
        return result

    def _send(self, payload: Payload) -> SendResult | SMTPError:
        message = decode_message(payload)
        dsn = dsn_from_json(payload["dsn"])
        sender, recipients = payload["sender"], payload["recipients"]
        try:
            pool = self._pool.get()
            if isinstance(message, bytes):
                return pool.sendmail(sender, recipients, message, dsn=dsn)
            return pool.send_message(message, sender=sender, recipients=recipients, dsn=dsn)
        except SMTPError as exc:
            return exc

    def _resolve(
        self, task: Any, payload: Payload, record: Record, task_id: str
    ) -> OutcomeJSON | None:
        """What a task that finds a record returns (``None``: send, taking over)."""
        if record["task"] != task_id:
            return duplicate_outcome(payload, record["task"])
        state = record["state"]
        if state == "done" and record["outcome"] is not None:
            return record["outcome"]
        if state == "retry_published":
            from celery.exceptions import Ignore

            raise Ignore()  # the next attempt is queued under this task id: leave it be
        if state == "retried" and record["next"] is not None:
            self._publish(task, record, record["next"], 0.0)  # we died before queueing it
        if self.resend_in_flight:
            return None
        deadline = time.monotonic() + self.in_flight_wait
        while True:
            if not _owner_alive(record):
                result = lost_outcome(
                    payload,
                    f"the worker process sending this message (pid {record['pid']} on "
                    f"{record['host']}) was lost before it recorded the server's reply",
                )
                self.store.put(self._record("done", payload, task_id, result), self.record_ttl)
                logger.warning("message %s: outcome unknown (worker lost)", payload["key"])
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return lost_outcome(
                    payload,
                    f"still in flight in pid {record['pid']} on {record['host']} after "
                    f"{self.in_flight_wait:g} s; not sent again",
                )
            time.sleep(min(0.2, remaining))  # the other delivery is still sending
            latest = self.store.get(payload["key"], payload["attempt"])
            if latest is None:
                return lost_outcome(payload, "the in-flight record expired; not sent again")
            if latest["state"] != "inflight":
                return self._resolve(task, payload, latest, task_id)
            record = latest

    def _publish(self, task: Any, record: Record, following: Payload, countdown: float) -> None:
        """Queue the next attempt under the same task id, then say so in the record."""
        retry = task.retry(
            args=(following,), countdown=countdown, throw=False, argsrepr=_describe(following)
        )
        self.store.put({**record, "state": "retry_published"}, self.record_ttl)
        raise retry

    def _buckets(self, payload: Payload) -> list[Bucket]:
        limit = self.shared_rate_limit
        if limit is None:
            return []
        buckets = [Bucket(f"{self.rate_limit_key}:messages", limit.per_second, limit.burst)]
        if limit.recipients_per_second is not None:
            burst = limit.recipient_burst or max(1, int(limit.recipients_per_second))
            rcpts = len(payload["recipients"])
            buckets.append(
                Bucket(
                    f"{self.rate_limit_key}:recipients", limit.recipients_per_second, burst, rcpts
                )
            )
        return buckets

    def _pace(self, task: Any, payload: Payload) -> None:
        """Wait for the shared rate limit: sleep a short wait, re-queue for a long one."""
        buckets = self._buckets(payload)
        if not buckets:
            return
        assert self.shared_rate_limit is not None
        cooldown = self.shared_rate_limit.cooldown
        eager = bool(getattr(task.request, "is_eager", False))
        taken, wait = self.store.take(buckets, self.max_rate_wait, cooldown)
        while not taken and eager:  # no broker to come back through: wait here
            time.sleep(wait)
            taken, wait = self.store.take(buckets, self.max_rate_wait, cooldown)
        if not taken:
            raise task.retry(args=(payload,), countdown=wait, argsrepr=_describe(payload))
        if wait > 0:
            time.sleep(wait)

    def _record(
        self,
        state: Any,
        payload: Payload,
        task_id: str,
        outcome: OutcomeJSON | None = None,
        following: Payload | None = None,
    ) -> Record:
        return {
            "state": state,
            "key": payload["key"],
            "attempt": payload["attempt"],
            "task": task_id,
            "host": _HOST,
            "pid": os.getpid(),
            "since": time.time(),
            "outcome": outcome,
            "next": following,
        }


def _describe(payload: Payload) -> str:
    """What logs and monitors show instead of the message's octets (personal data)."""
    count = len(payload["recipients"])
    return f"(<{payload['kind']} key={payload['key']!r} attempt={payload['attempt']} to {count}>,)"


def register_smtp_task(
    app: Any,
    host: str,
    port: int,
    *,
    name: str = "smtpsubmit.send",
    store: Store | str | None = None,
    shared_rate_limit: RateLimit | None = None,
    rate_limit_key: str | None = None,
    record_ttl: float = _WEEK,
    in_flight_wait: float = 30.0,
    resend_in_flight: bool = False,
    max_rate_wait: float = 2.0,
    key_prefix: str = "smtpsubmit",
    **options: Unpack[PoolOptions],
) -> SMTPTask:
    """Register a sending task named ``name`` on the Celery ``app``; returns its handle.

    ``options`` are :class:`smtpsubmit.SMTPPool`'s keywords (TLS, credentials, timeouts,
    ``max_connections``, the per-process ``rate_limit``...); ``retry`` is applied by
    re-queueing through Celery. ``store`` holds the idempotency records and the shared
    bucket: a Redis URL, a :class:`RedisStore`, or by default the app's broker URL.
    ``shared_rate_limit`` is one limit for every worker (its bucket is named
    ``rate_limit_key``, by default ``name``: tasks that name the same bucket share it).
    ``record_ttl`` is how long records are kept (also the longest a message can be
    recognised as already sent). A redelivered task that finds its message still in flight
    waits ``in_flight_wait`` seconds for the other delivery's result before it reports
    ``unknown``; ``resend_in_flight=True`` sends again instead (a duplicate becomes
    possible). A shared-rate wait longer than ``max_rate_wait`` seconds re-queues the
    task instead of holding the worker.

    Call it where workers and callers both import it (the module that defines ``app``).
    """
    if record_ttl <= 0 or in_flight_wait < 0 or max_rate_wait < 0:
        raise ValueError("record_ttl must be > 0, in_flight_wait and max_rate_wait >= 0")
    if store is None:
        store = str(app.conf.broker_url or "")
        if not store.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "the idempotency records need Redis: pass store='redis://...' (the broker "
                "is not Redis), or store=MemoryStore() in tests with task_always_eager"
            )
    if isinstance(store, str):
        store = RedisStore(store, prefix=key_prefix)
    handle = SMTPTask(
        app,
        host,
        port,
        name=name,
        store=store,
        shared_rate_limit=shared_rate_limit,
        rate_limit_key=rate_limit_key or name,
        record_ttl=record_ttl,
        in_flight_wait=in_flight_wait,
        resend_in_flight=resend_in_flight,
        max_rate_wait=max_rate_wait,
        options=options,
    )
    from celery import signals

    def close(**_: Any) -> None:
        handle.close()

    signals.worker_process_shutdown.connect(close, weak=False)
    signals.worker_shutdown.connect(close, weak=False)
    return handle
