"""send_batch: several transactions in flight, exact per-message outcomes."""

from __future__ import annotations

import anyio
import pytest
from client_helpers import TapeTransport, bytes_reachable

import smtpsubmit
from smtpsubmit.testing import Extension, FakeSMTPServer, Fault, Mode

pytestmark = pytest.mark.anyio

ALL = frozenset(Extension)
NO_CHUNKING = ALL - {Extension.CHUNKING, Extension.BINARYMIME}
NO_PIPELINING = ALL - {Extension.PIPELINING}


def taped_client(server: FakeSMTPServer, tape: list[tuple[str, bytes]]) -> smtpsubmit.SMTPClient:
    async def factory() -> TapeTransport:
        transport = TapeTransport(await anyio.connect_tcp(server.host, server.port))
        transport.tape = tape
        return transport

    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
        transport=factory,
    )


def items(n: int) -> list[tuple[str, list[str], bytes]]:
    return [
        ("a@example.com", [f"r{i}@example.com"], f"Subject: {i}\r\n\r\n.{i}\r\n".encode())
        for i in range(n)
    ]


async def test_window_puts_every_transaction_on_the_wire_before_reading() -> None:
    tape: list[tuple[str, bytes]] = []
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with taped_client(server, tape) as client:
            start = len(tape)
            results = await client.send_batch(items(5), window=8)
        await server.wait_for_messages(5)
        received = [m.data for m in server.messages]
    session = tape[start:]
    first_read = next(i for i, (kind, _) in enumerate(session) if kind == "R")
    assert first_read == 5  # five transactions written before any reply was read
    assert session[1][1].startswith(b"RSET\r\nMAIL FROM:<a@example.com>")
    assert all(isinstance(r, smtpsubmit.SendResult) for r in results)
    assert [r.accepted for r in results] == [(f"r{i}@example.com",) for i in range(5)]  # type: ignore[union-attr]
    assert received == [data for _, _, data in items(5)]


# r3 is the 4th RCPT the server sees when pipelined (r1 still arrives after its MAIL was
# refused) but the 3rd without pipelining, where the client stops at the refused MAIL.
@pytest.mark.parametrize(
    ("extensions", "r3_rcpt"),
    [(ALL, 4), (NO_CHUNKING, 4), (NO_PIPELINING, 3)],
    ids=["bdat-window", "data-chain", "sequential"],
)
async def test_refusal_in_the_middle_is_reported_for_that_message_only(
    extensions: frozenset[Extension], r3_rcpt: int
) -> None:
    faults = (
        Fault.reply("MAIL", nth=2, code=553, enhanced="5.7.1", text="Sender refused"),
        Fault.reply("RCPT", nth=r3_rcpt, code=550, enhanced="5.1.1", text="No such user"),
    )
    batch = items(5)
    batch[3] = ("a@example.com", ["r3@example.com", "extra@example.com"], batch[3][2])
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, faults=faults
    ) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            results = await client.send_batch(batch, window=3)
        await server.wait_for_messages(4)
        delivered = [[r.address for r in m.recipients] for m in server.messages]
    ok0, refused1, ok2, partial3, ok4 = results
    assert isinstance(refused1, smtpsubmit.PermanentReplyError)
    assert (refused1.code, str(refused1.enhanced)) == (553, "5.7.1")
    assert isinstance(partial3, smtpsubmit.SendResult)
    assert partial3.accepted == ("extra@example.com",)
    assert partial3.refused["r3@example.com"].code == 550
    for result, rcpt in [(ok0, "r0"), (ok2, "r2"), (ok4, "r4")]:
        assert isinstance(result, smtpsubmit.SendResult)
        assert result.accepted == (f"{rcpt}@example.com",)
    assert delivered == [
        ["r0@example.com"],
        ["r2@example.com"],
        ["extra@example.com"],
        ["r4@example.com"],
    ]


