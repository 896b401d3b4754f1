"""Client tests run on asyncio and trio against the in-process fake server."""

from __future__ import annotations

from email.message import EmailMessage

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on both backends."""
    return str(request.param)


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


@pytest.fixture
def message() -> EmailMessage:
    """A fresh small message for each test."""
    return make_message()
