"""Every reply order of a pipelined transaction maps to exactly one outcome class.

The scripted server answers MAIL, each RCPT and the body with what the table says and
closes where it says CLOSE. The rules under test (``smtpsubmit/_transaction.py``): a
reply that refused the transaction stays its outcome even if the link breaks afterwards;
a failure before the end of the body is that failure (not sent); only a missing final
reply after the whole body is ``OutcomeUnknownError``; a 421 ends what it answers and
every transaction behind it is ``NotSentError``; no error class carries a code outside its
range.
"""

from __future__ import annotations

import pytest
from scripted_server import CLOSE, EXTENSIONS, Script, scripted_server

import smtpsubmit
from smtpsubmit import (
    ConnectionLostError,
    NotSentError,
    OutcomeUnknownError,
    PermanentReplyError,
    ProtocolViolationError,
    RecipientsRefusedError,
    SendResult,
    SMTPError,
    TransientReplyError,
)

pytestmark = pytest.mark.anyio

RCPTS = ["one@example.org", "two@example.org"]
BODY = b"Subject: t\r\n\r\nbody\r\n"
NO_CHUNKING = ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME")
OK = "250 2.0.0 ok"

# (case, extensions, replies after EHLO, expected class, expected code, expected verb)
CASES = [
    # PIPELINING + CHUNKING: MAIL, RCPT, RCPT and BDAT LAST are all on the wire at once.
    ("mail-550-then-reset", EXTENSIONS, ["550 5.7.1 no", CLOSE], PermanentReplyError, 550, "MAIL"),
    (
        "mail-451-then-reset",
        EXTENSIONS,
        ["451 4.3.0 later", CLOSE],
        TransientReplyError,
        451,
        "MAIL",
    ),
    ("mail-421", EXTENSIONS, ["421 4.3.2 bye"], TransientReplyError, 421, "MAIL"),
    (
        "all-rcpt-550-then-reset",
        EXTENSIONS,
        [OK, "550 5.1.1 a", "550 5.1.1 b", CLOSE],
        RecipientsRefusedError,
        550,
        "RCPT",
    ),
    (
        "all-rcpt-450-bdat-554",
        EXTENSIONS,
        [OK, "450 4.2.0 a", "450 4.2.0 b", "554 5.5.1 none"],
        RecipientsRefusedError,
        450,
        "RCPT",
    ),
    ("rcpt-421", EXTENSIONS, [OK, OK, "421 4.3.2 bye"], TransientReplyError, 421, "RCPT"),
    ("bdat-421", EXTENSIONS, [OK, OK, OK, "421 4.3.2 bye"], TransientReplyError, 421, "BDAT"),
    ("bdat-554", EXTENSIONS, [OK, OK, OK, "554 5.6.0 bad"], PermanentReplyError, 554, "BDAT"),
    ("bdat-452", EXTENSIONS, [OK, OK, OK, "452 4.3.1 full"], TransientReplyError, 452, "BDAT"),
    ("one-rcpt-then-reset", EXTENSIONS, [OK, OK, CLOSE], OutcomeUnknownError, None, None),
    ("mail-ok-then-reset", EXTENSIONS, [OK, CLOSE], OutcomeUnknownError, None, None),
    ("bdat-reply-missing", EXTENSIONS, [OK, OK, OK, CLOSE], OutcomeUnknownError, None, None),
    ("accepted", EXTENSIONS, [OK, OK, OK, "250 2.0.0 queued as X"], SendResult, 250, "BDAT"),
    # PIPELINING without CHUNKING: MAIL, RCPT, RCPT, DATA together; the body after 354.
    (
        "data-mail-550",
        NO_CHUNKING,
        ["550 5.7.1 no", "503 a", "503 b", "503 c"],
        PermanentReplyError,
        550,
        "MAIL",
    ),
    (
        "data-250-to-data",
        NO_CHUNKING,
        [OK, OK, OK, "250 2.0.0 what"],
        ProtocolViolationError,
        250,
        "DATA",
    ),
    (
        "data-451-to-data",
        NO_CHUNKING,
        [OK, OK, OK, "451 4.3.0 busy"],
        TransientReplyError,
        451,
        "DATA",
    ),
    ("data-reset-before-354", NO_CHUNKING, [OK, OK, OK, CLOSE], ConnectionLostError, None, None),
    (
        "data-final-missing",
        NO_CHUNKING,
        [OK, OK, OK, "354 go", CLOSE],
        OutcomeUnknownError,
        None,
        None,
    ),
    (
        "data-final-421",
        NO_CHUNKING,
        [OK, OK, OK, "354 go", "421 4.3.2 bye"],
        TransientReplyError,
        421,
        "end of data",
    ),
    (
        "data-all-rcpt-refused",
        NO_CHUNKING,
        [OK, "550 5.1.1 a", "550 5.1.1 b", "354 go", OK, OK],
        RecipientsRefusedError,
        550,
        "RCPT",
    ),
]


