"""The pytest fixtures in every kind of test: sync, pytest-asyncio, anyio (asyncio + trio)."""

from __future__ import annotations

import smtplib
import ssl

import anyio
import anyio.to_thread
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSStream

from smtpsubmit.testing import (
    FakeSMTPServer,
    Mode,
    SMTPServerFactory,
    ThreadedSMTPServer,
)
from smtpsubmit.testing._plugin import DEFAULT_USERS

# In a test module rather than conftest.py: pytest refuses pytest_plugins in nested conftests.
pytest_plugins = ["pytester"]

USER, PASSWORD = next(iter(DEFAULT_USERS.items()))


def _send(server: ThreadedSMTPServer, subject: str = "s") -> None:
    """Submit one message with smtplib (blocking)."""
    context = server.client_ssl_context()
    if server.mode is Mode.IMPLICIT_TLS:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host, server.port, context=context, timeout=5
        )
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=5)
        if server.mode is Mode.STARTTLS:
            client.starttls(context=context)
    with client:
        if server.users:
            client.login(USER, PASSWORD)
        client.sendmail("a@x", ["b@x"], f"Subject: {subject}\r\n\r\nbody\r\n".encode())


async def _send_async(server: ThreadedSMTPServer) -> None:
    await anyio.to_thread.run_sync(_send, server)


# -- plain synchronous tests ---------------------------------------------------------------


def test_sync_smtp_server(smtp_server: ThreadedSMTPServer) -> None:
    _send(smtp_server)
    [message] = smtp_server.wait_for_messages(1, timeout=5)
    assert message.tls


def test_sync_smtps_server(smtps_server: ThreadedSMTPServer) -> None:
    assert smtps_server.mode is Mode.IMPLICIT_TLS
    _send(smtps_server)
    assert smtps_server.wait_for_messages(1)[0].auth_identity == USER


def test_sync_factory_shares_one_ca(smtp_server_factory: SMTPServerFactory) -> None:
    first = smtp_server_factory(mode=Mode.IMPLICIT_TLS)
    second = smtp_server_factory(mode=Mode.STARTTLS, users={})
    assert first.ca_pem_path == second.ca_pem_path
    assert first.port != second.port
    _send(first)
    _send(second)
    assert len(first.wait_for_messages(1)) == len(second.wait_for_messages(1)) == 1


def test_sync_wait_times_out(smtp_server: ThreadedSMTPServer) -> None:
    with pytest.raises(TimeoutError, match="expected 1 message"):
        smtp_server.wait_for_messages(1, timeout=0.05)


def test_clear_forgets_messages(smtp_server: ThreadedSMTPServer) -> None:
    _send(smtp_server)
    smtp_server.wait_for_messages(1)
    smtp_server.clear()
    assert smtp_server.messages == []
    assert smtp_server.transcripts == []


# -- pytest-asyncio (strict mode, as configured in pyproject) ------------------------------


@pytest.mark.asyncio
async def test_pytest_asyncio_smtp_server(smtp_server: ThreadedSMTPServer) -> None:
    await anyio.to_thread.run_sync(_send, smtp_server)
    [message] = await smtp_server.wait_for_messages_async(1)
    assert message.auth_identity == USER


@pytest.mark.asyncio
async def test_pytest_asyncio_wait_does_not_block_the_loop(
    smtps_server: ThreadedSMTPServer,
) -> None:
    # The message is sent by a task on the same loop while the wait is pending.
    async with anyio.create_task_group() as tg:
        tg.start_soon(_send_async, smtps_server)
        messages = await smtps_server.wait_for_messages_async(1)
    assert len(messages) == 1


# -- anyio plugin, asyncio and trio ----------------------------------------------------------


@pytest.mark.anyio
async def test_anyio_smtp_server(smtp_server: ThreadedSMTPServer) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(_send_async, smtp_server)
        [message] = await smtp_server.wait_for_messages_async(1)
    assert message.message["Subject"] == "s"


@pytest.mark.anyio
async def test_anyio_factory(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(mode=Mode.PLAIN)
    await anyio.to_thread.run_sync(_send, server)
    assert len(await server.wait_for_messages_async(1)) == 1


async def _anyio_submit(server: FakeSMTPServer, context: ssl.SSLContext) -> list[bytes]:
    """A tiny async client (anyio streams): greeting, EHLO, STARTTLS, EHLO, AUTH, one mail."""
    replies: list[bytes] = []
    stream = await anyio.connect_tcp(server.host, server.port)
    reader = BufferedByteReceiveStream(stream)

    async def reply() -> bytes:
        while True:
            line = await reader.receive_until(b"\r\n", 65536)
            if line[3:4] != b"-":
                replies.append(line)
                return line

    await reply()
    for command in (b"EHLO c", b"STARTTLS"):
        await stream.send(command + b"\r\n")
        await reply()
    tls = await TLSStream.wrap(stream, hostname="localhost", ssl_context=context)
    reader = BufferedByteReceiveStream(tls)
    for command in (
        b"EHLO c",
        b"AUTH PLAIN AHUAcA==",
        b"MAIL FROM:<a@x>",
        b"RCPT TO:<b@x>",
        b"DATA",
        b"Subject: async\r\n\r\nhi\r\n.",
        b"QUIT",
    ):
        await tls.send(command + b"\r\n")
        await reply()
    await tls.aclose()
    return replies


@pytest.mark.anyio
async def test_async_context_manager_on_current_loop() -> None:
    async with FakeSMTPServer(users={"u": "p"}) as server:
        context = server.client_ssl_context()
        replies = await _anyio_submit(server, context)
        [message] = await server.wait_for_messages(1)
    assert [r[:3] for r in replies] == [
        b"220",
        b"250",
        b"220",
        b"250",
        b"235",
        b"250",
        b"250",
        b"354",
        b"250",
        b"221",
    ]
    assert message.message["Subject"] == "async"
    assert message.tls
    assert server.errors == []
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port


def test_run_in_thread_on_trio_backend() -> None:
    with FakeSMTPServer(mode=Mode.PLAIN).run_in_thread(backend="trio") as server:
        _send(server)
        assert server.wait_for_messages(1)[0].message["Subject"] == "s"


# -- fixtures in a separate pytest run: pytest-asyncio auto mode, anyio on trio -----------

INNER_TESTS = """
import anyio.to_thread
import pytest
import smtplib


def send(server):
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.starttls(context=server.client_ssl_context())
        c.login("user@example.com", "password")
        c.sendmail("a@x", ["b@x"], b"Subject: inner\\r\\n\\r\\nx\\r\\n")


def test_sync(smtp_server):
    send(smtp_server)
    assert smtp_server.wait_for_messages(1)[0].message["Subject"] == "inner"


async def test_auto_mode(smtp_server):
    await anyio.to_thread.run_sync(send, smtp_server)
    assert len(await smtp_server.wait_for_messages_async(1)) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio(smtp_server, anyio_backend):
    await anyio.to_thread.run_sync(send, smtp_server)
    assert len(await smtp_server.wait_for_messages_async(1)) == 1
"""


QUIET = ("-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function")


def test_fixtures_in_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest("-o", "asyncio_mode=auto", *QUIET)
    result.assert_outcomes(passed=3)


def test_fixture_reports_a_crashed_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash="""
def test_crash(smtp_server_factory):
    server = smtp_server_factory(on_message=lambda m: 1 / 0)
    import smtplib
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        c.starttls(context=server.client_ssl_context())
        try:
            c.sendmail("a@x", ["b@x"], b"x")
        except smtplib.SMTPException:
            pass
"""
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the fake SMTP server crashed*ZeroDivisionError*"])
