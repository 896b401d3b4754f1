"""Deterministic fault scripts and security drills for the fake server.

Theory of operation: a ``Fault`` names a *target* (a command, the greeting, the end of data,
the TLS handshake) and an occurrence window: it fires on occurrences ``nth`` to
``nth + times - 1`` of that target, counted server-wide across connections (so "fail the
first connection, succeed on the retry" is expressible). ``times=None`` means forever.
The ``FaultScript`` does the counting; the session asks it once per occurrence with
``take(target)`` and applies what it gets back.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Fault", "FaultKind", "FaultScript", "Target"]

#: What a fault can be attached to. ``GREETING`` is the 220 banner, ``END_OF_DATA`` the reply
#: after ``<CRLF>.<CRLF>`` (or after ``BDAT ... LAST``), ``TLS`` the TLS handshake.
Target = Literal[
    "GREETING",
    "EHLO",
    "HELO",
    "STARTTLS",
    "TLS",
    "AUTH",
    "MAIL",
    "RCPT",
    "DATA",
    "END_OF_DATA",
    "BDAT",
    "RSET",
    "NOOP",
    "VRFY",
    "QUIT",
]


class FaultKind(str, enum.Enum):
    """What a fault does when it fires."""

    REPLY = "reply"  #: send a given reply instead of the normal one
    DELAY = "delay"  #: sleep, then behave normally
    DISCONNECT = "disconnect"  #: close the connection instead of replying
    DISCONNECT_MID_DATA = "disconnect_mid_data"  #: close after some message octets
    RAW = "raw"  #: send raw bytes instead of the reply (garbage, oversized lines)
    RATE_LIMIT = "rate_limit"  #: refuse MAIL after N messages per window
    STRIP_STARTTLS = "strip_starttls"  #: drill: omit STARTTLS from EHLO (downgrade)
    INJECT_AFTER_STARTTLS = "inject_after_starttls"  #: drill: RFC 3207 6 response injection
    WRONG_HOST_CERTIFICATE = "wrong_host_certificate"  #: drill: cert for wrong.example
    PLAINTEXT_ON_TLS_PORT = "plaintext_on_tls_port"  #: drill: no TLS on the implicit port
    SCRAM_BAD_SERVER_SIGNATURE = "scram_bad_server_signature"  #: drill: wrong SCRAM ``v=``
    AUTH_CHALLENGE = "auth_challenge"  #: replace one 334 SASL challenge with raw bytes


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One scripted misbehaviour; build it with the class methods, e.g.
    ``Fault.reply("RCPT", nth=2, code=550, enhanced="5.1.1", text="No such user")``.
    """

    kind: FaultKind
    target: Target
    nth: int = 1
    times: int | None = 1
    code: int = 0
    enhanced: str | None = None
    text: str = ""
    seconds: float = 0.0
    data: bytes = b""
    after_bytes: int = 0
    max_messages: int = 0
    window: float = 0.0
    step: int = 1

    def __post_init__(self) -> None:
        if self.nth < 1 or self.step < 1 or (self.times is not None and self.times < 1):
            raise ValueError("nth, times and step count from 1")

    @classmethod
    def reply(
        cls,
        target: Target,
        *,
        code: int,
        enhanced: str | None = None,
        text: str = "Scripted failure",
        nth: int = 1,
        times: int | None = 1,
    ) -> Fault:
        """Answer the target with this reply instead of the normal one.

        The command then has no effect (a rejected RCPT adds no recipient). A 421 reply also
        closes the connection (RFC 5321 3.8). On ``GREETING``, a 554 makes the server answer
        every command but QUIT with 503 (RFC 5321 3.1). The ``TLS`` target takes only the
        drills (``wrong_host_certificate``, ``plaintext_on_tls_port``).
        """
        return cls(
            kind=FaultKind.REPLY,
            target=target,
            code=code,
            enhanced=enhanced,
            text=text,
            nth=nth,
            times=times,
        )

    @classmethod
    def shutdown_421(cls, target: Target, *, nth: int = 1, times: int | None = 1) -> Fault:
        """Reply ``421 4.3.2 Service shutting down`` and close (RFC 5321 3.8)."""
        return cls.reply(
            target, code=421, enhanced="4.3.2", text="Service shutting down", nth=nth, times=times
        )

    @classmethod
    def delay(cls, target: Target, *, seconds: float, nth: int = 1, times: int | None = 1) -> Fault:
        """Wait ``seconds`` before replying (for client timeout tests)."""
        return cls(kind=FaultKind.DELAY, target=target, seconds=seconds, nth=nth, times=times)

    @classmethod
    def disconnect(cls, target: Target, *, nth: int = 1, times: int | None = 1) -> Fault:
        """Close the connection instead of replying.

        On ``END_OF_DATA`` the message has been received and is captured (with
        ``acknowledged=False``): the duplicate-delivery window of RFC 5321 6.1 / RFC 1047.
        """
        return cls(kind=FaultKind.DISCONNECT, target=target, nth=nth, times=times)

    @classmethod
    def disconnect_mid_data(
        cls, *, after_bytes: int = 0, nth: int = 1, times: int | None = 1
    ) -> Fault:
        """After ``354``, read at least ``after_bytes`` message octets, then close."""
        return cls(
            kind=FaultKind.DISCONNECT_MID_DATA,
            target="DATA",
            after_bytes=after_bytes,
            nth=nth,
            times=times,
        )

    @classmethod
    def garbage(
        cls,
        target: Target,
        *,
        data: bytes = b"this is not an SMTP reply\r\n",
        nth: int = 1,
        times: int | None = 1,
    ) -> Fault:
        """Send ``data`` (not a valid reply) instead of the reply."""
        return cls(kind=FaultKind.RAW, target=target, data=data, nth=nth, times=times)

    @classmethod
    def oversized_reply(
        cls, target: Target, *, size: int = 100_000, nth: int = 1, times: int | None = 1
    ) -> Fault:
        """Send a single ``250`` line of ``size`` octets (RFC 5321 4.5.3.1.5 allows 512)."""
        data = b"250 " + b"x" * max(0, size - 6) + b"\r\n"
        return cls(kind=FaultKind.RAW, target=target, data=data, nth=nth, times=times)

    @classmethod
    def rate_limit(
        cls, *, max_messages: int, window: float = 60.0, code: Literal[421, 450] = 450
    ) -> Fault:
        """After ``max_messages`` accepted messages within ``window`` seconds, refuse MAIL
        with ``450 4.7.0`` (or ``421 4.7.0`` and close)."""
        return cls(
            kind=FaultKind.RATE_LIMIT,
            target="MAIL",
            code=code,
            enhanced="4.7.0",
            text="Rate limit exceeded, try again later",
            max_messages=max_messages,
            window=window,
            times=None,
        )

    @classmethod
    def strip_starttls(cls, *, nth: int = 1, times: int | None = None) -> Fault:
        """Drill: leave STARTTLS out of the EHLO reply, as a downgrade attacker would
        (RFC 3207 6, RFC 8314 5.2). The STARTTLS command itself still works."""
        return cls(kind=FaultKind.STRIP_STARTTLS, target="EHLO", nth=nth, times=times)

    @classmethod
    def inject_after_starttls(
        cls, data: bytes = b"250 injected\r\n", *, nth: int = 1, times: int | None = None
    ) -> Fault:
        """Drill: send ``data`` in the same write as the ``220`` STARTTLS reply, before the
        handshake (response injection, RFC 3207 6). A correct client discards it."""
        return cls(
            kind=FaultKind.INJECT_AFTER_STARTTLS, target="STARTTLS", data=data, nth=nth, times=times
        )

    @classmethod
    def wrong_host_certificate(cls, *, nth: int = 1, times: int | None = None) -> Fault:
        """Drill: present a certificate for ``wrong.example`` issued by the same test CA."""
        return cls(kind=FaultKind.WRONG_HOST_CERTIFICATE, target="TLS", nth=nth, times=times)

    @classmethod
    def plaintext_on_tls_port(cls, *, nth: int = 1, times: int | None = None) -> Fault:
        """Drill: in IMPLICIT_TLS mode, skip the handshake and greet in plaintext."""
        return cls(kind=FaultKind.PLAINTEXT_ON_TLS_PORT, target="TLS", nth=nth, times=times)

    @classmethod
    def scram_bad_server_signature(cls, *, nth: int = 1, times: int | None = None) -> Fault:
        """Drill: in a SCRAM exchange, send a ServerSignature (``v=``) with one bit flipped,
        as a server that does not know the password would (RFC 5802 5.1: the client must
        then fail the exchange). Fires on AUTH commands ``nth`` .. ``nth + times - 1``;
        other mechanisms are left alone."""
        return cls(kind=FaultKind.SCRAM_BAD_SERVER_SIGNATURE, target="AUTH", nth=nth, times=times)

    @classmethod
    def auth_challenge(
        cls, data: bytes, *, step: int = 1, nth: int = 1, times: int | None = 1
    ) -> Fault:
        """Send ``334 <data>`` instead of the ``step``-th challenge of an AUTH exchange.

        ``data`` goes on the wire verbatim (RFC 4954 4 expects base64, so ``b"!!!"`` tests
        a client's decoding); pass ``base64.b64encode(b"...")`` for a well-formed challenge
        that the mechanism should refuse. The exchange then goes on with the real mechanism.
        """
        return cls(
            kind=FaultKind.AUTH_CHALLENGE, target="AUTH", data=data, step=step, nth=nth, times=times
        )

    def __repr__(self) -> str:
        shown: dict[str, object] = {"target": self.target, "nth": self.nth, "times": self.times}
        by_kind: dict[FaultKind, dict[str, object]] = {
            FaultKind.REPLY: {"code": self.code, "enhanced": self.enhanced, "text": self.text},
            FaultKind.DELAY: {"seconds": self.seconds},
            FaultKind.RAW: {"data": self.data[:40]},
            FaultKind.DISCONNECT_MID_DATA: {"after_bytes": self.after_bytes},
            FaultKind.RATE_LIMIT: {"max_messages": self.max_messages, "window": self.window},
            FaultKind.AUTH_CHALLENGE: {"data": self.data[:40], "step": self.step},
        }
        args = ", ".join(f"{k}={v!r}" for k, v in {**shown, **by_kind.get(self.kind, {})}.items())
        return f"Fault.{self.kind.value}({args})"


