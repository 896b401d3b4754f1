"""Client tests run on asyncio and trio against the in-process fake server."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from client_helpers import make_message


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on both backends."""
    return str(request.param)


@pytest.fixture
def message() -> EmailMessage:
    """A fresh small message for each test."""
    return make_message()
