"""RetryPolicy: what to send again after a failure, and when; never what may be queued.

Theory of operation (the rules are in :meth:`RetryPolicy.retryable`):

- Retried: a failure before the end of the message was written (connection refused or
  lost, a timeout, :class:`NotSentError`); a 421 anywhere (RFC 5321 3.8); a 4xx to MAIL,
  DATA, BDAT or the end of the message; a 4xx to STARTTLS or AUTH (454 4.7.0: a
  temporary failure, RFC 3207 4, RFC 4954 6); recipients refused with 4xx.
- Never retried: any 5xx; a security or TLS failure (a certificate does not get better by
  asking again); a proxy that refused our credentials or the destination; a message or
  argument problem; :class:`OutcomeUnknownError`, unless
  ``retry_unknown=True`` (the server may have queued the message: resending risks a
  duplicate, which a receiver can only catch by its Message-ID).
- Only the recipients refused with 4xx go into the next attempt, in a new transaction;
  a recipient the server accepted is never sent to again.
- The delay before attempt ``n + 1`` is ``backoff * 2 ** (n - 1)`` capped at
  ``max_backoff``, with jitter: a random value between half of it and all of it, so many
  clients that failed together do not come back together.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .._errors import (
    AuthenticationError,
    ConnectError,
    OutcomeUnknownError,
    ProxyConnectError,
    ProxyError,
    ProxyTargetError,
    RecipientsRefusedError,
    ReplyError,
    SecurityPolicyError,
    SMTPError,
    StartTLSUnavailableError,
    TimeoutError,
    TLSError,
)

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try a message and how long to wait in between.

    ``attempts`` counts the first try (``attempts=1``: no retry). ``backoff`` is the first
    delay in seconds; each later one doubles, up to ``max_backoff``, with jitter.
    ``retry_unknown`` also resends a message whose outcome is unknown (see the module
    docstring for why that is off by default). A total deadline (``Timeouts.total``)
    bounds the whole call, retries and waits included.
    """

    attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 60.0
    retry_unknown: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"attempts must be an int, not {type(self.attempts).__name__}")
        if self.attempts < 1:
            raise ValueError(f"attempts counts the first try: at least 1, not {self.attempts}")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError(f"{name} must be a number of seconds")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value}")

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first)."""
        full = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        jitter: float = (rng or random).uniform(0, full / 2)
        return full / 2 + jitter

    def retryable(self, error: SMTPError) -> bool:
        """Whether a message that met ``error`` may be tried again."""
        if isinstance(error, OutcomeUnknownError):
            return self.retry_unknown
        if isinstance(error, RecipientsRefusedError):
            return error.transient
        if isinstance(error, ReplyError):
            return 400 <= error.code < 500
        if isinstance(error, AuthenticationError):
            return error.transient  # 454 4.7.0; a 535 is a wrong password
        if isinstance(error, StartTLSUnavailableError):
            reply = error.__context__
            return isinstance(reply, ReplyError) and reply.code < 500
        if isinstance(error, SecurityPolicyError | TLSError):
            return False
        if isinstance(error, ProxyError):
            # An unreachable proxy or server may come back; refused credentials, a rule
            # against the destination or a proxy speaking another protocol will not.
            return isinstance(error, ProxyConnectError | ProxyTargetError)
        return isinstance(error, ConnectError | TimeoutError)
