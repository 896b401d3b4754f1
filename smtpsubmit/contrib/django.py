"""A drop-in Django ``EMAIL_BACKEND``: ``"smtpsubmit.contrib.django.EmailBackend"``.

It honours Django's settings (``EMAIL_HOST``, ``EMAIL_PORT``, ``EMAIL_HOST_USER``,
``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``, ``EMAIL_TIMEOUT``,
``EMAIL_SSL_CERTFILE``, ``EMAIL_SSL_KEYFILE``) and ``fail_silently``, reuses one connection
across ``send_messages`` calls made on an opened connection, and returns the number of
messages sent, like Django's own SMTP backend. The TLS flags map onto RFC 8314 modes:

- ``EMAIL_USE_SSL`` -> implicit TLS; ``EMAIL_USE_TLS`` -> STARTTLS, **required** (Django's
  backend would also fail without it, but smtpsubmit also refuses AUTH before it);
- neither flag: port 465 and 587 get their RFC 8314 mode (safer than Django's cleartext);
  any other port is cleartext, as in Django, but credentials are then refused unless
  ``SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH = True``.

Extra settings: ``SMTPSUBMIT_CA_FILE`` (a PEM file of CAs to trust instead of certifi's),
``SMTPSUBMIT_SSL_CONTEXT`` (a ready ``ssl.SSLContext``, e.g.
``smtpsubmit.system_trust_context()``), ``SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH``,
``SMTPSUBMIT_PROXY`` (a proxy URL, ``socks5h://user:password@host:1080`` or
``http://host:3128``; see docs/proxies.md), ``SMTPSUBMIT_RETRY`` (a
``smtpsubmit.RetryPolicy``: transient failures are tried again, only to the recipients
refused with 4xx) and ``SMTPSUBMIT_RATE_LIMIT`` (a ``smtpsubmit.RateLimit``, per
connection the backend opens), and
``SMTPSUBMIT_DKIM_SIGNER`` (a :class:`smtpsubmit.dkim.DKIMSigner`, or any signer: every
message is DKIM-signed as it is sent).

Settings are checked by the library's own argument checks when the connection is opened,
before any I/O, whatever ``fail_silently`` says: a bad value is an
:class:`~smtpsubmit.ArgumentError` (a ``ValueError``) that names the setting
(``EMAIL_PORT``, ``EMAIL_HOST_USER``, ``EMAIL_USE_SSL = True``), or the backend's keyword
when it was given one. A password without a user name is refused, not sent unauthenticated.
"""

from __future__ import annotations

import contextlib
import email.utils
import ssl
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from .. import sync
from .._errors import ArgumentError, SMTPError
from .._validate import respelled, shown
from ..policy import TLSMode, default_ssl_context

__all__ = ["EmailBackend"]


#: The library's keywords as Django settings, and the backend's own keyword for each.
_SETTINGS = {
    "host": ("EMAIL_HOST", "host"),
    "port": ("EMAIL_PORT", "port"),
    "username": ("EMAIL_HOST_USER", "username"),
    "password": ("EMAIL_HOST_PASSWORD", "password"),
    "timeout": ("EMAIL_TIMEOUT", "timeout"),
    "tls": ("EMAIL_USE_TLS/EMAIL_USE_SSL", "use_tls/use_ssl"),
    "ssl_context": ("SMTPSUBMIT_SSL_CONTEXT", None),
    "allow_cleartext_auth": ("SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH", None),
    "retry": ("SMTPSUBMIT_RETRY", None),
    "rate_limit": ("SMTPSUBMIT_RATE_LIMIT", None),
    "proxy": ("SMTPSUBMIT_PROXY", None),
    "signer": ("SMTPSUBMIT_DKIM_SIGNER", None),
}
#: A TLS mode as the settings that choose it, and as the backend's keywords.
_TLS_SETTINGS = {
    "implicit": ("EMAIL_USE_SSL = True", "use_ssl=True"),
    "starttls": ("EMAIL_USE_TLS = True", "use_tls=True"),
    "insecure-cleartext": ("EMAIL_USE_TLS = EMAIL_USE_SSL = False", "use_tls=use_ssl=False"),
}


def _port(value: object) -> object:
    """An int for an int or a string of digits (as Django's own backend accepts); anything
    else as it is, for the client's check to refuse naming ``EMAIL_PORT``."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


@contextlib.contextmanager
def _naming(setting: str, path: str) -> Iterator[None]:
    """An unreadable file (``ssl`` names neither it nor the setting) as an ArgumentError."""
    try:
        yield
    except OSError as exc:  # ssl.SSLError too: not PEM, no certificate in it
        reason = shown(exc.strerror or str(exc))[1:-1]
        raise ArgumentError(
            f"{setting} {shown(path)} cannot be used: {reason}", "ssl_context"
        ) from None


def _address(formatted: str) -> str:
    """The bare address from Django's ``Name <addr>`` form (validated later by our grammar)."""
    return email.utils.parseaddr(formatted)[1] or formatted


class EmailBackend(BaseEmailBackend):
    """Django email backend sending through :class:`smtpsubmit.sync.SMTPClient`."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently)
        #: Library keywords the caller gave as keywords of this backend, not as settings.
        self._keywords = {
            name
            for name, given in (
                ("host", host),
                ("port", port),
                ("username", username),
                ("password", password),
                ("timeout", timeout),
                ("tls", use_tls if use_tls is not None else use_ssl),
            )
            if given is not None
        }
        self.host = host or settings.EMAIL_HOST
        self.port: Any = _port(port or settings.EMAIL_PORT)
        self.username = settings.EMAIL_HOST_USER if username is None else username
        self.password = settings.EMAIL_HOST_PASSWORD if password is None else password
        self.use_tls = settings.EMAIL_USE_TLS if use_tls is None else use_tls
        self.use_ssl = settings.EMAIL_USE_SSL if use_ssl is None else use_ssl
        self.timeout = settings.EMAIL_TIMEOUT if timeout is None else timeout
        self.ssl_keyfile = settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
        self.ssl_certfile = settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
        if self.use_ssl and self.use_tls:
            raise ValueError(
                "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set one of those "
                "settings to True."
            )
        self.connection: sync.SMTPClient | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<smtpsubmit EmailBackend {self.host}:{self.port} user={self.username!r}>"

    def _tls_mode(self) -> TLSMode | None:
        if self.use_ssl:
            return TLSMode.IMPLICIT
        if self.use_tls:
            return TLSMode.STARTTLS
        if self.port in (465, 587):
            return None  # RFC 8314 decides from the port
        return TLSMode.INSECURE_CLEARTEXT

    def _spell(self, argument: str, value: str | None) -> str | None:
        """The library's argument errors in Django's words (see ``ArgumentError``)."""
        setting, keyword = _SETTINGS.get(argument, (None, None))
        given = argument in self._keywords and keyword is not None
        if value is None:
            return f"the backend's {keyword}=" if given else setting
        if argument == "tls":
            return _TLS_SETTINGS.get(value, (None, None))[1 if given else 0]
        if given:
            return f"{keyword}={value}"
        return f"{setting} = {value}" if setting else None

    def _ssl_context(self) -> Any:
        given = getattr(settings, "SMTPSUBMIT_SSL_CONTEXT", None)
        if given is not None:
            return given  # not an SSLContext: the client's check names the setting
        cafile = getattr(settings, "SMTPSUBMIT_CA_FILE", None)
        if not cafile:
            context = default_ssl_context()
        else:
            with _naming("SMTPSUBMIT_CA_FILE", cafile):
                context = ssl.create_default_context(cafile=cafile)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ssl_certfile:
            with _naming("EMAIL_SSL_CERTFILE/EMAIL_SSL_KEYFILE", self.ssl_certfile):
                context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def open(self) -> bool | None:
        """Open the connection; True if a new one was opened, None if that failed silently.

        Settings the client refuses raise whatever ``fail_silently`` says: they are
        configuration mistakes, not delivery failures.
        """
        if self.connection is not None:
            return False
        try:
            client = sync.SMTPClient(
                self.host,
                self.port,
                tls=self._tls_mode(),
                ssl_context=self._ssl_context(),
                username=self.username or None,
                password=self.password or None,
                timeout=self.timeout,
                allow_cleartext_auth=getattr(settings, "SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH", False),
                retry=getattr(settings, "SMTPSUBMIT_RETRY", None),
                rate_limit=getattr(settings, "SMTPSUBMIT_RATE_LIMIT", None),
                proxy=getattr(settings, "SMTPSUBMIT_PROXY", None) or None,
                signer=getattr(settings, "SMTPSUBMIT_DKIM_SIGNER", None),
            )
        except ArgumentError as exc:
            raise exc.spelled(self._spell) from None
        try:
            client.connect()
        except SMTPError as exc:
            if self.fail_silently:
                return None
            spelled = respelled(exc, self._spell)
            if spelled is exc:
                raise
            raise spelled from None
        self.connection = client
        return True

    def close(self) -> None:
        """QUIT and forget the connection (never raises)."""
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.quit()

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send Django ``EmailMessage`` objects; return how many were sent."""
        if not email_messages:
            return 0
        with self._lock:
            new_connection = self.open()
            if self.connection is None or new_connection is None:
                return 0
            sent = 0
            try:
                for message in email_messages:
                    if self._send(message):
                        sent += 1
            finally:
                if new_connection:
                    self.close()
            return sent

    def _send(self, email_message: Any) -> bool:
        recipients = email_message.recipients()
        if not recipients:
            return False
        assert self.connection is not None
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        sanitize = _sanitizer()
        sender = _address(sanitize(email_message.from_email, encoding))
        addresses = [_address(sanitize(addr, encoding)) for addr in recipients]
        data = email_message.message().as_bytes(linesep="\r\n")
        try:
            self.connection.sendmail(sender, addresses, data)
        except SMTPError:
            if not self.fail_silently:
                raise
            return False
        return True


def _sanitizer() -> Any:
    try:
        from django.core.mail.message import sanitize_address
    except ImportError:  # pragma: no cover - Django versions without it
        return lambda addr, encoding: addr
    return sanitize_address