async def test_data_chain_sends_each_body_with_the_next_envelope() -> None:
    tape: list[tuple[str, bytes]] = []
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=NO_CHUNKING) as server:
        async with taped_client(server, tape) as client:
            await client.send_batch(items(3))
    writes = [data for kind, data in tape if kind == "W"]
    shared = [w for w in writes if w.startswith(b"Subject: 0")]
    assert shared == [
        b"Subject: 0\r\n\r\n..0\r\n.\r\n"
        b"MAIL FROM:<a@example.com> SIZE=18\r\nRCPT TO:<r1@example.com>\r\nDATA\r\n"
    ]
    last_body = [w for w in writes if w.startswith(b"Subject: 2")]
    assert last_body == [b"Subject: 2\r\n\r\n..2\r\n.\r\n"]


async def test_all_recipients_refused_in_a_chain_resets_and_continues() -> None:
    fault = Fault.reply("RCPT", nth=2, code=550, text="no")
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=NO_CHUNKING, faults=(fault,)
    ) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            results = await client.send_batch(items(3))
            assert client.is_connected
        await server.wait_for_messages(2)
    assert isinstance(results[1], smtpsubmit.RecipientsRefusedError)
    assert isinstance(results[0], smtpsubmit.SendResult)
    assert isinstance(results[2], smtpsubmit.SendResult)


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [
        # The window has written message 2 (BDAT LAST) before it reads message 1's reply:
        # its end was written, so it may have been queued. Message 3 never left.
        (ALL, ["SendResult", "OutcomeUnknownError", "OutcomeUnknownError", "NotSentError"]),
        # The chain had written only message 2's envelope with message 1's body.
        (NO_CHUNKING, ["SendResult", "OutcomeUnknownError", "NotSentError", "NotSentError"]),
    ],
    ids=["bdat-window", "data-chain"],
)
async def test_disconnect_mid_batch_marks_sent_messages_unknown_and_others_unsent(
    extensions: frozenset[Extension], expected: list[str]
) -> None:
    fault = Fault.disconnect("END_OF_DATA", nth=2)
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, faults=(fault,)
    ) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            results = await client.send_batch(items(4), window=2)
    assert [type(r).__name__ for r in results] == expected
    assert len(server.messages) == 2  # what the server stored: 1 acknowledged, 1 not


async def test_invalid_item_fails_alone_before_any_io() -> None:
    batch: list[tuple[str, list[str], bytes]] = [
        *items(2),
        ("a@example.com", ["bad\r\naddress"], b"x"),
    ]
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            results = await client.send_batch(batch)
        await server.wait_for_messages(2)
    assert isinstance(results[2], smtpsubmit.MessageError)
    assert all(isinstance(r, smtpsubmit.SendResult) for r in results[:2])


@pytest.mark.parametrize("extensions", [ALL, NO_CHUNKING], ids=["bdat-window", "data-chain"])
async def test_batch_results_do_not_keep_the_bodies_alive(extensions: frozenset[Extension]) -> None:
    body = b"Subject: big\r\n\r\n" + b"x" * 76 * 1000  # 76 kB, one line per 76 octets
    body = body.replace(b"x" * 76, b"x" * 74 + b"\r\n")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            batch = [("a@example.com", ["b@example.com"], body + b"%d\r\n" % i) for i in range(20)]
            results = await client.send_batch(batch)
    assert all(isinstance(r, smtpsubmit.SendResult) for r in results)
    assert bytes_reachable(results) < 100_000  # the 20 bodies are 1.5 MB


async def test_a_window_that_ends_refused_is_reset_before_the_next_batch() -> None:
    # RFC 3030 2: after a failed BDAT the server may still hold the transaction; the next
    # batch on the connection must start with RSET, or its MAIL gets 503 "nested MAIL".
    fault = Fault.reply("RCPT", nth=1, code=550, enhanced="5.1.1", text="No such user")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            [refused] = await client.send_batch(items(1))
            [accepted] = await client.send_batch(items(1))
            [single] = [await client.sendmail("a@example.com", ["z@example.com"], b"x")]
        lines = [e.line.split(" ")[0] for e in server.transcripts[0] if e.direction == "client"]
    assert isinstance(refused, smtpsubmit.RecipientsRefusedError)
    assert isinstance(accepted, smtpsubmit.SendResult)
    assert single.accepted == ("z@example.com",)
    transactions = [v for v in lines if v in ("MAIL", "RCPT", "BDAT", "RSET")]
    refused_first = ["MAIL", "RCPT", "BDAT"]
    assert transactions == [*refused_first, "RSET", *refused_first, *refused_first]
