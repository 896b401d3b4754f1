"""Every SASL mechanism end to end against the fake server, and OAuth token refresh."""

from __future__ import annotations

import pytest

import smtpsubmit
from smtpsubmit.testing import FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio

USERS = {"alice": "pässwörd ünïcode", "bob": "plain-secret"}
TOKENS = {"alice": "ya29.good-token"}


def client_for(server: FakeSMTPServer, auth: smtpsubmit.Authenticator) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
        auth=auth,
    )


@pytest.mark.parametrize(
    "mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]
)
async def test_password_mechanism_end_to_end(mechanism: str) -> None:
    auth = smtpsubmit.PasswordAuth("alice", USERS["alice"], mechanisms=(mechanism,))
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, users=USERS, require_auth=True) as server:
        async with client_for(server, auth) as client:
            assert client.authenticated_mechanism == mechanism
            await client.sendmail("alice@example.com", ["x@example.com"], b"hi")
        await server.wait_for_messages(1)
        assert server.messages[0].auth_identity == "alice"


async def test_automatic_choice_is_the_strongest_offered_and_never_cram_md5() -> None:
    auth = smtpsubmit.PasswordAuth("alice", USERS["alice"])
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, users=USERS, auth_mechanisms=("CRAM-MD5", "PLAIN", "SCRAM-SHA-1")
    ) as server:
        async with client_for(server, auth) as client:
            assert client.authenticated_mechanism == "SCRAM-SHA-1"
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, users=USERS, auth_mechanisms=("CRAM-MD5",)
    ) as server:
        with pytest.raises(smtpsubmit.NoCompatibleMechanismError, match="CRAM-MD5"):
            await client_for(server, auth).connect()


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_oauth_mechanism_with_static_token(mechanism: str) -> None:
    auth = smtpsubmit.OAuth2Auth("alice", TOKENS["alice"], mechanisms=(mechanism,))
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, oauth_tokens=TOKENS) as server:
        async with client_for(server, auth) as client:
            assert client.authenticated_mechanism == mechanism
            await client.sendmail("alice@example.com", ["x@example.com"], b"hi")
        await server.wait_for_messages(1)
        assert server.messages[0].auth_identity == "alice"


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_expired_token_is_renewed_once_and_the_exchange_retried(mechanism: str) -> None:
    calls: list[bool] = []

    async def get_token(renew: bool) -> str:
        calls.append(renew)
        return TOKENS["alice"] if renew else "expired-token"

    auth = smtpsubmit.OAuth2Auth("alice", get_token, mechanisms=(mechanism,))
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, oauth_tokens=TOKENS) as server:
        async with client_for(server, auth) as client:
            assert client.authenticated_mechanism == mechanism
    assert calls == [False, True]


async def test_token_rejected_twice_fails_with_the_server_reply() -> None:
    async def get_token(renew: bool) -> str:
        return "always-bad"

    auth = smtpsubmit.OAuth2Auth("alice", get_token, mechanisms=("XOAUTH2",))
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, oauth_tokens=TOKENS) as server:
        with pytest.raises(smtpsubmit.AuthenticationError) as info:
            await client_for(server, auth).connect()
    assert info.value.code == 535
    assert "always-bad" not in str(info.value)


@pytest.mark.parametrize(
    ("code", "enhanced", "transient"),
    [(535, "5.7.8", False), (534, "5.7.9", False), (538, "5.7.11", False), (454, "4.7.0", True)],
)
async def test_auth_failures_are_told_apart(code: int, enhanced: str, transient: bool) -> None:
    fault = Fault.reply("AUTH", code=code, enhanced=enhanced, text="Nope")
    auth = smtpsubmit.PasswordAuth("bob", USERS["bob"], mechanisms=("PLAIN",))
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, users=USERS, faults=(fault,)) as server:
        with pytest.raises(smtpsubmit.AuthenticationError) as info:
            await client_for(server, auth).connect()
    assert (info.value.code, str(info.value.enhanced)) == (code, enhanced)
    assert info.value.transient is transient
    assert USERS["bob"] not in repr(info.value)


async def test_no_compatible_mechanism_names_both_sides() -> None:
    auth = smtpsubmit.PasswordAuth("alice", USERS["alice"], mechanisms=("SCRAM-SHA-256",))
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, users=USERS, auth_mechanisms=("PLAIN", "LOGIN")
    ) as server:
        with pytest.raises(smtpsubmit.NoCompatibleMechanismError) as info:
            await client_for(server, auth).connect()
    message = str(info.value)
    assert "PLAIN" in message
    assert "SCRAM-SHA-256" in message
