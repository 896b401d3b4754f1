"""RetryPolicy: what is tried again, to whom, and what never is; checked on the wire.

Each test scripts the fake server's faults and asserts what the server saw (MAIL and RCPT
commands, messages stored and to whom) as well as the result and its history.
"""

from __future__ import annotations

import random

import anyio
import pytest

import smtpsubmit
from smtpsubmit import RetryPolicy
from smtpsubmit.testing import Extension, FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=3, backoff=0)
RAW = b"Subject: retry\r\nMessage-ID: <m1@example.com>\r\n\r\nbody\r\n"
NO_CHUNKING = frozenset(Extension) - {Extension.CHUNKING, Extension.BINARYMIME}


def client_for(server: FakeSMTPServer, **options: object) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
        **options,  # type: ignore[arg-type]
    )


def stored(server: FakeSMTPServer) -> list[list[str]]:
    """The recipients of each message the server acknowledged, in order."""
    return [m.rcpt_to for m in server.messages if m.acknowledged]


def mails(server: FakeSMTPServer) -> int:
    return sum(e.line.startswith("MAIL") for t in server.transcripts for e in t)


@pytest.mark.parametrize("extensions", [frozenset(Extension), NO_CHUNKING], ids=["bdat", "data"])
async def test_only_the_recipient_refused_with_4xx_is_tried_again(
    extensions: frozenset[Extension],
) -> None:
    fault = Fault.reply("RCPT", nth=2, code=450, enhanced="4.2.1", text="Mailbox busy")
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, faults=(fault,)
    ) as server:
        async with client_for(server, retry=FAST) as client:
            result = await client.sendmail("a@example.com", ["b@example.org", "c@example.org"], RAW)
        assert stored(server) == [["b@example.org"], ["c@example.org"]]
    assert result.accepted == ("b@example.org", "c@example.org")
    assert dict(result.refused) == {}
    assert result.attempts == 2
    first, second = result.history
    assert first.recipients == ("b@example.org", "c@example.org")
    assert first.replies["c@example.org"].code == 450  # type: ignore[union-attr]
    assert first.replies["b@example.org"].code == 250  # type: ignore[union-attr]
    assert second.recipients == ("c@example.org",)


async def test_a_5xx_recipient_is_never_tried_again() -> None:
    fault = Fault.reply("RCPT", nth=2, code=550, enhanced="5.1.1", text="No such user")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, retry=FAST) as client:
            result = await client.sendmail("a@example.com", ["b@example.org", "c@example.org"], RAW)
        assert stored(server) == [["b@example.org"]]
        assert mails(server) == 1
    assert result.attempts == 1
    assert result.refused["c@example.org"].code == 550


async def test_a_5xx_to_mail_is_never_tried_again() -> None:
    fault = Fault.reply("MAIL", code=550, enhanced="5.7.1", text="Sender denied", times=None)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, retry=FAST) as client:
            with pytest.raises(smtpsubmit.PermanentReplyError) as caught:
                await client.sendmail("a@example.com", ["b@example.org"], RAW)
        assert mails(server) == 1
    assert caught.value.attempts == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.shutdown_421("MAIL"), id="421-to-mail"),
        pytest.param(Fault.shutdown_421("RCPT"), id="421-to-rcpt"),
        pytest.param(Fault.reply("MAIL", code=451, text="Try later"), id="451-to-mail"),
        pytest.param(Fault.reply("DATA", code=452, text="Storage"), id="452-to-data"),
        pytest.param(Fault.reply("END_OF_DATA", code=451, text="Later"), id="451-final"),
        # Without CHUNKING the body waits for the envelope's replies: lost before it left.
        pytest.param(Fault.disconnect("MAIL"), id="lost-before-the-body"),
    ],
)
async def test_a_transient_failure_before_acceptance_is_tried_again(fault: Fault) -> None:
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=NO_CHUNKING, faults=(fault,)
    ) as server:
        async with client_for(server, retry=FAST) as client:
            result = await client.sendmail("a@example.com", ["b@example.org"], RAW)
        assert stored(server) == [["b@example.org"]]  # exactly once
    assert result.attempts == 2
    assert isinstance(result.history[0].outcome, smtpsubmit.SMTPError)


async def test_an_unknown_outcome_is_not_tried_again_by_default() -> None:
    fault = Fault.disconnect("END_OF_DATA")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, retry=FAST) as client:
            with pytest.raises(smtpsubmit.OutcomeUnknownError) as caught:
                await client.sendmail("a@example.com", ["b@example.org"], RAW)
        assert len(server.messages) == 1  # the server has it, unacknowledged
        assert mails(server) == 1
    assert caught.value.attempts == 1
    assert len(caught.value.history) == 1


