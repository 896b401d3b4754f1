"""The command grammar: addresses, domains and xtext (RFC 5321 4.1.2, RFC 6531, RFC 3461 4)."""

from __future__ import annotations

import string

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


# -- every code point in every position (RFC 5321 4.1.2, RFC 6531 3.3) --------------------

_ALNUM = set(string.ascii_letters + string.digits)
#: The ASCII members of each class, as the RFCs list them.
ATEXT = _ALNUM | set("!#$%&'*+-/=?^_`{|}~")  # RFC 5322 3.2.3
QTEXT = {chr(c) for c in [32, 33, *range(35, 92), *range(93, 127)]}  # RFC 5321 qtextSMTP
LETDIG = _ALNUM  # RFC 5321 Let-dig
LDH = _ALNUM | {"-"}  # RFC 5321 Ldh-str, inside a label
VALUE = {chr(c) for c in [*range(33, 61), *range(62, 127)]}  # RFC 5321 esmtp-value
#: Above U+00FF, the only characters we refuse: the Unicode line and paragraph separators
#: (controls for our purpose) and lone surrogates (no UTF-8 for them).
REFUSED_ABOVE_LATIN1 = frozenset(["\u2028", "\u2029", *map(chr, range(0xD800, 0xE000))])


def utf8_non_ascii(char: str) -> bool:
    """RFC 6531 3.3 UTF8-non-ascii, less the C1 controls and the characters above."""
    return ord(char) >= 0xA0 and char not in REFUSED_ABOVE_LATIN1


# Where a character goes, and the ASCII characters admitted there.
POSITIONS = [
    ("{}@example.com", ATEXT),
    ("a{}b@example.com", ATEXT | {"."}),  # Dot-string
    ('"{}"@example.com', QTEXT),
    ("user@{}.example", LETDIG),
    ("user@a{}b.example", LDH | {"."}),
]


def _accepted(address: str) -> bool:
    try:
        _syntax._check_address(address, "address")  # not validate_address: no cache
    except LocalProtocolError:
        return False
    return True


@pytest.mark.parametrize(("template", "members"), POSITIONS)
def test_every_latin1_and_refused_character_in_every_address_position(
    template: str, members: set[str]
) -> None:
    for char in [*map(chr, range(0x100)), *sorted(REFUSED_ABOVE_LATIN1)]:
        expected = char in members or utf8_non_ascii(char)
        assert _accepted(template.format(char)) is expected, (template, hex(ord(char)))


def test_every_other_code_point_is_admitted_in_every_position() -> None:
    """All of U+0100..U+10FFFF but the refused few, in one string per pattern: the patterns
    admit it (as RFC 6531 3.3 says), and the control check lets it through."""
    spans = [(0x100, 0x2028), (0x202A, 0xD800), (0xE000, 0x110000)]  # REFUSED_ABOVE_LATIN1 out
    others = "".join("".join(map(chr, range(*span))) for span in spans)
    assert len(others) == 0x110000 - 0x100 - 2 - 2048
    _syntax.check_no_controls("text", others)
    assert _syntax._DOT_STRING.fullmatch(others)
    assert _syntax._QUOTED.fullmatch(f'"{others}"')
    assert _syntax._DOMAIN.fullmatch(others)
    assert _syntax.is_esmtp_value(others)


def test_every_latin1_and_refused_character_in_an_esmtp_value() -> None:
    for char in [*map(chr, range(0x100)), *sorted(REFUSED_ABOVE_LATIN1)]:
        expected = char in VALUE or utf8_non_ascii(char)
        assert _syntax.is_esmtp_value(f"a{char}b") is expected, hex(ord(char))


def test_grammar_patterns_have_no_ranges_above_latin1() -> None:
    """Unicode ranges in a class make sre visit every code point of them when compiling:
    about 50 ms per import for these patterns. The classes stop at U+00FF and leave the
    few characters refused above it to check_no_controls."""
    patterns = [
        _syntax._DOT_STRING,
        _syntax._QUOTED,
        _syntax._DOMAIN,
        _syntax._GENERAL_LITERAL,
        _syntax._ESMTP_VALUE,
        _syntax.ESMTP_KEYWORD,
        _syntax.SASL_MECHANISM,
        _syntax._XTEXT,
    ]
    for pattern in patterns:
        assert pattern.pattern.isascii(), pattern.pattern
        assert "\\u" not in pattern.pattern, pattern.pattern
        assert "\\U" not in pattern.pattern, pattern.pattern


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
