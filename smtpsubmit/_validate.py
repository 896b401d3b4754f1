"""The arguments of every entry point, checked once, before any I/O.

Theory of operation:

- ``SMTPClient`` calls :func:`check_client_arguments` first thing; ``send()``, the blocking
  facade and the Django backend all build an ``SMTPClient``, and ``SMTPPool`` calls
  :func:`check_pool_arguments` (its own keywords, then the client's). So a bad value is
  refused before a socket is opened, whichever door it came through, by this one module.
- Every refusal is an :class:`ArgumentError` (an :class:`ArgumentTypeError` for a wrong
  type, a :class:`TLSPolicyError` for a TLS mode the port contradicts) whose
  ``arguments`` name the keywords involved. Messages are templates (``{port}``,
  ``{tls:implicit}``, see :class:`ArgumentError`): the CLI and the Django backend re-spell
  them in their own vocabulary (``--port``, ``EMAIL_PORT``).
- Checked: types (``bool`` is not an ``int`` here: ``port=True`` is a mistake), ranges
  (ports 1-65535, positive timeouts, no NaN), the EHLO name (the protocol core's own
  grammar, by building the ``EHLO`` command), and combinations that cannot mean what the
  caller wants (a password without a user name would silently send unauthenticated).
- Never a secret in a message: a password is named, never shown.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import Callable

from ._errors import (
    ArgumentError,
    ArgumentTypeError,
    CleartextAuthError,
    SMTPError,
    Spelling,
    render_template,
)
from ._options import ClientOptions, PoolOptions, Unpack
from .auth import Authenticator
from .policy import RateLimit, RetryPolicy, Timeouts, ascii_hostname, resolve_tls_mode
from .protocol import Ehlo, LocalProtocolError
from .transport import ProxyURL, socks_available

__all__ = ["check_client_arguments", "check_pool_arguments", "respelled", "shown"]


def shown(value: object) -> str:
    """``repr(value)`` made safe to embed in an :class:`ArgumentError` template."""
    return repr(value).replace("{", "{{").replace("}", "}}")


def _type_name(value: object) -> str:
    return type(value).__name__


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_text(argument: str, value: object, what: str, *, empty_ok: bool = False) -> None:
    """``value`` is ``None`` or a ``str`` without white space or control characters."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ArgumentTypeError(
            f"{{{argument}}} must be {what} (a str) or None, not {_type_name(value)}", argument
        )
    if not value and not empty_ok:
        raise ArgumentError(f"{{{argument}}} is empty: give {what}, or None", argument)
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ArgumentError(
            f"{{{argument}}} must be {what} without white space or control characters, "
            f"not {shown(value)}",
            argument,
        )


def _check_idna(argument: str, value: str | None) -> None:
    """A non-ASCII name must have an A-label (IDNA 2008): the one form that DNS, SNI and
    the certificate check will all use (see ``policy/_idna.py``)."""
    if not value:
        return
    try:
        ascii_hostname(value)
    except ValueError as exc:
        raise ArgumentError(
            f"{{{argument}}} {shown(value)} is {shown(str(exc))[1:-1]}", argument
        ) from None


def _check_bool(argument: str, value: object) -> None:
    # A truthy "no" or 0/1 must not switch on a security opt-in by accident.
    if not isinstance(value, bool):
        raise ArgumentTypeError(
            f"{{{argument}}} must be True or False, not {shown(value)}", argument
        )


def _check_port(port: object, *, tcp: bool) -> None:
    """A TCP port is 1-65535; without TCP (``unix_socket``, ``transport``) the port only
    picks the TLS mode, and 0 may say "none"."""
    low = 1 if tcp else 0
    if not isinstance(port, int) or isinstance(port, bool):
        raise ArgumentTypeError(
            f"{{port}} must be an int from {low} to 65535, not {shown(port)}", "port"
        )
    if not low <= port <= 65535:
        raise ArgumentError(f"{{port}} must be from {low} to 65535, not {port}", "port")


def _check_timeout(timeout: object) -> None:
    if timeout is None or isinstance(timeout, Timeouts):
        return  # a Timeouts checked its own fields when it was built
    if not _is_number(timeout):
        raise ArgumentTypeError(
            "{timeout} must be seconds (an int or float), a Timeouts, or None, "
            f"not {_type_name(timeout)}",
            "timeout",
        )
    assert isinstance(timeout, int | float)
    if math.isnan(timeout) or timeout <= 0:
        raise ArgumentError(
            f"{{timeout}} must be a positive number of seconds, not {shown(timeout)}",
            "timeout",
        )


