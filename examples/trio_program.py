"""smtpsubmit on trio: a batch of messages over one connection, then a pool shared by tasks.

``send_batch`` puts several transactions on the wire at once (PIPELINING + CHUNKING) and
returns one outcome per message: a ``SendResult`` or the ``SMTPError`` that message met.
Run it as it is (embedded fake server) or with ``SMTP_HOST`` and friends set (see
``_target.py``).
"""

from __future__ import annotations

from email.message import EmailMessage

import trio
from _target import Target, smtp_target

import smtpsubmit


def newsletter(target: Target, number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = target.sender
    msg["To"] = target.recipient
    msg["Subject"] = f"Newsletter #{number}"
    msg.set_content(f"Issue {number}, sent from trio.\n")
    return msg


async def send_batch(
    target: Target, count: int
) -> list[smtpsubmit.SendResult | smtpsubmit.SMTPError]:
    async with target.client() as client:
        outcomes = await client.send_batch(newsletter(target, n) for n in range(1, count + 1))
    for number, outcome in enumerate(outcomes, 1):
        if isinstance(outcome, smtpsubmit.SMTPError):
            print(f"#{number}: failed: {outcome}")
        else:
            print(f"#{number}: {outcome.reply}")
    return outcomes


async def send_concurrently(target: Target, count: int) -> None:
    """Several trio tasks share a pool of at most two connections."""
    async with target.pool(max_connections=2) as pool, trio.open_nursery() as nursery:
        for n in range(count):
            nursery.start_soon(pool.send_message, newsletter(target, 100 + n))


async def run(count: int = 5) -> int:
    async with smtp_target() as target:
        outcomes = await send_batch(target, count)
        await send_concurrently(target, 3)
        if target.fake is not None:
            captured = await target.fake.wait_for_messages(count + 3)
            print(f"the fake server captured {len(captured)} messages")
        return sum(isinstance(o, smtpsubmit.SendResult) for o in outcomes)


def main() -> None:
    trio.run(run)


if __name__ == "__main__":
    main()
