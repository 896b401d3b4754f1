"""Wheel smoke test: the pytest plugin's ``smtps_server`` fixture in a user's test file.

``wheel_smoke.py`` copies this file into an empty temporary directory and runs pytest on it
with the installed wheel: the fixture must come from the plugin's ``pytest11`` entry point,
with no conftest.py and no pytest configuration. The project's own suite runs it too.
"""

from __future__ import annotations

from email.message import EmailMessage

from smtpsubmit.sync import send
from smtpsubmit.testing import ThreadedSMTPServer


def test_send_through_smtps_server_fixture(smtps_server: ThreadedSMTPServer) -> None:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "new@example.com"
    msg["Subject"] = "Welcome"
    msg.set_content("Hello!")

    result = send(
        msg,
        host=smtps_server.host,
        port=smtps_server.port,
        ssl_context=smtps_server.client_ssl_context(),
        tls="implicit",
        username="user@example.com",
        password="password",
    )

    [sent] = smtps_server.wait_for_messages(1)
    assert result.accepted == ("new@example.com",)
    assert sent.message["Subject"] == "Welcome"
    assert sent.tls
    assert sent.auth_identity == "user@example.com"
