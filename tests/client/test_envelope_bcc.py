"""Bcc, Resent-Bcc and the Resent-* envelope, end to end through the fake server.

RFC 5322 3.6.3 and 3.6.6: blind recipients are in the envelope and nowhere in the content.
Every way of sending an ``EmailMessage`` (a client, a batch, the pool, ``send()``) is
checked on what the server captured: the MAIL/RCPT envelope and the exact octets of DATA.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

import pytest
from client_helpers import make_message

import smtpsubmit
from smtpsubmit.testing import CapturedMessage, FakeSMTPServer, Mode

pytestmark = pytest.mark.anyio

#: Every public way to send an EmailMessage; each builds the envelope and the content anew.
ENTRY_POINTS = ["client", "batch", "pool", "send"]

RESENT_BLOCK = {
    "Resent-Date": "Mon, 23 Nov 2026 10:00:00 +0000",
    "Resent-From": "forwarder@example.com",
    "Resent-To": "new@example.com",
    "Resent-Cc": "copy@example.com",
}


async def submit(
    server: FakeSMTPServer, entry_point: str, msg: EmailMessage, **envelope: Any
) -> smtpsubmit.SendResult:
    """Send ``msg`` through ``entry_point`` and return its result."""
    options: dict[str, Any] = {"tls": smtpsubmit.TLSMode.INSECURE_CLEARTEXT}
    if entry_point == "send":
        return await smtpsubmit.send(msg, host=server.host, port=server.port, **envelope, **options)
    if entry_point == "pool":
        async with smtpsubmit.SMTPPool(server.host, server.port, **options) as pool:
            return await pool.send_message(msg, **envelope)
    async with smtpsubmit.SMTPClient(server.host, server.port, **options) as client:
        if entry_point == "client":
            return await client.send_message(msg, **envelope)
        assert not envelope, "send_batch takes no per-message envelope"
        [outcome] = await client.send_batch([msg])
        assert isinstance(outcome, smtpsubmit.SendResult), outcome
        return outcome


async def send_and_capture(
    entry_point: str, msg: EmailMessage, **envelope: Any
) -> tuple[smtpsubmit.SendResult, CapturedMessage]:
    async with FakeSMTPServer(mode=Mode.PLAIN) as server:
        result = await submit(server, entry_point, msg, **envelope)
        [captured] = await server.wait_for_messages(1)
    return result, captured


def field_names(data: bytes) -> list[str]:
    """The header field names of raw message octets, in order (continuations skipped)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode("ascii")
        for line in head.split(b"\r\n")
        if line[:1] not in (b" ", b"\t")
    ]


def assert_hidden(
    captured: CapturedMessage, names: Sequence[str], addresses: Sequence[str]
) -> None:
    """No ``names`` field and none of ``addresses`` anywhere in the transmitted octets."""
    for name in names:
        assert not re.search(rb"(?im)^" + re.escape(name.encode()) + rb"\s*:", captured.data)
    for address in addresses:
        assert address.encode() not in captured.data


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
async def test_bcc_is_in_the_envelope_and_not_in_the_content(entry_point: str) -> None:
    msg = make_message(to="bob@example.com", Cc="carol@example.org", Bcc="dave@example.net")
    result, captured = await send_and_capture(entry_point, msg)
    expected = ["bob@example.com", "carol@example.org", "dave@example.net"]
    assert captured.mail_from == "alice@example.com"
    assert captured.rcpt_to == expected
    assert list(result.accepted) == expected
    assert_hidden(captured, ["Bcc"], ["dave@example.net"])
    # Only the Bcc field went: every other field arrived, in order.
    assert field_names(captured.data) == [n for n in msg if n != "Bcc"]
    assert captured.message.get_content() == msg.get_content()


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
async def test_resent_bcc_is_in_the_envelope_and_not_in_the_content(entry_point: str) -> None:
    msg = make_message(to="bob@example.com", Bcc="dave@example.net")
    for name, value in RESENT_BLOCK.items():
        msg[name] = value
    msg["Resent-Bcc"] = "secret@example.net"
    result, captured = await send_and_capture(entry_point, msg)
    # RFC 5322 3.6.6: the Resent-* block is the envelope; the original To/Bcc are history.
    expected = ["new@example.com", "copy@example.com", "secret@example.net"]
    assert captured.mail_from == "forwarder@example.com"
    assert captured.rcpt_to == expected
    assert (result.sender, list(result.accepted)) == ("forwarder@example.com", expected)
    assert_hidden(captured, ["Bcc", "Resent-Bcc"], ["dave@example.net", "secret@example.net"])
    assert field_names(captured.data) == [n for n in msg if n not in ("Bcc", "Resent-Bcc")]
    assert captured.message["Resent-From"] == "forwarder@example.com"
    assert captured.message["To"] == "bob@example.com"  # the original header stays as it was


async def test_a_folded_resent_bcc_goes_with_all_its_lines_and_nothing_else() -> None:
    hidden = [f"hidden-recipient-{i}@example.net" for i in range(6)]
    msg = make_message()
    for name, value in RESENT_BLOCK.items():
        msg[name] = value
    msg["RESENT-BCC"] = ", ".join(hidden)  # long enough to fold; any case is the same field
    msg["X-After"] = "kept"
    result, captured = await send_and_capture("client", msg)
    assert re.search(rb"(?m)^RESENT-BCC:.*\n[ \t]", msg.as_bytes())  # it really folds
    assert captured.rcpt_to == ["new@example.com", "copy@example.com", *hidden]
    assert list(result.accepted) == captured.rcpt_to
    assert_hidden(captured, ["Resent-Bcc"], hidden)
    assert field_names(captured.data) == [n for n in msg if n != "RESENT-BCC"]
    assert captured.message["X-After"] == "kept"


