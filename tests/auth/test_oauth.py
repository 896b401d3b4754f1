"""XOAUTH2, OAUTHBEARER (RFC 7628) and the OAuth2Auth token provider."""

from __future__ import annotations

import json

import pytest

from smtpsubmit.auth import ChannelInfo, OAuth2Auth, OAuthBearer, SASLError, XOAuth2

CHANNEL = ChannelInfo(encrypted=True, server_hostname="smtp.example.com")
ERROR = {"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"}


def test_xoauth2_initial_response_format() -> None:
    mech = XOAuth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg")
    assert mech.initial_response() == (
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg"
        b"\x01\x01"
    )
    mech.success()
    assert mech.error is None


def test_xoauth2_error_challenge_answered_with_empty_response() -> None:
    mech = XOAuth2("u@example.com", "token")
    mech.initial_response()
    assert mech.respond(json.dumps(ERROR).encode()) == b""
    assert mech.error == ERROR


def test_oauthbearer_error_challenge_answered_with_kvsep() -> None:
    mech = OAuthBearer("u@example.com", "token")
    mech.initial_response()
    assert mech.respond(b'{"status":"invalid_token"}') == b"\x01"
    assert mech.error == {"status": "invalid_token"}


@pytest.mark.parametrize("cls", [XOAuth2, OAuthBearer])
def test_unparseable_error_still_answered_so_server_can_finish(
    cls: type[XOAuth2] | type[OAuthBearer],
) -> None:
    mech = cls("u@example.com", "token")
    mech.initial_response()
    assert mech.respond(b"not json \xff") in (b"", b"\x01")
    assert mech.error is None
    with pytest.raises(SASLError, match="after the error response"):
        mech.respond(b"{}")


@pytest.mark.parametrize("cls", [XOAuth2, OAuthBearer])
def test_without_initial_response_empty_challenge_gets_the_token(
    cls: type[XOAuth2] | type[OAuthBearer],
) -> None:
    mech = cls("u@example.com", "token")
    assert b"auth=Bearer token\x01\x01" in mech.respond(b"")
    assert mech.respond(b'["not", "an", "object"]') in (b"", b"\x01")
    assert mech.error is None


def test_oauthbearer_without_user_or_host() -> None:
    assert OAuthBearer("", "token").initial_response() == b"n,,\x01auth=Bearer token\x01\x01"


def test_oauthbearer_escapes_gs2_authzid() -> None:
    assert OAuthBearer("a,b=c", "t").initial_response().startswith(b"n,a=a=2Cb=3Dc,\x01")


@pytest.mark.parametrize("token", ["", "has space", "ctl\x01", "new\r\nline"])
@pytest.mark.parametrize("cls", [XOAuth2, OAuthBearer])
def test_malformed_tokens_rejected(cls: type[XOAuth2] | type[OAuthBearer], token: str) -> None:
    with pytest.raises(SASLError, match="bearer token"):
        cls("u", token)


@pytest.mark.parametrize("cls", [XOAuth2, OAuthBearer])
def test_control_characters_in_user_rejected(cls: type[XOAuth2] | type[OAuthBearer]) -> None:
    with pytest.raises(SASLError, match="user name"):
        cls("u\x01ser", "t")


def test_oauthbearer_rejects_bad_host_and_port() -> None:
    with pytest.raises(SASLError, match="host"):
        OAuthBearer("u", "t", host="a b")
    with pytest.raises(SASLError, match="port"):
        OAuthBearer("u", "t", port=0)


@pytest.mark.anyio
async def test_static_token_cannot_renew() -> None:
    auth = OAuth2Auth("u@example.com", "static-token")
    assert not auth.can_renew
    assert auth.mechanisms() == ("OAUTHBEARER", "XOAUTH2")
    mech = await auth.start("oauthbearer", CHANNEL)
    assert mech.initial_response() == (
        b"n,a=u@example.com,\x01host=smtp.example.com\x01auth=Bearer static-token\x01\x01"
    )


@pytest.mark.anyio
async def test_token_provider_called_with_renew_after_failure() -> None:
    calls: list[bool] = []

    async def get_token(renew: bool) -> str:
        calls.append(renew)
        return "fresh" if renew else "stale"

    auth = OAuth2Auth("u@example.com", get_token)
    assert auth.can_renew
    # First attempt: the server rejects the token with a JSON error, then 535.
    first = await auth.start("XOAUTH2", CHANNEL)
    assert b"Bearer stale" in first.initial_response()
    assert first.respond(json.dumps(ERROR).encode()) == b""
    assert first.error == ERROR
    # The client retries once with renew=True.
    second = await auth.start("XOAUTH2", CHANNEL, renew=True)
    assert b"Bearer fresh" in second.initial_response()
    second.success()
    assert calls == [False, True]


@pytest.mark.anyio
async def test_sync_token_provider_accepted() -> None:
    auth = OAuth2Auth("u", lambda renew: "sync-token")
    mech = await auth.start("XOAUTH2", CHANNEL)
    assert mech.initial_response() == b"user=u\x01auth=Bearer sync-token\x01\x01"


@pytest.mark.anyio
async def test_provider_returning_garbage_raises_sasl_error() -> None:
    async def get_token(renew: bool) -> str:
        return b"bytes-token"  # type: ignore[return-value]

    with pytest.raises(SASLError, match="returned bytes"):
        await OAuth2Auth("u", get_token).start("XOAUTH2", CHANNEL)


@pytest.mark.anyio
async def test_provider_exceptions_propagate_unchanged() -> None:
    async def get_token(renew: bool) -> str:
        raise ConnectionError("token endpoint down")

    with pytest.raises(ConnectionError):
        await OAuth2Auth("u", get_token).start("XOAUTH2", CHANNEL)


@pytest.mark.anyio
async def test_start_refuses_unpinned_mechanism() -> None:
    auth = OAuth2Auth("u", "t", mechanisms=["xoauth2"])
    assert auth.mechanisms() == ("XOAUTH2",)
    with pytest.raises(SASLError, match="does not run OAUTHBEARER"):
        await auth.start("OAUTHBEARER", CHANNEL)


@pytest.mark.parametrize("pinned", [(), ("PLAIN",)])
def test_pinning_unknown_mechanisms_is_a_configuration_error(pinned: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="OAuth2Auth runs"):
        OAuth2Auth("u", "t", mechanisms=pinned)


def test_static_malformed_token_fails_at_configuration() -> None:
    with pytest.raises(SASLError):
        OAuth2Auth("u", "two words")
