"""Shared state of the Celery integration: idempotency records and a shared rate limit.

Theory of operation:

- One **record** per (message key, attempt), under ``<prefix>:rec:<sha256 of key>:<n>``.
  A task claims it with ``SET NX`` (state ``inflight``, with its task id, host and pid)
  before the message's body can be written, and overwrites it after the final reply
  (state ``done`` with the result) or when it hands the message to a later attempt
  (``retried``, then ``retry_published`` once the next attempt is on the broker). Records
  live ``ttl`` seconds, ``inflight`` ones included: a record that expired while in flight
  would let a redelivered task send again a message the server may have queued. A sorted
  set, ``<prefix>:inflight``, indexes the records in flight (updated in the same atomic
  step), so listing them never scans the records of a week of mail.
- The **shared rate limit** is a token bucket (or two: messages and recipients) kept in
  Redis and updated by one Lua script on Redis's own clock, so every worker on every
  machine draws from the same bucket whatever their clocks say. A caller *reserves*
  tokens (the bucket may go below zero, later callers wait behind it) unless the wait
  would exceed ``max_wait``: then nothing is taken and the caller is told how long to
  come back after. A throttling reply halves the rate for ``cooldown`` seconds, down to
  1/16, like the pool's own :class:`~smtpsubmit.RateLimit`.
- :class:`MemoryStore` has the same behaviour in one process, for tests and Celery's
  eager mode; its bucket arithmetic is the reference the Lua script is checked against.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict

from ._celery_codec import OutcomeJSON, Payload

__all__ = ["Bucket", "MemoryStore", "Record", "RedisStore", "Store", "record_id"]

RecordState = Literal["inflight", "done", "retried", "retry_published"]
_MIN_FACTOR = 1 / 16


class Record(TypedDict):
    """What the store knows about one attempt of one message."""

    state: RecordState
    key: str
    attempt: int
    task: str
    host: str
    pid: int
    since: float
    outcome: OutcomeJSON | None
    next: Payload | None


@dataclass(frozen=True)
class Bucket:
    """One shared token bucket: ``rate`` tokens a second, at most ``burst`` saved up."""

    name: str
    rate: float
    burst: int
    tokens: int = 1


def record_id(key: str) -> str:
    """The stable, printable id of a message key (its SHA-256, shortened)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


class Store(Protocol):
    """Where records and buckets live (Redis in production, memory in tests)."""

    def get(self, key: str, attempt: int) -> Record | None:
        """The record of ``attempt`` of ``key``, if any."""

    def claim(self, record: Record, ttl: float) -> bool:
        """Store ``record`` unless one exists for its key and attempt (``SET NX``)."""

    def put(self, record: Record, ttl: float) -> None:
        """Store ``record``, replacing any."""

    def in_flight(self) -> list[Record]:
        """Every record still in flight (the candidates for an unknown outcome)."""

    def take(
        self, buckets: Sequence[Bucket], max_wait: float, cooldown: float
    ) -> tuple[bool, float]:
        """Reserve tokens in every bucket: ``(True, seconds to wait before sending)``, or
        ``(False, seconds to come back after)`` when the wait would exceed ``max_wait``
        (then nothing is taken)."""

    def slow_down(self, buckets: Sequence[Bucket], cooldown: float) -> None:
        """Halve the buckets' rate for ``cooldown`` seconds (down to 1/16)."""


# -- the bucket arithmetic (the Lua script does the same) -----------------------------


def bucket_step(
    state: dict[str, float],
    bucket: Bucket,
    now: float,
    mode: Literal["take", "slow"],
    cooldown: float,
) -> float:
    """Advance one bucket to ``now`` and apply ``mode``; the wait its tokens need.

    ``state`` holds ``level``, ``stamp``, ``factor`` and ``until`` (updated in place;
    empty for a new, full bucket). ``take`` removes the tokens (the level may go below
    zero), ``slow`` halves the rate until ``now + cooldown``.
    """
    level = state.get("level", float(bucket.burst))
    stamp = state.get("stamp", now)
    factor = state.get("factor", 1.0)
    until = state.get("until", 0.0)
    if factor < 1.0 and now >= until:
        if until > stamp:
            level = min(float(bucket.burst), level + (until - stamp) * bucket.rate * factor)
            stamp = until
        factor = 1.0
    if now > stamp:
        level = min(float(bucket.burst), level + (now - stamp) * bucket.rate * factor)
        stamp = now
    wait = 0.0
    if mode == "slow":
        factor = max(_MIN_FACTOR, factor / 2)
        until = now + cooldown
    else:
        after = level - bucket.tokens
        if after < 0:
            wait = -after / (bucket.rate * factor)
        if mode == "take":
            level = after
    state.update(level=level, stamp=stamp, factor=factor, until=until)
    return wait


