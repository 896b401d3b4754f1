"""The one edge where anyio, ``OSError`` and ``ssl`` exceptions become smtpsubmit's own.

Every transport of ours runs its network calls inside :func:`map_errors`; nothing above
the transports sees an exception of the network stack.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import anyio

from .._errors import (
    CertificateError,
    ConnectError,
    ConnectionLostError,
    TLSError,
    TLSModeMismatchError,
)

__all__ = ["NOT_TLS_REASONS", "map_errors", "plain_smtp_on_tls_port"]

#: OpenSSL's reasons when the server's first octets are no TLS record at all ("220 " read
#: as a record header): WRONG_VERSION_NUMBER (OpenSSL 1.1 to 3.1), UNKNOWN_PROTOCOL (1.0),
#: RECORD_LAYER_FAILURE (3.2 and later report it on top of the wrong version number).
NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"})


def plain_smtp_on_tls_port(action: str) -> TLSModeMismatchError:
    """The error for a server that answered implicit TLS in clear (RFC 8314 3.3)."""
    return TLSModeMismatchError(
        f"{action}: the server seems to speak plain SMTP on this port, not implicit TLS "
        "(use STARTTLS)",
        server_speaks="plain",
    )


@contextlib.contextmanager
def map_errors(action: str, *, implicit_tls: bool = False) -> Iterator[None]:
    """Translate network and TLS exceptions into the public hierarchy.

    ``implicit_tls``: this is the TLS handshake that opens the connection (implicit TLS,
    RFC 8314 3.3), so a server that answers it in clear speaks plain SMTP on this port: a
    :class:`~smtpsubmit.TLSModeMismatchError`. After STARTTLS the same answer is a
    :class:`~smtpsubmit.TLSError` (the server agreed to TLS, then did not speak it).
    """
    try:
        yield
    except ssl.SSLCertVerificationError as exc:
        raise CertificateError(f"{action}: certificate verification failed: {exc}") from exc
    except ssl.SSLError as exc:
        # getattr: only the ssl module's own raise sets ``reason``, not SSLError("...").
        if getattr(exc, "reason", None) in NOT_TLS_REASONS:
            if implicit_tls:
                raise plain_smtp_on_tls_port(action) from exc
            raise TLSError(f"{action}: TLS failure: {exc} (an answer in clear)") from exc
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
