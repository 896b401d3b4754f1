"""The public surface: exactly the intended names, documented, and never leaking secrets."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import pytest

import smtpsubmit.auth
from smtpsubmit.auth import (
    ChannelInfo,
    CramMD5,
    Login,
    OAuth2Auth,
    OAuthBearer,
    PasswordAuth,
    Plain,
    SASLError,
    ScramSHA1,
    ScramSHA256,
    ScramSHA256Plus,
    XOAuth2,
    select_mechanism,
)

SECRET = "hunter2-Sekr1t"


def test_exported_names_are_exactly_the_intended_ones() -> None:
    assert sorted(smtpsubmit.auth.__all__) == sorted(
        [
            "Authenticator", "ChannelInfo", "ClientFirstMechanism", "CramMD5", "Login",
            "Mechanism", "NoCompatibleMechanism", "OAuth2Auth", "OAuthBearer", "PasswordAuth",
            "Plain", "SASLError", "ScramSHA1", "ScramSHA1Plus", "ScramSHA256", "ScramSHA256Plus",
            "ScramSHA512", "ScramSHA512Plus",
            "TokenProvider", "XOAuth2", "saslprep", "select_mechanism", "tls_server_end_point",
        ]
    )  # fmt: skip


@pytest.mark.parametrize("name", [n for n in smtpsubmit.auth.__all__ if n != "TokenProvider"])
def test_every_public_name_has_a_docstring_citing_an_rfc(name: str) -> None:
    doc = getattr(smtpsubmit.auth, name).__doc__ or ""
    assert re.search(r"RFC \d{4}", doc), f"{name} docstring cites no RFC"


def test_password_auth_repr_masks_password() -> None:
    assert repr(PasswordAuth("u", SECRET)) == "PasswordAuth(username='u', password='********')"
    pinned = PasswordAuth("u", SECRET, authzid="boss", mechanisms=("PLAIN",))
    assert repr(pinned) == (
        "PasswordAuth(username='u', password='********', authzid='boss', mechanisms=('PLAIN',))"
    )


def test_oauth_repr_masks_token_and_provider_arguments() -> None:
    assert repr(OAuth2Auth("u", SECRET)) == "OAuth2Auth(username='u', token_provider='********')"

    async def get_token(renew: bool, *, secret: str = SECRET) -> str:
        return secret

    shown = repr(OAuth2Auth("u", get_token))
    assert SECRET not in shown
    assert "get_token" in shown


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Plain("u", SECRET),
        lambda: Login("u", SECRET),
        lambda: CramMD5("u", SECRET),
        lambda: ScramSHA256("u", SECRET),
        lambda: ScramSHA256Plus("u", SECRET, channel_binding=b"x" * 32),
        lambda: XOAuth2("u", SECRET),
        lambda: OAuthBearer("u", SECRET),
    ],
)
def test_mechanism_reprs_and_state_hide_secrets(factory: Callable[[], object]) -> None:
    mech = factory()
    assert SECRET not in repr(mech)
    assert SECRET not in str(mech)


def _raises_without_secret(action: Callable[[], object]) -> None:
    with pytest.raises(SASLError) as info:
        action()
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


@pytest.mark.parametrize(
    "action",
    [
        lambda: Plain("u", SECRET + "\0"),
        lambda: Login("u", SECRET + "\n"),
        lambda: ScramSHA256("u", SECRET + "\u0007"),
        lambda: ScramSHA256("u", "\u0627" + SECRET),
        lambda: XOAuth2("u", SECRET + " x"),
        lambda: OAuthBearer("u", SECRET + "\x01"),
        lambda: OAuth2Auth("u", SECRET + " x"),
    ],
)
def test_credential_errors_never_echo_the_secret(action: Callable[[], object]) -> None:
    _raises_without_secret(action)


def test_scram_failures_never_echo_the_secret() -> None:
    mech = ScramSHA1("user", SECRET, _nonce="fyko+d2lbbFgONRv9qkxdawL")
    mech.initial_response()
    mech.respond(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
    _raises_without_secret(lambda: mech.respond(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="))
    _raises_without_secret(mech.success)


@pytest.mark.anyio
async def test_start_errors_never_echo_the_secret() -> None:
    with pytest.raises(SASLError) as info:
        await PasswordAuth("u", SECRET).start("SCRAM-SHA-256-PLUS", ChannelInfo(encrypted=True))
    assert SECRET not in str(info.value)
    with pytest.raises(SASLError) as info:
        select_mechanism(["X"], PasswordAuth("u", SECRET))
    assert SECRET not in str(info.value)


def test_channel_info_is_a_frozen_value() -> None:
    info = ChannelInfo(encrypted=True, tls_server_end_point=hashlib.sha256(b"c").digest())
    assert info == ChannelInfo(encrypted=True, tls_server_end_point=hashlib.sha256(b"c").digest())
    with pytest.raises(AttributeError):
        info.encrypted = False  # type: ignore[misc]
