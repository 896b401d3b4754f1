"""``send --proxy``: through a real tinyproxy; the proxy's password never on argv."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from proxy_servers import OUTGOING, ProxyServer, tinyproxy

from smtpsubmit.cli import send_main
from smtpsubmit.testing import ThreadedSMTPServer

PROXY_USER, PROXY_PASSWORD = "alice", "Px-Secret-3"


@pytest.fixture
def proxy(smtps_server: ThreadedSMTPServer) -> Iterator[ProxyServer]:
    with tinyproxy(
        connect_ports=[smtps_server.port], credentials=(PROXY_USER, PROXY_PASSWORD)
    ) as server:
        yield server


def send(server: ThreadedSMTPServer, proxy_url: str) -> int:
    argv = ["--server", "localhost", "--port", str(server.port), "--tls", "implicit"]
    argv += ["--cafile", server.ca_pem_path, "--proxy", proxy_url]
    argv += ["--from", "me@example.com", "--to", "you@example.org"]
    return send_main(argv, stdin=io.StringIO())


def test_send_goes_through_the_proxy_with_the_password_from_the_environment(
    smtps_server: ThreadedSMTPServer, proxy: ProxyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTPSUBMIT_PROXY_PASSWORD", PROXY_PASSWORD)
    assert send(smtps_server, proxy.url(user=PROXY_USER)) == 0
    [captured] = smtps_server.messages
    assert captured.peer[0] == OUTGOING


def test_a_refused_proxy_password_fails_without_showing_it(
    smtps_server: ThreadedSMTPServer,
    proxy: ProxyServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMTPSUBMIT_PROXY_PASSWORD", "not-the-one")
    assert send(smtps_server, proxy.url(user=PROXY_USER)) == 3
    err = capsys.readouterr().err
    assert "ProxyAuthenticationError" in err
    assert "not-the-one" not in err
    assert smtps_server.messages == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:3128", "must not contain"),
        (f"http://{PROXY_USER}@127.0.0.1:3128", "set $SMTPSUBMIT_PROXY_PASSWORD"),
        ("socks5://127.0.0.1", "--proxy needs the proxy's port"),
    ],
)
def test_proxy_usage_errors_exit_2_before_any_io(
    url: str,
    words: str,
    smtps_server: ThreadedSMTPServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SMTPSUBMIT_PROXY_PASSWORD", raising=False)
    assert send(smtps_server, url) == 2
    err = capsys.readouterr().err
    assert words in err
    assert PROXY_PASSWORD not in err
    assert smtps_server.transcripts == []
