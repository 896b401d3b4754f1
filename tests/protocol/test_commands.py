"""Commands: exact bytes, validation when built (no byte of a bad command exists), redaction."""

from __future__ import annotations

import dataclasses

import pytest

from smtpsubmit.protocol import (
    Auth,
    AuthCancel,
    AuthResponse,
    Bdat,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    LocalProtocolError,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
)
from smtpsubmit.protocol._commands import Command

# -- rendering -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (Ehlo("client.example"), b"EHLO client.example\r\n"),
        (Ehlo("[192.0.2.1]"), b"EHLO [192.0.2.1]\r\n"),
        (Ehlo("[IPv6:2001:db8::1]"), b"EHLO [IPv6:2001:db8::1]\r\n"),
        (Helo("client.example"), b"HELO client.example\r\n"),
        (StartTLS(), b"STARTTLS\r\n"),
        (Rset(), b"RSET\r\n"),
        (Noop(), b"NOOP\r\n"),
        (Quit(), b"QUIT\r\n"),
        (Data(), b"DATA\r\n"),
        (AuthCancel(), b"*\r\n"),
        (Auth("LOGIN"), b"AUTH LOGIN\r\n"),
        (Auth("PLAIN", b"\0user\0pass"), b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
        (Auth("EXTERNAL", b""), b"AUTH EXTERNAL =\r\n"),
        (AuthResponse(b"user"), b"dXNlcg==\r\n"),
        (AuthResponse(b""), b"\r\n"),
        (Mail(""), b"MAIL FROM:<>\r\n"),
        (Mail("a@example.com"), b"MAIL FROM:<a@example.com>\r\n"),
        (
            Mail(
                "a@example.com",
                size=1000,
                body="8BITMIME",
                smtputf8=True,
                ret="HDRS",
                envid="id+1=x y",
                requiretls=True,
                params={"X-FOO": "bar", "X-FLAG": None},
            ),
            b"MAIL FROM:<a@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS"
            b" ENVID=id+2B1+3Dx+20y REQUIRETLS X-FOO=bar X-FLAG\r\n",
        ),
        (Mail("", size=0, body="7BIT", ret="FULL"), b"MAIL FROM:<> SIZE=0 BODY=7BIT RET=FULL\r\n"),
        (Mail("", body="BINARYMIME"), b"MAIL FROM:<> BODY=BINARYMIME\r\n"),
        (
            Mail("\u00fcser@b\u00fccher.example", smtputf8=True),
            "MAIL FROM:<\u00fcser@b\u00fccher.example> SMTPUTF8\r\n".encode(),
        ),
        (Rcpt("b@example.com"), b"RCPT TO:<b@example.com>\r\n"),
        (
            Rcpt("b@example.com", notify=("SUCCESS", "FAILURE"), orcpt="b+x=y@example.com"),
            b"RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE"
            b" ORCPT=rfc822;b+2Bx+3Dy@example.com\r\n",
        ),
        (Rcpt("b@example.com", notify=("NEVER",)), b"RCPT TO:<b@example.com> NOTIFY=NEVER\r\n"),
        (Rcpt("b@example.com", params={"X-P": "1"}), b"RCPT TO:<b@example.com> X-P=1\r\n"),
        (Bdat(b"hello\r\n"), b"BDAT 7\r\nhello\r\n"),
        (Bdat(b"hello", last=True), b"BDAT 5 LAST\r\nhello"),
        (Bdat(b"", last=True), b"BDAT 0 LAST\r\n"),
        (EndOfData(), b".\r\n"),
        (MessageData(b"raw\nbody"), b"raw\nbody"),
    ],
)
def test_command_renders_exact_bytes(command: Command, wire: bytes) -> None:
    assert command.render() == wire


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (Ehlo("client.example"), "EHLO client.example"),
        (Mail("a@example.com", size=5), "MAIL FROM:<a@example.com> SIZE=5"),
        (Rcpt("b@example.com"), "RCPT TO:<b@example.com>"),
        (Quit(), "QUIT"),
        (AuthCancel(), "*"),
        (Auth("LOGIN"), "AUTH LOGIN"),
        (Auth("PLAIN", b"\0user\0hunter2"), "AUTH PLAIN <redacted>"),
        (AuthResponse(b"hunter2"), "<redacted>"),
        (Bdat(b"secret body", last=True), "BDAT 11 LAST"),
        (MessageData(b"secret body"), "<11 octets of message data>"),
        (EndOfData(), "."),
    ],
)
def test_log_line_has_no_crlf_and_no_payload(command: Command, line: str) -> None:
    assert command.log_line() == line