def _check_credentials(username: object, password: object, auth: object) -> None:
    for argument, value in (("username", username), ("password", password)):
        if value is not None and not isinstance(value, str):
            raise ArgumentTypeError(  # the type only: the value may be a secret
                f"{{{argument}}} must be a str or None, not {_type_name(value)}", argument
            )
    if auth is not None and not isinstance(auth, Authenticator):
        raise ArgumentTypeError(
            "{auth} must be an Authenticator (PasswordAuth, OAuth2Auth, ...) or None, "
            f"not {_type_name(auth)}",
            "auth",
        )
    if auth is not None and (username or password):
        raise ArgumentError(
            "{auth} and {username}/{password} were both given: authenticate either with "
            "{auth} or with {username} and {password}, not both",
            "auth",
            "username",
            "password",
        )
    if password and not username:
        # Without this, the message would go out unauthenticated and nobody would know.
        raise ArgumentError(
            "{password} was given without {username}: the message would be sent without "
            "authenticating; give {username} too, or no {password}",
            "password",
            "username",
        )
    if username and not password:
        raise ArgumentError(
            "{username} was given without {password}: authentication would fail; give "
            "{password} too",
            "username",
            "password",
        )


def _check_local_hostname(name: object) -> None:
    if name is None:
        return
    if not isinstance(name, str):
        raise ArgumentTypeError(
            "{local_hostname} must be a domain or address literal (a str) or None, "
            f"not {_type_name(name)}",
            "local_hostname",
        )
    try:
        Ehlo(name)  # the protocol core's own check of what will be sent (RFC 5321 4.1.1.1)
    except LocalProtocolError as exc:
        raise ArgumentError(
            f"{{local_hostname}} is not a valid EHLO name: {shown(str(exc))[1:-1]}",
            "local_hostname",
        ) from None


def _check_new_keywords(options: ClientOptions) -> None:
    """``cafile``, ``retry``, ``rate_limit`` and ``signer``."""
    cafile = options.get("cafile")
    if cafile is not None:
        if not (isinstance(cafile, str | os.PathLike) and cafile):
            raise ArgumentTypeError(
                f"{{cafile}} must be the path of a PEM file or None, not {shown(cafile)}",
                "cafile",
            )
        if options.get("ssl_context") is not None:
            raise ArgumentError(
                "{cafile} and {ssl_context} were both given: load the CA file into your "
                "context (context.load_verify_locations(cafile)) or give only cafile",
                "cafile",
                "ssl_context",
            )
    for name, kind in (("retry", RetryPolicy), ("rate_limit", RateLimit)):
        value = options.get(name)
        if value is not None and not isinstance(value, kind):
            raise ArgumentTypeError(
                f"{{{name}}} must be a {kind.__name__} or None, not {_type_name(value)}", name
            )
    signer = options.get("signer")
    if signer is not None and not callable(getattr(signer, "sign", None)):
        raise ArgumentTypeError(
            "{signer} must have a sign(message: bytes) -> bytes method (a "
            f"smtpsubmit.dkim.DKIMSigner, for one) or be None, not {_type_name(signer)}",
            "signer",
        )


def _check_proxy(options: ClientOptions) -> None:
    """``proxy``: a URL we can use (scheme, host, port, credentials), python-socks there
    for a SOCKS one, and no other way to connect given. The URL is shown only redacted."""
    url = options.get("proxy")
    if url is None:
        return
    if not isinstance(url, str):
        raise ArgumentTypeError(
            f"{{proxy}} must be a proxy URL (a str) or None, not {_type_name(url)}", "proxy"
        )
    for other in ("transport", "unix_socket"):
        if options.get(other) is not None:
            raise ArgumentError(
                f"{{proxy}} and {{{other}}} were both given: give one way to connect",
                "proxy",
                other,
            )
    try:
        proxy = ProxyURL.parse(url)
        ascii_hostname(proxy.host)
    except ValueError as exc:
        # Never the URL itself: it may hold the proxy's password.
        raise ArgumentError(f"{{proxy}} {shown(str(exc))[1:-1]}", "proxy") from None
    if proxy.needs_socks and not socks_available():
        raise ArgumentError(
            f"{{proxy}} is a {proxy.scheme}:// proxy, which needs python-socks: install "
            "the extra, pip install 'smtpsubmit[socks]'",
            "proxy",
        )


