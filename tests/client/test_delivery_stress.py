"""Hundreds of messages through a pool with retries, under random faults at random phases:
every message is delivered exactly once to each recipient it reports accepted, never to
one it does not, and is captured unacknowledged only when its outcome is unknown.

The faults come from a seeded generator (fixed seeds here, so CI cannot go red at random;
``HYPOTHESIS_PROFILE=random`` is not involved: set ``SMTPSUBMIT_STRESS_SEEDS`` to try
others).
"""

from __future__ import annotations

import os
import random
from collections import Counter, defaultdict

import anyio
import pytest

import smtpsubmit
from smtpsubmit import RetryPolicy, SendResult
from smtpsubmit.testing import FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio

SEEDS = [int(s) for s in os.environ.get("SMTPSUBMIT_STRESS_SEEDS", "1,2,3").split(",")]
MESSAGES = 200
#: A random fault may land past the last command of its kind: it need not fire.
ANY = {"required": False}


def random_faults(rng: random.Random, count: int) -> list[Fault]:
    faults = []
    for _ in range(count):
        nth = rng.randint(1, MESSAGES)
        kind = rng.choice(["rcpt-4xx", "rcpt-5xx", "421", "mail-4xx", "disconnect"])
        if kind == "rcpt-4xx":
            faults.append(Fault.reply("RCPT", nth=nth * 2, code=rng.choice([450, 451, 452]), **ANY))
        elif kind == "rcpt-5xx":
            faults.append(Fault.reply("RCPT", nth=nth * 2, code=550, text="No user", **ANY))
        elif kind == "421":
            faults.append(Fault.shutdown_421(rng.choice(["MAIL", "RCPT", "BDAT"]), nth=nth, **ANY))
        elif kind == "mail-4xx":
            faults.append(Fault.reply("MAIL", nth=nth, code=451, text="Later", **ANY))
        else:
            faults.append(Fault.disconnect(rng.choice(["MAIL", "RCPT", "BDAT"]), nth=nth, **ANY))
    return faults


def message(i: int) -> tuple[str, list[str], bytes]:
    data = f"Message-ID: <m{i}@example.com>\r\nSubject: {i}\r\n\r\nbody {i}\r\n".encode()
    return ("a@example.com", [f"x{i}@example.org", f"y{i}@example.org"], data)


def delivered(outcome: SendResult | smtpsubmit.SMTPError) -> set[str]:
    """The recipients the client was told accepted the message, over every attempt."""
    if isinstance(outcome, SendResult):
        return set(outcome.accepted)
    return {
        r
        for attempt in outcome.history
        if isinstance(attempt.outcome, SendResult)
        for r in attempt.outcome.accepted
    }


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_faults_never_duplicate_or_lose_a_message(seed: int) -> None:
    rng = random.Random(seed)
    faults = random_faults(rng, 40)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=tuple(faults)) as server:
        async with smtpsubmit.SMTPPool(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            max_connections=4,
            health_check_after=None,
            retry=RetryPolicy(attempts=3, backoff=0),
        ) as pool:
            with anyio.fail_after(120):
                outcomes = await pool.send_batch([message(i) for i in range(MESSAGES)])
        captured = list(server.messages)

    acknowledged: dict[str, Counter[str]] = defaultdict(Counter)
    unacknowledged: Counter[str] = Counter()
    for capture in captured:
        mid = capture.message["Message-ID"]
        if capture.acknowledged:
            acknowledged[mid].update(capture.rcpt_to)
        else:
            unacknowledged[mid] += 1

    kinds: Counter[str] = Counter()
    for i, outcome in enumerate(outcomes):
        mid = f"<m{i}@example.com>"
        kinds[type(outcome).__name__] += 1
        counts = acknowledged.get(mid, Counter())
        assert all(n == 1 for n in counts.values()), (mid, counts)  # never twice
        if isinstance(outcome, smtpsubmit.OutcomeUnknownError):
            # The server may have queued it (even acknowledged it, if the link broke before
            # the client read the reply): at most the last attempt's recipients more.
            last = outcome.history[-1].recipients if outcome.history else tuple(counts)
            assert delivered(outcome) <= set(counts) <= delivered(outcome) | set(last)
            assert unacknowledged[mid] <= 1
        else:
            assert set(counts) == delivered(outcome), (mid, outcome)  # no loss, no gain
            assert not unacknowledged[mid], (mid, outcome)
    # The run met faults of several kinds and still delivered most messages.
    assert kinds["SendResult"] >= MESSAGES // 2
    assert len(kinds) >= 2, kinds