class FaultScript:
    """Counts occurrences per target and hands out the faults that fire (thread-safe:
    faults may be added from a test thread while the server thread consumes them)."""

    def __init__(self, faults: Sequence[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._faults = list(faults)
        self._counts: Counter[str] = Counter()
        self._accepted: deque[float] = deque()

    def add(self, *faults: Fault) -> None:
        """Add faults; their ``nth`` counts from the occurrences still to come."""
        with self._lock:
            for fault in faults:
                offset = self._counts[fault.target]
                self._faults.append(
                    replace(fault, nth=fault.nth + offset)
                    if offset and fault.kind is not FaultKind.RATE_LIMIT
                    else fault
                )

    def take(self, target: Target) -> list[Fault]:
        """Count one occurrence of ``target``; return the faults that fire on it."""
        with self._lock:
            self._counts[target] += 1
            n = self._counts[target]
            return [
                f
                for f in self._faults
                if f.target == target
                and f.kind is not FaultKind.RATE_LIMIT
                and n >= f.nth
                and (f.times is None or n < f.nth + f.times)
            ]

    def message_accepted(self) -> None:
        """Record an accepted message for rate limiting."""
        with self._lock:
            self._accepted.append(time.monotonic())

    def rate_limited(self) -> Fault | None:
        """The rate-limit fault that currently refuses MAIL, if any."""
        now = time.monotonic()
        with self._lock:
            for fault in self._faults:
                if fault.kind is FaultKind.RATE_LIMIT:
                    recent = sum(1 for t in self._accepted if now - t < fault.window)
                    if recent >= fault.max_messages:
                        return fault
        return None
