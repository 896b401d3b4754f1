"""RFC 8314 TLS policy: which TLS mode a port means, and the default SSL context.

RFC 8314 3.3 makes implicit TLS on port 465 the preferred way to submit mail; 587 is
the submission port where STARTTLS (RFC 3207) must succeed before AUTH or mail. Any other
port is ambiguous, so the caller has to say what it wants. Cleartext exists only under a
name that says what it is.
"""

from __future__ import annotations

import enum
import ssl

import certifi

from .._errors import ArgumentTypeError, TLSPolicyError

__all__ = ["TLSMode", "default_ssl_context", "resolve_tls_mode", "system_trust_context"]

IMPLICIT_TLS_PORT = 465
SUBMISSION_PORT = 587


class TLSMode(enum.Enum):
    """How the connection is protected."""

    #: TLS from the first byte (RFC 8314 3.3); the port-465 way.
    IMPLICIT = "implicit"
    #: Plain TCP upgraded by STARTTLS, which must succeed (RFC 3207); the port-587 way.
    STARTTLS = "starttls"
    #: No encryption at all. Mail content crosses the network readable by anyone on the
    #: path; AUTH still needs ``allow_cleartext_auth=True`` on top of this.
    INSECURE_CLEARTEXT = "insecure-cleartext"


def resolve_tls_mode(port: int, tls: TLSMode | str | None) -> TLSMode:
    """Pick the mode for ``port`` (``tls=None``) or check an explicit one against it.

    ``tls`` is a :class:`TLSMode`, one of its values as a string, or ``None``; anything else
    (``True`` does not say which TLS) is an :class:`ArgumentTypeError`. Every refusal names
    ``port`` and ``tls`` as message template fields (see :class:`ArgumentError`), so the CLI
    and the Django backend can say it in their own words.
    """
    choices = ", ".join(repr(m.value) for m in TLSMode)
    if isinstance(tls, str):
        try:
            tls = TLSMode(tls)
        except ValueError:
            raise TLSPolicyError(
                f"unknown TLS mode {_shown(tls)} for {{tls}}; use one of {choices}", "tls"
            ) from None
    elif tls is not None and not isinstance(tls, TLSMode):
        raise ArgumentTypeError(
            f"{{tls}} must be a TLSMode, one of {choices}, or None (by port), not {_shown(tls)}",
            "tls",
        )
    if tls is None:
        if port == IMPLICIT_TLS_PORT:
            return TLSMode.IMPLICIT
        if port == SUBMISSION_PORT:
            return TLSMode.STARTTLS
        raise TLSPolicyError(
            f"{{port:{port}}} has no standard TLS mode: pass {{tls:implicit}} (like port "
            "465), {tls:starttls} (like port 587) or, only if you accept that mail "
            "crosses the network unencrypted, {tls:insecure-cleartext} (RFC 8314)",
            "port",
            "tls",
        )
    if port == SUBMISSION_PORT and tls is TLSMode.IMPLICIT:
        raise TLSPolicyError(
            "{port:587} is the STARTTLS submission port (RFC 6409, RFC 8314 3.3); implicit "
            "TLS is {port:465}. Use {port:465}, or {tls:starttls} on 587",
            "port",
            "tls",
        )
    if port == IMPLICIT_TLS_PORT and tls is not TLSMode.IMPLICIT:
        raise TLSPolicyError(
            f"{{port:465}} is implicit TLS (RFC 8314 3.3); {{tls:{tls.value}}} there would "
            "not connect. Use {tls:implicit} (the default for 465), or {port:587} for "
            "STARTTLS",
            "port",
            "tls",
        )
    return tls


def _shown(value: object) -> str:
    return repr(value).replace("{", "{{").replace("}", "}}")


def default_ssl_context(*, cafile: str | None = None) -> ssl.SSLContext:
    """Certificates verified against certifi's bundle (or only the CAs in ``cafile``, a
    PEM file), hostname checked, TLS 1.2 or later.

    An unreadable ``cafile`` is a ``FileNotFoundError``/``ssl.SSLError`` naming the file.
    """
    try:
        context = ssl.create_default_context(cafile=cafile or certifi.where())
    except FileNotFoundError as exc:
        raise FileNotFoundError(exc.errno, f"cafile {cafile!r} does not exist", cafile) from None
    except ssl.SSLError as exc:
        raise ssl.SSLError(
            exc.errno, f"cafile {cafile!r} holds no usable PEM certificate"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def system_trust_context() -> ssl.SSLContext:
    """Certificates verified against the operating system's trust store instead of
    certifi's bundle, with the same policy: hostname checked, TLS 1.2 or later.

    For CAs your organisation installs on its machines (a private CA, a TLS inspection
    proxy): through ``truststore`` (the ``smtpsubmit[truststore]`` extra), Windows and
    macOS verify with their own certificate APIs; Linux uses OpenSSL with the system's CA
    files, where ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` apply as for OpenSSL. Give it as
    ``ssl_context=`` (every entry point takes it). Raises ``ImportError`` naming the extra
    when ``truststore`` is not installed.
    """
    try:
        import truststore
    except ImportError:
        raise ImportError(
            "system_trust_context() needs truststore: pip install 'smtpsubmit[truststore]'",
            name="truststore",
        ) from None
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname and chain checked
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
