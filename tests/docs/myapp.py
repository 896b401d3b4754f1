"""The "application" README's test example imports (``from myapp import send_welcome_mail``).

Copied next to every pytest block the docs harness runs: it stands for the user's own code
under test.
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import smtpsubmit
import smtpsubmit.sync


def send_welcome_mail(*, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "new-user@example.com"
    msg["Subject"] = "Welcome"
    msg.set_content("Welcome aboard!")
    smtpsubmit.sync.send(
        msg,
        host=host,
        port=port,
        tls=smtpsubmit.TLSMode.IMPLICIT,  # the app's configuration says so
        ssl_context=ssl_context,
        username="user@example.com",
        password="password",
    )
