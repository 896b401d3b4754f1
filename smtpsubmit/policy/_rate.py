"""RateLimit: stay under a provider's sending limit, and slow down when it says so.

Theory of operation:

- A :class:`RateLimit` is configuration; a :class:`TokenBucket` is its state, pure
  arithmetic over a clock reading passed in (no sleeping here, so it is testable without
  time): :meth:`TokenBucket.reserve` takes tokens and says how long the caller must wait
  before using them. Tokens are reserved in arrival order, so waiting callers keep their
  turn and the long-run rate never exceeds ``per_second``.
- Messages and recipients have a bucket each (``recipients_per_second`` is optional);
  one :class:`RateLimit` given to a pool is one pair of buckets for all its connections.
- A throttling reply (421, 451 or 454 with a 4.7.x enhanced code or rate wording such as
  "too many" or "rate limit", :func:`is_throttling`) halves the rate for ``cooldown``
  seconds; each further one halves it again, down to 1/16 of the configured rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .._errors import ReplyError, SMTPError

__all__ = ["RateLimit", "TokenBucket", "is_throttling"]

_RATE_WORDS = re.compile(r"rate|too many|throttl|limit|slow down|exceeded", re.IGNORECASE)
#: The deepest slow-down: a sixteenth of the configured rate.
_MIN_FACTOR = 1 / 16


@dataclass(frozen=True)
class RateLimit:
    """At most ``per_second`` messages a second, in bursts of up to ``burst``.

    ``recipients_per_second`` also limits recipients (with ``recipient_burst``, by default
    the same number), for providers that count those. After a throttling reply the rate
    is halved for ``cooldown`` seconds.
    """

    per_second: float
    burst: int = 1
    recipients_per_second: float | None = None
    recipient_burst: int | None = None
    cooldown: float = 60.0

    def __post_init__(self) -> None:
        _positive("per_second", self.per_second)
        if self.recipients_per_second is not None:
            _positive("recipients_per_second", self.recipients_per_second)
        for name in ("burst", "recipient_burst"):
            value = getattr(self, name)
            if value is None and name == "recipient_burst":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, not {value!r}")
        if not isinstance(self.cooldown, int | float) or not 0 <= self.cooldown < math.inf:
            raise ValueError(f"cooldown must be a finite number of seconds, not {self.cooldown!r}")


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, not {value!r}")


class TokenBucket:
    """A token bucket of ``rate`` tokens a second holding at most ``burst``; starts full.

    ``now`` is any monotonic clock reading in seconds (the caller's).
    """

    __slots__ = ("_factor", "_level", "_slow_until", "_stamp", "burst", "cooldown", "rate")

    def __init__(self, rate: float, burst: int, now: float, *, cooldown: float = 60.0) -> None:
        self.rate = rate
        self.burst = burst
        self.cooldown = cooldown
        self._level = float(burst)
        self._stamp = now
        self._factor = 1.0
        self._slow_until = now

    def current_rate(self, now: float) -> float:
        """The rate in force at ``now`` (lower during a slow-down)."""
        if self._factor < 1.0 and now >= self._slow_until:
            self._refill(self._slow_until)
            self._factor = 1.0
        return self.rate * self._factor

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            rate = self.rate * self._factor
            self._level = min(float(self.burst), self._level + (now - self._stamp) * rate)
            self._stamp = now

    def reserve(self, tokens: float, now: float) -> float:
        """Take ``tokens``; the seconds to wait from ``now`` before they may be used.

        The bucket may go below zero: later callers then wait behind this one.
        """
        rate = self.current_rate(now)
        self._refill(now)
        self._level -= tokens
        if self._level >= 0:
            return 0.0
        return -self._level / rate

    def slow_down(self, now: float) -> None:
        """Halve the rate (down to 1/16) until ``cooldown`` seconds from ``now``."""
        self.current_rate(now)
        self._refill(now)
        self._factor = max(_MIN_FACTOR, self._factor / 2)
        self._slow_until = now + self.cooldown


def is_throttling(error: SMTPError) -> bool:
    """A reply that asks the client to send more slowly (421, 451 or 454 with a 4.7.x
    enhanced status or rate wording, e.g. ``421 4.7.0 Too many messages``)."""
    if not isinstance(error, ReplyError) or error.code not in (421, 450, 451, 452, 454):
        return False
    enhanced = error.enhanced
    if enhanced is not None and enhanced.subject == 7 and error.code != 452:
        return True
    return bool(_RATE_WORDS.search(error.text))
