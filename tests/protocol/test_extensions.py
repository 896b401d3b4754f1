"""Extensions.parse: EHLO keywords (RFC 5321 4.1.1.1) into typed capabilities."""

from __future__ import annotations

import pytest

from smtpsubmit.protocol import Extensions

GREETING_LINE = "mx.example greets client.example"


def parse(*lines: str) -> Extensions:
    return Extensions.parse([GREETING_LINE, *lines])


@pytest.mark.parametrize(
    ("keyword", "flag"),
    [
        ("PIPELINING", "pipelining"),
        ("CHUNKING", "chunking"),
        ("BINARYMIME", "binarymime"),
        ("8BITMIME", "eightbitmime"),
        ("SMTPUTF8", "smtputf8"),
        ("DSN", "dsn"),
        ("ENHANCEDSTATUSCODES", "enhancedstatuscodes"),
        ("REQUIRETLS", "requiretls"),
        ("STARTTLS", "starttls"),
    ],
)
def test_each_flag_extension_is_seen_only_when_advertised(keyword: str, flag: str) -> None:
    assert getattr(parse(keyword), flag) is True
    assert getattr(parse(keyword.lower()), flag) is True
    assert getattr(parse("X-OTHER"), flag) is False
    assert getattr(Extensions(), flag) is False


def test_greeting_line_is_not_a_keyword() -> None:
    ext = Extensions.parse(["PIPELINING"])
    assert not ext.pipelining
    assert dict(ext.keywords) == {}


@pytest.mark.parametrize(
    ("lines", "size"),
    [
        ((), None),
        (("SIZE",), 0),
        (("SIZE 0",), 0),
        (("SIZE 35882577",), 35882577),
        (("size 1000",), 1000),
        (("SIZE 1000 ",), 1000),
        (("SIZE " + "9" * 20,), 10**20 - 1),
        # Malformed values: a limit we cannot read is no limit (RFC 1870: 1*20DIGIT).
        (("SIZE abc",), 0),
        (("SIZE -5",), 0),
        (("SIZE \u0661\u0662",), 0),  # Arabic-Indic digits
        (("SIZE " + "9" * 21,), 0),
        (("SIZE " + "9" * 5000,), 0),  # would exceed int()'s digit limit
    ],
)
def test_size_limit(lines: tuple[str, ...], size: int | None) -> None:
    assert parse(*lines).size == size


@pytest.mark.parametrize(
    ("lines", "mechanisms"),
    [
        ((), frozenset()),
        (("AUTH",), frozenset()),
        (("AUTH PLAIN LOGIN",), {"PLAIN", "LOGIN"}),
        (("auth plain  xoauth2",), {"PLAIN", "XOAUTH2"}),
        (("AUTH=LOGIN PLAIN",), {"LOGIN", "PLAIN"}),
        (("AUTH=LOGIN",), {"LOGIN"}),
        (("AUTH PLAIN", "AUTH=LOGIN"), {"PLAIN", "LOGIN"}),
        (("AUTH=LOGIN", "AUTH CRAM-MD5"), {"LOGIN", "CRAM-MD5"}),
    ],
)
def test_auth_mechanisms_including_old_auth_equals_form(
    lines: tuple[str, ...], mechanisms: set[str]
) -> None:
    assert parse(*lines).auth == frozenset(mechanisms)


def test_old_auth_equals_form_alone_creates_auth_keyword() -> None:
    ext = parse("AUTH=PLAIN LOGIN")
    assert ext.keywords["AUTH"] == "LOGIN PLAIN"
    assert "auth" in ext


def test_auth_keyword_keeps_its_own_params_when_both_forms_are_sent() -> None:
    assert parse("AUTH PLAIN", "AUTH=LOGIN").keywords["AUTH"] == "PLAIN"


def test_unknown_keywords_kept_upper_cased_with_params() -> None:
    ext = parse("X-Custom some Params", "VRFY", "etrn", "DELIVERBY 240")
    assert dict(ext.keywords) == {
        "X-CUSTOM": "some Params",
        "VRFY": "",
        "ETRN": "",
        "DELIVERBY": "240",
    }
    assert "x-custom" in ext
    assert "X-CUSTOM" in ext
    assert "X-MISSING" not in ext
    assert 42 not in ext


@pytest.mark.parametrize(
    "line",
    ["", "   ", "-DASHFIRST", "BAD_UNDERSCORE", "caf\u00e9", "a=b", "=", "\x00"],
)
def test_malformed_lines_are_ignored(line: str) -> None:
    ext = parse(line, "PIPELINING")
    assert dict(ext.keywords) == {"PIPELINING": ""}


def test_surrounding_whitespace_is_ignored() -> None:
    assert dict(parse("  PIPELINING  ", "SIZE  100 ").keywords) == {
        "PIPELINING": "",
        "SIZE": "100",
    }


def test_later_duplicate_keyword_wins() -> None:
    assert parse("SIZE 100", "SIZE 200").size == 200


def test_extensions_are_immutable() -> None:
    ext = parse("PIPELINING")
    with pytest.raises(TypeError):
        ext.keywords["X"] = ""  # type: ignore[index]
    with pytest.raises(AttributeError):
        ext.size = 5  # type: ignore[misc]
