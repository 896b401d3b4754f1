"""Suite-wide settings: the Hypothesis profiles, and a guard against any connection.

The property tests run with a fixed, derandomised profile by default (``ci``): every run
tries the same examples, so a failure is a change in the code, never a new seed. No example
is read from or written to ``.hypothesis/``: one found once cannot fail every later run in
that checkout. ``make test-random`` sets ``HYPOTHESIS_PROFILE=random``: fresh seeds, ten
times the examples and the example database, to look for new failures (add each one found
as an ``@example`` or an explicit test). A test that wants more examples than the profile
gives asks for a multiple of ``settings.default.max_examples``, so it scales too. This
module is imported before any test module, so the settings objects the tests build at
import time inherit the profile (a ``--hypothesis-profile`` option still overrides it).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
# Keeps the example database: a failure found replays on the next random run until fixed.
settings.register_profile("random", deadline=None, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class ConnectionGuard:
    """A loopback listener that counts accepted connections, plus a record of every
    outgoing ``connect`` this process tried (none of which is let through)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        #: A port a client could really connect to: a valid argument everywhere.
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self.attempts: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:  # the timeout: look at _stop again
                continue
            self.accepted += 1
            conn.close()

    def connect(self, sock: socket.socket, address: object) -> None:
        self.attempts.append(address)
        raise ConnectionRefusedError(f"a connection was attempted: {address!r}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


@pytest.fixture
def no_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectionGuard]:
    """Fails the test if anything connects: argument checks must come before any I/O.

    Every ``socket.connect``/``connect_ex`` (asyncio, trio and plain sockets all end there)
    is recorded and refused; the listener's port is there for tests whose other arguments
    must be valid, and counts what reaches it.
    """
    guard = ConnectionGuard()

    def connect(sock: socket.socket, address: object) -> None:
        guard.connect(sock, address)

    def connect_ex(sock: socket.socket, address: object) -> int:
        guard.connect(sock, address)
        return 0  # not reached

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    try:
        yield guard
    finally:
        monkeypatch.undo()
        guard.close()
    assert guard.attempts == [], "a connection was attempted"
    assert guard.accepted == 0, "a connection reached the listener"
