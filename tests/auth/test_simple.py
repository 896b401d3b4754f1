"""PLAIN (RFC 4616), LOGIN and CRAM-MD5 (RFC 2195) beyond the RFC vectors."""

from __future__ import annotations

import pytest

from smtpsubmit.auth import CramMD5, Login, Plain, SASLError


def test_plain_without_initial_response_answers_empty_challenge() -> None:
    # RFC 4954 4: a client that did not send the initial response gets "334 " and sends it.
    assert Plain("tim", "tanstaaftanstaaf").respond(b"") == b"\0tim\0tanstaaftanstaaf"


def test_plain_rejects_challenge_after_credentials() -> None:
    mech = Plain("tim", "tanstaaftanstaaf")
    mech.initial_response()
    with pytest.raises(SASLError, match="unexpected challenge"):
        mech.respond(b"")


def test_plain_initial_response_only_once() -> None:
    mech = Plain("tim", "tanstaaftanstaaf")
    mech.initial_response()
    with pytest.raises(SASLError, match="already"):
        mech.initial_response()


def test_plain_rejects_challenge_before_initial_response() -> None:
    with pytest.raises(SASLError, match="before the initial response"):
        Plain("tim", "pw").respond(b"hello")


def test_plain_encodes_utf8() -> None:
    assert Plain("j\u00fcrgen", "p\u00e4ss").initial_response() == (b"\0j\xc3\xbcrgen\0p\xc3\xa4ss")


@pytest.mark.parametrize(
    ("username", "password", "authzid"),
    [
        ("a\0b", "pw", None),
        ("ab", "p\0w", None),
        ("ab", "pw", "x\0"),
        ("", "pw", None),
        ("a", "", None),
    ],
)
def test_plain_rejects_unencodable_fields(
    username: str, password: str, authzid: str | None
) -> None:
    with pytest.raises(SASLError):
        Plain(username, password, authzid=authzid)


def test_login_answers_prompts_in_order() -> None:
    mech = Login("tim", "tanstaaftanstaaf")
    assert mech.initial_response() is None
    assert mech.respond(b"Username:") == b"tim"
    assert mech.respond(b"Password:") == b"tanstaaftanstaaf"
    mech.success()


def test_login_answers_by_position_not_prompt_text() -> None:
    mech = Login("tim", "secret")
    assert mech.respond(b"User Name\0") == b"tim"
    assert mech.respond(b"Mot de passe :") == b"secret"


def test_login_rejects_third_challenge() -> None:
    mech = Login("tim", "secret")
    mech.respond(b"Username:")
    mech.respond(b"Password:")
    with pytest.raises(SASLError, match="third challenge"):
        mech.respond(b"Again:")


def test_login_rejects_line_breaks_in_credentials() -> None:
    with pytest.raises(SASLError):
        Login("tim\r\n", "secret")


def test_cram_md5_rejects_empty_and_second_challenge() -> None:
    with pytest.raises(SASLError, match="empty challenge"):
        CramMD5("tim", "pw").respond(b"")
    mech = CramMD5("tim", "pw")
    mech.respond(b"<1.2@host>")
    with pytest.raises(SASLError, match="second challenge"):
        mech.respond(b"<1.2@host>")
