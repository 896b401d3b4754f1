"""A FastAPI app that sends mail through an ``SMTPPool`` opened for the app's lifetime.

The lifespan opens the pool (and, without ``SMTP_HOST``, the embedded fake server) and
closes it at shutdown; each request borrows a warm, authenticated connection. Serve it
with ``cd examples && uvicorn fastapi_pool:app`` (uvicorn is not needed for ``main()``,
which drives the app in-process with FastAPI's TestClient).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Annotated

from _target import Target, smtp_target
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

import smtpsubmit


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with smtp_target() as target, target.pool(max_connections=4) as pool:
        app.state.target = target
        app.state.pool = pool
        yield


app = FastAPI(lifespan=lifespan)


def get_pool(request: Request) -> smtpsubmit.SMTPPool:
    pool: smtpsubmit.SMTPPool = request.app.state.pool
    return pool


def get_target(request: Request) -> Target:
    target: Target = request.app.state.target
    return target


class Mail(BaseModel):
    to: str
    subject: str
    body: str


class Sent(BaseModel):
    accepted: list[str]
    refused: list[str]
    queue_id: str | None


@app.post("/mail")
async def send_mail(
    mail: Mail,
    pool: Annotated[smtpsubmit.SMTPPool, Depends(get_pool)],
    target: Annotated[Target, Depends(get_target)],
) -> Sent:
    try:
        msg = EmailMessage()
        msg["From"] = target.sender
        msg["To"] = mail.to  # the email package refuses CR/LF in headers (ValueError)
        msg["Subject"] = mail.subject
        msg.set_content(mail.body)
        result = await pool.send_message(msg)
    except ValueError as exc:  # incl. smtpsubmit.MessageError: bad address, before any I/O
        raise HTTPException(422, str(exc)) from exc
    except smtpsubmit.RecipientsRefusedError as exc:
        raise HTTPException(422, f"refused: {', '.join(exc.refused)}") from exc
    except smtpsubmit.OutcomeUnknownError as exc:  # may have been sent: do not retry blindly
        raise HTTPException(502, "mail outcome unknown") from exc
    except smtpsubmit.SMTPError as exc:  # 4xx, network, TLS...: try again later
        raise HTTPException(503, "mail server unavailable") from exc
    return Sent(
        accepted=list(result.accepted), refused=list(result.refused), queue_id=result.queue_id
    )


def main() -> None:
    with TestClient(app) as client:
        for n in range(3):
            response = client.post(
                "/mail", json={"to": "you@example.org", "subject": f"Hi #{n}", "body": "Hello!"}
            )
            print(response.status_code, response.json())
        bad = client.post("/mail", json={"to": "not an address", "subject": "x", "body": "x"})
        print(bad.status_code, bad.json())
        print("pool:", app.state.pool.stats)


if __name__ == "__main__":
    main()
