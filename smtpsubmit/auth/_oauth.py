"""OAuth 2.0 bearer-token mechanisms: OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's and
Microsoft's pre-standard format), and the `OAuth2Auth` authenticator that feeds them tokens.

Failure flow, the same for both: the server rejects a token with a 334 challenge carrying a
JSON error (RFC 7628 3.2.2). The client must answer it -- an empty response for XOAUTH2,
a lone ``\\x01`` for OAUTHBEARER (RFC 7628 3.2.3) -- so that the server can send the final
535/454. The mechanism keeps the parsed JSON in ``.error`` for the client and the user; an
authenticator with a token *provider* can then be asked for a fresh token (``renew=True``).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from ._base import (
    MASK,
    Authenticator,
    ChannelInfo,
    ClientFirstMechanism,
    SASLError,
    show_server_text,
)

TokenProvider: TypeAlias = Callable[[bool], Awaitable[str] | str]
"""``get_token(renew) -> str``, usually async. ``renew=True`` means the previous token was
rejected: fetch a new one (e.g. with the refresh token) rather than return a cached one."""

# RFC 6750 2.1 b64token, widened to any visible ASCII: providers' tokens are not always
# strictly b64token, but control characters (the \x01 separator!) and spaces never belong.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def _check_token(token: object) -> str:
    if not isinstance(token, str):
        raise SASLError(f"the token provider returned {type(token).__name__}, expected str")
    if not _TOKEN.fullmatch(token):
        # Never echo the token, even a malformed one.
        raise SASLError("the bearer token is empty or contains spaces or control characters")
    return token


def _check_user(username: str, mechanism: str) -> str:
    if not username.isprintable():
        raise SASLError(f"{mechanism}: the user name contains control characters")
    return username


def _parse_error(challenge: bytes) -> dict[str, Any] | None:
    """The JSON error object of RFC 7628 3.2.2, or None if the server sent something else."""
    try:
        error = json.loads(challenge.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return error if isinstance(error, dict) else None


class _BearerMechanism(ClientFirstMechanism):
    """Shared flow: one client message, then at most one error challenge."""

    _error_answer: bytes

    def __init__(self) -> None:
        self.error: dict[str, Any] | None = None
        """The server's JSON error (RFC 7628 3.2.2), e.g. ``{"status": "invalid_token"}``."""
        self._failed = False

    def respond(self, challenge: bytes) -> bytes:
        first = self._initial_for(challenge)
        if first is not None:
            return first
        if self._failed:
            raise SASLError(
                f"{self.name}: unexpected challenge after the error response: "
                f"{show_server_text(challenge)}"
            )
        # Any challenge after the token is the error report; answer it even if it does not
        # parse, because only the final reply tells the client whether to renew.
        self._failed = True
        self.error = _parse_error(challenge)
        return self._error_answer


class OAuthBearer(_BearerMechanism):
    """OAUTHBEARER (RFC 7628 3.1): ``n,a=<user>,^Ahost=<h>^Aport=<p>^Aauth=Bearer <token>^A^A``.

    ``host`` and ``port`` are optional key/value pairs naming the server the client
    connected to; the GS2 header always says "no channel binding" (``n``).
    """

    name = "OAUTHBEARER"
    _error_answer = b"\x01"  # RFC 7628 3.2.3: a single %x01 acknowledges the error

    def __init__(
        self, username: str, token: str, *, host: str | None = None, port: int | None = None
    ) -> None:
        super().__init__()
        user = _check_user(username, self.name)
        # gs2 saslname escaping (RFC 5801 4), the same rule as SCRAM's.
        authz = "a=" + user.replace("=", "=3D").replace(",", "=2C") if user else ""
        pairs = []
        if host is not None:
            if not _TOKEN.fullmatch(host):
                raise SASLError(f"OAUTHBEARER: invalid host {show_server_text(host)}")
            pairs.append(f"host={host}")
        if port is not None:
            if not 0 < port < 65536:
                raise SASLError(f"OAUTHBEARER: invalid port {port}")
            pairs.append(f"port={port}")
        pairs.append(f"auth=Bearer {_check_token(token)}")
        self._message = f"n,{authz},\x01{''.join(p + chr(1) for p in pairs)}\x01".encode()

    def _first_message(self) -> bytes:
        return self._message