def test_bdat_header_is_the_command_line_alone() -> None:
    assert Bdat(b"abc", last=True).header() == b"BDAT 3 LAST\r\n"


def test_auth_and_auth_response_never_show_the_secret() -> None:
    secret = b"\0user\0hunter2"
    encoded = "AHVzZXIAaHVudGVyMg=="
    for command in [Auth("PLAIN", secret), AuthResponse(secret), AuthResponse(b"hunter2")]:
        for shown in [repr(command), str(command), command.log_line(), f"{command!r:>5}"]:
            assert "hunter2" not in shown
            assert encoded not in shown
            assert "aHVudGVyMg" not in shown
    assert repr(Auth("PLAIN", secret)) == "Auth(mechanism='PLAIN', initial_response=<redacted>)"
    assert repr(AuthResponse(secret)) == "AuthResponse(<redacted>)"


def test_message_data_and_bdat_repr_show_only_sizes() -> None:
    assert repr(MessageData(b"private")) == "MessageData(<7 octets>)"
    assert repr(Bdat(b"private", last=True)) == "Bdat(<7 octets>, last=True)"


def test_commands_are_frozen() -> None:
    mail = Mail("a@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        mail.sender = "evil@example.com"  # type: ignore[misc]


def test_base_command_has_no_rendering() -> None:
    with pytest.raises(NotImplementedError):
        Command().render()


@pytest.mark.parametrize(
    "domain", ["", "bad domain", "client\r\nMAIL FROM:<x@y>", "[300.0.0.1]", "a@b", "x\ud800"]
)
def test_ehlo_with_invalid_domain_refused(domain: str) -> None:
    with pytest.raises(LocalProtocolError, match="EHLO domain"):
        Ehlo(domain)
    with pytest.raises(LocalProtocolError, match="EHLO domain"):
        Helo(domain)


def test_ehlo_with_general_literal_over_command_line_limit_refused() -> None:
    assert len(Ehlo("[x:" + "a" * 501 + "]").render()) == 512
    with pytest.raises(LocalProtocolError, match="EHLO command line of 513 octets exceeds 512"):
        Ehlo("[x:" + "a" * 502 + "]")


# -- MAIL / RCPT validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"sender": "not an address@example.com"}, "malformed local part in sender"),
        ({"size": -1}, "SIZE must not be negative"),
        ({"body": "8BIT"}, "unknown BODY type"),
        ({"ret": "ALL"}, "RET must be FULL or HDRS"),
        ({"envid": "id\r\nRCPT TO:<x@y>"}, "ENVID contains the control character"),
        ({"envid": "id\ud800"}, "ENVID contains .* lone surrogate"),
        ({"envid": "x" * 101}, "ENVID longer than 100"),
        ({"envid": "+" * 34}, "ENVID longer than 100"),  # 102 characters of xtext
        ({"sender": "\u00fcser@example.com"}, "not ASCII: it needs smtputf8=True"),
        ({"params": {"": "x"}}, "malformed ESMTP parameter keyword"),
        ({"params": {"-X": "x"}}, "malformed ESMTP parameter keyword"),
        ({"params": {"X_Y": "x"}}, "malformed ESMTP parameter keyword"),
        ({"params": {"X\r\nRSET": None}}, "malformed ESMTP parameter keyword"),
        ({"params": {"X": ""}}, "malformed value"),
        ({"params": {"X": "a b"}}, "malformed value"),
        ({"params": {"X": "a=b"}}, "malformed value"),
        ({"params": {"X": "a\r\nRSET"}}, "malformed value"),
        ({"params": {"X": "a\x00"}}, "malformed value"),
        ({"params": {"X": "a\x85"}}, "malformed value"),
        ({"params": {"X": "a\u2028"}}, "malformed value"),
        ({"params": {"X": "a\ud800"}}, "malformed value"),
        ({"params": {"X-A": "1", "x-a": "2"}}, "given twice"),
        ({"params": {"x-a": "1", "X-A": "2"}}, "given twice"),
        ({"params": {"SIZE": "1"}}, "SIZE has its own field"),
        ({"params": {"body": "8BITMIME"}}, "body has its own field"),
        ({"params": {"SMTPUTF8": None}}, "has its own field"),
        ({"params": {"Ret": "FULL"}}, "has its own field"),
        ({"params": {"ENVID": "x"}}, "has its own field"),
        ({"params": {"requiretls": None}}, "has its own field"),
    ],
)
def test_invalid_mail_refused_when_built(kwargs: dict[str, object], problem: str) -> None:
    kwargs = {"sender": "a@example.com", **kwargs}
    with pytest.raises(LocalProtocolError, match=problem):
        Mail(**kwargs)  # type: ignore[arg-type]


