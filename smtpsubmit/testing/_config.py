"""Configuration of the fake server: connection mode, extensions, users, policy switches."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from ._faults import Fault
from ._sasl import MECHANISMS

if TYPE_CHECKING:
    from ._capture import CapturedMessage

__all__ = ["ALL_EXTENSIONS", "Extension", "Mode", "ServerConfig"]


class Mode(str, enum.Enum):
    """How a client reaches the server (RFC 8314 3, RFC 6409)."""

    #: Plaintext greeting, upgraded with STARTTLS (RFC 3207), like port 587.
    STARTTLS = "starttls"
    #: TLS from the first byte (RFC 8314 3.3), like port 465.
    IMPLICIT_TLS = "implicit_tls"
    #: No TLS at all: explicitly insecure, for tests that do not care.
    PLAIN = "plain"


class Extension(str, enum.Enum):
    """An EHLO keyword the server can advertise (and then really implements)."""

    PIPELINING = "PIPELINING"  #: RFC 2920
    CHUNKING = "CHUNKING"  #: RFC 3030: BDAT
    BINARYMIME = "BINARYMIME"  #: RFC 3030: BODY=BINARYMIME (needs CHUNKING)
    EIGHTBITMIME = "8BITMIME"  #: RFC 6152
    SMTPUTF8 = "SMTPUTF8"  #: RFC 6531
    SIZE = "SIZE"  #: RFC 1870
    DSN = "DSN"  #: RFC 3461
    ENHANCEDSTATUSCODES = "ENHANCEDSTATUSCODES"  #: RFC 2034
    REQUIRETLS = "REQUIRETLS"  #: RFC 8689 (only advertised over TLS)
    STARTTLS = "STARTTLS"  #: RFC 3207 (only in STARTTLS mode, before TLS)
    AUTH = "AUTH"  #: RFC 4954


#: Every extension; the default.
ALL_EXTENSIONS: frozenset[Extension] = frozenset(Extension)

_SECRET = "********"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Everything that shapes the fake server's behaviour; immutable, with a safe repr.

    Pass it to ``FakeSMTPServer(config)``, or pass the same names as keyword arguments.
    """

    #: STARTTLS (587-like), IMPLICIT_TLS (465-like) or PLAIN.
    mode: Mode = Mode.STARTTLS
    #: Address to listen on; port 0 picks a free port.
    host: str = "127.0.0.1"
    port: int = 0
    #: Name in the greeting and EHLO reply.
    hostname: str = "fake-smtp.localhost"
    #: ``{username: password}`` for PLAIN, LOGIN, CRAM-MD5 and SCRAM. Passwords are compared
    #: after a simplified SASLprep (NFKC normalisation only, not all of RFC 4013).
    users: Mapping[str, str] = field(default_factory=dict)
    #: ``{username: bearer token}`` for XOAUTH2 and OAUTHBEARER.
    oauth_tokens: Mapping[str, str] = field(default_factory=dict)
    #: Advertised (and accepted) extensions; stored as a frozenset.
    extensions: AbstractSet[Extension] = ALL_EXTENSIONS
    #: SASL mechanisms offered, in advertised order (subset of PLAIN, LOGIN, CRAM-MD5,
    #: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS (over TLS only), SCRAM-SHA-256, SCRAM-SHA-1,
    #: XOAUTH2, OAUTHBEARER).
    auth_mechanisms: tuple[str, ...] = MECHANISMS
    #: Maximum message size in octets (RFC 1870), advertised with SIZE; ``None``: no limit.
    max_message_size: int | None = 10 * 1024 * 1024
    #: Maximum recipients per transaction (452 4.5.3 beyond); ``None``: no limit.
    max_recipients: int | None = None
    #: Allow AUTH without TLS (otherwise 538 5.7.11, RFC 4954 4).
    allow_cleartext_auth: bool = False
    #: Advertise AUTH in the EHLO reply before STARTTLS (Postfix's smtpd_tls_auth_only=no).
    auth_before_tls_advertised: bool = False
    #: Require a successful AUTH before MAIL (530 5.7.0, RFC 4954 6), as submission does.
    require_auth: bool = False
    #: Require TLS before MAIL (530 5.7.0), like Postfix's smtpd_tls_security_level=encrypt.
    require_tls: bool = False
    #: Seconds a connection may stay idle, waiting for the client's bytes or for it to read
    #: ours, before the server closes it (``421 4.4.2`` first when it was waiting). RFC 5321
    #: 4.5.3.2.7 asks for at least 5 minutes; ``None``: wait forever.
    idle_timeout: float | None = 300.0
    #: Scripted faults and security drills, see ``Fault``; stored as a tuple.
    faults: Sequence[Fault] = ()
    #: Called (on the server's event loop thread) for every captured message.
    on_message: Callable[[CapturedMessage], None] | None = None
    #: Fixed SCRAM salt and server nonce part, to replay RFC 5802/7677 test vectors.
    scram_salt: bytes | None = None
    scram_nonce: str | None = None

    def __post_init__(self) -> None:
        # Accept plain strings for the enums: handy in CLIs and fixtures.
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "extensions", frozenset(Extension(e) for e in self.extensions))
        object.__setattr__(self, "faults", tuple(self.faults))
        mechs = tuple(m.upper() for m in self.auth_mechanisms)
        unknown = set(mechs) - set(MECHANISMS)
        if unknown:
            raise ValueError(f"unsupported SASL mechanisms: {sorted(unknown)}")
        object.__setattr__(self, "auth_mechanisms", mechs)
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError("max_message_size must be positive or None")
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise ValueError("idle_timeout must be positive or None")

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("users", "oauth_tokens"):
                value = {k: _SECRET for k in value}
            elif f.name == "extensions":
                value = sorted(e.value for e in value)
            parts.append(f"{f.name}={value!r}")
        return f"ServerConfig({', '.join(parts)})"
