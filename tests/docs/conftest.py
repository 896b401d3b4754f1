"""The docs sandbox: code blocks that name real mail servers run against fake ones.

Every ```python block of README.md and docs/*.md runs for real (see test_code_blocks.py).
Blocks are written the way users will copy them, so they name ``smtp.example.com``,
``smtp.gmail.com`` or ``smtp.office365.com`` and use the default SSL context. The
``docs_sandbox`` fixture makes that work without a network:

- three fake servers (implicit TLS, STARTTLS and plaintext) run for the whole session,
  each in its own thread, accepting the demo credentials the docs use (``DEMO_USERS``,
  ``DEMO_TOKENS``, ``DEMO_ENV``);
- their certificate is issued by a throwaway CA for ``localhost`` *and* every host name the
  docs use (``DOC_HOSTS``), so certificate and host name verification stay fully on: a block
  naming a host missing from the list fails with ``CertificateError``;
- ``connect_tcp`` (looked up in ``smtpsubmit._client``) is replaced by one that sends any
  host that is not a loopback IP literal to the fake server of the port's mode: 465 (and
  ports ending in 465) -> implicit TLS, 25 -> plaintext, anything else -> STARTTLS. A block
  that starts its own ``FakeSMTPServer`` connects to ``127.0.0.1`` and is left alone;
- ``default_ssl_context`` (looked up in ``smtpsubmit._client`` and in the Django backend)
  returns a context that trusts the fake CA only, checks host names and wants TLS 1.2+.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import smtpsubmit
import smtpsubmit._handshake
import smtpsubmit.sync
import smtpsubmit.telemetry
from smtpsubmit.testing import (
    FakeSMTPServer,
    Mode,
    ServerCertificates,
    ServerConfig,
    ThreadedSMTPServer,
)
from smtpsubmit.transport import AnyIOTransport, connect_tcp

try:  # Django is optional: only docs/django.md needs it.
    import django
    from django.conf import settings
except ImportError:  # pragma: no cover - Django is in the test extra
    django = None
else:
    if not settings.configured:
        settings.configure(
            EMAIL_BACKEND="smtpsubmit.contrib.django.EmailBackend",
            DEFAULT_FROM_EMAIL="app@example.com",
            USE_TZ=True,
        )
        django.setup()
    import smtpsubmit.contrib.django  # imported before any pytester run, see below

#: Host names the docs may use; the fake servers' certificate is valid for all of them.
DOC_HOSTS = (
    "smtp.example.com",
    "mail.example.com",
    "relay.example.com",
    "smtp.gmail.com",
    "smtp.office365.com",
    "smtp-mail.outlook.com",
)

#: ``{user: password}`` the fake servers accept: the docs' demo credentials.
DEMO_USERS = {
    "me@example.com": "app-password",
    "user@example.com": "password",
    "me@gmail.com": "abcdefghijklmnop",
    "me@contoso.com": "app-password",
}
#: The one OAuth bearer token every demo user has (fake servers map user -> token).
DEMO_TOKEN = "demo-access-token"
DEMO_TOKENS = dict.fromkeys(DEMO_USERS, DEMO_TOKEN)
#: Environment the docs read their secrets from.
DEMO_ENV = {
    "SMTP_PASSWORD": DEMO_USERS["me@example.com"],
    "GMAIL_APP_PASSWORD": DEMO_USERS["me@gmail.com"],
    "SMTP_ACCESS_TOKEN": DEMO_TOKEN,
}

_LOOPBACK = frozenset({"127.0.0.1", "::1"})


@dataclass
class DocsSandbox:
    """The fake servers behind the docs' host names."""

    implicit: ThreadedSMTPServer
    starttls: ThreadedSMTPServer
    plain: ThreadedSMTPServer
    certificates: ServerCertificates

    def server_for(self, port: int) -> ThreadedSMTPServer:
        """The fake server standing in for ``port`` on any host."""
        if str(port).endswith("465"):
            return self.implicit
        if port == 25:
            return self.plain
        return self.starttls

    @property
    def servers(self) -> tuple[ThreadedSMTPServer, ...]:
        return (self.implicit, self.starttls, self.plain)

    @property
    def messages_sent(self) -> int:
        return sum(len(s.messages) for s in self.servers)

    def clear(self) -> None:
        for server in self.servers:
            server.clear()


@pytest.fixture(scope="session")
def _sandbox_servers() -> Iterator[DocsSandbox]:
    # The docs connect by real host names: the fake certificate is valid for them too.
    certificates = ServerCertificates(extra_names=DOC_HOSTS)
    config = ServerConfig(users=DEMO_USERS, oauth_tokens=DEMO_TOKENS)
    implicit = FakeSMTPServer(config, mode=Mode.IMPLICIT_TLS, certificates=certificates)
    starttls = FakeSMTPServer(config, mode=Mode.STARTTLS, certificates=certificates)
    plain = FakeSMTPServer(
        config, mode=Mode.PLAIN, allow_cleartext_auth=True, certificates=certificates
    )
    try:
        with (
            implicit.run_in_thread() as i,
            starttls.run_in_thread() as s,
            plain.run_in_thread() as p,
        ):
            yield DocsSandbox(i, s, p, certificates)
            for server in (i, s, p):
                assert not server.errors, f"the fake server crashed: {server.errors!r}"
    finally:
        certificates.close()


@pytest.fixture
def docs_sandbox(
    _sandbox_servers: DocsSandbox, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DocsSandbox]:
    """Route every non-loopback connection of smtpsubmit to the sandbox's fake servers."""
    sandbox = _sandbox_servers
    sandbox.clear()

    async def fake_connect_tcp(
        host: str, port: int, *, local_host: str | None = None
    ) -> AnyIOTransport:
        if host in _LOOPBACK:
            return await connect_tcp(host, port, local_host=local_host)
        server = sandbox.server_for(port)
        return await connect_tcp(server.host, server.port)

    def fake_default_ssl_context() -> ssl.SSLContext:
        context = sandbox.certificates.client_ssl_context()  # verifies chain and host name
        assert context.check_hostname
        assert context.verify_mode is ssl.CERT_REQUIRED
        return context

    monkeypatch.setattr(smtpsubmit._handshake, "connect_tcp", fake_connect_tcp)
    monkeypatch.setattr(smtpsubmit._handshake, "default_ssl_context", fake_default_ssl_context)
    if django is not None:
        monkeypatch.setattr(
            smtpsubmit.contrib.django, "default_ssl_context", fake_default_ssl_context
        )
    for name, value in DEMO_ENV.items():
        monkeypatch.setenv(name, value)
    logger = logging.getLogger("smtpsubmit")  # a block may turn on DEBUG logging
    level, handlers = logger.level, list(logger.handlers)
    # A block may switch telemetry on with its own providers (docs/observability.md).
    monkeypatch.setattr(smtpsubmit.telemetry, "_resolved", smtpsubmit.telemetry._resolved)
    monkeypatch.setattr(smtpsubmit.telemetry, "_active", smtpsubmit.telemetry._active)
    try:
        yield sandbox
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers
