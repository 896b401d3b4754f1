"""`PasswordAuth`: a user name and password, and the order in which to spend them.

Preference (strongest first) is one table, `DEFAULT_MECHANISMS`: SCRAM with channel binding,
SCRAM, then the mechanisms that send the password itself. CRAM-MD5 is not in it: it needs
the server to store the password in clear and proves nothing about the server, so it runs
only when the user pins it with ``mechanisms=("CRAM-MD5",)``.
"""

from __future__ import annotations

from collections.abc import Callable

from ._base import MASK, Authenticator, ChannelInfo, Mechanism, SASLError, show_server_text
from ._scram import (
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    ScramSHA512,
    ScramSHA512Plus,
)
from ._simple import CramMD5, Login, Plain

DEFAULT_MECHANISMS = (
    "SCRAM-SHA-512-PLUS",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
    "LOGIN",
)
_SUPPORTED = (*DEFAULT_MECHANISMS, "CRAM-MD5")
# LOGIN and CRAM-MD5 have no field for an authorization identity; running them would
# silently authenticate as the user instead of the requested identity.
_NO_AUTHZID = frozenset({"LOGIN", "CRAM-MD5"})


class PasswordAuth(Authenticator):
    """Authenticate with a user name and password (RFC 4954) using the strongest mechanism
    the server offers: SCRAM-SHA-512-PLUS, SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS (RFC 5802 6,
    when the TLS channel-binding data is known), SCRAM-SHA-512, SCRAM-SHA-256 (RFC 7677),
    SCRAM-SHA-1 (RFC 5802),
    PLAIN (RFC 4616), LOGIN.

    ``authzid`` asks to act as another identity (RFC 4422 3.4.1); LOGIN cannot carry one and
    is then left out. ``mechanisms`` pins an ordered list instead of the default, and is the
    only way to enable CRAM-MD5 (RFC 2195). The repr masks the password.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        authzid: str | None = None,
        mechanisms: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self.authzid = authzid
        if mechanisms is None:
            names: tuple[str, ...] = DEFAULT_MECHANISMS
            if authzid:
                names = tuple(m for m in names if m not in _NO_AUTHZID)
            self._pinned: tuple[str, ...] | None = None
        else:
            names = tuple(m.upper() for m in mechanisms)
            unknown = [m for m in names if m not in _SUPPORTED]
            if unknown or not names:
                raise ValueError(
                    f"PasswordAuth runs {', '.join(_SUPPORTED)}; cannot pin {unknown or names}"
                )
            if authzid and _NO_AUTHZID.intersection(names):
                raise ValueError(
                    f"{', '.join(sorted(_NO_AUTHZID.intersection(names)))} cannot carry an authzid"
                )
            self._pinned = names
        self._mechanisms = names

    def mechanisms(self) -> tuple[str, ...]:
        return self._mechanisms

    def secrets(self) -> tuple[str, ...]:
        return (self._password,)

    async def start(
        self, mechanism: str, channel: ChannelInfo, *, renew: bool = False
    ) -> Mechanism:
        # Nothing to renew for a password; the flag is accepted for the common interface.
        name = mechanism.upper()
        if name not in self._mechanisms:
            raise SASLError(
                f"PasswordAuth does not run {show_server_text(mechanism)}; "
                f"it runs {', '.join(self._mechanisms)}"
            )
        return _FACTORIES[name](self, channel)

    def __repr__(self) -> str:
        extra = f", authzid={self.authzid!r}" if self.authzid is not None else ""
        if self._pinned is not None:
            extra += f", mechanisms={self._pinned!r}"
        return f"PasswordAuth(username={self.username!r}, password={MASK!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PasswordAuth):
            return NotImplemented
        return (self.username, self._password, self.authzid, self._pinned) == (
            other.username,
            other._password,
            other.authzid,
            other._pinned,
        )


_Factory = Callable[[PasswordAuth, ChannelInfo], Mechanism]

# One row per mechanism: how PasswordAuth builds it.
_FACTORIES: dict[str, _Factory] = {
    "SCRAM-SHA-512-PLUS": lambda a, c: ScramSHA512Plus(
        a.username, a._password, authzid=a.authzid, channel_binding=c.tls_server_end_point
    ),
    "SCRAM-SHA-256-PLUS": lambda a, c: ScramSHA256Plus(
        a.username, a._password, authzid=a.authzid, channel_binding=c.tls_server_end_point
    ),
    "SCRAM-SHA-1-PLUS": lambda a, c: ScramSHA1Plus(
        a.username, a._password, authzid=a.authzid, channel_binding=c.tls_server_end_point
    ),
    "SCRAM-SHA-512": lambda a, c: ScramSHA512(
        a.username, a._password, authzid=a.authzid, client_supports_binding=c.binding_unused
    ),
    "SCRAM-SHA-256": lambda a, c: ScramSHA256(
        a.username, a._password, authzid=a.authzid, client_supports_binding=c.binding_unused
    ),
    "SCRAM-SHA-1": lambda a, c: ScramSHA1(
        a.username, a._password, authzid=a.authzid, client_supports_binding=c.binding_unused
    ),
    "PLAIN": lambda a, c: Plain(a.username, a._password, authzid=a.authzid),
    "LOGIN": lambda a, c: Login(a.username, a._password),
    "CRAM-MD5": lambda a, c: CramMD5(a.username, a._password),
}
