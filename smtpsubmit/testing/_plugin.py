"""pytest plugin: ``smtp_server``, ``smtps_server`` and ``smtp_server_factory`` fixtures.

Registered through the ``pytest11`` entry point, so installing smtpsubmit is enough.

The fixtures are synchronous on purpose: each server runs on its own event loop in a
background thread, so the same fixture serves plain ``def`` tests, pytest-asyncio tests
(strict or auto mode) and anyio tests on asyncio or trio alike. Waiting for messages is
``server.wait_for_messages(n)`` in sync tests and ``await server.wait_for_messages_async(n)``
in async ones. A fixture fails the test at teardown if the fake server itself crashed, or
if a required scripted fault never fired while the test passed (a failing test keeps its
own report: faults scripted after the failing line could not fire).

This module imports nothing from smtpsubmit.testing at import time: pytest loads it in every
project where smtpsubmit is installed, including ones without trustme.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pluggy import Result

    from ._config import ServerConfig
    from ._server import SMTPServerFactory, ThreadedSMTPServer
    from ._tls import ServerCertificates

__all__ = [
    "DEFAULT_OAUTH_TOKENS",
    "DEFAULT_USERS",
    "smtp_server",
    "smtp_server_factory",
    "smtps_server",
]

#: Credentials the ``smtp_server`` and ``smtps_server`` fixtures accept.
DEFAULT_USERS = {"user@example.com": "password"}
#: OAuth bearer tokens (XOAUTH2 / OAUTHBEARER) those fixtures accept.
DEFAULT_OAUTH_TOKENS = {"user@example.com": "test-oauth-token"}


#: Set on a test item whose call phase did not pass (see ``pytest_runtest_makereport``).
_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Result[pytest.TestReport], None]:
    """Remember whether the test itself failed, for the fixtures' teardown checks."""
    # An old-style wrapper on purpose: it works with every pytest a user may have.
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and not report.passed:
        item.stash[_CALL_FAILED] = True


def _check_errors(server: ThreadedSMTPServer) -> None:
    if server.errors:
        pytest.fail(f"the fake SMTP server crashed: {server.errors!r}", pytrace=False)


@contextlib.contextmanager
def _serve(
    request: pytest.FixtureRequest,
    config: ServerConfig | None,
    certificates: ServerCertificates | None,
    options: dict[str, Any],
) -> Iterator[ThreadedSMTPServer]:
    from ._faults import FaultNotFiredError
    from ._server import FakeSMTPServer

    server = FakeSMTPServer(config, certificates=certificates, **options)
    unfired: FaultNotFiredError | None = None
    try:
        with server.run_in_thread() as handle:
            yield handle
    except FaultNotFiredError as exc:
        unfired = exc
    # Checked once the server has stopped, so that no session is still running; a crash
    # first, since it may be why a fault never fired.
    _check_errors(handle)
    if unfired is not None and not request.node.stash.get(_CALL_FAILED, False):
        pytest.fail(str(unfired), pytrace=False)


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[ThreadedSMTPServer]:
    """A STARTTLS (port-587-like) fake server accepting ``DEFAULT_USERS``, all extensions."""
    from ._config import Mode

    with _serve(
        request,
        None,
        None,
        {"mode": Mode.STARTTLS, "users": DEFAULT_USERS, "oauth_tokens": DEFAULT_OAUTH_TOKENS},
    ) as server:
        yield server


@pytest.fixture
def smtps_server(request: pytest.FixtureRequest) -> Iterator[ThreadedSMTPServer]:
    """An implicit-TLS (port-465-like) fake server accepting ``DEFAULT_USERS``."""
    from ._config import Mode

    with _serve(
        request,
        None,
        None,
        {"mode": Mode.IMPLICIT_TLS, "users": DEFAULT_USERS, "oauth_tokens": DEFAULT_OAUTH_TOKENS},
    ) as server:
        yield server


@pytest.fixture
def smtp_server_factory(request: pytest.FixtureRequest) -> Iterator[SMTPServerFactory]:
    """Start custom servers: ``smtp_server_factory(mode=Mode.PLAIN, faults=[...])``.

    Servers made by one test share a test CA, and stop when the test ends.
    """
    from ._tls import ServerCertificates

    with contextlib.ExitStack() as stack:
        shared: list[ServerCertificates] = []

        def factory(config: ServerConfig | None = None, /, **options: Any) -> ThreadedSMTPServer:
            if not shared:
                shared.append(ServerCertificates())
                stack.callback(shared[0].close)
            return stack.enter_context(_serve(request, config, shared[0], options))

        yield factory
