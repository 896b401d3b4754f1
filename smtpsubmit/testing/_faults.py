"""Deterministic fault scripts and security drills for the fake server.

Theory of operation: a ``Fault`` names a *target* (a command, the greeting, the end of data,
the TLS handshake) and an occurrence window: it fires on occurrences ``nth`` to
``nth + times - 1`` of that target, counted server-wide across connections (so "fail the
first connection, succeed on the retry" is expressible). ``times=None`` means forever.
The ``FaultScript`` does the counting; the session asks it once per occurrence with
``take(target)`` and applies what it gets back.

A fault that is taken has not necessarily *fired*: a ``disconnect_mid_data`` on a DATA
command refused for lack of recipients, or the second of two replacing faults, changed
nothing. The session calls ``mark_fired`` where a fault takes effect, and only there. A
``required`` fault (the default) that never fired makes the server fail the test when it
stops (``FaultNotFiredError``): the test scripted a failure that did not happen, so it
checked nothing.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Fault", "FaultKind", "FaultNotFiredError", "FaultScript", "Target"]

#: What a fault can be attached to. ``GREETING`` is the 220 banner, ``TLS`` the TLS handshake.
#: ``DATA`` is the start of the message body however it is sent: the DATA command, or the
#: first BDAT chunk of a transaction (RFC 3030). ``BDAT`` is every BDAT command.
#: ``END_OF_DATA`` is the final reply, after ``<CRLF>.<CRLF>`` or after ``BDAT ... LAST``.
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
    #: If True (the default), the server fails the test when this fault never fired.
    required: bool = True

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
        required: bool = True,
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
            required=required,
        )

    @classmethod
    def shutdown_421(
        cls, target: Target, *, nth: int = 1, times: int | None = 1, required: bool = True
    ) -> Fault:
        """Reply ``421 4.3.2 Service shutting down`` and close (RFC 5321 3.8)."""
        return cls.reply(
            target,
            code=421,
            enhanced="4.3.2",
            text="Service shutting down",
            nth=nth,
            times=times,
            required=required,
        )

    @classmethod
    def delay(
        cls,
        target: Target,
        *,
        seconds: float,
        nth: int = 1,
        times: int | None = 1,
        required: bool = True,
    ) -> Fault:
        """Wait ``seconds`` before replying (for client timeout tests).

        On ``DATA`` the wait comes before the ``354``, or, when the client sends the body
        with BDAT, before the reply to its first chunk.
        """
        return cls(
            kind=FaultKind.DELAY,
            target=target,
            seconds=seconds,
            nth=nth,
            times=times,
            required=required,
        )

    @classmethod
    def disconnect(
        cls, target: Target, *, nth: int = 1, times: int | None = 1, required: bool = True
    ) -> Fault:
        """Close the connection instead of replying.

        On ``END_OF_DATA`` the message has been received and is captured (with
        ``acknowledged=False``): the duplicate-delivery window of RFC 5321 6.1 / RFC 1047.
        """
        return cls(
            kind=FaultKind.DISCONNECT, target=target, nth=nth, times=times, required=required
        )

    @classmethod
    def disconnect_mid_data(
        cls, *, after_bytes: int = 0, nth: int = 1, times: int | None = 1, required: bool = True
    ) -> Fault:
        """Once the body starts, read at least ``after_bytes`` of its octets, then close.

        The body starts after the ``354`` reply to DATA, or with the first BDAT chunk (then
        ``after_bytes=0`` closes before that chunk is read, and the count runs across
        chunks). ``nth`` counts message bodies.
        """
        return cls(
            kind=FaultKind.DISCONNECT_MID_DATA,
            target="DATA",
            after_bytes=after_bytes,
            nth=nth,
            times=times,
            required=required,
        )

    @classmethod
    def garbage(
        cls,
        target: Target,
        *,
        data: bytes = b"this is not an SMTP reply\r\n",
        nth: int = 1,
        times: int | None = 1,
        required: bool = True,
    ) -> Fault:
        """Send ``data`` (not a valid reply) instead of the reply."""
        return cls(
            kind=FaultKind.RAW, target=target, data=data, nth=nth, times=times, required=required
        )

    @classmethod
    def oversized_reply(
        cls,
        target: Target,
        *,
        size: int = 100_000,
        nth: int = 1,
        times: int | None = 1,
        required: bool = True,
    ) -> Fault:
        """Send a single ``250`` line of ``size`` octets (RFC 5321 4.5.3.1.5 allows 512)."""
        data = b"250 " + b"x" * max(0, size - 6) + b"\r\n"
        return cls(
            kind=FaultKind.RAW, target=target, data=data, nth=nth, times=times, required=required
        )

    @classmethod
    def rate_limit(
        cls,
        *,
        max_messages: int,
        window: float = 60.0,
        code: Literal[421, 450] = 450,
        required: bool = False,
    ) -> Fault:
        """After ``max_messages`` accepted messages within ``window`` seconds, refuse MAIL
        with ``450 4.7.0`` (or ``421 4.7.0`` and close).

        Not ``required`` by default, unlike the other faults: a limit the client stays
        under is a valid test of the client's own throttling.
        """
        return cls(
            kind=FaultKind.RATE_LIMIT,
            target="MAIL",
            code=code,
            enhanced="4.7.0",
            text="Rate limit exceeded, try again later",
            max_messages=max_messages,
            window=window,
            times=None,
            required=required,
        )

    @classmethod
    def strip_starttls(
        cls, *, nth: int = 1, times: int | None = None, required: bool = True
    ) -> Fault:
        """Drill: leave STARTTLS out of the EHLO reply, as a downgrade attacker would
        (RFC 3207 6, RFC 8314 5.2). The STARTTLS command itself still works. Fires only
        where STARTTLS would have been advertised."""
        return cls(
            kind=FaultKind.STRIP_STARTTLS, target="EHLO", nth=nth, times=times, required=required
        )

    @classmethod
    def inject_after_starttls(
        cls,
        data: bytes = b"250 injected\r\n",
        *,
        nth: int = 1,
        times: int | None = None,
        required: bool = True,
    ) -> Fault:
        """Drill: send ``data`` in the same write as the ``220`` STARTTLS reply, before the
        handshake (response injection, RFC 3207 6). A correct client discards it."""
        return cls(
            kind=FaultKind.INJECT_AFTER_STARTTLS,
            target="STARTTLS",
            data=data,
            nth=nth,
            times=times,
            required=required,
        )

    @classmethod
    def wrong_host_certificate(
        cls, *, nth: int = 1, times: int | None = None, required: bool = True
    ) -> Fault:
        """Drill: present a certificate for ``wrong.example`` issued by the same test CA."""
        return cls(
            kind=FaultKind.WRONG_HOST_CERTIFICATE,
            target="TLS",
            nth=nth,
            times=times,
            required=required,
        )

    @classmethod
    def plaintext_on_tls_port(
        cls, *, nth: int = 1, times: int | None = None, required: bool = True
    ) -> Fault:
        """Drill: in IMPLICIT_TLS mode, skip the handshake and greet in plaintext."""
        return cls(
            kind=FaultKind.PLAINTEXT_ON_TLS_PORT,
            target="TLS",
            nth=nth,
            times=times,
            required=required,
        )

    @classmethod
    def scram_bad_server_signature(
        cls, *, nth: int = 1, times: int | None = None, required: bool = True
    ) -> Fault:
        """Drill: in a SCRAM exchange, send a ServerSignature (``v=``) with one bit flipped,
        as a server that does not know the password would (RFC 5802 5.1: the client must
        then fail the exchange). Fires on AUTH commands ``nth`` .. ``nth + times - 1``;
        other mechanisms are left alone."""
        return cls(
            kind=FaultKind.SCRAM_BAD_SERVER_SIGNATURE,
            target="AUTH",
            nth=nth,
            times=times,
            required=required,
        )

    @classmethod
    def auth_challenge(
        cls,
        data: bytes,
        *,
        step: int = 1,
        nth: int = 1,
        times: int | None = 1,
        required: bool = True,
    ) -> Fault:
        """Send ``334 <data>`` instead of the ``step``-th challenge of an AUTH exchange.

        ``data`` goes on the wire verbatim (RFC 4954 4 expects base64, so ``b"!!!"`` tests
        a client's decoding); pass ``base64.b64encode(b"...")`` for a well-formed challenge
        that the mechanism should refuse. The exchange then goes on with the real mechanism.
        """
        return cls(
            kind=FaultKind.AUTH_CHALLENGE,
            target="AUTH",
            data=data,
            step=step,
            nth=nth,
            times=times,
            required=required,
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
        shown.update(by_kind.get(self.kind, {}))
        if not self.required:
            shown["required"] = False
        args = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"Fault.{self.kind.value}({args})"


class FaultNotFiredError(AssertionError):
    """Scripted faults never fired: the test did not exercise what it meant to.

    Raised when a server stops (on leaving ``async with FakeSMTPServer(...)`` or
    ``run_in_thread()`` without an exception); the pytest fixtures report it as a failure
    at teardown instead, unless the test failed already. Pass ``required=False`` to a fault
    that may legitimately not fire.
    """

    def __init__(self, faults: Sequence[Fault], occurrences: Mapping[str, int]) -> None:
        #: The faults that never fired, in script order.
        self.faults: tuple[Fault, ...] = tuple(faults)
        lines = [
            f"  {fault!r}: {fault.target} occurred {occurrences.get(fault.target, 0)} time(s)"
            for fault in self.faults
        ]
        super().__init__(
            f"{len(lines)} scripted fault(s) never fired (pass required=False to a fault that "
            "may not fire):\n" + "\n".join(lines)
        )


class FaultScript:
    """Counts occurrences per target, hands out the faults that fire, and records which
    of them took effect (thread-safe: faults may be added from a test thread while the
    server thread consumes them)."""

    def __init__(self, faults: Sequence[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._faults = list(faults)
        #: How many times each scripted fault took effect, by position in ``_faults``.
        self._fired: list[int] = [0] * len(self._faults)
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
                self._fired.append(0)

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

    def mark_fired(self, fault: Fault) -> None:
        """Record that ``fault`` (an object ``take`` returned) took effect."""
        with self._lock:
            for i, scripted in enumerate(self._faults):
                if scripted is fault:
                    self._fired[i] += 1

    def pending(self) -> list[Fault]:
        """The scripted faults that have not taken effect yet, in script order."""
        with self._lock:
            return [f for f, n in zip(self._faults, self._fired, strict=True) if n == 0]

    def check_fired(self) -> None:
        """Raise ``FaultNotFiredError`` if a required fault never took effect."""
        missing = [f for f in self.pending() if f.required]
        if missing:
            with self._lock:
                counts = dict(self._counts)
            raise FaultNotFiredError(missing, counts)

    def message_accepted(self) -> None:
        """Record an accepted message for rate limiting."""
        with self._lock:
            self._accepted.append(time.monotonic())

    def rate_limited(self) -> Fault | None:
        """The rate-limit fault that currently refuses MAIL, if any (it counts as fired)."""
        now = time.monotonic()
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.kind is FaultKind.RATE_LIMIT:
                    recent = sum(1 for t in self._accepted if now - t < fault.window)
                    if recent >= fault.max_messages:
                        self._fired[i] += 1
                        return fault
        return None
