"""The Django backend's ``SMTPSUBMIT_PROXY`` setting, through a real tinyproxy."""

from __future__ import annotations

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        EMAIL_BACKEND="smtpsubmit.contrib.django.EmailBackend",
        DEFAULT_FROM_EMAIL="app@example.com",
        USE_TZ=True,
    )
    django.setup()

from django.core import mail  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from proxy_servers import OUTGOING, tinyproxy  # noqa: E402

import smtpsubmit  # noqa: E402
from smtpsubmit.testing import ThreadedSMTPServer  # noqa: E402


def test_smtpsubmit_proxy_sends_through_the_proxy(smtps_server: ThreadedSMTPServer) -> None:
    with tinyproxy(connect_ports=[smtps_server.port]) as proxy:
        with override_settings(
            EMAIL_HOST="localhost",  # resolved by the proxy
            EMAIL_PORT=smtps_server.port,
            EMAIL_USE_SSL=True,
            SMTPSUBMIT_CA_FILE=smtps_server.ca_pem_path,
            SMTPSUBMIT_PROXY=proxy.url(),
        ):
            assert mail.send_mail("Hi", "Body", "app@example.com", ["bob@example.com"]) == 1
    [captured] = smtps_server.wait_for_messages(1)
    assert captured.peer[0] == OUTGOING


def test_a_bad_smtpsubmit_proxy_is_named_as_the_setting(smtps_server: ThreadedSMTPServer) -> None:
    with override_settings(
        EMAIL_HOST=smtps_server.host,
        EMAIL_PORT=smtps_server.port,
        EMAIL_USE_SSL=True,
        SMTPSUBMIT_CA_FILE=smtps_server.ca_pem_path,
        SMTPSUBMIT_PROXY="socks5://user:hunter2@proxy.example",
    ):
        with pytest.raises(smtpsubmit.ArgumentError, match="SMTPSUBMIT_PROXY needs") as raised:
            mail.send_mail("Hi", "Body", "app@example.com", ["bob@example.com"])
    assert "hunter2" not in str(raised.value)
    assert smtps_server.transcripts == []