# -- Redis ---------------------------------------------------------------------------

# KEYS: one hash per bucket. ARGV: mode, max_wait, cooldown, ttl (ms), then rate, burst,
# tokens for each bucket. Returns {taken (0/1), wait as a string}. Redis's TIME is the
# clock of every worker (scripts may call it: effects are replicated, Redis >= 5).
_BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local mode, max_wait, cooldown, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local states, waits = {}, 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 + 3 * i])
  local burst = tonumber(ARGV[3 + 3 * i])
  local tokens = tonumber(ARGV[4 + 3 * i])
  local s = redis.call('HMGET', key, 'level', 'stamp', 'factor', 'until')
  local level = tonumber(s[1]) or burst
  local stamp = tonumber(s[2]) or now
  local factor = tonumber(s[3]) or 1
  local untl = tonumber(s[4]) or 0
  if factor < 1 and now >= untl then
    if untl > stamp then
      level = math.min(burst, level + (untl - stamp) * rate * factor)
      stamp = untl
    end
    factor = 1
  end
  if now > stamp then
    level = math.min(burst, level + (now - stamp) * rate * factor)
    stamp = now
  end
  if mode == 'slow' then
    factor = math.max(1 / 16, factor / 2)
    untl = now + cooldown
  else
    local after = level - tokens
    if after < 0 and -after / (rate * factor) > waits then
      waits = -after / (rate * factor)
    end
    if mode == 'take' then level = after end
  end
  states[i] = {level, stamp, factor, untl}
end
if mode == 'take' and waits > max_wait then
  return {0, string.format('%.17g', waits)}
end
for i, key in ipairs(KEYS) do
  local s = states[i]
  redis.call('HSET', key, 'level', string.format('%.17g', s[1]),
    'stamp', string.format('%.17g', s[2]), 'factor', string.format('%.17g', s[3]),
    'until', string.format('%.17g', s[4]))
  redis.call('PEXPIRE', key, ttl)
end
return {1, string.format('%.17g', waits)}
"""


# KEYS: the record, the in-flight index. ARGV: the record, its TTL (ms), the claim time.
_CLAIM_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
  return 1
end
return 0
"""


class RedisStore:
    """Records and buckets in Redis (``url`` such as ``redis://host:6379/0``).

    The client is made lazily in each process (a forked worker child gets its own).
    """

    def __init__(self, url: str, *, prefix: str = "smtpsubmit") -> None:
        self.url = url
        self.prefix = prefix
        self._lock = threading.Lock()
        self._client: Any = None
        self._script: Any = None
        self._claim: Any = None
        self._pid = 0
        #: The in-flight index: record key -> time claimed (so nothing has to SCAN).
        self._flying = f"{prefix}:inflight"

    def __repr__(self) -> str:
        return f"<RedisStore prefix={self.prefix!r}>"  # the URL may hold a password

    def _redis(self) -> Any:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                import redis

                self._client = redis.Redis.from_url(self.url)
                self._script = self._client.register_script(_BUCKET_SCRIPT)
                self._claim = self._client.register_script(_CLAIM_SCRIPT)
                self._pid = os.getpid()
            return self._client

    def _key(self, key: str, attempt: int) -> str:
        return f"{self.prefix}:rec:{record_id(key)}:{attempt}"

    def get(self, key: str, attempt: int) -> Record | None:
        """See :meth:`Store.get`."""
        raw = self._redis().get(self._key(key, attempt))
        if raw is None:
            return None
        record: Record = json.loads(raw)
        return record

    def claim(self, record: Record, ttl: float) -> bool:
        """See :meth:`Store.claim`."""
        self._redis()
        key = self._key(record["key"], record["attempt"])
        args = [json.dumps(record), int(ttl * 1000), repr(record["since"])]
        return bool(self._claim(keys=[key, self._flying], args=args))

    def put(self, record: Record, ttl: float) -> None:
        """See :meth:`Store.put`."""
        key = self._key(record["key"], record["attempt"])
        with self._redis().pipeline(transaction=True) as pipe:
            pipe.set(key, json.dumps(record), px=int(ttl * 1000))
            if record["state"] == "inflight":
                pipe.zadd(self._flying, {key: record["since"]})
            else:
                pipe.zrem(self._flying, key)
            pipe.execute()

    def in_flight(self) -> list[Record]:
        """See :meth:`Store.in_flight` (reads only the in-flight index, oldest first)."""
        client = self._redis()
        names = client.zrange(self._flying, 0, -1)
        if not names:
            return []
        found: list[Record] = []
        for name, raw in zip(names, client.mget(names), strict=True):
            record: Record | None = json.loads(raw) if raw is not None else None
            if record is None or record["state"] != "inflight":
                client.zrem(self._flying, name)  # expired, or finished meanwhile
            else:
                found.append(record)
        return found

    def _run(
        self,
        mode: Literal["take", "slow"],
        buckets: Sequence[Bucket],
        max_wait: float,
        cooldown: float,
    ) -> tuple[bool, float]:
        self._redis()
        keys = [f"{self.prefix}:rate:{b.name}" for b in buckets]
        args: list[Any] = [
            mode,
            repr(min(max_wait, 1e300)),
            repr(cooldown),
            str(_bucket_ttl(cooldown)),
        ]
        for bucket in buckets:
            args += [repr(float(bucket.rate)), str(bucket.burst), str(bucket.tokens)]
        taken, wait = self._script(keys=keys, args=args)
        return bool(int(taken)), float(wait)

    def take(
        self, buckets: Sequence[Bucket], max_wait: float, cooldown: float
    ) -> tuple[bool, float]:
        """See :meth:`Store.take`."""
        return self._run("take", buckets, max_wait, cooldown)

    def slow_down(self, buckets: Sequence[Bucket], cooldown: float) -> None:
        """See :meth:`Store.slow_down`."""
        self._run("slow", buckets, 0.0, cooldown)


