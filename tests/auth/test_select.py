"""select_mechanism (RFC 4954 3) and the plug-in interface for user-defined mechanisms."""

from __future__ import annotations

import hashlib

import pytest

import smtpsubmit.auth
from smtpsubmit.auth import (
    Authenticator,
    ChannelInfo,
    Mechanism,
    NoCompatibleMechanism,
    OAuth2Auth,
    PasswordAuth,
    SASLError,
    select_mechanism,
)

from .conftest import exchange

BOUND = ChannelInfo(encrypted=True, tls_server_end_point=hashlib.sha256(b"cert").digest())
UNBOUND = ChannelInfo(encrypted=True)
EVERYTHING = [
    "LOGIN",
    "PLAIN",
    "CRAM-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "XOAUTH2",
    "OAUTHBEARER",
]


@pytest.mark.parametrize(
    ("offered", "channel", "expected"),
    [
        (EVERYTHING, BOUND, "SCRAM-SHA-256-PLUS"),
        (EVERYTHING, UNBOUND, "SCRAM-SHA-256"),
        (EVERYTHING, None, "SCRAM-SHA-256"),
        (["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"], BOUND, "SCRAM-SHA-1-PLUS"),
        (["PLAIN", "SCRAM-SHA-1"], BOUND, "SCRAM-SHA-1"),
        (["LOGIN", "PLAIN"], None, "PLAIN"),
        (["login", "cram-md5"], None, "LOGIN"),
    ],
)
def test_password_selection_follows_our_preference(
    offered: list[str], channel: ChannelInfo | None, expected: str
) -> None:
    assert select_mechanism(offered, PasswordAuth("u", "p"), channel=channel) == expected


def test_cram_md5_never_selected_automatically() -> None:
    with pytest.raises(NoCompatibleMechanism) as info:
        select_mechanism(["CRAM-MD5"], PasswordAuth("u", "p"))
    assert "pin it with mechanisms=('CRAM-MD5',)" in str(info.value)


def test_cram_md5_selected_when_pinned() -> None:
    auth = PasswordAuth("u", "p", mechanisms=("CRAM-MD5",))
    assert select_mechanism(EVERYTHING, auth) == "CRAM-MD5"


def test_pinned_order_wins_over_strength() -> None:
    auth = PasswordAuth("u", "p", mechanisms=("PLAIN", "SCRAM-SHA-256"))
    assert select_mechanism(EVERYTHING, auth) == "PLAIN"


def test_no_compatible_mechanism_names_both_sides() -> None:
    with pytest.raises(NoCompatibleMechanism) as info:
        select_mechanism(["GSSAPI", "NTLM"], OAuth2Auth("u", "t"))
    assert str(info.value) == (
        "no SASL mechanism in common: the server offers GSSAPI, NTLM; "
        "we support OAUTHBEARER, XOAUTH2"
    )
    assert info.value.offered == ("GSSAPI", "NTLM")
    assert info.value.supported == ("OAUTHBEARER", "XOAUTH2")
    assert isinstance(info.value, SASLError)


def test_no_compatible_mechanism_when_server_offers_nothing() -> None:
    with pytest.raises(NoCompatibleMechanism, match="the server offers none"):
        select_mechanism([], PasswordAuth("u", "p"))


def test_only_plus_in_common_without_binding_explains_why() -> None:
    with pytest.raises(NoCompatibleMechanism, match="need TLS channel-binding data"):
        select_mechanism(["SCRAM-SHA-256-PLUS"], PasswordAuth("u", "p"), channel=UNBOUND)


def test_server_text_in_message_is_escaped() -> None:
    with pytest.raises(NoCompatibleMechanism) as info:
        select_mechanism(["X\r\nFAKE"], PasswordAuth("u", "p"))
    assert "\r" not in str(info.value)


# A user-defined mechanism, written only against the public interface.


class Token(Mechanism):
    """Server-first toy mechanism: the server sends a nonce, we answer token + nonce."""

    name = "X-TOKEN"

    def __init__(self, token: str) -> None:
        self._token = token
        self.done = False

    def initial_response(self) -> None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        if self.done:
            raise SASLError("X-TOKEN: one challenge only")
        self.done = True
        return self._token.encode() + b":" + challenge

    def success(self) -> None:
        if not self.done:
            raise SASLError("X-TOKEN: success before the challenge")


class TokenAuth(Authenticator):
    def __init__(self, token: str) -> None:
        self._token = token

    def mechanisms(self) -> tuple[str, ...]:
        return ("X-TOKEN",)

    async def start(self, mechanism: str, channel: ChannelInfo, *, renew: bool = False) -> Token:
        return Token(self._token)


@pytest.mark.anyio
async def test_custom_mechanism_plugs_in_without_library_changes() -> None:
    auth = TokenAuth("t0k")
    name = select_mechanism(["PLAIN", "x-token"], auth, channel=UNBOUND)
    assert name == "X-TOKEN"
    mech = await auth.start(name, UNBOUND)
    assert exchange(mech, [b"nonce-1"]) == [None, b"t0k:nonce-1"]


@pytest.mark.anyio
async def test_package_docstring_example_runs() -> None:
    # Keep the documented plug-in example honest: extract it and run the exchange.
    doc = smtpsubmit.auth.__doc__ or ""
    code = doc.split("``X-APIKEY``::\n")[1].split("\nTo offer")[0]
    namespace: dict[str, object] = {"SMTPClient": lambda *args, **kwargs: None}
    exec(compile("\n".join(line[4:] for line in code.splitlines()), "<doc>", "exec"), namespace)
    auth = namespace["ApiKeyAuth"]("k3y")  # type: ignore[operator]
    assert repr(auth) == "ApiKeyAuth(key='********')"
    name = select_mechanism(["PLAIN", "X-APIKEY"], auth)
    mech = await auth.start(name, UNBOUND)
    assert exchange(mech, []) == [b"k3y"]
    fresh = await auth.start(name, UNBOUND)
    assert fresh.respond(b"") == b"k3y"
