"""Policy: what the client decides before any I/O (TLS mode per RFC 8314, timeouts) and
after a failure (retries, rate limits)."""

from ._ehlo import ehlo_name
from ._idna import ascii_hostname
from ._rate import RateLimit
from ._retry import RetryPolicy
from ._timeouts import Timeouts
from ._tls import TLSMode, default_ssl_context, resolve_tls_mode, system_trust_context

__all__ = [
    "RateLimit",
    "RetryPolicy",
    "TLSMode",
    "Timeouts",
    "ascii_hostname",
    "default_ssl_context",
    "ehlo_name",
    "resolve_tls_mode",
    "system_trust_context",
]