def _bucket_ttl(cooldown: float) -> int:
    """Milliseconds an unused bucket is kept: past that it would be full again anyway."""
    return int(max(60.0, 2 * cooldown) * 1000)


# -- memory --------------------------------------------------------------------------


class MemoryStore:
    """The same behaviour in this process only: for tests and ``task_always_eager``.

    It guarantees nothing across processes, so never use it with real workers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, int], tuple[float, str]] = {}
        self._buckets: dict[str, dict[str, float]] = {}

    def __repr__(self) -> str:
        return f"<MemoryStore records={len(self._records)}>"

    def get(self, key: str, attempt: int) -> Record | None:
        """See :meth:`Store.get`."""
        with self._lock:
            item = self._records.get((key, attempt))
            if item is None or item[0] < time.monotonic():
                return None
            return json.loads(item[1])  # type: ignore[no-any-return]

    def claim(self, record: Record, ttl: float) -> bool:
        """See :meth:`Store.claim`."""
        with self._lock:
            item = self._records.get((record["key"], record["attempt"]))
            if item is not None and item[0] >= time.monotonic():
                return False
            self._records[(record["key"], record["attempt"])] = _expiring(record, ttl)
            return True

    def put(self, record: Record, ttl: float) -> None:
        """See :meth:`Store.put`."""
        with self._lock:
            self._records[(record["key"], record["attempt"])] = _expiring(record, ttl)

    def in_flight(self) -> list[Record]:
        """See :meth:`Store.in_flight`."""
        with self._lock:
            now = time.monotonic()
            records = [json.loads(text) for until, text in self._records.values() if until >= now]
        return [r for r in records if r["state"] == "inflight"]

    def _run(
        self,
        mode: Literal["take", "slow"],
        buckets: Sequence[Bucket],
        max_wait: float,
        cooldown: float,
    ) -> tuple[bool, float]:
        with self._lock:
            now = time.monotonic()
            states = {b.name: dict(self._buckets.get(b.name, {})) for b in buckets}
            wait = max(
                (bucket_step(states[b.name], b, now, mode, cooldown) for b in buckets),
                default=0.0,
            )
            if mode == "take" and wait > max_wait:
                return False, wait
            self._buckets.update(states)
            return True, wait

    def take(
        self, buckets: Sequence[Bucket], max_wait: float, cooldown: float
    ) -> tuple[bool, float]:
        """See :meth:`Store.take`."""
        return self._run("take", buckets, max_wait, cooldown)

    def slow_down(self, buckets: Sequence[Bucket], cooldown: float) -> None:
        """See :meth:`Store.slow_down`."""
        self._run("slow", buckets, 0.0, cooldown)


def _expiring(record: Record, ttl: float) -> tuple[float, str]:
    return time.monotonic() + ttl, json.dumps(record)
