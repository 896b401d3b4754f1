"""Per-phase timeouts, after RFC 5321 4.5.3.2.

RFC 5321 asks clients to wait five minutes for the greeting and for MAIL/RCPT replies,
two for the 354, three per data block and ten for the final reply. Waiting five minutes
for a greeting helps nobody submitting mail interactively, so those are capped at one
minute; the final reply keeps its full ten minutes, because giving up there leaves the
message's fate unknown (the server may deliver it anyway, RFC 5321 4.5.3.2.6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from .._errors import ArgumentError, ArgumentTypeError

__all__ = ["Timeouts"]


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase (``None``: no limit for that phase).

    ``total`` bounds one whole call (connect and login, or one message) on top of the
    per-phase limits. ``Timeouts.uniform(10)`` sets every phase to 10 s.
    """

    connect: float | None = 30.0
    tls: float | None = 30.0
    greeting: float | None = 60.0
    command: float | None = 60.0
    data: float | None = 180.0
    final_reply: float | None = 600.0
    total: float | None = None

    def __post_init__(self) -> None:
        """Each limit is a positive number of seconds or ``None``, checked when built."""
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            shown = repr(value).replace("{", "{{").replace("}", "}}")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ArgumentTypeError(
                    f"{{timeout}} is a Timeouts with {field.name}={shown}: each limit must "
                    "be seconds (an int or float) or None",
                    "timeout",
                )
            if math.isnan(value) or value <= 0:
                raise ArgumentError(
                    f"{{timeout}} is a Timeouts with {field.name}={shown}: each limit must "
                    "be a positive number of seconds, or None for no limit",
                    "timeout",
                )

    @classmethod
    def uniform(cls, seconds: float | None) -> Timeouts:
        """The same limit for every phase; ``total`` stays unlimited."""
        return cls(**{f.name: seconds for f in fields(cls) if f.name != "total"})

    @classmethod
    def coerce(cls, value: Timeouts | float | None) -> Timeouts:
        """Accept a :class:`Timeouts`, a number of seconds for every phase, or ``None``."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        return cls.uniform(float(value))

    def with_total(self, total: float | None) -> Timeouts:
        """A copy with another overall deadline."""
        return replace(self, total=total)
