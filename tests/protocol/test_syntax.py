"""The command grammar: addresses, domains and xtext (RFC 5321 4.1.2, RFC 6531, RFC 3461 4)."""

from __future__ import annotations

import pytest

from smtpsubmit.protocol import LocalProtocolError, Rcpt, _syntax
from smtpsubmit.protocol._syntax import (
    is_ascii_address,
    validate_address,
    validate_domain,
    xtext_decode,
    xtext_encode,
)

# -- addresses -----------------------------------------------------------------------------

VALID_ADDRESSES = [
    "user@example.com",
    "first.last+tag@sub.example.co.uk",
    "!#$%&'*+-/=?^_`{|}~@example.com",
    "a@b",
    "a@1-2.example",
    "x@xn--bcher-kva.example",
    '"quoted local"@example.com',
    '"a@b"@example.com',
    '"esc\\"aped \\\\ pair"@example.com',
    '""@example.com',
    "user@[127.0.0.1]",
    "user@[IPv6:::1]",
    "user@[ipv6:2001:db8::1]",
    "user@[IPv6:::ffff:192.0.2.1]",
    "user@[x-tag:general-content]",
    "\u00fcser@b\u00fccher.example",
    "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a",
    "l" * 64 + "@example.com",
    "a@" + "d" * 250 + ".c",  # path of exactly 256 octets
]


@pytest.mark.parametrize("address", VALID_ADDRESSES)
def test_valid_address_accepted(address: str) -> None:
    validate_address(address)
    assert Rcpt(address).recipient == address


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "has no '@'"),
        ("user", "has no '@'"),
        ("@example.com", "malformed local part"),
        (".user@example.com", "malformed local part"),
        ("user.@example.com", "malformed local part"),
        ("us..er@example.com", "malformed local part"),
        ("us er@example.com", "malformed local part"),
        ('us"er@example.com', "malformed local part"),
        ('"unterminated@example.com', "malformed local part"),
        ('"bad\\\u00e9"@example.com', "malformed local part"),  # quoted-pair is ASCII only
        ("a@b@example.com", "malformed local part"),
        ("a<b@example.com", "malformed local part"),
        ("user@", "malformed address"),
        ("user@exa mple.com", "malformed address"),
        ("user@-example.com", "malformed address"),
        ("user@example-.com", "malformed address"),
        ("user@example..com", "malformed address"),
        ("user@.example.com", "malformed address"),
        ("user@example.com.", "malformed address"),
        ("user@exa_mple.com", "malformed address"),
        ("user@example.com>", "malformed address"),
        ("user@[127.0.0.1", "malformed address"),
        ("user@[127.0.0.256]", "malformed address literal"),
        ("user@[127.0.0]", "malformed address literal"),
        ("user@[01.2.3.4]", "malformed address literal"),
        ("user@[IPv6:::g]", "malformed address literal"),
        ("user@[IPv6:1.2.3.4]", "malformed address literal"),
        ("user@[IPv6:::1%eth0]", "malformed address literal"),
        ("user@[]", "malformed address literal"),
        ("user@[no-colon]", "malformed address literal"),
        ("user@[:content]", "malformed address literal"),
        ("user@[tag-:content]", "malformed address literal"),
        ("user@[tag:with space]", "malformed address literal"),
        ("user@[tag:a[b]", "malformed address literal"),
        ("user\r@example.com", "control character"),
        ("user@example.com\r\nRCPT TO:<x@example.com>", "control character"),
        ("us\ner@example.com", "control character"),
        ("user\0@example.com", "control character"),
        ("user\t@example.com", "control character"),
        ("user\x7f@example.com", "control character"),
        ("user\x85@example.com", "control character"),
        ("user\u2028@example.com", "control character"),
        ("user\ud800@example.com", "lone surrogate"),
        ('"a\x01"@example.com', "control character"),
        ("l" * 65 + "@example.com", "local part of address longer than 64 octets"),
        ("\u00fc" * 33 + "@example.com", "longer than 64 octets"),  # 66 octets in UTF-8
        ("a@" + "d" * 251 + ".c", "address longer than 256 octets"),
    ],
)
def test_invalid_address_refused(address: str, problem: str) -> None:
    with pytest.raises(LocalProtocolError, match=problem):
        validate_address(address)
    with pytest.raises(LocalProtocolError, match="recipient"):
        Rcpt(address)


def test_domain_length_limit_is_255_octets() -> None:
    label = "a" * 63
    validate_domain(".".join([label] * 4)[:255])
    assert len(".".join([label] * 4)[:255]) == 255
    with pytest.raises(LocalProtocolError, match="longer than 255 octets"):
        validate_domain(".".join([label] * 4) + "x")


@pytest.mark.parametrize(
    ("address", "ascii"),
    [("user@example.com", True), ("\u00fcser@example.com", False), ("u@b\u00fccher.de", False)],
)
def test_is_ascii_address(address: str, ascii: bool) -> None:
    assert is_ascii_address(address) is ascii


# -- xtext (RFC 3461 4) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "xtext"),
    [
        ("", ""),
        ("abc", "abc"),
        ("a+b=c", "a+2Bb+3Dc"),
        ("a b", "a+20b"),
        ("~!", "~!"),
        ("\x7f", "+7F"),
        ("\u00e9", "+C3+A9"),
    ],
)
def test_xtext_encode_and_decode(text: str, xtext: str) -> None:
    assert xtext_encode(text) == xtext
    assert xtext_decode(xtext) == text


@pytest.mark.parametrize("bad", ["+2b", "+2", "+", "+GG", "a b", "a=b", "\u00e9", "\x7f"])
def test_malformed_xtext_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="malformed xtext"):
        xtext_decode(bad)


def test_address_validation_cache_is_bounded_and_never_admits_invalid_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_syntax, "_VALID_CACHE_SIZE", 3)
    monkeypatch.setattr(_syntax, "_VALID_ADDRESSES", set())
    for i in range(5):
        validate_address(f"user{i}@example.com")
    assert len(_syntax._VALID_ADDRESSES) <= 3
    for _ in range(2):  # the second time must fail just the same: failures are not cached
        with pytest.raises(LocalProtocolError):
            validate_address("bad\r\n@example.com")
    assert "bad\r\n@example.com" not in _syntax._VALID_ADDRESSES