def test_envid_of_exactly_100_xtext_characters_accepted() -> None:
    assert Mail("", envid="x" * 100).render() == b"MAIL FROM:<> ENVID=" + b"x" * 100 + b"\r\n"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"recipient": ""}, "recipient has no '@'"),
        ({"notify": ("BOGUS",)}, "invalid NOTIFY"),
        ({"notify": ("SUCCESS", "SUCCESS")}, "invalid NOTIFY"),
        ({"notify": ("NEVER", "FAILURE")}, "NOTIFY=NEVER cannot be combined"),
        ({"orcpt": "x\r\n@example.com"}, "ORCPT contains the control character"),
        ({"orcpt": "x" * 494}, "ORCPT longer than 500"),
        ({"params": {"notify": "NEVER"}}, "has its own field"),
        ({"params": {"ORCPT": "rfc822;x"}}, "has its own field"),
        ({"params": {"X": "1", "x": "2"}}, "given twice"),
        ({"params": {"X": "a b"}}, "malformed value"),
    ],
)
def test_invalid_rcpt_refused_when_built(kwargs: dict[str, object], problem: str) -> None:
    kwargs = {"recipient": "b@example.com", **kwargs}
    with pytest.raises(LocalProtocolError, match=problem):
        Rcpt(**kwargs)  # type: ignore[arg-type]


def test_orcpt_of_exactly_500_characters_accepted() -> None:
    rcpt = Rcpt("b@example.com", orcpt="x" * 493)
    assert rcpt.render() == b"RCPT TO:<b@example.com> ORCPT=rfc822;" + b"x" * 493 + b"\r\n"


def test_mail_command_line_limit_is_512_octets() -> None:
    base = len(b"MAIL FROM:<a@example.com> X=\r\n")
    assert len(Mail("a@example.com", params={"X": "v" * (512 - base)}).render()) == 512
    with pytest.raises(LocalProtocolError, match="MAIL command line of 513 octets exceeds 512"):
        Mail("a@example.com", params={"X": "v" * (513 - base)})


def test_envid_brings_its_own_line_allowance() -> None:
    base = len(b"MAIL FROM:<a@example.com> ENVID= X=\r\n")
    envid = "e" * 100
    wire = Mail("a@example.com", envid=envid, params={"X": "v" * (612 - base - 100)}).render()
    assert len(wire) == 612
    with pytest.raises(LocalProtocolError, match="613 octets exceeds 612"):
        Mail("a@example.com", envid=envid, params={"X": "v" * (613 - base - 100)})


def test_rcpt_command_line_limit_is_512_octets() -> None:
    base = len(b"RCPT TO:<b@example.com> X=\r\n")
    assert len(Rcpt("b@example.com", params={"X": "v" * (512 - base)}).render()) == 512
    with pytest.raises(LocalProtocolError, match="RCPT command line of 513 octets exceeds 512"):
        Rcpt("b@example.com", params={"X": "v" * (513 - base)})


def test_orcpt_brings_its_own_line_allowance() -> None:
    orcpt = "o" * 400
    base = len(b"RCPT TO:<b@example.com> ORCPT=rfc822; X=\r\n") + 400
    allowance = len("rfc822;") + 400
    wire = Rcpt("b@example.com", orcpt=orcpt, params={"X": "v" * (512 + allowance - base)})
    assert len(wire.render()) == 512 + allowance


# -- AUTH validation -----------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["", "plain", "PL AIN", "PLAIN\r\n", "A" * 21, "PLAIN*"])
def test_malformed_sasl_mechanism_refused(mechanism: str) -> None:
    with pytest.raises(LocalProtocolError, match="malformed SASL mechanism name"):
        Auth(mechanism)


def test_auth_line_may_reach_12288_octets_but_no_more() -> None:
    # "AUTH PLAIN " + base64 + CRLF: 9204 octets encode to 12272 characters.
    assert len(Auth("PLAIN", b"x" * 9204).render()) == 12285
    with pytest.raises(LocalProtocolError, match="AUTH command line of 12289 octets"):
        Auth("PLAIN", b"x" * 9207)
    assert len(AuthResponse(b"x" * 9213).render()) == 12286
    with pytest.raises(LocalProtocolError, match="12290 octets exceeds 12288"):
        AuthResponse(b"x" * 9216)