async def test_resent_bcc_without_a_resent_block_is_still_stripped() -> None:
    # Without Resent-Date the message is not being resent: the envelope is From/To/Cc/Bcc,
    # and a stray Resent-Bcc is still never transmitted (as smtplib does).
    msg = make_message(to="bob@example.com")
    msg["Resent-Bcc"] = "stray@example.net"
    result, captured = await send_and_capture("client", msg)
    assert captured.mail_from == "alice@example.com"
    assert captured.rcpt_to == ["bob@example.com"] == list(result.accepted)
    assert_hidden(captured, ["Resent-Bcc"], ["stray@example.net"])


async def test_resent_sender_wins_over_resent_from() -> None:
    msg = make_message()
    for name, value in RESENT_BLOCK.items():
        msg[name] = value
    msg["Resent-Sender"] = "agent@example.com"
    result, captured = await send_and_capture("client", msg)
    assert captured.mail_from == "agent@example.com" == result.sender
    assert captured.rcpt_to == ["new@example.com", "copy@example.com"]


async def test_an_explicit_envelope_overrides_the_resent_block_and_bcc_still_goes() -> None:
    msg = make_message(Bcc="dave@example.net")
    for name, value in RESENT_BLOCK.items():
        msg[name] = value
    msg["Resent-Bcc"] = "secret@example.net"
    result, captured = await send_and_capture(
        "client", msg, sender="bounces@example.com", recipients=["only@example.com"]
    )
    assert (captured.mail_from, captured.rcpt_to) == ("bounces@example.com", ["only@example.com"])
    assert list(result.accepted) == ["only@example.com"]
    assert_hidden(captured, ["Bcc", "Resent-Bcc"], ["dave@example.net", "secret@example.net"])


def two_resent_blocks() -> EmailMessage:
    """A message resent twice: the newest block on top (RFC 5322 3.6.6: blocks are prepended)."""
    msg = make_message()
    msg["Resent-Date"] = "Tue, 24 Nov 2026 10:00:00 +0000"
    msg["Resent-From"] = "second@example.com"
    msg["Resent-To"] = "latest@example.com"
    msg["Resent-Bcc"] = "latest-hidden@example.net"
    for name, value in RESENT_BLOCK.items():
        msg[name] = value
    msg["Resent-Bcc"] = "older-hidden@example.net"
    return msg


async def test_two_resent_blocks_are_refused_before_any_io() -> None:
    # Which Resent-To belongs to which Resent-Date cannot be told from the fields alone,
    # so the client does not guess (smtplib refuses too).
    async with FakeSMTPServer(mode=Mode.PLAIN) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls=smtpsubmit.TLSMode.INSECURE_CLEARTEXT
        ) as client:
            with pytest.raises(smtpsubmit.MessageError, match="more than one Resent- block"):
                await client.send_message(two_resent_blocks())
            await client.noop()  # the session is still usable
        verbs = [
            e.line.split()[0] for t in server.transcripts for e in t if e.direction == "client"
        ]
    assert "MAIL" not in verbs


async def test_two_resent_blocks_go_with_an_explicit_envelope_and_no_bcc() -> None:
    result, captured = await send_and_capture(
        "client",
        two_resent_blocks(),
        sender="second@example.com",
        recipients=["latest@example.com"],
    )
    assert (captured.mail_from, captured.rcpt_to) == ("second@example.com", ["latest@example.com"])
    assert list(result.accepted) == ["latest@example.com"]
    assert_hidden(
        captured, ["Resent-Bcc"], ["latest-hidden@example.net", "older-hidden@example.net"]
    )


async def test_a_message_without_from_goes_with_an_explicit_envelope() -> None:
    msg = EmailMessage()
    msg["Subject"] = "no From, no To"
    msg["Bcc"] = "hidden@example.net"
    msg.set_content("x\n")
    _, captured = await send_and_capture(
        "client", msg, sender="app@example.com", recipients=["ops@example.com"]
    )
    assert (captured.mail_from, captured.rcpt_to) == ("app@example.com", ["ops@example.com"])
    assert_hidden(captured, ["Bcc"], ["hidden@example.net"])


async def test_a_bcc_folded_with_a_tab_goes_with_all_its_lines() -> None:
    # Read from bytes, the fold keeps its TAB (RFC 5322 2.2.3 allows either blank).
    raw = (
        b"From: alice@example.com\r\nTo: bob@example.com\r\n"
        b"Bcc: dave@example.net,\r\n\terin@example.net\r\nSubject: s\r\n\r\nbody\r\n"
    )
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    _, captured = await send_and_capture("client", msg)
    assert captured.rcpt_to == ["bob@example.com", "dave@example.net", "erin@example.net"]
    assert_hidden(captured, ["Bcc"], ["dave@example.net", "erin@example.net"])
    assert field_names(captured.data) == ["From", "To", "Subject"]


async def test_a_bcc_group_with_a_colon_in_its_value_is_stripped() -> None:
    msg = make_message(to="bob@example.com", Bcc="hidden: dave@example.net;")
    _, captured = await send_and_capture("client", msg)
    assert captured.rcpt_to == ["bob@example.com", "dave@example.net"]
    assert_hidden(captured, ["Bcc"], ["dave@example.net", "hidden:"])
