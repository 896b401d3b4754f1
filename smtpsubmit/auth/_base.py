"""The SASL interface the SMTP client drives (RFC 4422, carried by RFC 4954 AUTH).

Theory of operation:

- Rule 1: a `Mechanism` is one exchange and does no I/O. The client sends
  ``AUTH <name> [initial response]``, feeds every ``334`` challenge (already base64-decoded)
  to `Mechanism.respond`, sends back what it returns, and calls `Mechanism.success` on ``235``.
  Anything the mechanism cannot accept raises `SASLError`; the client then cancels with ``*``
  (RFC 4954 4).
- Rule 2: an `Authenticator` is what users configure. It knows which mechanisms it can run
  and builds a fresh `Mechanism` for each attempt; it is the only place that may await
  (an OAuth token provider).
- Rule 3: secrets never reach a repr, a str or an exception message. Messages may quote
  what the *server* sent, never what the user configured, apart from the user name.

Exceptions::

    Exception
     +-- SASLError                  the exchange cannot continue (client sends "*")
          +-- NoCompatibleMechanism  nothing the server offers is something we run
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

MASK = "********"


@dataclass(frozen=True)
class ChannelInfo:
    """What the mechanism may know about the connection it authenticates over.

    ``tls_server_end_point`` is the RFC 5929 4.1 channel-binding value: the hash of the
    server's certificate (see `tls_server_end_point`). Without it the ``-PLUS`` SCRAM
    variants (RFC 5802 6) cannot run and are never selected. ``server_mechanisms`` is what
    the server advertised: a SCRAM client that could bind but sees no ``-PLUS`` offered says
    so (gs2 flag ``y``), which lets a server notice that ``-PLUS`` was stripped in transit.
    """

    encrypted: bool
    tls_server_end_point: bytes | None = None
    server_hostname: str | None = None
    server_mechanisms: frozenset[str] = frozenset()

    @property
    def binding_unused(self) -> bool:
        """We could bind to the channel but the server offers no -PLUS (RFC 5802 6: "y")."""
        plus = any(m.upper().endswith("-PLUS") for m in self.server_mechanisms)
        return self.tls_server_end_point is not None and not plus


class SASLError(Exception):
    """The SASL exchange cannot continue (RFC 4422 3.5): a malformed or unexpected challenge,
    a server signature that does not verify, a credential that cannot be encoded.

    The client answers it by cancelling the exchange with ``*`` (RFC 4954 4). The message
    never contains a secret.
    """


class NoCompatibleMechanism(SASLError):
    """None of the mechanisms the server advertised in EHLO (RFC 4954 3) is one we run."""

    def __init__(self, offered: Iterable[str], supported: Iterable[str], hint: str = "") -> None:
        self.offered: tuple[str, ...] = tuple(offered)
        self.supported: tuple[str, ...] = tuple(supported)
        shown = ", ".join(show_server_text(m) for m in self.offered) or "none"
        message = (
            f"no SASL mechanism in common: the server offers {shown}; "
            f"we support {', '.join(self.supported) or 'none'}"
        )
        super().__init__(message + (f" ({hint})" if hint else ""))


class Mechanism(abc.ABC):
    """One client side of one SASL exchange (RFC 4422 3), sans-I/O.

    Protocol with the client (RFC 4954 4):

    - `initial_response` is called at most once, before any challenge. ``None`` means the
      mechanism has nothing to send first (send ``AUTH <name>`` alone); ``b""`` means an
      empty initial response (sent as ``=``). A client that calls it owns the bytes: it may
      send them on the AUTH line, or, if the line would be too long, send ``AUTH <name>``
      alone and answer the server's empty ``334`` with them. A client that never calls it
      gets the same bytes from ``respond(b"")``.
    - `respond` takes each decoded challenge and returns the decoded response.
    - `success` is called on ``235``; a mechanism that authenticates the server (SCRAM)
      raises `SASLError` there if it has not.

    Subclass it to add a mechanism (see the package docstring); set `name` to the IANA name.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def initial_response(self) -> bytes | None:
        """The client-first message (RFC 4422 3.3), or None when the server speaks first."""

    @abc.abstractmethod
    def respond(self, challenge: bytes) -> bytes:
        """Answer one server challenge (RFC 4422 3.4); raise `SASLError` to cancel."""

    def success(self) -> None:  # noqa: B027 -- deliberately optional, most mechanisms accept
        """The server reported success (RFC 4422 3.6). Raise `SASLError` if that cannot be
        trusted, e.g. the server never proved knowledge of the password (RFC 5802 5)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} mechanism {getattr(self, 'name', '?')}>"


class Authenticator(abc.ABC):
    """Credentials that can create mechanisms: what users pass as ``auth=``.

    `mechanisms` lists the names this authenticator runs, strongest first. Names ending in
    ``-PLUS`` need channel binding (RFC 5056, RFC 5802 6); `select_mechanism` skips them when
    the connection has no binding data. `start` builds a fresh `Mechanism` for one attempt.
    When `can_renew` is true and an attempt fails because of a stale credential, the client
    calls ``start(..., renew=True)`` once and retries (RFC 7628 3.2.3).
    """

    can_renew: bool = False

    @abc.abstractmethod
    def mechanisms(self) -> tuple[str, ...]:
        """Mechanism names this authenticator can run, in order of preference."""

    @abc.abstractmethod
    async def start(
        self, mechanism: str, channel: ChannelInfo, *, renew: bool = False
    ) -> Mechanism:
        """A new `Mechanism` for ``mechanism`` (one of `mechanisms`) on ``channel``."""

    def secrets(self) -> tuple[str, ...]:
        """Configured secrets (a password) that a server must not be able to echo into a
        log or an error. Whatever a mechanism sends is scrubbed from replies anyway; this
        adds the secret itself, which may appear decoded in a server's text."""
        return ()


def show_server_text(text: str | bytes, limit: int = 80) -> str:
    """Render text a server sent so it is safe to put in an error message."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) > limit:
        text = text[:limit] + "..."
    # repr() escapes controls, so a hostile server cannot forge log lines through us.
    return text if text.isprintable() and text.isascii() else repr(text)


class ClientFirstMechanism(Mechanism):
    """Base for mechanisms whose client speaks first (RFC 4422 3.3, "client-first").

    The initial response is produced once, either by `initial_response` or, when the client
    sent ``AUTH <name>`` alone, by ``respond(b"")`` -- the empty challenge with which the
    server asks for it (RFC 4954 4). Subclasses implement `_first_message` and call
    `_initial_for` at the top of `respond`.
    """

    _first_sent: bool = False

    @abc.abstractmethod
    def _first_message(self) -> bytes:
        """The client-first message."""

    def initial_response(self) -> bytes:
        if self._first_sent:
            raise SASLError(f"{self.name}: the initial response was already produced")
        self._first_sent = True
        return self._first_message()

    def _initial_for(self, challenge: bytes) -> bytes | None:
        """The client-first message if ``challenge`` asks for it, else None."""
        if self._first_sent:
            return None
        if challenge:
            raise SASLError(
                f"{self.name}: the server sent a challenge before the initial response: "
                f"{show_server_text(challenge)}"
            )
        return self.initial_response()
