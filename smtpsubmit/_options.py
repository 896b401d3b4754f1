"""The connection keywords, defined once and shared by every entry point.

``Settings.from_options`` (in ``_handshake.py``) spells them out and checks them, and
``SMTPClient``'s docstring documents them; ``SMTPClient``, ``send()``, ``SMTPPool`` and the
blocking facade take ``**options`` typed with these TypedDicts (PEP 692), so a new option
is added in one place and mypy checks every forwarding call against
``Settings.from_options``'s signature.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypedDict

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Unpack

if TYPE_CHECKING:
    from ._signing import Signer
    from .auth import Authenticator
    from .policy import RateLimit, RetryPolicy, Timeouts, TLSMode
    from .transport import Transport

__all__ = ["ClientOptions", "PoolOptions", "TransportFactory", "Unpack"]

#: An async callable returning a connected transport (bring your own stream).
TransportFactory = Callable[[], Awaitable["Transport"]]


class ClientOptions(TypedDict, total=False):
    """Keywords of :class:`smtpsubmit.SMTPClient` after ``host`` and ``port``."""

    tls: TLSMode | str | None
    ssl_context: ssl.SSLContext | None
    username: str | None
    password: str | None
    auth: Authenticator | None
    timeout: Timeouts | float | None
    local_hostname: str | None
    server_hostname: str | None
    allow_cleartext_auth: bool
    chunking: bool
    transport: TransportFactory | None
    unix_socket: str | None
    source_address: str | None
    cafile: str | None
    retry: RetryPolicy | None
    rate_limit: RateLimit | None
    proxy: str | None
    signer: Signer | None


class PoolOptions(ClientOptions, total=False):
    """Keywords of :class:`smtpsubmit.SMTPPool`: the client's plus the pool's own."""

    max_connections: int
    window: int
    max_messages_per_connection: int | None
    max_connection_age: float | None
    idle_timeout: float | None
    health_check_after: float | None
