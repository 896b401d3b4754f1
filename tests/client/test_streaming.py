"""Bodies streamed from files and async iterators, in bounded chunks."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import smtpsubmit
from smtpsubmit.testing import Extension, FakeSMTPServer, Mode

pytestmark = pytest.mark.anyio

ALL = frozenset(Extension)
NO_CHUNKING = ALL - {Extension.CHUNKING, Extension.BINARYMIME}
NO_8BIT = ALL - {Extension.EIGHTBITMIME, Extension.SMTPUTF8}
LINE = b"0123456789" * 7 + b"\r\n"
BIG = b"Subject: big\r\n\r\n" + b"".join(
    (b"." if i % 5 == 0 else b"") + LINE for i in range(40_000)
)  # ~2.9 MB: several 1 MiB chunks


def client_for(server: FakeSMTPServer) -> smtpsubmit.SMTPClient:
    return smtpsubmit.SMTPClient(
        server.host, server.port, tls="implicit", ssl_context=server.client_ssl_context()
    )


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("extensions", [ALL, NO_CHUNKING], ids=["bdat", "data"])
async def test_file_body_is_streamed_and_arrives_intact(
    tmp_path: Path, extensions: frozenset[Extension]
) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(BIG)
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, max_message_size=None
    ) as server:
        async with client_for(server) as client:
            with path.open("rb") as body:
                result = await client.sendmail("a@example.com", ["b@example.com"], body)
        await server.wait_for_messages(1)
        captured = server.messages[0]
        bdat_lines = [e.line for t in server.transcripts for e in t if e.line.startswith("BDAT")]
    assert result.accepted == ("b@example.com",)
    assert captured.data == BIG
    if extensions == ALL:
        assert len(bdat_lines) == 3  # 1 MiB, 1 MiB, the rest with LAST
        assert bdat_lines[-1].endswith(" LAST")


async def test_async_iterator_body_with_odd_piece_sizes() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, max_message_size=None) as server:
        async with client_for(server) as client:
            await client.sendmail("a@example.com", ["b@example.com"], pieces(BIG, 333_333))
        await server.wait_for_messages(1)
        assert server.messages[0].data == BIG


async def test_size_of_a_file_is_declared_and_checked_before_sending(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(b"Subject: x\r\n\r\n" + LINE * 20)
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, max_message_size=1000) as server:
        async with client_for(server) as client:
            with path.open("rb") as body, pytest.raises(smtpsubmit.MessageError, match="at most"):
                await client.sendmail("a@example.com", ["b@example.com"], body)
        assert server.messages == []


@pytest.mark.parametrize("extensions", [ALL, NO_CHUNKING], ids=["bdat", "data"])
async def test_long_line_midway_aborts_without_delivering(
    extensions: frozenset[Extension],
) -> None:
    bad = BIG + b"x" * 1200 + b"\r\n"
    async with FakeSMTPServer(
        mode=Mode.IMPLICIT_TLS, extensions=extensions, max_message_size=None
    ) as server:
        async with client_for(server) as client:
            with pytest.raises(smtpsubmit.MessageError, match="longer than 998"):
                await client.sendmail("a@example.com", ["b@example.com"], pieces(bad, 1 << 20))
            assert not client.is_connected
            await client.sendmail("a@example.com", ["b@example.com"], b"Subject: next\r\n\r\nok")
        await server.wait_for_messages(1)
        assert [m.message["Subject"] for m in server.messages] == ["next"]


async def test_eight_bit_stream_without_8bitmime_is_refused() -> None:
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=NO_8BIT) as server:
        async with client_for(server) as client:
            body = io.BytesIO("Subject: x\r\n\r\nGrüße\r\n".encode())
            with pytest.raises(smtpsubmit.MessageError, match="8BITMIME"):
                await client.sendmail("a@example.com", ["b@example.com"], body)
        assert server.messages == []


@pytest.mark.parametrize("extensions", [ALL, NO_CHUNKING], ids=["bdat", "data"])
async def test_streamed_bare_line_ends_become_crlf_even_split_across_pieces(
    extensions: frozenset[Extension],
) -> None:
    body = b"Subject: x\n\nbare\rcr then lf\r\nend\r"
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, extensions=extensions) as server:
        async with client_for(server) as client:
            # 4-octet pieces put the CR of "\r\n" and the final CR on piece boundaries.
            await client.sendmail("a@example.com", ["b@example.com"], pieces(body, 4))
        await server.wait_for_messages(1)
        data = server.messages[0].data
    assert data == b"Subject: x\r\n\r\nbare\r\ncr then lf\r\nend\r\n"
