"""Where the examples send mail: a real server named in the environment, or a fake one.

With ``SMTP_HOST`` set, the examples submit to that server::

    SMTP_HOST=smtp.example.com SMTP_PORT=587 SMTP_USERNAME=me@example.com \\
    SMTP_PASSWORD=app-password SMTP_TO=you@example.org python examples/send_basic.py

``SMTP_PORT`` defaults to 587 (STARTTLS; 465 means implicit TLS), ``SMTP_TLS`` may name a
mode for other ports (``implicit``, ``starttls``), ``SMTP_FROM`` defaults to the user name
and ``SMTP_TO`` to the sender. Without ``SMTP_HOST`` the examples start smtpsubmit's fake
server in-process (it needs ``trustme``, from the ``test`` extra) and send to it over TLS,
trusting its throwaway CA.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import smtpsubmit
from smtpsubmit.testing import FakeSMTPServer, Mode

__all__ = ["FAKE_PASSWORD", "FAKE_USER", "Target", "smtp_target"]

FAKE_USER = "me@example.com"
FAKE_PASSWORD = "app-password"


@dataclass(frozen=True)
class Target:
    """A server to submit to and the addresses to use."""

    host: str
    port: int
    tls: smtpsubmit.TLSMode | None
    username: str | None
    password: str | None
    sender: str
    recipient: str
    ssl_context: ssl.SSLContext | None = None
    #: The embedded fake server, when no real one was configured.
    fake: FakeSMTPServer | None = field(default=None, repr=False)

    def client(self) -> smtpsubmit.SMTPClient:
        """A client for this server (not connected yet)."""
        return smtpsubmit.SMTPClient(self.host, self.port, **self._options())

    def pool(self, *, max_connections: int = 4) -> smtpsubmit.SMTPPool:
        """A connection pool for this server."""
        return smtpsubmit.SMTPPool(
            self.host, self.port, max_connections=max_connections, **self._options()
        )

    def _options(self) -> dict[str, Any]:
        return {
            "tls": self.tls,
            "ssl_context": self.ssl_context,
            "username": self.username,
            "password": self.password,
        }


def _from_environment(host: str) -> Target:
    username = os.environ.get("SMTP_USERNAME")
    sender = os.environ.get("SMTP_FROM") or username
    if not sender:
        raise SystemExit("set SMTP_FROM (or SMTP_USERNAME) to the sender address")
    return Target(
        host=host,
        port=int(os.environ.get("SMTP_PORT", "587")),
        tls=smtpsubmit.TLSMode(os.environ["SMTP_TLS"]) if os.environ.get("SMTP_TLS") else None,
        username=username,
        password=os.environ.get("SMTP_PASSWORD"),
        sender=sender,
        recipient=os.environ.get("SMTP_TO") or sender,
    )


@asynccontextmanager
async def smtp_target() -> AsyncIterator[Target]:
    """The configured server, or a fake STARTTLS server running on this event loop."""
    host = os.environ.get("SMTP_HOST")
    if host:
        yield _from_environment(host)
        return
    async with FakeSMTPServer(mode=Mode.STARTTLS, users={FAKE_USER: FAKE_PASSWORD}) as server:
        yield Target(
            host=server.host,
            port=server.port,
            tls=smtpsubmit.TLSMode.STARTTLS,  # a random port says nothing: be explicit
            username=FAKE_USER,
            password=FAKE_PASSWORD,
            sender=FAKE_USER,
            recipient="you@example.org",
            ssl_context=server.client_ssl_context(),
            fake=server,
        )
