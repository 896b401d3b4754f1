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
``SMTPSUBMIT_SSL_CONTEXT`` (a ready ``ssl.SSLContext``), ``SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH``.
"""

from __future__ import annotations

import email.utils
import ssl
import threading
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

from .. import sync
from .._errors import SMTPError
from ..policy import TLSMode, default_ssl_context

__all__ = ["EmailBackend"]


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
        self.host = host or settings.EMAIL_HOST
        self.port = int(port or settings.EMAIL_PORT)
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

    def _ssl_context(self) -> ssl.SSLContext:
        given = getattr(settings, "SMTPSUBMIT_SSL_CONTEXT", None)
        if isinstance(given, ssl.SSLContext):
            return given
        cafile = getattr(settings, "SMTPSUBMIT_CA_FILE", None)
        if cafile:
            context = ssl.create_default_context(cafile=cafile)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
        else:
            context = default_ssl_context()
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    def open(self) -> bool | None:
        """Open the connection; True if a new one was opened, None if that failed silently."""
        if self.connection is not None:
            return False
        client = sync.SMTPClient(
            self.host,
            self.port,
            tls=self._tls_mode(),
            ssl_context=self._ssl_context(),
            username=self.username or None,
            password=self.password or None,
            timeout=self.timeout,
            allow_cleartext_auth=bool(getattr(settings, "SMTPSUBMIT_ALLOW_CLEARTEXT_AUTH", False)),
        )
        try:
            client.connect()
        except SMTPError:
            if not self.fail_silently:
                raise
            return None
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
