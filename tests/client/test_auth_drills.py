"""SCRAM channel binding and hostile SASL servers, end to end: `SMTPClient` against the fake
server over implicit TLS and STARTTLS, on asyncio and trio (see conftest.py).

What is on the wire is read from the server's transcript, where AUTH payloads show as
``<redacted>`` and a cancellation as ``*`` (RFC 4954 4).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

import smtpsubmit
from smtpsubmit.auth import (
    Authenticator,
    ChannelInfo,
    Mechanism,
    ScramSHA256,
    ScramSHA256Plus,
)
from smtpsubmit.testing import FakeSMTPServer, Fault, Mode, TranscriptEntry

pytestmark = pytest.mark.anyio

PASSWORD = "s3cr3t-pässwörd"
USERS = {"alice": PASSWORD}
CHANNELS = [("implicit", Mode.IMPLICIT_TLS), ("starttls", Mode.STARTTLS)]


@pytest.fixture(params=CHANNELS, ids=[tls for tls, _ in CHANNELS])
def channel(request: pytest.FixtureRequest) -> tuple[str, Mode]:
    """Each test runs over implicit TLS (465-like) and STARTTLS (587-like)."""
    tls, mode = request.param
    return str(tls), Mode(mode)


def server_for(channel: tuple[str, Mode], *faults: Fault, **options: object) -> FakeSMTPServer:
    return FakeSMTPServer(mode=channel[1], users=USERS, faults=faults, **options)


def client_for(
    server: FakeSMTPServer, channel: tuple[str, Mode], auth: smtpsubmit.Authenticator
) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls=channel[0],
        ssl_context=server.client_ssl_context(),
        auth=auth,
    )


def after_auth(transcript: list[TranscriptEntry]) -> list[TranscriptEntry]:
    """The transcript from the (last) AUTH command on, events left out."""
    start = max(i for i, e in enumerate(transcript) if e.line.startswith("AUTH "))
    return [e for e in transcript[start:] if e.direction != "event"]


def assert_no_mail(server: FakeSMTPServer) -> None:
    lines = [e.line for t in server.transcripts for e in t if e.direction == "client"]
    assert not [line for line in lines if line.upper().startswith(("MAIL", "RCPT", "DATA"))]
    assert server.messages == []
    assert server.errors == []


def assert_no_secret(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(exc.args)):
        assert PASSWORD not in text
        assert base64.b64encode(PASSWORD.encode()).decode() not in text


class _Custom(Authenticator):
    """Runs one mechanism built by ``build`` from the channel (for hand-made clients)."""

    def __init__(self, name: str, build: Callable[[ChannelInfo], Mechanism]) -> None:
        self._name = name
        self._build = build

    def mechanisms(self) -> tuple[str, ...]:
        return (self._name,)

    async def start(
        self, mechanism: str, channel: ChannelInfo, *, renew: bool = False
    ) -> Mechanism:
        return self._build(channel)

    def __repr__(self) -> str:
        return f"_Custom({self._name!r})"


# -- channel binding works ---------------------------------------------------------------


async def test_scram_sha_256_plus_is_chosen_automatically(
    channel: tuple[str, Mode],
) -> None:
    auth = smtpsubmit.PasswordAuth("alice", PASSWORD)
    async with server_for(channel, require_auth=True) as server:
        async with client_for(server, channel, auth) as client:
            assert client.authenticated_mechanism == "SCRAM-SHA-256-PLUS"
            await client.sendmail("alice@example.com", ["x@example.com"], b"hi")
        await server.wait_for_messages(1)
    assert server.messages[0].auth_identity == "alice"
    assert server.messages[0].tls
    assert server.errors == []
    auth_lines = after_auth(list(server.messages[0].transcript))
    assert auth_lines[:5] == [
        ("client", "AUTH SCRAM-SHA-256-PLUS <redacted>"),
        ("server", auth_lines[1].line),  # 334 server-first
        ("client", "<redacted>"),
        ("server", auth_lines[3].line),  # 334 server-final (v=)
        ("client", "<redacted>"),  # the empty response
    ]
    assert auth_lines[5] == ("server", "235 2.7.0 Authentication successful")


async def test_scram_sha_1_plus_when_pinned(channel: tuple[str, Mode]) -> None:
    auth = smtpsubmit.PasswordAuth("alice", PASSWORD, mechanisms=("SCRAM-SHA-1-PLUS",))
    async with server_for(channel, require_auth=True) as server:
        async with client_for(server, channel, auth) as client:
            assert client.authenticated_mechanism == "SCRAM-SHA-1-PLUS"
            await client.sendmail("alice@example.com", ["x@example.com"], b"hi")
        [message] = await server.wait_for_messages(1)
    assert message.auth_identity == "alice"


async def test_without_plus_offered_the_client_falls_back_to_plain_scram(
    channel: tuple[str, Mode],
) -> None:
    auth = smtpsubmit.PasswordAuth("alice", PASSWORD)
    async with server_for(channel, auth_mechanisms=("PLAIN", "SCRAM-SHA-256")) as server:
        async with client_for(server, channel, auth) as client:
            assert client.authenticated_mechanism == "SCRAM-SHA-256"


async def test_binding_data_of_another_certificate_is_refused(
    channel: tuple[str, Mode],
) -> None:
    # A client behind a TLS-intercepting proxy sees the proxy's certificate: simulated by
    # binding to other data. The server, checking against its own certificate, refuses.
    auth = _Custom(
        "SCRAM-SHA-256-PLUS",
        lambda c: ScramSHA256Plus("alice", PASSWORD, channel_binding=b"\x00" * 32),
    )
    async with server_for(channel) as server:
        with pytest.raises(smtpsubmit.AuthenticationError) as info:
            await client_for(server, channel, auth).connect()
    assert (info.value.code, str(info.value.enhanced)) == (535, "5.7.8")
    assert info.value.text == "Channel binding mismatch"
    assert_no_secret(info.value)
    assert_no_mail(server)


async def test_y_flag_while_plus_is_offered_is_refused_as_a_downgrade(
    channel: tuple[str, Mode],
) -> None:
    # RFC 5802 6: a client that could bind says "y" when it believes the server cannot; this
    # server offered -PLUS, so someone stripped it from the EHLO reply on the way.
    auth = _Custom(
        "SCRAM-SHA-256",
        lambda c: ScramSHA256("alice", PASSWORD, client_supports_binding=True),
    )
    async with server_for(channel) as server:
        with pytest.raises(smtpsubmit.AuthenticationError) as info:
            await client_for(server, channel, auth).connect()
    assert (info.value.code, info.value.text) == (535, "Channel binding downgrade detected")
    assert_no_mail(server)


# -- hostile servers ---------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256"])
async def test_bad_server_signature_fails_and_sends_no_mail(
    channel: tuple[str, Mode], mechanism: str
) -> None:
    auth = smtpsubmit.PasswordAuth("alice", PASSWORD, mechanisms=(mechanism,))
    async with server_for(channel, Fault.scram_bad_server_signature()) as server:
        client = client_for(server, channel, auth)
        with pytest.raises(smtpsubmit.AuthenticationError) as info:
            await client.connect()
        assert not client.is_connected
    # The client checks v= before answering it: it cancels the exchange (RFC 4954 4) and the
    # server answers 501, which the error carries.
    assert "server signature does not verify" in str(info.value)
    assert (info.value.code, str(info.value.enhanced)) == (501, "5.7.0")
    assert_no_secret(info.value)
    [transcript] = server.transcripts
    lines = after_auth(transcript)
    assert lines[0] == ("client", f"AUTH {mechanism} <redacted>")
    assert [e.direction for e in lines[1:4]] == ["server", "client", "server"]
    assert lines[4:6] == [
        ("client", "*"),
        ("server", "501 5.7.0 Authentication cancelled"),
    ]
    assert_no_mail(server)


async def test_refused_scram_server_first_makes_the_client_cancel(
    channel: tuple[str, Mode],
) -> None:
    garbage = base64.b64encode(b"this is not a SCRAM server-first message")
    auth = smtpsubmit.PasswordAuth("alice", PASSWORD, mechanisms=("SCRAM-SHA-256-PLUS",))
    async with server_for(channel, Fault.auth_challenge(garbage)) as server:
        with pytest.raises(smtpsubmit.AuthenticationError) as info:
            await client_for(server, channel, auth).connect()
    assert "aborted" in str(info.value)
    assert info.value.reply is not None
    assert (info.value.code, str(info.value.enhanced)) == (501, "5.7.0")
    assert info.value.text == "Authentication cancelled"
    assert_no_secret(info.value)
    lines = after_auth(server.transcripts[0])
    assert lines[:4] == [
        ("client", "AUTH SCRAM-SHA-256-PLUS <redacted>"),
        ("server", "334 " + garbage.decode()),
        ("client", "*"),
        ("server", "501 5.7.0 Authentication cancelled"),
    ]
    assert_no_mail(server)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "LOGIN"])
async def test_invalid_base64_challenge_is_a_protocol_violation(
    channel: tuple[str, Mode], mechanism: str
) -> None:
    auth = smtpsubmit.PasswordAuth("alice", PASSWORD, mechanisms=(mechanism,))
    async with server_for(channel, Fault.auth_challenge(b"!!not*base64!!")) as server:
        client = client_for(server, channel, auth)
        with pytest.raises(smtpsubmit.ProtocolViolationError) as info:
            await client.connect()
        assert not client.is_connected
    assert_no_secret(info.value)
    # The client neither answers nor cancels: it drops the connection (the server can no
    # longer be trusted to speak SMTP), so the challenge is the last line it was sent.
    lines = after_auth(server.transcripts[0])
    assert lines[:2] == [
        ("client", f"AUTH {mechanism}" + (" <redacted>" if "SCRAM" in mechanism else "")),
        ("server", "334 !!not*base64!!"),
    ]
    assert [e for e in lines[2:] if e.direction == "client"] == []
    assert_no_mail(server)


async def test_scram_says_y_when_it_could_bind_but_the_server_offers_no_plus() -> None:
    # RFC 5802 6: "y" lets a server that does offer -PLUS detect a stripped offer. This
    # server offers none, so "y" must be accepted; pinning plain SCRAM against a -PLUS
    # server must send "n" instead (the fake server fails "y" there as a downgrade).
    for mechanisms in (("SCRAM-SHA-256",), ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")):
        async with FakeSMTPServer(
            mode=Mode.IMPLICIT_TLS, users={"u": "pw"}, auth_mechanisms=mechanisms
        ) as server:
            auth = smtpsubmit.PasswordAuth("u", "pw", mechanisms=("SCRAM-SHA-256",))
            async with smtpsubmit.SMTPClient(
                server.host,
                server.port,
                tls="implicit",
                ssl_context=server.client_ssl_context(),
                auth=auth,
            ) as client:
                assert client.authenticated_mechanism == "SCRAM-SHA-256"