def client(port: int) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        "127.0.0.1", port, tls="insecure-cleartext", local_hostname="client.example", timeout=5
    )


def check_range(outcome: object) -> None:
    """No error class carries a code outside its range."""
    if isinstance(outcome, TransientReplyError):
        assert 400 <= outcome.code < 500
    if isinstance(outcome, PermanentReplyError):
        assert 500 <= outcome.code < 600


@pytest.mark.parametrize(
    ("extensions", "replies", "expected", "code", "verb"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_each_reply_order_has_exactly_one_outcome_class(
    extensions: tuple[str, ...],
    replies: list[str],
    expected: type,
    code: int | None,
    verb: str | None,
) -> None:
    script = Script(replies, extensions)
    async with scripted_server(script) as port:
        smtp = client(port)
        await smtp.connect()
        try:
            outcome: object = await smtp.sendmail("a@example.com", RCPTS, BODY)
        except SMTPError as exc:
            outcome = exc
        await smtp.aclose()
    assert type(outcome) is expected, outcome
    check_range(outcome)
    if code is not None:
        reply = outcome.reply if isinstance(outcome, SendResult) else outcome  # type: ignore[attr-defined]
        assert reply.code == code
        verb_of = reply.command.verb if isinstance(outcome, SendResult) else outcome.verb  # type: ignore[attr-defined]
        assert verb_of == verb
    if isinstance(outcome, OutcomeUnknownError):
        accepted = [r for r, rep in zip(RCPTS, replies[1:3], strict=False) if rep == OK]
        assert list(outcome.accepted) == accepted


async def test_a_250_to_data_closes_the_connection_and_carries_the_reply() -> None:
    script = Script([OK, OK, "250 2.0.0 what"], NO_CHUNKING)
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            with pytest.raises(ProtocolViolationError) as caught:
                await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            assert not smtp.is_connected
    assert (caught.value.code, caught.value.text, caught.value.verb) == (250, "what", "DATA")
    assert script.bodies == []  # no body followed a DATA that was not answered 354


async def test_after_a_refusal_the_connection_is_reset_and_reused() -> None:
    script = Script(["550 5.7.1 no", "503 a", "554 5.5.1 none"])
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            with pytest.raises(PermanentReplyError):
                await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            result = await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
    assert result.accepted == ("one@example.org",)
    assert [line.split(" ")[0] for line in script.seen] == [
        "MAIL", "RCPT", "BDAT", "RSET", "MAIL", "RCPT", "BDAT", "QUIT",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        pytest.param(
            ["421 4.3.2 bye"],
            [TransientReplyError, NotSentError, NotSentError],
            id="421-to-first-mail",
        ),
        pytest.param(
            [OK, OK, "250 2.0.0 queued", OK, "421 4.3.2 bye"],
            [SendResult, TransientReplyError, NotSentError],
            id="421-to-second-mail",
        ),
        pytest.param(
            [OK, OK, "250 2.0.0 queued", OK, "550 5.7.1 no", CLOSE],
            [SendResult, PermanentReplyError, OutcomeUnknownError],
            id="550-then-reset-in-the-middle",
        ),
        pytest.param(
            [OK, OK, CLOSE],
            [OutcomeUnknownError, OutcomeUnknownError, OutcomeUnknownError],
            id="reset-after-all-written",
        ),
    ],
)
async def test_window_outcomes_follow_the_same_rules(
    replies: list[str], expected: list[type]
) -> None:
    script = Script(replies)
    items = [("a@example.com", [f"r{i}@example.org"], BODY) for i in range(3)]
    async with scripted_server(script) as port:
        smtp = client(port)
        await smtp.connect()
        outcomes = await smtp.send_batch(items, window=3)
        await smtp.aclose()
    assert [type(o) for o in outcomes] == expected
    for outcome in outcomes:
        check_range(outcome)
    if NotSentError in expected:
        # RFC 5321 3.8: after the 421 the server processed nothing; what it stored is the
        # messages reported sent.
        assert len(script.bodies) >= sum(isinstance(o, SendResult) for o in outcomes)


async def test_data_chain_behind_a_421_is_not_sent() -> None:
    script = Script([OK, OK, "354 go", "421 4.3.2 bye"], NO_CHUNKING)
    items = [("a@example.com", [f"r{i}@example.org"], BODY) for i in range(3)]
    async with scripted_server(script) as port:
        smtp = client(port)
        await smtp.connect()
        outcomes = await smtp.send_batch(items)
        await smtp.aclose()
    assert [type(o) for o in outcomes] == [TransientReplyError, NotSentError, NotSentError]


# -- what each outcome says and carries (each test pins a rule a mutant broke) ---------


async def test_refusal_messages_name_what_the_server_refused() -> None:
    # MAIL, RCPT, BDAT of the first; RSET, MAIL, RCPT, BDAT of the second.
    script = Script(["550 5.7.1 no", "503 a", "554 5.5.1 none", OK, OK, OK, "554 5.6.0 bad"])
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            with pytest.raises(PermanentReplyError) as sender:
                await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            with pytest.raises(PermanentReplyError) as message:
                await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
    assert str(sender.value) == "sender refused: 550 5.7.1 no"
    assert str(message.value) == "message refused: 554 5.6.0 bad"


async def test_a_400_to_one_rcpt_refuses_that_recipient_only() -> None:
    # 400 is the lowest transient code: a refused recipient, not a protocol violation.
    script = Script([OK, OK, "400 4.0.0 not now", OK])
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            result = await smtp.sendmail("a@example.com", RCPTS, BODY)
    assert result.accepted == ("one@example.org",)
    assert [(r, reply.code) for r, reply in result.refused.items()] == [("two@example.org", 400)]


async def test_a_354_to_rcpt_is_a_protocol_violation_that_carries_the_reply() -> None:
    script = Script([OK, "354 what", CLOSE], NO_CHUNKING)
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            with pytest.raises(ProtocolViolationError) as caught:
                await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
    assert (caught.value.code, caught.value.verb) == (354, "RCPT")


async def test_a_result_names_its_sender_and_only_a_single_send_has_a_transcript() -> None:
    script = Script([])
    items = [("a@example.com", [f"r{i}@example.org"], BODY) for i in range(2)]
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            single = await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            batch = await smtp.send_batch(items)
    assert single.sender == "a@example.com"
    assert any("MAIL FROM:<a@example.com>" in str(line) for line in single.transcript)
    assert [(r.sender, r.transcript) for r in batch] == [("a@example.com", ())] * 2  # type: ignore[union-attr]


async def test_messages_sent_counts_each_accepted_message_once() -> None:
    script = Script([OK] * 9 + [OK, OK, "554 5.6.0 bad"])
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            assert smtp.messages_sent == 0
            await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            with pytest.raises(PermanentReplyError):
                await smtp.sendmail("a@example.com", ["one@example.org"], BODY)
            assert smtp.messages_sent == 3


async def test_behind_a_421_not_sent_names_the_421_as_its_cause() -> None:
    script = Script(["421 4.3.2 bye"])
    items = [("a@example.com", [f"r{i}@example.org"], BODY) for i in range(2)]
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            first, second = await smtp.send_batch(items, window=2)
    assert isinstance(first, TransientReplyError)
    assert isinstance(second, NotSentError)
    assert second.__cause__ is first
    assert str(second) == f"not sent: the server closed the connection before it ({first})"


async def test_a_lost_link_is_the_cause_of_unknown_and_not_sent_outcomes() -> None:
    # The DATA chain: the first body went out with the second envelope, then the link broke.
    script = Script([OK, OK, "354 go", CLOSE], NO_CHUNKING)
    items = [("a@example.com", [f"r{i}@example.org"], BODY) for i in range(2)]
    async with scripted_server(script) as port:
        async with client(port) as smtp:
            unknown, not_sent = await smtp.send_batch(items)
    assert isinstance(unknown, OutcomeUnknownError)
    assert isinstance(unknown.__cause__, ConnectionLostError)
    assert isinstance(not_sent, NotSentError)
    assert isinstance(not_sent.__cause__, ConnectionLostError)
    assert str(not_sent) == f"not sent: the connection failed ({not_sent.__cause__})"
