"""PasswordAuth: preference order, pinning, authzid, and the mechanisms it starts."""

from __future__ import annotations

import hashlib

import pytest

from smtpsubmit.auth import (
    ChannelInfo,
    CramMD5,
    Login,
    PasswordAuth,
    Plain,
    SASLError,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    ScramSHA512,
    ScramSHA512Plus,
)

PLAIN_TLS = ChannelInfo(encrypted=True)
BOUND_TLS = ChannelInfo(encrypted=True, tls_server_end_point=hashlib.sha256(b"cert").digest())


def test_default_preference_strongest_first_without_cram_md5() -> None:
    assert PasswordAuth("u", "p").mechanisms() == (
        "SCRAM-SHA-512-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-512",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
        "LOGIN",
    )


def test_authzid_drops_mechanisms_that_cannot_carry_it() -> None:
    assert "LOGIN" not in PasswordAuth("u", "p", authzid="boss").mechanisms()


def test_pinning_keeps_order_and_normalises_case() -> None:
    auth = PasswordAuth("u", "p", mechanisms=["plain", "Cram-MD5"])
    assert auth.mechanisms() == ("PLAIN", "CRAM-MD5")


@pytest.mark.parametrize("pinned", [(), ("NTLM",), ("PLAIN", "XOAUTH2")])
def test_pinning_unknown_mechanisms_is_a_configuration_error(pinned: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="PasswordAuth runs"):
        PasswordAuth("u", "p", mechanisms=pinned)


def test_pinning_login_with_authzid_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="LOGIN cannot carry an authzid"):
        PasswordAuth("u", "p", authzid="boss", mechanisms=("PLAIN", "LOGIN"))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("SCRAM-SHA-512-PLUS", ScramSHA512Plus),
        ("SCRAM-SHA-256-PLUS", ScramSHA256Plus),
        ("SCRAM-SHA-512", ScramSHA512),
        ("SCRAM-SHA-1-PLUS", ScramSHA1Plus),
        ("SCRAM-SHA-256", ScramSHA256),
        ("scram-sha-1", ScramSHA1),
        ("PLAIN", Plain),
        ("LOGIN", Login),
    ],
)
async def test_start_builds_each_default_mechanism(name: str, cls: type) -> None:
    mech = await PasswordAuth("u", "p").start(name, BOUND_TLS)
    assert type(mech) is cls
    assert mech.name == name.upper()


@pytest.mark.anyio
async def test_start_cram_md5_only_when_pinned() -> None:
    with pytest.raises(SASLError, match="does not run CRAM-MD5"):
        await PasswordAuth("u", "p").start("CRAM-MD5", PLAIN_TLS)
    mech = await PasswordAuth("u", "p", mechanisms=("CRAM-MD5",)).start("CRAM-MD5", PLAIN_TLS)
    assert isinstance(mech, CramMD5)


@pytest.mark.anyio
async def test_start_plus_without_binding_data_raises() -> None:
    with pytest.raises(SASLError, match="channel-binding"):
        await PasswordAuth("u", "p").start("SCRAM-SHA-256-PLUS", PLAIN_TLS)


@pytest.mark.anyio
async def test_start_passes_authzid_and_binding() -> None:
    auth = PasswordAuth("u", "p", authzid="boss")
    plain = await auth.start("PLAIN", PLAIN_TLS)
    assert plain.initial_response() == b"boss\0u\0p"
    scram = await auth.start("SCRAM-SHA-256-PLUS", BOUND_TLS)
    assert (scram.initial_response() or b"").startswith(b"p=tls-server-end-point,a=boss,n=u,r=")


@pytest.mark.anyio
async def test_renew_flag_is_accepted_and_harmless() -> None:
    auth = PasswordAuth("u", "p")
    assert not auth.can_renew
    assert isinstance(await auth.start("PLAIN", PLAIN_TLS, renew=True), Plain)


def test_equality_compares_all_settings() -> None:
    assert PasswordAuth("u", "p") == PasswordAuth("u", "p")
    assert PasswordAuth("u", "p") != PasswordAuth("u", "q")
    assert PasswordAuth("u", "p") != PasswordAuth("u", "p", mechanisms=("PLAIN",))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("offered", "binding", "flag"),
    [
        (frozenset({"SCRAM-SHA-256"}), b"x" * 32, b"y,,"),  # could bind, server cannot: "y"
        (frozenset({"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}), b"x" * 32, b"n,,"),  # pinned
        (frozenset({"SCRAM-SHA-256"}), None, b"n,,"),  # no binding data at all
    ],
)
async def test_scram_gs2_flag_tells_the_server_whether_binding_was_possible(
    offered: frozenset[str], binding: bytes | None, flag: bytes
) -> None:
    channel = ChannelInfo(encrypted=True, tls_server_end_point=binding, server_mechanisms=offered)
    auth = PasswordAuth("u", "p", mechanisms=("SCRAM-SHA-256",))
    mech = await auth.start("SCRAM-SHA-256", channel)
    first = mech.initial_response()
    assert first is not None
    assert first.startswith(flag)
