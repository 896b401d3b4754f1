"""Policy: what the client decides (TLS mode per RFC 8314, timeouts) before any I/O."""

from ._ehlo import ehlo_name
from ._timeouts import Timeouts
from ._tls import TLSMode, default_ssl_context, resolve_tls_mode

__all__ = ["TLSMode", "Timeouts", "default_ssl_context", "ehlo_name", "resolve_tls_mode"]
