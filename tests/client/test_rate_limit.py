"""RateLimit: the token bucket's arithmetic, throttling replies, and pacing on the wire.

The bucket is pure arithmetic over a clock reading, so its rules are checked without
time. The end-to-end tests assert lower bounds on elapsed time only (a rate limit cannot
make anything faster, so a loaded machine cannot make them fail).
"""

from __future__ import annotations

import anyio
import pytest

import smtpsubmit
from smtpsubmit import RateLimit
from smtpsubmit.policy._rate import TokenBucket, is_throttling
from smtpsubmit.protocol import EnhancedStatus, Reply
from smtpsubmit.testing import FakeSMTPServer, Mode

RAW = b"Subject: paced\r\n\r\nbody\r\n"


def test_a_full_bucket_lets_a_burst_through_then_paces_at_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.reserve(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    waits = [bucket.reserve(1, 0.0) for _ in range(4)]
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4])  # in arrival order


def test_the_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    bucket.reserve(2, 0.0)
    assert bucket.reserve(1, 0.1) == pytest.approx(0.0)  # one token back after 0.1 s
    assert bucket.reserve(1, 10.0) == 0.0
    assert bucket.reserve(1, 10.0) == 0.0
    assert bucket.reserve(1, 10.0) == pytest.approx(0.1)  # never more than the burst


def test_a_throttling_reply_halves_the_rate_for_the_cooldown() -> None:
    bucket = TokenBucket(rate=8, burst=1, now=0.0, cooldown=60)
    bucket.slow_down(0.0)
    assert bucket.current_rate(1.0) == 4
    bucket.slow_down(1.0)
    assert bucket.current_rate(2.0) == 2
    for _ in range(10):
        bucket.slow_down(2.0)
    assert bucket.current_rate(3.0) == 0.5  # never below a sixteenth
    assert bucket.current_rate(62.0) == 8  # the cooldown is over


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "throttling"),
    [
        (421, (4, 7, 0), "Too many connections", True),
        (451, (4, 7, 1), "Greylisted", True),
        (450, None, "Rate limit exceeded, slow down", True),
        (454, None, "Throttled", True),
        (452, (4, 5, 3), "Too many recipients", True),
        (451, (4, 3, 0), "Local error in processing", False),
        (452, (4, 3, 1), "Insufficient system storage", False),
        (550, (5, 7, 1), "Rate limit exceeded", False),  # 5xx: not a slow-down request
    ],
)
def test_throttling_replies_are_recognised(
    code: int, enhanced: tuple[int, int, int] | None, text: str, throttling: bool
) -> None:
    status = EnhancedStatus(*enhanced) if enhanced else None
    error = smtpsubmit.ReplyError.from_reply(Reply(code, (text,), status))
    assert is_throttling(error) is throttling


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"per_second": 0}, ValueError),
        ({"per_second": float("inf")}, ValueError),
        ({"per_second": True}, TypeError),
        ({"per_second": 1, "burst": 0}, ValueError),
        ({"per_second": 1, "recipients_per_second": -1}, ValueError),
    ],
)
def test_rate_limit_refuses_nonsense(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        RateLimit(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_pool_sends_200_messages_at_50_per_second_in_4_seconds_or_more() -> None:
    limit = RateLimit(per_second=50)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPPool(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            rate_limit=limit,
        ) as pool:
            started = anyio.current_time()
            outcomes = await pool.send_batch(
                [("a@example.com", [f"r{i}@example.org"], RAW) for i in range(200)]
            )
            elapsed = anyio.current_time() - started
        assert len(server.messages) == 200
    assert all(isinstance(o, smtpsubmit.SendResult) for o in outcomes)
    assert elapsed >= (200 - limit.burst) / limit.per_second


@pytest.mark.anyio
async def test_client_batch_and_recipient_limit_pace_the_sends() -> None:
    limit = RateLimit(per_second=1000, recipients_per_second=100, recipient_burst=2)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPClient(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            rate_limit=limit,
        ) as client:
            started = anyio.current_time()
            outcomes = await client.send_batch(
                [("a@example.com", ["x@example.org", "y@example.org"], RAW)] * 11
            )
            elapsed = anyio.current_time() - started
        assert len(server.messages) == 11
    assert all(isinstance(o, smtpsubmit.SendResult) for o in outcomes)
    assert elapsed >= (22 - 2) / 100  # 22 recipients at 100/s, 2 free