class XOAuth2(_BearerMechanism):
    """XOAUTH2 (Google and Microsoft SASL XOAUTH2 documentation, no RFC; the pre-standard
    form of RFC 7628): ``user=<user>^Aauth=Bearer <token>^A^A``."""

    name = "XOAUTH2"
    _error_answer = b""  # Google's documented answer to the error challenge

    def __init__(self, username: str, token: str) -> None:
        super().__init__()
        user = _check_user(username, self.name)
        self._message = f"user={user}\x01auth=Bearer {_check_token(token)}\x01\x01".encode()

    def _first_message(self) -> bytes:
        return self._message


_OAUTH_MECHANISMS: dict[str, type[OAuthBearer] | type[XOAuth2]] = {
    "OAUTHBEARER": OAuthBearer,
    "XOAUTH2": XOAuth2,
}


class OAuth2Auth(Authenticator):
    """Authenticate with an OAuth 2.0 bearer token (RFC 7628, RFC 6750) over OAUTHBEARER or
    XOAUTH2, preferring the standard one.

    ``token_provider`` is a fixed token (a `str`) or a callable ``get_token(renew)``
    returning one, usually async. With a callable, `can_renew` is true: when the server
    rejects the token, the client calls `start` again with ``renew=True`` once. Exceptions
    raised by the provider propagate unchanged.
    """

    def __init__(
        self,
        username: str,
        token_provider: str | TokenProvider,
        *,
        mechanisms: tuple[str, ...] | list[str] | None = None,
    ) -> None:
        self.username = username
        self._token_provider = token_provider
        self.can_renew = not isinstance(token_provider, str)
        if not self.can_renew:
            _check_token(token_provider)  # fail at configuration time, not on connect
        names = tuple(m.upper() for m in mechanisms) if mechanisms is not None else None
        if names is not None:
            unknown = [m for m in names if m not in _OAUTH_MECHANISMS]
            if unknown or not names:
                raise ValueError(
                    f"OAuth2Auth runs {', '.join(_OAUTH_MECHANISMS)}; cannot pin {unknown or names}"
                )
        self._pinned = names

    def mechanisms(self) -> tuple[str, ...]:
        return self._pinned or tuple(_OAUTH_MECHANISMS)

    async def _token(self, renew: bool) -> str:
        provider = self._token_provider
        if isinstance(provider, str):
            return provider
        token = provider(renew)
        if inspect.isawaitable(token):
            token = await token
        return _check_token(token)

    async def start(
        self, mechanism: str, channel: ChannelInfo, *, renew: bool = False
    ) -> OAuthBearer | XOAuth2:
        name = mechanism.upper()
        if name not in self.mechanisms():
            raise SASLError(
                f"OAuth2Auth does not run {show_server_text(mechanism)}; "
                f"it runs {', '.join(self.mechanisms())}"
            )
        token = await self._token(renew)
        if name == "OAUTHBEARER":
            return OAuthBearer(self.username, token, host=channel.server_hostname)
        return XOAuth2(self.username, token)

    def __repr__(self) -> str:
        provider = self._token_provider
        # A callable's own repr may show bound arguments (functools.partial(..., secret=...)),
        # so only its name is shown.
        shown = (
            repr(MASK)
            if isinstance(provider, str)
            else f"<{getattr(provider, '__qualname__', type(provider).__name__)}>"
        )
        pinned = f", mechanisms={self._pinned!r}" if self._pinned else ""
        return f"OAuth2Auth(username={self.username!r}, token_provider={shown}{pinned})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OAuth2Auth):
            return NotImplemented
        return (self.username, self._token_provider, self._pinned) == (
            other.username,
            other._token_provider,
            other._pinned,
        )
