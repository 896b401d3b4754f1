"""A server that quotes what the client sent during AUTH cannot leak it.

The reply text is scrubbed of every form of the secret (the password, the base64 payload,
the password's own base64) before it reaches the DEBUG log, the transcript or the
``AuthenticationError``; the rest of the reply stays readable.
"""

from __future__ import annotations

import base64
import logging

import pytest
from scripted_server import Script, scripted_server

import smtpsubmit

pytestmark = pytest.mark.anyio

USER, PASSWORD = "alice@example.com", "hunter2-very-secret"
PLAIN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
FORMS = [PASSWORD, PLAIN, base64.b64encode(PASSWORD.encode()).decode()]


def extensions(*mechanisms: str) -> tuple[str, ...]:
    return ("PIPELINING", "ENHANCEDSTATUSCODES", f"AUTH {' '.join(mechanisms)}")


@pytest.mark.parametrize(
    ("mechanism", "replies"),
    [
        pytest.param("PLAIN", ["535 5.7.8 bad credentials {arg}"], id="plain-echoes-payload"),
        pytest.param(
            "PLAIN", [f"535 5.7.8 wrong password {PASSWORD}!"], id="plain-echoes-password"
        ),
        pytest.param(
            "PLAIN", [f"535 5.7.8 bad {PLAIN[:10]}...{PLAIN[10:]}"], id="plain-echoes-pieces"
        ),
        pytest.param(
            "LOGIN",
            ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "535 5.7.8 no: {arg}"],
            id="login-echoes-password-base64",
        ),
    ],
)
async def test_credentials_echoed_by_the_server_are_scrubbed(
    mechanism: str, replies: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(replies, extensions(mechanism))
    caplog.set_level(logging.DEBUG, logger="smtpsubmit")
    async with scripted_server(script) as port:
        client = smtpsubmit.SMTPClient(
            "127.0.0.1",
            port,
            tls="insecure-cleartext",
            allow_cleartext_auth=True,
            auth=smtpsubmit.PasswordAuth(USER, PASSWORD, mechanisms=[mechanism]),
            local_hostname="client.example",
        )
        with pytest.raises(smtpsubmit.AuthenticationError) as caught:
            await client.connect()
    error = caught.value
    assert error.code == 535
    shown = [str(error), error.text or "", repr(error), caplog.text]
    assert "535" in caplog.text  # the reply is still logged, only scrubbed
    assert "********" in str(error)
    for text in shown:
        for form in FORMS:
            assert form not in text
        assert PLAIN[10:] not in text  # the tail of a split payload too


async def test_a_challenge_that_quotes_the_client_nonce_still_reaches_the_mechanism() -> None:
    # SCRAM's server-first message repeats the client's nonce; scrubbing it there would
    # break the exchange. Only what is recorded is scrubbed, never what the mechanism reads.
    from smtpsubmit.testing import FakeSMTPServer, Mode

    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, users={USER: PASSWORD}) as server:
        async with smtpsubmit.SMTPClient(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            auth=smtpsubmit.PasswordAuth(USER, PASSWORD, mechanisms=["SCRAM-SHA-256"]),
        ) as client:
            assert client.authenticated_mechanism == "SCRAM-SHA-256"
