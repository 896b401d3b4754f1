"""The one edge where anyio, ``OSError`` and ``ssl`` exceptions become smtpsubmit's own.

Every transport of ours runs its network calls inside :func:`map_errors`; nothing above
the transports sees an exception of the network stack.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import anyio

from .._errors import CertificateError, ConnectError, ConnectionLostError, TLSError

__all__ = ["map_errors"]


@contextlib.contextmanager
def map_errors(action: str) -> Iterator[None]:
    """Translate network and TLS exceptions into the public hierarchy."""
    try:
        yield
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(f"{action}: certificate verification failed: {exc}") from exc
    except ssl.SSLError as exc:
        raise TLSError(f"{action}: TLS failure: {exc}") from exc
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise ConnectionLostError(f"{action}: the connection was lost") from exc
    except ConnectionRefusedError as exc:
        raise ConnectError(f"{action}: {exc.strerror or exc}") from exc
    except ConnectionError as exc:
        # Reset, broken pipe, aborted: there was a connection to lose. anyio reports these
        # as BrokenResourceError (above); asyncio's transports hand over the OSError.
        raise ConnectionLostError(f"{action}: the connection was lost ({exc.strerror})") from exc
    except OSError as exc:
        # anyio wraps several connect attempts in an OSError whose message lists them.
        raise ConnectError(f"{action}: {exc.strerror or exc}") from exc
