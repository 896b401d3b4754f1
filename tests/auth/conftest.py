from __future__ import annotations

import pytest

from smtpsubmit.auth import Mechanism


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on both backends (trio is a design goal)."""
    return str(request.param)


def exchange(mechanism: Mechanism, challenges: list[bytes]) -> list[bytes | None]:
    """Emulate the client: initial response, one response per 334 challenge, then 235."""
    sent: list[bytes | None] = [mechanism.initial_response()]
    sent.extend(mechanism.respond(challenge) for challenge in challenges)
    mechanism.success()
    return sent
