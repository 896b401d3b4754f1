"""The SMTP grammars are ASCII (RFC 5234 B.1: DIGIT is 0-9, ALPHA is A-Z / a-z), so the
server must not read client text with Python's Unicode-aware ``str`` methods: ``isdigit()``
takes SUPERSCRIPT TWO (which ``int()`` then refuses: a crash) and FULLWIDTH DIGIT ONE (which
``int()`` reads as 1), ``upper()`` turns DOTLESS I into ``I`` and LONG S into ``S``, and
``hmac.compare_digest`` raises
on non-ASCII ``str``. Each place that reads a number, a keyword or a secret is checked here
with inputs of that kind: a well-formed refusal, and the session goes on."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from fake_smtp_helpers import RawClient

from smtpsubmit.testing import Mode, SMTPServerFactory, ThreadedSMTPServer

#: Not ASCII digits: superscript, full-width, Arabic-Indic, signs, empty, and other notations.
BAD_NUMBERS = [
    "\N{SUPERSCRIPT TWO}",
    "\N{FULLWIDTH DIGIT ONE}",
    "\N{ARABIC-INDIC DIGIT THREE}",
    "-1",
    "+1",
    "",
    "1.0",
    "0x10",
    "1_000",
]
LONG_S = "\N{LATIN SMALL LETTER LONG S}"  # upper(): "S"
DOTLESS_I = "\N{LATIN SMALL LETTER DOTLESS I}"  # upper(): "I"
HUGE = "9" * 30


@pytest.fixture
def server(smtp_server_factory: SMTPServerFactory) -> ThreadedSMTPServer:
    return smtp_server_factory(
        mode=Mode.PLAIN,
        users={"u": "p"},
        oauth_tokens={"u": "token"},
        allow_cleartext_auth=True,
        max_message_size=1000,
    )


@pytest.fixture
def client(server: ThreadedSMTPServer) -> Iterator[RawClient]:
    with RawClient(server.host, server.port) as raw:
        assert raw.reply()[0] == 220
        assert raw.cmd("EHLO c")[0] == 250
        yield raw
        # The session survived whatever the test sent, and the server did not crash.
        assert raw.cmd("NOOP")[0] == 250
    assert server.errors == []


def _envelope(client: RawClient) -> None:
    assert client.cmd("MAIL FROM:<a@x>")[0] == 250
    assert client.cmd("RCPT TO:<b@x>")[0] == 250


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [*BAD_NUMBERS, "1 2"])
def test_bdat_size_must_be_ascii_digits(client: RawClient, size: str) -> None:
    _envelope(client)
    assert client.cmd(f"BDAT {size} LAST") == (501, ["5.5.4 Syntax: BDAT size [LAST]"])
    assert client.cmd(f"BDAT {size}")[0] == 501


def test_bdat_huge_size_is_read_then_refused(server: ThreadedSMTPServer) -> None:
    # RFC 3030 2: the chunk is consumed whatever the verdict; this one never ends, so the
    # server reads until the client gives up, and never takes chunk octets for commands.
    with RawClient(server.host, server.port) as client:
        client.reply()
        client.cmd("EHLO c")
        _envelope(client)
        client.send(f"BDAT {HUGE} LAST\r\nQUIT\r\n".encode())
        client.sock.shutdown(1)  # SHUT_WR: the chunk ends early
        assert client.read_line() == b""  # no reply at all, then the server closes
    assert server.errors == []


@pytest.mark.parametrize("size", [*BAD_NUMBERS, "9" * 21])
def test_mail_size_parameter_must_be_ascii_digits(client: RawClient, size: str) -> None:
    # RFC 1870 6: size-value ::= 1*20DIGIT
    assert client.cmd(f"MAIL FROM:<a@x> SIZE={size}") == (501, ["5.5.4 Bad SIZE value"])


def test_mail_size_parameter_huge_but_well_formed_is_too_big(client: RawClient) -> None:
    assert client.cmd(f"MAIL FROM:<a@x> SIZE={'9' * 20}") == (
        552,
        ["5.3.4 Message size exceeds fixed maximum size"],
    )


@pytest.mark.parametrize("size", ["1000", "0001000", "0"])
def test_mail_size_parameter_accepts_ascii_digits(client: RawClient, size: str) -> None:
    assert client.cmd(f"MAIL FROM:<a@x> SIZE={size}")[0] == 250
    assert client.cmd("RSET")[0] == 250


# -- keywords -----------------------------------------------------------------------------

#: Commands whose keyword upper-cases (in Unicode) to a valid one: each must be refused.
KEYWORD_LOOKALIKES = [
    (f"r{LONG_S}et", [], 500),
    (f"qu{DOTLESS_I}t", [], 500),
    (f"MAIL FROM:<a@x> BODY=8b{DOTLESS_I}tmime", [], 555),
    (f"MAIL FROM:<a@x> RET=hdr{LONG_S}", [], 501),
    (f"RCPT TO:<b@x> NOTIFY={LONG_S}uccess", ["MAIL FROM:<a@x>"], 501),
    (f"BDAT 1 la{LONG_S}t", ["MAIL FROM:<a@x>", "RCPT TO:<b@x>"], 501),
    (f"AUTH pla{DOTLESS_I}n AHUAcA==", [], 504),
    ("MAIL FROM:<a@x> SIZE=10\N{NO-BREAK SPACE}BODY=7BIT", [], 501),
]


@pytest.mark.parametrize(("command", "before", "code"), KEYWORD_LOOKALIKES)
def test_keywords_are_matched_in_ascii_only(
    client: RawClient, command: str, before: list[str], code: int
) -> None:
    for line in before:
        assert client.cmd(line)[0] == 250
    assert client.cmd(command)[0] == code
    client.cmd("RSET")


# -- secrets ------------------------------------------------------------------------------


def test_cram_md5_non_ascii_digest_is_a_failure_not_a_crash(client: RawClient) -> None:
    client.auth("CRAM-MD5", "u é".encode())
    assert client.last[0] == 535


@pytest.mark.parametrize(
    ("mechanism", "response"),
    [
        ("XOAUTH2", "user=u\x01auth=Bearer tökén\x01\x01"),
        ("OAUTHBEARER", "n,a=u,\x01auth=Bearer tökén\x01\x01"),
    ],
)
def test_oauth_non_ascii_token_is_a_failure_not_a_crash(
    client: RawClient, mechanism: str, response: str
) -> None:
    code, _ = client.cmd(f"AUTH {mechanism} " + base64.b64encode(response.encode()).decode())
    assert code == 334  # the JSON error challenge (RFC 7628 3.2.2)
    assert client.cmd("")[0] == 535
