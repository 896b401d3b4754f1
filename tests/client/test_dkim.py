"""DKIM: the signature covers the octets on the wire, on every path, and nothing else.

The rule: a signer sees the message exactly as it is transmitted (serialised for this
server, Bcc stripped, CRLF, re-encoded to 7 bit without 8BITMIME), and what arrives is its
header field(s) followed by those octets. A recording signer checks that byte for byte;
dkimpy's verifier checks real signatures on what the fake server captured.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from email.message import EmailMessage

import pytest
from client_helpers import make_message
from dkim_keys import rsa_pem, signer, verifies

import smtpsubmit
from smtpsubmit.dkim import DKIMSigner
from smtpsubmit.testing import Extension, FakeSMTPServer, Mode

pytestmark = pytest.mark.anyio

ALL = frozenset(Extension)
NO_CHUNKING = ALL - {Extension.CHUNKING, Extension.BINARYMIME}
NO_8BIT = ALL - {Extension.EIGHTBITMIME, Extension.SMTPUTF8, Extension.BINARYMIME}
#: BDAT and DATA, each with 8BITMIME and without it (then the message is re-encoded).
PATHS = {
    "bdat": ALL,
    "data": NO_CHUNKING,
    "7bit-bdat": NO_8BIT,
    "7bit-data": NO_8BIT - {Extension.CHUNKING},
}
FIELD = b"X-Signed: yes\r\n"


class RecordingSigner:
    """Returns a fixed field and keeps what it was given."""

    def __init__(self, fields: object = FIELD) -> None:
        self.fields = fields
        self.seen: list[bytes] = []

    def sign(self, message: bytes) -> bytes:
        self.seen.append(message)
        return self.fields  # type: ignore[return-value]


def client_for(server: FakeSMTPServer, **options: object) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        server.host,
        server.port,
        tls="implicit",
        ssl_context=server.client_ssl_context(),
        **options,  # type: ignore[arg-type]
    )


def eight_bit_message() -> EmailMessage:
    msg = make_message(subject="Grüße", body="Grüße aus Köln, ça va?\n.dot line\n")
    msg["Bcc"] = "hidden@example.net"
    return msg


# -- the exact octets -----------------------------------------------------------------


@pytest.mark.parametrize("extensions", list(PATHS.values()), ids=list(PATHS))
async def test_the_signer_sees_exactly_what_is_sent_after_it(
    extensions: frozenset[Extension],
) -> None:
    recorder = RecordingSigner()
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server, signer=recorder) as client:
            await client.send_message(eight_bit_message())
        [captured] = server.messages
    [seen] = recorder.seen
    assert captured.data == FIELD + seen
    assert b"hidden@" not in seen  # Bcc stripped before signing
    # Re-encoded to 7 bit before signing when the server lacks 8BITMIME.
    assert seen.isascii() == (Extension.EIGHTBITMIME not in extensions)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
@pytest.mark.parametrize("extensions", list(PATHS.values()), ids=list(PATHS))
async def test_a_dkim_signature_verifies_on_what_the_server_received(
    algorithm: str, extensions: frozenset[Extension]
) -> None:
    dkim_signer = signer(algorithm)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server, signer=dkim_signer) as client:
            await client.send_message(eight_bit_message())
        [captured] = server.messages
    assert captured.data.startswith(b"DKIM-Signature: v=1; a=" + dkim_signer.algorithm.encode())
    assert captured.via == ("BDAT" if Extension.CHUNKING in extensions else "DATA")
    assert captured.data.isascii() == (Extension.EIGHTBITMIME not in extensions)
    assert verifies(captured.data, dkim_signer)
    tampered = captured.data.replace(b"Hi Bob" if b"Hi Bob" in captured.data else b"K", b"X", 1)
    assert not verifies(tampered, dkim_signer)


async def test_signing_before_send_breaks_when_the_server_needs_7_bit() -> None:
    # Why the hook exists: the library re-encodes for a server without 8BITMIME, so a
    # signature made on the 8-bit serialisation beforehand no longer matches.
    dkim_signer = signer()
    msg = eight_bit_message()
    del msg["Bcc"]
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    presigned = dkim_signer.sign(data) + data
    assert verifies(presigned, dkim_signer)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=NO_8BIT) as server:
        async with client_for(server) as client:
            await client.send_message(eight_bit_message())
        [captured] = server.messages
    signature = presigned[: presigned.index(b"\r\n", presigned.index(b" b=")) + 2]
    while presigned[len(signature) : len(signature) + 1] == b" ":  # folded lines of b=
        signature = presigned[: presigned.index(b"\r\n", len(signature)) + 2]
    assert not verifies(signature + captured.data, dkim_signer)


async def test_utf8_addresses_and_headers_are_signed_as_sent_with_smtputf8() -> None:
    dkim_signer = signer("ed25519")
    msg = make_message(sender="jürgen@example.com", to="zoë@example.org", subject="Ünïcode")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, signer=dkim_signer) as client:
            await client.send_message(msg)
        [captured] = server.messages
    assert "SMTPUTF8" in captured.mail_from_params
    assert "From: jürgen@example.com".encode() in captured.data  # UTF-8 header (RFC 6532)
    assert verifies(captured.data, dkim_signer)


async def test_raw_bytes_are_signed_after_their_line_ends_are_normalised() -> None:
    recorder = RecordingSigner()
    raw = b"From: a@example.com\nTo: b@example.com\nSubject: raw\n\nline one\rline two\n"
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, signer=recorder) as client:
            await client.sendmail("a@example.com", ["b@example.com"], raw)
        [captured] = server.messages
    [seen] = recorder.seen
    assert seen == raw.replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert captured.data == FIELD + seen


async def test_a_retry_signs_its_message_again() -> None:
    dkim_signer = signer()
    from smtpsubmit.testing import Fault

    fault = Fault.reply("RCPT", code=451, text="later")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, faults=[fault]) as server:
        retry = smtpsubmit.RetryPolicy(attempts=2, backoff=0)
        async with client_for(server, signer=dkim_signer, retry=retry) as client:
            result = await client.send_message(make_message())
        [captured] = server.messages
    assert result.attempts == 2
    assert captured.data.count(b"DKIM-Signature:") == 1
    assert verifies(captured.data, dkim_signer)


# -- every entry point -------------------------------------------------------------------


async def test_send_batch_signs_every_message_in_a_window() -> None:
    recorder = RecordingSigner()
    items = [make_message(subject=f"n{i}") for i in range(5)]
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, signer=recorder) as client:
            outcomes = await client.send_batch(items)
        captured = sorted(server.messages, key=lambda m: m.message["Subject"])
    assert all(isinstance(o, smtpsubmit.SendResult) for o in outcomes)
    assert [m.data for m in captured] == [FIELD + seen for seen in recorder.seen]


@pytest.mark.parametrize("extensions", [ALL, NO_CHUNKING], ids=["window", "data-chain"])
async def test_the_pool_signs_every_message(extensions: frozenset[Extension]) -> None:
    dkim_signer = signer("ed25519")
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with smtpsubmit.SMTPPool(
            server.host,
            server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            signer=dkim_signer,
            max_connections=2,
        ) as pool:
            await pool.send_batch([make_message(subject=f"n{i}") for i in range(6)])
            await pool.sendmail("a@example.com", "b@example.com", b"From: a@example.com\r\n\r\nx")
    assert len(server.messages) == 7
    assert all(verifies(m.data, dkim_signer) for m in server.messages)


async def test_send_takes_a_signer() -> None:
    dkim_signer = signer()
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        await smtpsubmit.send(
            make_message(),
            host=server.host,
            port=server.port,
            tls="implicit",
            ssl_context=server.client_ssl_context(),
            signer=dkim_signer,
        )
    [captured] = server.messages
    assert verifies(captured.data, dkim_signer)


# -- what cannot be signed ---------------------------------------------------------------


async def body_pieces() -> AsyncIterator[bytes]:
    yield b"From: a@example.com\r\n\r\nstreamed\r\n"


@pytest.mark.parametrize("kind", ["file", "async-iterable"])
async def test_a_streamed_body_is_refused_before_any_transaction(kind: str) -> None:
    recorder = RecordingSigner()
    body = io.BytesIO(b"From: a@example.com\r\n\r\nx\r\n") if kind == "file" else body_pieces()
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, signer=recorder) as client:
            with pytest.raises(smtpsubmit.MessageError, match="streamed body") as caught:
                await client.sendmail("a@example.com", ["b@example.com"], body)
            assert client.is_connected  # the session is untouched: usable
            await client.sendmail("a@example.com", ["b@example.com"], b"Subject: ok\r\n\r\nok")
        verbs = [e.line.split(" ")[0] for t in server.transcripts for e in t]
    assert "read it into bytes first" in str(caught.value)
    assert verbs.count("MAIL") == 1  # only the second message's
    assert len(recorder.seen) == 1


async def test_binary_content_is_not_sent_as_binarymime_when_signing() -> None:
    raw = b"Subject: bin\r\n\r\n" + b"\x00\xff" * 600 + b"\r\n"  # a 1200-octet line
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server) as client:
            await client.sendmail("a@example.com", ["b@example.com"], raw)  # BINARYMIME
        async with client_for(server, signer=RecordingSigner()) as client:
            with pytest.raises(smtpsubmit.MessageError, match="longer than 998"):
                await client.sendmail("a@example.com", ["b@example.com"], raw)
    [captured] = server.messages
    assert captured.mail_from_params.get("BODY") == "BINARYMIME"


BAD_FIELDS = {
    "not-bytes": ("X-Signed: yes\r\n", "not the bytes of header fields"),
    "no-crlf-at-end": (b"X-Signed: yes", "must end with CRLF"),
    "not-a-field": (b"no colon here\r\n", "no header field"),
    "bare-lf": (b"X-Signed: a\nb\r\n", "bare CR, LF or NUL"),
    "empty-line": (b"X-Signed: a\r\n\r\n", "line 2"),
    "unfolded-line": (b"X-Signed: a\r\nnot a continuation\r\n", "line 2"),
    "long-line": (b"X-Signed: " + b"a" * 990 + b"\r\n", "longer than 998"),
    "8-bit": ("X-Signed: ü\r\n".encode(), "8-bit"),
}


@pytest.mark.parametrize("name", list(BAD_FIELDS))
async def test_a_signer_that_would_break_the_message_is_refused_before_any_io(
    name: str,
) -> None:
    fields, complaint = BAD_FIELDS[name]
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, signer=RecordingSigner(fields)) as client:
            with pytest.raises(smtpsubmit.MessageError, match=complaint):
                await client.sendmail("a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx")
            assert client.is_connected
    assert server.messages == []
    assert not any(e.line.startswith("MAIL") for t in server.transcripts for e in t)


async def test_a_signer_that_raises_fails_the_message_with_its_error_as_cause() -> None:
    class Broken:
        def sign(self, message: bytes) -> bytes:
            raise ValueError("no key today")

    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, signer=Broken()) as client:
            with pytest.raises(smtpsubmit.MessageError, match="no key today") as caught:
                await client.send_message(make_message())
    assert isinstance(caught.value.__cause__, ValueError)
    assert server.messages == []


async def test_a_message_without_from_cannot_be_dkim_signed() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS) as server:
        async with client_for(server, signer=signer()) as client:
            with pytest.raises(smtpsubmit.MessageError, match="From header field MUST be signed"):
                await client.sendmail("a@example.com", "b@example.com", b"Subject: x\r\n\r\nx")
    assert server.messages == []


def test_the_signer_keyword_is_checked_before_any_io() -> None:
    with pytest.raises(smtpsubmit.ArgumentError, match="signer") as caught:
        smtpsubmit.SMTPClient("smtp.example.com", 465, signer=object())  # type: ignore[arg-type]
    assert caught.value.arguments == ("signer",)
    assert isinstance(caught.value, TypeError)
    with pytest.raises(smtpsubmit.ArgumentError, match="signer"):
        smtpsubmit.SMTPPool("smtp.example.com", 465, signer="key")  # type: ignore[arg-type]


def test_a_signer_is_never_shown_with_its_key() -> None:
    dkim_signer = signer()
    client = smtpsubmit.SMTPClient("smtp.example.com", 465, signer=dkim_signer)
    key_lines = [line.decode() for line in rsa_pem().splitlines() if b"-" not in line]
    for text in (repr(dkim_signer), repr(client), str(client.__dict__)):
        assert not any(line in text for line in key_lines)
    assert repr(dkim_signer) == (
        "DKIMSigner(domain='example.com', selector='s2026', algorithm='rsa-sha256', "
        "private_key='********')"
    )
    assert isinstance(dkim_signer, DKIMSigner)
