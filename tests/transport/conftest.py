"""Transport tests run on asyncio and trio against raw sockets of the test's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from smtpsubmit.testing import ServerCertificates


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on both backends."""
    return str(request.param)


@pytest.fixture(scope="session")
def certificates() -> Iterator[ServerCertificates]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1."""
    certs = ServerCertificates()
    yield certs
    certs.close()
