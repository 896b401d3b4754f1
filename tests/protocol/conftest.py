from __future__ import annotations

import pytest

from .helpers import FEED_MODES


@pytest.fixture(params=FEED_MODES)
def feed_mode(request: pytest.FixtureRequest) -> str:
    """How a test's server bytes reach the reader: see helpers.FEED_MODES."""
    mode: str = request.param
    return mode
