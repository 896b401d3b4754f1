"""The RFCs' own examples, byte for byte."""

from __future__ import annotations

import base64
import json

import pytest

from smtpsubmit.auth import (
    CramMD5,
    OAuthBearer,
    Plain,
    SASLError,
    ScramSHA1,
    ScramSHA256,
    saslprep,
)

from .conftest import exchange


def test_rfc4616_plain_without_authzid() -> None:
    mech = Plain("tim", "tanstaaftanstaaf")
    assert exchange(mech, []) == [b"\0tim\0tanstaaftanstaaf"]


def test_rfc4616_plain_with_authzid() -> None:
    mech = Plain("Kurt", "xipj3plmq", authzid="Ursel")
    assert exchange(mech, []) == [b"Ursel\0Kurt\0xipj3plmq"]


def test_rfc2195_cram_md5() -> None:
    mech = CramMD5("tim", "tanstaaftanstaaf")
    assert mech.initial_response() is None
    response = mech.respond(b"<1896.697170952@postoffice.reston.mci.net>")
    assert response == b"tim b913a602c7eda7a495b4e6e7334d3890"
    mech.success()


def test_rfc5802_section5_scram_sha1() -> None:
    mech = ScramSHA1("user", "pencil", _nonce="fyko+d2lbbFgONRv9qkxdawL")
    assert exchange(
        mech,
        [
            b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ],
    ) == [
        b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        b"",
    ]


def test_rfc7677_section3_scram_sha256() -> None:
    mech = ScramSHA256("user", "pencil", _nonce="rOprNGfwEbeRWgbNEkqO")
    nonce = b"rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    assert exchange(
        mech,
        [
            b"r=" + nonce + b",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ],
    ) == [
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        b"c=biws,r=" + nonce + b",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"",
    ]


RFC7628_TOKEN = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="


def test_rfc7628_4_1_successful_bearer_token_exchange() -> None:
    mech = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=143)
    (initial,) = exchange(mech, [])
    assert initial is not None
    assert base64.b64encode(initial) == (
        b"bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVy"
        b"IHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    )
    assert mech.error is None


def test_rfc7628_4_3_failed_exchange() -> None:
    mech = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=143)
    assert mech.initial_response() == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )
    error = {
        "status": "invalid_token",
        "scope": "example_scope",
        "openid-configuration": "https://example.com/.well-known/openid-configuration",
    }
    assert mech.respond(json.dumps(error).encode()) == b"\x01"
    assert mech.error == error


def test_rfc7628_4_4_smtp_failed_negotiation() -> None:
    mech = OAuthBearer("user@example.com", RFC7628_TOKEN, host="server.example.com", port=587)
    assert base64.b64encode(mech.initial_response()) == (
        b"bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVy"
        b"IHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    )
    challenge = base64.b64decode(
        "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6ImJlYXJlciBtYWMiLCJzY29wZSI6Imh0dHBzOi8v"
        "bWFpbC5leGFtcGxlLmNvbS8ifQ=="
    )
    assert base64.b64encode(mech.respond(challenge)) == b"AQ=="
    assert mech.error == {
        "status": "invalid_token",
        "schemes": "bearer mac",
        "scope": "https://mail.example.com/",
    }


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("I\u00adX", "IX"),  # 1: SOFT HYPHEN mapped to nothing
        ("user", "user"),  # 2: no transformation
        ("USER", "USER"),  # 3: case preserved
        ("\u00aa", "a"),  # 4: output is NFKC
        ("\u2168", "IX"),  # 5: ROMAN NUMERAL NINE, NFKC
    ],
)
def test_rfc4013_section3_examples(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared


@pytest.mark.parametrize(
    ("given", "rule"),
    [
        ("\u0007", "control character"),  # 6: prohibited character
        ("\u0627\u0031", "right-to-left"),  # 7: bidirectional check
    ],
)
def test_rfc4013_section3_errors(given: str, rule: str) -> None:
    with pytest.raises(SASLError, match=rule):
        saslprep(given)
