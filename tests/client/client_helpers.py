"""Shared helpers of the client tests (a plain module: conftest names collide)."""

from __future__ import annotations

from email.message import EmailMessage


def make_message(
    *,
    sender: str = "alice@example.com",
    to: str = "bob@example.com",
    subject: str = "Hello",
    body: str = "Hi Bob,\n.a line starting with a dot\n",
    **headers: str,
) -> EmailMessage:
    """A small text message."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg
