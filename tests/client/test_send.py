"""Sending: success paths, envelopes, extensions, per-recipient results."""

from __future__ import annotations

from email.message import EmailMessage

import anyio
import pytest
from client_helpers import bytes_reachable, make_message

import smtpsubmit
from smtpsubmit.testing import Extension, FakeSMTPServer, Fault, Mode
from smtpsubmit.transport import AnyIOTransport

pytestmark = pytest.mark.anyio

USERS = {"alice": "s3cret-pässword"}
ALL = frozenset(Extension)


def client_verbs(server: FakeSMTPServer) -> list[str]:
    return [
        e.line.split(" ")[0].upper()
        for t in server.transcripts
        for e in t
        if e.direction == "client"
    ]


def client_for(server: FakeSMTPServer, **options: object) -> smtpsubmit.SMTPClient:
    tls = {Mode.IMPLICIT_TLS: "implicit", Mode.STARTTLS: "starttls"}.get(
        server.mode, smtpsubmit.TLSMode.INSECURE_CLEARTEXT
    )
    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls=tls,
        ssl_context=server.client_ssl_context(),
        local_hostname="client.example",
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("mode", [Mode.IMPLICIT_TLS, Mode.STARTTLS])
async def test_send_message_over_tls_with_auth_delivers_exact_content(mode: Mode) -> None:
    msg = make_message(to="bob@example.com, carol@example.org", Bcc="dave@example.net")
    async with FakeSMTPServer(mode=mode, users=USERS, require_auth=True) as server:
        async with client_for(server, username="alice", password=USERS["alice"]) as client:
            result = await client.send_message(msg)
            assert client.tls_info is not None
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert result.accepted == ("bob@example.com", "carol@example.org", "dave@example.net")
    assert result.refused == {}
    assert result.reply.code == 250
    assert result.queue_id == captured.queue_id
    assert captured.tls is True
    assert captured.auth_identity == "alice"
    assert captured.mail_from == "alice@example.com"
    assert [r.address for r in captured.recipients] == list(result.accepted)
    assert b"Bcc" not in captured.data
    assert b"dave@example.net" not in captured.data
    assert captured.message["Subject"] == "Hello"
    assert captured.message.get_content() == "Hi Bob,\n.a line starting with a dot\n"


@pytest.mark.parametrize(
    ("extensions", "via"),
    [
        (ALL, "BDAT"),
        (ALL - {Extension.CHUNKING, Extension.BINARYMIME}, "DATA"),
        (ALL - {Extension.PIPELINING}, "BDAT"),
        (ALL - {Extension.PIPELINING, Extension.CHUNKING, Extension.BINARYMIME}, "DATA"),
    ],
)
async def test_raw_bytes_arrive_byte_identical_whatever_the_extensions(
    extensions: frozenset[Extension], via: str
) -> None:
    data = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: raw\r\n\r\n"
        b".leading dot\r\n..two dots\r\nlast line without newline"
    )
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            result = await client.sendmail("a@example.com", ["b@example.com"], data)
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert captured.via == via
    expected = data if via == "BDAT" else data + b"\r\n"  # DATA always ends lines with CRLF
    assert captured.data == expected
    assert result.accepted == ("b@example.com",)


class RecordingTransport(AnyIOTransport):
    """A real TCP transport that remembers every write: what went out in one segment."""

    writes: list[bytes]

    async def send(self, data: bytes) -> None:
        self.writes.append(data)
        await super().send(data)


async def test_pipelining_sends_envelope_and_body_in_one_write() -> None:
    recorder: list[bytes] = []

    async def factory() -> RecordingTransport:
        transport = RecordingTransport(await anyio.connect_tcp(server.host, server.port))
        transport.writes = recorder
        return transport

    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, transport=factory) as client:
            await client.sendmail("a@example.com", ["b@example.com", "c@example.com"], b"x\r\n")
    envelope = [w for w in recorder if w.startswith(b"MAIL")]
    assert envelope == [
        b"MAIL FROM:<a@example.com> SIZE=3\r\nRCPT TO:<b@example.com>\r\n"
        b"RCPT TO:<c@example.com>\r\nBDAT 3 LAST\r\nx\r\n"
    ]


