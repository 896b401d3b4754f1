"""Quick start on asyncio: one message with ``send()``, then a session with ``SMTPClient``.

Run it as it is to send through the embedded fake server, or point it at a real one::

    SMTP_HOST=smtp.example.com SMTP_PORT=465 SMTP_USERNAME=me@example.com \\
    SMTP_PASSWORD=app-password SMTP_TO=you@example.org python examples/send_basic.py
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from _target import Target, smtp_target

import smtpsubmit


def make_message(target: Target, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = target.sender
    msg["To"] = target.recipient
    msg["Subject"] = subject
    msg.set_content("Sent with smtpsubmit.\n")
    return msg


async def send_examples(target: Target) -> list[smtpsubmit.SendResult]:
    results = []
    # One message, one connection: connect, TLS, AUTH, send, QUIT.
    results.append(
        await smtpsubmit.send(
            make_message(target, "Hello from send()"),
            host=target.host,
            port=target.port,
            tls=target.tls,
            ssl_context=target.ssl_context,
            username=target.username,
            password=target.password,
        )
    )
    # A session: several messages over one authenticated connection.
    async with target.client() as client:
        results.append(await client.send_message(make_message(target, "First of two")))
        results.append(
            await client.sendmail(
                target.sender,
                [target.recipient],
                b"Subject: Second of two (raw bytes)\r\n\r\nSent with sendmail().\r\n",
            )
        )
    return results


async def run() -> list[smtpsubmit.SendResult]:
    async with smtp_target() as target:
        try:
            results = await send_examples(target)
        except smtpsubmit.RecipientsRefusedError as exc:
            for address, reply in exc.refused.items():
                print(f"refused {address}: {reply}")
            raise
        except smtpsubmit.OutcomeUnknownError:
            print("the connection dropped before the final reply: the mail may have been sent")
            raise
        for result in results:
            accepted = ", ".join(result.accepted)
            print(f"accepted {accepted}: {result.reply} (queue id {result.queue_id})")
        if target.fake is not None:
            captured = await target.fake.wait_for_messages(len(results))
            print(f"the fake server captured {len(captured)} messages over TLS")
        return results


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
