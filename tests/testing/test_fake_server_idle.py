"""Abandoned connections: the idle timeout closes them, wherever the session was waiting.

The tests wait for the server's close (EOF) with a bound; nothing here sleeps to
synchronise.
"""

from __future__ import annotations

import logging

import anyio
import pytest
from anyio.abc import SocketStream

from smtpsubmit.testing import FakeSMTPServer, Fault, Mode, ServerConfig

pytestmark = pytest.mark.anyio

IDLE = 0.2
ENVELOPE = b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n"


async def _read_until_closed(stream: SocketStream) -> bytes:
    received = b""
    with anyio.fail_after(10):  # a bound, far above IDLE: the close is what ends the loop
        while True:
            try:
                received += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return received


@pytest.mark.parametrize(
    ("where", "sent", "last_reply"),
    [
        ("before any command", b"", b"421 fake-smtp.localhost Error: timeout exceeded"),
        ("mid-command", b"EHLO c", b"421 fake-smtp.localhost Error: timeout exceeded"),
        ("in DATA", ENVELOPE + b"DATA\r\nSubject: s\r\n", b"421 4.4.2 fake-smtp.localhost"),
        ("in a BDAT chunk", ENVELOPE + b"BDAT 100 LAST\r\nabc", b"421 4.4.2 fake-smtp.localhost"),
        ("in an AUTH exchange", b"EHLO c\r\nAUTH LOGIN\r\n", b"421 4.4.2 fake-smtp.localhost"),
    ],
)
async def test_idle_connection_gets_421_and_is_closed(
    where: str, sent: bytes, last_reply: bytes
) -> None:
    async with FakeSMTPServer(
        mode=Mode.PLAIN, idle_timeout=IDLE, users={"u": "p"}, allow_cleartext_auth=True
    ) as server:
        async with await anyio.connect_tcp(server.host, server.port) as stream:
            await stream.send(sent)
            received = await _read_until_closed(stream)
        transcript = server.transcripts[0]
        messages = server.messages
    replies = received.split(b"\r\n")
    assert replies[0].startswith(b"220 ")
    assert replies[-2].startswith(last_reply), where
    assert replies[-1] == b""
    assert ("event", f"closing connection: idle for {IDLE} s waiting") in transcript
    assert messages == []


async def test_client_that_stops_reading_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    # 16 MiB is far more than the socket buffers hold: the server's write blocks until the
    # client reads, which it never does.
    size = 16 * 1024 * 1024
    dropped = anyio.Event()

    class _OnDrop(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "while sending" in record.getMessage():
                dropped.set()  # on the server's task, in this event loop

    handler = _OnDrop()
    logger = logging.getLogger("smtpsubmit.testing")
    logger.addHandler(handler)
    caplog.set_level(logging.INFO, "smtpsubmit.testing")
    try:
        async with FakeSMTPServer(
            mode=Mode.PLAIN, idle_timeout=IDLE, faults=[Fault.oversized_reply("NOOP", size=size)]
        ) as server:
            async with await anyio.connect_tcp(server.host, server.port) as stream:
                await stream.send(b"NOOP\r\n")
                with anyio.fail_after(10):
                    await dropped.wait()
                received = await _read_until_closed(stream)
            transcript = server.transcripts[0]
    finally:
        logger.removeHandler(handler)
    assert len(received) < size
    assert ("event", f"closing connection: idle for {IDLE} s while sending") in transcript
    assert "closing the connection from 127.0.0.1" in caplog.text


def test_idle_timeout_defaults_to_five_minutes_and_must_be_positive() -> None:
    assert ServerConfig().idle_timeout == 300.0  # RFC 5321 4.5.3.2.7
    assert ServerConfig(idle_timeout=None).idle_timeout is None
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="idle_timeout"):
            ServerConfig(idle_timeout=bad)