async def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    recorder: list[bytes] = []

    async def factory() -> RecordingTransport:
        transport = RecordingTransport(await anyio.connect_tcp(server.host, server.port))
        transport.writes = recorder
        return transport

    extensions = ALL - {Extension.PIPELINING, Extension.CHUNKING, Extension.BINARYMIME}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server, transport=factory) as client:
            await client.sendmail("a@example.com", ["b@example.com"], b".x")
    start = next(i for i, w in enumerate(recorder) if w.startswith(b"MAIL"))
    assert recorder[start : start + 4] == [
        b"MAIL FROM:<a@example.com> SIZE=2\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        b"DATA\r\n",
        b"..x\r\n.\r\n",  # a small body and its end marker share one segment
    ]


async def test_several_messages_reuse_one_connection() -> None:
    async with FakeSMTPServer(mode=Mode.STARTTLS, users=USERS) as server:
        async with client_for(server, username="alice", password=USERS["alice"]) as client:
            for i in range(5):
                await client.send_message(make_message(subject=f"n{i}"))
        await server.wait_for_messages(5)
        subjects = [m.message["Subject"] for m in server.messages]
        connections = len(server.transcripts)
    assert subjects == [f"n{i}" for i in range(5)]
    assert connections == 1


async def test_partial_recipient_refusal_is_reported_per_recipient() -> None:
    fault = Fault.reply("RCPT", nth=2, code=550, enhanced="5.1.1", text="No such user")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server) as client:
            result = await client.sendmail(
                "a@example.com", ["b@example.com", "ghost@example.com", "c@example.com"], b"hi"
            )
        await server.wait_for_messages(1)
        delivered_to = [r.address for r in server.messages[0].recipients]
    assert result.accepted == ("b@example.com", "c@example.com")
    refusal = result.refused["ghost@example.com"]
    assert (refusal.code, str(refusal.enhanced), refusal.text) == (550, "5.1.1", "No such user")
    assert not result.ok
    assert delivered_to == ["b@example.com", "c@example.com"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_all_recipients_refused_raises_with_every_reply(pipelining: bool) -> None:
    extensions = ALL if pipelining else ALL - {Extension.PIPELINING}
    fault = Fault.reply("RCPT", nth=1, times=2, code=450, enhanced="4.2.0", text="Greylisted")
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, faults=(fault,)
    ) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.RecipientsRefusedError) as info:
                await client.sendmail("a@example.com", ["b@example.com", "c@example.com"], b"x")
            # The session is still usable afterwards (RSET cleaned it up).
            result = await client.sendmail("a@example.com", ["d@example.com"], b"y")
        assert len(server.messages) == 1
    error = info.value
    assert set(error.refused) == {"b@example.com", "c@example.com"}
    assert error.transient
    assert error.code == 450
    assert str(error.enhanced) == "4.2.0"
    assert result.accepted == ("d@example.com",)


async def test_sender_refused_raises_permanent_error_with_code_and_command() -> None:
    fault = Fault.reply("MAIL", code=553, enhanced="5.7.1", text="Sender not allowed")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.PermanentReplyError) as info:
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
    assert info.value.code == 553
    assert str(info.value.enhanced) == "5.7.1"
    assert info.value.text == "Sender not allowed"
    assert info.value.command == "MAIL FROM:<a@example.com> SIZE=1"


async def test_final_reply_failure_is_a_reply_error() -> None:
    fault = Fault.reply("END_OF_DATA", code=554, enhanced="5.6.0", text="Content rejected")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=(fault,)) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.PermanentReplyError, match="Content rejected"):
                await client.sendmail("a@example.com", ["b@example.com"], b"x")


async def test_eight_bit_message_uses_8bitmime_when_offered() -> None:
    msg = make_message(body="Grüße\n")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            await client.send_message(msg)
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert captured.mail_from_params.get("BODY") == "8BITMIME"
    assert captured.message.get_content() == "Grüße\n"


async def test_eight_bit_message_is_reencoded_to_7bit_without_8bitmime() -> None:
    msg = make_message(body="Grüße\n")
    extensions = ALL - {Extension.EIGHTBITMIME, Extension.SMTPUTF8}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            await client.send_message(msg)
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert "BODY" not in captured.mail_from_params
    assert captured.data.isascii()
    assert captured.message.get_content() == "Grüße\n"