def check_client_arguments(host: str, port: int, **options: Unpack[ClientOptions]) -> None:
    """Refuse, before any I/O, what ``SMTPClient(host, port, **options)`` cannot use.

    Raises :class:`ArgumentError` (a ``ValueError``), :class:`ArgumentTypeError` (also a
    ``TypeError``) or :class:`TLSPolicyError`, each naming the keywords involved.
    """
    unix_socket = options.get("unix_socket")
    transport = options.get("transport")
    source_address = options.get("source_address")
    _check_text("host", host, "a host name or IP address", empty_ok=bool(unix_socket or transport))
    _check_idna("host", host)
    _check_port(port, tcp=not (unix_socket or transport))
    resolve_tls_mode(port, options.get("tls"))
    context = options.get("ssl_context")
    if context is not None and not isinstance(context, ssl.SSLContext):
        raise ArgumentTypeError(
            f"{{ssl_context}} must be an ssl.SSLContext or None, not {_type_name(context)}",
            "ssl_context",
        )
    _check_credentials(options.get("username"), options.get("password"), options.get("auth"))
    _check_timeout(options.get("timeout"))
    _check_local_hostname(options.get("local_hostname"))
    _check_text("server_hostname", options.get("server_hostname"), "a host name")
    _check_idna("server_hostname", options.get("server_hostname"))
    _check_bool("allow_cleartext_auth", options.get("allow_cleartext_auth", False))
    _check_bool("chunking", options.get("chunking", True))
    if transport is not None and not callable(transport):
        raise ArgumentTypeError(
            "{transport} must be an async callable returning a Transport, or None, "
            f"not {_type_name(transport)}",
            "transport",
        )
    if unix_socket is not None and not (isinstance(unix_socket, str | os.PathLike) and unix_socket):
        raise ArgumentTypeError(
            f"{{unix_socket}} must be a socket path (a non-empty str) or None, "
            f"not {shown(unix_socket)}",
            "unix_socket",
        )
    if transport is not None and unix_socket is not None:
        raise ArgumentError(
            "{transport} and {unix_socket} were both given: give one way to connect",
            "transport",
            "unix_socket",
        )
    _check_new_keywords(options)
    _check_proxy(options)
    _check_text("source_address", source_address, "a local IP address")
    if source_address is not None and (transport is not None or unix_socket is not None):
        raise ArgumentError(
            "{source_address} is the local address of a TCP connection; it means nothing "
            f"with {{{'transport' if transport is not None else 'unix_socket'}}}",
            "source_address",
            "transport" if transport is not None else "unix_socket",
        )


def _check_count(argument: str, value: object, *, none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        also = " or None" if none_ok else ""
        raise ArgumentTypeError(
            f"{{{argument}}} must be an int of at least 1{also}, not {shown(value)}", argument
        )
    if value < 1:
        raise ArgumentError(f"{{{argument}}} must be at least 1, not {value}", argument)


def _check_duration(argument: str, value: object) -> None:
    """``None`` (no limit) or seconds, 0 included (0: every time)."""
    if value is None:
        return
    if not _is_number(value):
        raise ArgumentTypeError(
            f"{{{argument}}} must be seconds (an int or float) or None, not {shown(value)}",
            argument,
        )
    assert isinstance(value, int | float)
    if math.isnan(value) or value < 0:
        raise ArgumentError(
            f"{{{argument}}} must be zero or more seconds, or None, not {shown(value)}",
            argument,
        )


_POOL_CHECKS: dict[str, Callable[[str, object], None]] = {
    "max_connections": _check_count,
    "window": _check_count,
    "max_messages_per_connection": lambda a, v: _check_count(a, v, none_ok=True),
    "max_connection_age": _check_duration,
    "idle_timeout": _check_duration,
    "health_check_after": _check_duration,
}


def check_pool_arguments(host: str, port: int, **options: Unpack[PoolOptions]) -> None:
    """Refuse, before any I/O, what ``SMTPPool(host, port, **options)`` cannot use: its own
    keywords (given ones only; the defaults are valid), then the client's."""
    client: dict[str, object] = {}
    for name, value in options.items():
        check = _POOL_CHECKS.get(name)
        if check is None:
            client[name] = value
        else:
            check(name, value)
    check_client_arguments(host, port, **client)  # type: ignore[arg-type]


#: What a CleartextAuthError advises (raised at AUTH time, once the channel is known to
#: be unencrypted), as a template a front end can re-spell.
_CLEARTEXT_AUTH = (
    "refusing to send credentials over an unencrypted connection; use {tls:implicit} or "
    "{tls:starttls}, or {allow_cleartext_auth:True} if you really mean it"
)


def respelled(exc: SMTPError, spelling: Spelling) -> SMTPError:
    """``exc`` in a front end's words, same class: an :class:`ArgumentError` re-spelled, a
    :class:`CleartextAuthError`'s advice in the front end's terms, anything else as is."""
    if isinstance(exc, ArgumentError):
        return exc.spelled(spelling)
    if isinstance(exc, CleartextAuthError):
        return CleartextAuthError(render_template(_CLEARTEXT_AUTH, spelling))
    return exc
