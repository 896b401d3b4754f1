"""smtpsubmit.sync: blocking use from threads and from inside a running event loop."""

from __future__ import annotations

import asyncio
import threading
from email.message import EmailMessage

import pytest

import smtpsubmit
import smtpsubmit.sync
from smtpsubmit.testing import ThreadedSMTPServer


def message(i: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = f"sync {i}"
    msg.set_content("hello\n")
    return msg


def client(server: ThreadedSMTPServer) -> smtpsubmit.sync.SMTPClient:
    return smtpsubmit.sync.SMTPClient(
        server.host,
        server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
        username="user@example.com",
        password="password",
    )


def test_blocking_client_sends_several_messages_on_one_connection(
    smtps_server: ThreadedSMTPServer,
) -> None:
    with client(smtps_server) as c:
        first = c.send_message(message(1))
        second = c.sendmail("app@example.com", ["raw@example.com"], b"Subject: raw\r\n\r\nx\r\n")
        assert c.is_connected
    captured = smtps_server.wait_for_messages(2)
    assert first.accepted == ("user1@example.com",)
    assert second.accepted == ("raw@example.com",)
    assert [m.auth_identity for m in captured] == ["user@example.com"] * 2
    assert len(smtps_server.transcripts) == 1


def test_blocking_send_raises_the_same_typed_errors(smtps_server: ThreadedSMTPServer) -> None:
    with pytest.raises(smtpsubmit.AuthenticationError) as info:
        smtpsubmit.sync.send(
            message(),
            host=smtps_server.host,
            port=smtps_server.port,
            tls="implicit",
            ssl_context=smtps_server.client_ssl_context(),
            username="user@example.com",
            password="wrong",
        )
    assert info.value.code == 535


def test_works_inside_a_thread_whose_event_loop_is_running(
    smtps_server: ThreadedSMTPServer,
) -> None:
    async def legacy_view() -> smtpsubmit.SendResult:
        # A sync library call made from async code: asyncio.run() would fail here.
        return smtpsubmit.sync.send(
            message(7),
            host=smtps_server.host,
            port=smtps_server.port,
            tls="implicit",
            ssl_context=smtps_server.client_ssl_context(),
        )

    result = asyncio.run(legacy_view())
    assert result.accepted == ("user7@example.com",)


def test_client_and_pool_are_thread_safe(smtps_server: ThreadedSMTPServer) -> None:
    errors: list[BaseException] = []
    shared = client(smtps_server)
    pool = smtpsubmit.sync.SMTPPool(
        smtps_server.host,
        smtps_server.port,
        tls="implicit",
        ssl_context=smtps_server.client_ssl_context(),
        max_connections=3,
    )

    def worker(i: int) -> None:
        try:
            shared.send_message(message(i))
            pool.send_message(message(100 + i))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared.quit()
    pool.close()
    captured = smtps_server.wait_for_messages(24)
    assert errors == []
    assert sorted(m.recipients[0].address for m in captured) == sorted(
        [f"user{i}@example.com" for i in range(12)]
        + [f"user{100 + i}@example.com" for i in range(12)]
    )
    assert len(smtps_server.transcripts) <= 1 + 3


def test_send_batch_blocking(smtps_server: ThreadedSMTPServer) -> None:
    with client(smtps_server) as c:
        results = c.send_batch([message(i) for i in range(5)])
    assert all(isinstance(r, smtpsubmit.SendResult) for r in results)
    assert len(smtps_server.wait_for_messages(5)) == 5
