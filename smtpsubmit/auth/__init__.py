"""SASL authentication for SMTP AUTH (RFC 4954), as sans-I/O mechanism objects (RFC 4422).

Users pick credentials -- `PasswordAuth` or `OAuth2Auth` -- and pass them as ``auth=``.
The client asks `select_mechanism` for the strongest mechanism both sides support, calls
``await auth.start(name, channel)`` for a fresh `Mechanism`, and drives it: initial response
on the AUTH line, `Mechanism.respond` for each 334 challenge, `Mechanism.success` on 235.

Adding a mechanism needs no registry: subclass `Mechanism` (or `ClientFirstMechanism` when
the client speaks first) and an `Authenticator` that starts it. For example, a server that
takes a static API key as ``X-APIKEY``::

    from smtpsubmit.auth import Authenticator, ChannelInfo, ClientFirstMechanism, SASLError

    class ApiKey(ClientFirstMechanism):
        name = "X-APIKEY"

        def __init__(self, key: str) -> None:
            self._key = key

        def _first_message(self) -> bytes:
            return self._key.encode()

        def respond(self, challenge: bytes) -> bytes:
            first = self._initial_for(challenge)  # the server asked for the initial response
            if first is not None:
                return first
            raise SASLError("X-APIKEY takes no challenge")

    class ApiKeyAuth(Authenticator):
        def __init__(self, key: str) -> None:
            self._key = key

        def mechanisms(self) -> tuple[str, ...]:
            return ("X-APIKEY",)

        async def start(self, mechanism: str, channel: ChannelInfo, *, renew: bool = False):
            return ApiKey(self._key)

        def __repr__(self) -> str:
            return "ApiKeyAuth(key='********')"  # keep secrets out of reprs

    client = SMTPClient("smtp.example.com", 587, auth=ApiKeyAuth("..."))

To offer both a password and a custom mechanism, subclass `PasswordAuth`, extend
`mechanisms()` and handle the new name in `start()` before delegating to ``super()``.

Exceptions::

    SASLError                   the exchange cannot continue (the client cancels with "*")
     +-- NoCompatibleMechanism  no mechanism in common with the server
"""

from ._base import (
    Authenticator,
    ChannelInfo,
    ClientFirstMechanism,
    Mechanism,
    NoCompatibleMechanism,
    SASLError,
)
from ._channel import tls_server_end_point
from ._oauth import OAuth2Auth, OAuthBearer, TokenProvider, XOAuth2
from ._password import PasswordAuth
from ._saslprep import saslprep
from ._scram import (
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    ScramSHA512,
    ScramSHA512Plus,
)
from ._select import select_mechanism
from ._simple import CramMD5, Login, Plain

__all__ = [
    # configuration
    "PasswordAuth",
    "OAuth2Auth",
    "TokenProvider",
    # what the client drives
    "ChannelInfo",
    "select_mechanism",
    "tls_server_end_point",
    "Authenticator",
    "Mechanism",
    "ClientFirstMechanism",
    # mechanisms
    "Plain",
    "Login",
    "CramMD5",
    "XOAuth2",
    "OAuthBearer",
    "ScramSHA1",
    "ScramSHA256",
    "ScramSHA1Plus",
    "ScramSHA256Plus",
    "ScramSHA512",
    "ScramSHA512Plus",
    "saslprep",
    # errors
    "SASLError",
    "NoCompatibleMechanism",
]