async def test_retry_unknown_sends_again_and_the_message_id_tells_the_duplicate() -> None:
    fault = Fault.disconnect("END_OF_DATA")
    policy = RetryPolicy(attempts=2, backoff=0, retry_unknown=True)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, retry=policy) as client:
            result = await client.sendmail("a@example.com", ["b@example.org"], RAW)
        ids = [m.message["Message-ID"] for m in server.messages]
    assert result.attempts == 2
    assert ids == ["<m1@example.com>", "<m1@example.com>"]  # the receiver can de-duplicate


async def test_the_last_error_is_raised_with_every_attempt_in_its_history() -> None:
    fault = Fault.reply("RCPT", code=450, enhanced="4.2.1", text="Busy", times=None)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, retry=FAST) as client:
            with pytest.raises(smtpsubmit.RecipientsRefusedError) as caught:
                await client.sendmail("a@example.com", ["b@example.org"], RAW)
        assert mails(server) == 3
        assert stored(server) == []
    error = caught.value
    assert error.attempts == 3
    assert [a.number for a in error.history] == [1, 2, 3]
    assert all(a.replies["b@example.org"].code == 450 for a in error.history)  # type: ignore[union-attr]


async def test_no_retry_policy_means_one_attempt() -> None:
    fault = Fault.shutdown_421("MAIL")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.TransientReplyError) as caught:
                await client.sendmail("a@example.com", ["b@example.org"], RAW)
        assert mails(server) == 1
    assert caught.value.attempts == 1
    assert caught.value.history == ()


async def test_send_message_retries_keep_the_explicit_sender() -> None:
    fault = Fault.reply("RCPT", nth=1, code=451, text="Later")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, retry=FAST) as client:
            from email.message import EmailMessage

            msg = EmailMessage()
            msg["From"] = "header@example.com"
            msg["To"] = "b@example.org"
            msg.set_content("hi")
            result = await client.send_message(msg, sender="bounce@example.com")
        senders = [m.mail_from for m in server.messages]
    assert result.attempts == 2
    assert senders == ["bounce@example.com"]


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=10, backoff=1.0, max_backoff=8.0)
    rng = random.Random(7)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)]:
        delays = [policy.delay(attempt, rng=rng) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 10  # jittered, not constant


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"attempts": 0}, ValueError),
        ({"attempts": True}, TypeError),
        ({"attempts": 2.5}, TypeError),
        ({"backoff": -1}, ValueError),
        ({"max_backoff": float("nan")}, ValueError),
    ],
)
def test_retry_policy_refuses_nonsense(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


async def test_pool_retries_without_holding_up_other_callers() -> None:
    fault = Fault.reply("RCPT", nth=1, code=450, text="Busy")
    slow = RetryPolicy(attempts=2, backoff=3600)  # the retry waits far longer than the test
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with smtpsubmit.SMTPPool(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            max_connections=1,
            retry=slow,
        ) as pool:
            waiting = anyio.Event()
            async with anyio.create_task_group() as group:

                async def first() -> None:
                    waiting.set()
                    await pool.sendmail("a@example.com", ["busy@example.org"], RAW)

                group.start_soon(first)
                await waiting.wait()
                other = await pool.sendmail("a@example.com", ["free@example.org"], RAW)
                group.cancel_scope.cancel()  # the first is still waiting for its retry
        assert other.accepted == ("free@example.org",)
        assert stored(server) == [["free@example.org"]]


async def test_pool_retry_sends_each_recipient_once() -> None:
    fault = Fault.reply("RCPT", nth=2, code=451, text="Later")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with smtpsubmit.SMTPPool(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context(),
            retry=FAST,
        ) as pool:  # fmt: skip
            result = await pool.sendmail("a@example.com", ["b@example.org", "c@example.org"], RAW)
        assert stored(server) == [["b@example.org"], ["c@example.org"]]
    assert result.accepted == ("b@example.org", "c@example.org")
    assert result.attempts == 2


async def test_a_4xx_to_bdat_is_tried_again() -> None:
    fault = Fault.reply("BDAT", code=452, enhanced="4.3.1", text="Storage")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server, retry=FAST) as client:
            result = await client.sendmail("a@example.com", ["b@example.org"], RAW)
        assert stored(server) == [["b@example.org"]]
        assert [m.via for m in server.messages] == ["BDAT"]
    assert result.attempts == 2