async def test_raw_eight_bit_bytes_without_8bitmime_fail_before_mail() -> None:
    extensions = ALL - {Extension.EIGHTBITMIME, Extension.SMTPUTF8, Extension.BINARYMIME}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.MessageError, match="8BITMIME"):
                await client.sendmail("a@example.com", ["b@example.com"], "é".encode())
        assert "MAIL" not in client_verbs(server)


async def test_utf8_address_uses_smtputf8_when_offered() -> None:
    msg = make_message(sender="jöran@bücher.example", to="用户@例子.example")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            result = await client.send_message(msg)
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert "SMTPUTF8" in captured.mail_from_params
    assert captured.mail_from == "jöran@bücher.example"
    assert result.accepted == ("用户@例子.example",)


async def test_non_ascii_domain_becomes_idna_without_smtputf8() -> None:
    extensions = ALL - {Extension.SMTPUTF8}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            result = await client.sendmail("a@example.com", ["bob@straße.example"], b"x")
            with pytest.raises(smtpsubmit.MessageError, match="non-ASCII local part"):
                await client.sendmail("a@example.com", ["jörg@example.com"], b"x")
    # IDNA 2008 keeps ß (IDNA 2003, the stdlib codec, would map it to "ss").
    assert result.accepted == ("bob@xn--strae-oqa.example",)


async def test_message_over_the_advertised_size_fails_before_mail() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, max_message_size=1000) as server:
        async with client_for(server) as client:
            assert client.extensions.size == 1000
            with pytest.raises(smtpsubmit.MessageError, match="at most 1000"):
                await client.sendmail("a@example.com", ["b@example.com"], b"x\r\n" * 501)
        assert "MAIL" not in client_verbs(server)


async def test_dsn_parameters_reach_the_server() -> None:
    dsn = smtpsubmit.DSN(notify=("SUCCESS", "FAILURE"), ret="HDRS", envid="id+42=x")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            await client.sendmail("a@example.com", ["b@example.com"], b"x", dsn=dsn)
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert captured.mail_from_params["RET"] == "HDRS"
    assert captured.mail_from_params["ENVID"] == "id+42=x"
    assert captured.recipients[0].params["NOTIFY"] == "SUCCESS,FAILURE"


async def test_null_reverse_path_is_sent_as_empty_brackets() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            await client.sendmail("", ["b@example.com"], b"bounce")
        await server.wait_for_messages(1)
        assert server.messages[0].mail_from == ""


@pytest.mark.parametrize(
    ("sender", "recipient"),
    [
        ("a@example.com", "b@example.com\r\nRCPT TO:<evil@example.com>"),
        ("a@example.com\r\nRSET", "b@example.com"),
        ("a@example.com", "b\x00@example.com"),
        ("a@example.com", "not-an-address"),
    ],
)
async def test_bad_address_fails_before_any_io(sender: str, recipient: str) -> None:
    # Port 9 on loopback: nothing listens, so any I/O attempt would be a ConnectError.
    client = smtpsubmit.SMTPClient("127.0.0.1", 9, tls="implicit")
    with pytest.raises(smtpsubmit.MessageError):
        await client.sendmail(sender, [recipient], b"x")
    assert not client.is_connected


async def test_header_injection_in_a_legacy_message_is_refused() -> None:
    from email.message import Message

    legacy = Message()
    legacy["From"] = "a@example.com"
    legacy["To"] = "b@example.com"
    legacy["Subject"] = "hi\r\nBcc: evil@example.com"
    legacy.set_payload("x")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.MessageError, match="header injection"):
                await client.send_message(legacy)
        assert "MAIL" not in client_verbs(server)


async def test_raw_line_over_998_octets_is_refused_without_binarymime() -> None:
    extensions = ALL - {Extension.BINARYMIME}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.MessageError, match="longer than 998"):
                await client.sendmail("a@example.com", ["b@example.com"], b"a" * 999 + b"\r\n")


@pytest.mark.parametrize("pipelining", [True, False])
async def test_content_that_is_not_text_goes_as_binarymime_byte_for_byte(pipelining: bool) -> None:
    data = b"Subject: blob\r\n\r\n" + b"a" * 5000 + b"\n\x00\xff\r" + bytes(range(256))
    extensions = ALL if pipelining else ALL - {Extension.PIPELINING}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            await client.sendmail("a@example.com", ["b@example.com"], data)
        await server.wait_for_messages(1)
        captured = server.messages[0]
    assert captured.mail_from_params["BODY"] == "BINARYMIME"
    assert captured.via == "BDAT"
    assert captured.data == data  # no line-end conversion for binary content


@pytest.mark.parametrize("extensions", [ALL, ALL - {Extension.CHUNKING, Extension.BINARYMIME}])
async def test_bare_line_ends_become_crlf_with_bdat_and_with_data(
    extensions: frozenset[Extension],
) -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            await client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\n\nbare\rlf\n")
        await server.wait_for_messages(1)
        assert server.messages[0].data == b"Subject: x\r\n\r\nbare\r\nlf\r\n"


async def test_resent_headers_define_the_envelope(message: EmailMessage) -> None:
    message["Resent-Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    message["Resent-From"] = "forwarder@example.com"
    message["Resent-To"] = "new@example.com"
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            result = await client.send_message(message)
    assert result.sender == "forwarder@example.com"
    assert result.accepted == ("new@example.com",)


async def test_result_transcript_has_the_transaction_without_secrets() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, users=USERS) as server:
        async with client_for(server, username="alice", password=USERS["alice"]) as client:
            result = await client.sendmail("a@example.com", ["b@example.com"], b"x")
    lines = [str(line) for line in result.transcript]
    assert lines[0] == "C: MAIL FROM:<a@example.com> SIZE=1"
    assert lines[-1].startswith("S: 250 2.0.0 Ok: queued as ")
    assert all(USERS["alice"] not in line for line in lines)


async def test_dsn_orcpt_sends_each_recipient_as_its_original() -> None:
    dsn = smtpsubmit.DSN(notify=("FAILURE",), orcpt=True)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            await client.sendmail("a@example.com", ["b+tag@example.com"], b"x", dsn=dsn)
        await server.wait_for_messages(1)
        params = server.messages[0].recipients[0].params
    assert params["ORCPT"] == "rfc822;b+tag@example.com"  # xtext-decoded by the server


async def test_default_ehlo_name_is_a_domain_or_our_address_literal() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPClient(
            server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
        ) as client:
            await client.noop()
            name = client.local_hostname
        seen = server.transcripts[0][0:3]
    assert name is not None
    assert name == "[127.0.0.1]" or "." in name
    assert any(e.line == f"EHLO {name}" for e in seen if e.direction == "client")


async def test_source_address_selects_the_local_ip() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with smtpsubmit.SMTPClient(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            source_address="127.0.0.2",
        ) as client:
            await client.sendmail("a@example.com", ["b@example.com"], b"x")
        await server.wait_for_messages(1)
        peer = server.messages[0].peer
    assert peer[0] == "127.0.0.2"


@pytest.mark.parametrize("chunking", [True, False])
async def test_a_result_does_not_keep_the_message_body_alive(chunking: bool) -> None:
    body = b"Subject: big\r\n\r\n" + b"x" * 76 + b"\r\n" * 1
    body *= 40_000  # about 3 MB, several streamed chunks
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, chunking=chunking) as client:
            result = await client.sendmail("a@example.com", ["b@example.com"], body)
    assert bytes_reachable(result) < 64_000  # before reading the transcript (which renders it)
    assert any("octets" in line.text or "BDAT" in line.text for line in result.transcript)


async def test_a_send_from_an_already_cancelled_scope_writes_nothing() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            await client.noop()
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.sendmail("a@example.com", ["b@example.com"], b"x")
            assert client.is_connected  # nothing half-done: the connection stays usable
            await client.sendmail("a@example.com", ["c@example.com"], b"y")
        await server.wait_for_messages(1)
        mails = [
            e.line
            for t in server.transcripts
            for e in t
            if e.direction == "client" and e.line.startswith("MAIL")
        ]
    assert len(mails) == 1
    assert len(server.transcripts) == 1
