"""DATA body encoding: CRLF normalisation, dot-stuffing, end of data, line limits."""

from __future__ import annotations

import pytest

from smtpsubmit.protocol import LocalProtocolError
from smtpsubmit.protocol._data import (
    MAX_TEXT_LINE,
    DataEncoder,
    LineLimit,
    _long_line_pattern,
    encode_data,
    normalize_newlines,
)


def encode_in_pieces(pieces: list[bytes], *, max_line: int | None = MAX_TEXT_LINE) -> bytes:
    encoder = DataEncoder(max_line=max_line)
    return b"".join(encoder.feed(piece) for piece in pieces) + encoder.end()


def three_ways(body: bytes) -> list[bytes]:
    """The body all at once, one byte at a time, and in two halves."""
    half = len(body) // 2
    return [
        encode_in_pieces([body]),
        encode_in_pieces([body[i : i + 1] for i in range(len(body))]),
        encode_in_pieces([body[:half], b"", body[half:]]),
    ]


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (b"", b".\r\n"),
        (b"hello\r\n", b"hello\r\n.\r\n"),
        (b"hello", b"hello\r\n.\r\n"),  # a CRLF is added before the terminator
        (b"a\nb\n", b"a\r\nb\r\n.\r\n"),  # bare LF
        (b"a\rb\r", b"a\r\nb\r\n.\r\n"),  # bare CR
        (b"a\r\rb", b"a\r\n\r\nb\r\n.\r\n"),
        (b"a\n\rb", b"a\r\n\r\nb\r\n.\r\n"),  # LF CR is two line ends
        (b"a\r\n\nb", b"a\r\n\r\nb\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),  # the first line is stuffed too
        (b".hidden\r\n", b"..hidden\r\n.\r\n"),
        (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),  # a lone dot cannot end the data
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r.b", b"a\r\n..b\r\n.\r\n"),
        (b"a\r\n..b\r\n", b"a\r\n...b\r\n.\r\n"),  # one more dot, whatever the count
        (b"a.b\r\n", b"a.b\r\n.\r\n"),  # dots inside a line stay
        (b"\r\n", b"\r\n.\r\n"),
        (b"\r", b"\r\n.\r\n"),
        (b"\n", b"\r\n.\r\n"),
        (b"\x00\xff8bit\r\n", b"\x00\xff8bit\r\n.\r\n"),
    ],
)
def test_body_encoding_is_exact_however_it_is_split(body: bytes, wire: bytes) -> None:
    assert encode_data(body) == wire
    assert three_ways(body) == [wire] * 3


def test_cr_at_end_of_chunk_waits_for_the_next_chunk() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"line\r") == b"line"  # the CR is held back
    assert encoder.feed(b"\n.next") == b"\r\n..next"
    assert encoder.end() == b"\r\n.\r\n"


def test_held_back_cr_followed_by_text_is_a_line_end() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"a\r") == b"a"
    assert encoder.feed(b"b") == b"\r\nb"
    assert encoder.end() == b"\r\n.\r\n"


def test_held_back_cr_is_written_at_the_end() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"a\r") == b"a"
    assert encoder.end() == b"\r\n.\r\n"


def test_chunk_of_a_single_cr_then_dot() -> None:
    assert encode_in_pieces([b"a", b"\r", b".", b"b"]) == b"a\r\n..b\r\n.\r\n"


def test_dot_at_start_of_a_chunk_after_a_finished_line_is_stuffed() -> None:
    assert encode_in_pieces([b"a\r\n", b".b"]) == b"a\r\n..b\r\n.\r\n"


def test_dot_at_start_of_a_chunk_in_the_middle_of_a_line_is_not_stuffed() -> None:
    assert encode_in_pieces([b"a", b".b"]) == b"a.b\r\n.\r\n"


def test_empty_chunks_change_nothing() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"") == b""
    assert encoder.feed(b".") == b".."
    assert encoder.feed(b"") == b""
    assert encoder.end() == b"\r\n.\r\n"


def test_encoder_can_be_reused_after_end() -> None:
    encoder = DataEncoder()
    assert encoder.feed(b"x" * 998) == b"x" * 998
    assert encoder.end() == b"\r\n.\r\n"
    assert encoder.feed(b".x" * 499) == b".." + b"x." * 498 + b"x"
    assert encoder.end() == b"\r\n.\r\n"


def test_normalize_newlines() -> None:
    assert normalize_newlines(b"a\rb\nc\r\nd\n\re") == b"a\r\nb\r\nc\r\nd\r\n\r\ne"


# -- line length (RFC 5321 4.5.3.1.6) --------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 998,
        b"x" * 998 + b"\r\n" + b"y" * 998 + b"\r\n",
        b"x" * 998 + b"\r" + b"y" * 998 + b"\n" + b"z" * 998,
        b"." * 998,  # stuffing makes 999 on the wire, but the limit is on the content
    ],
)
def test_lines_of_998_octets_are_accepted(body: bytes) -> None:
    for wire in three_ways(body):
        assert wire == encode_data(body)


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 999,
        b"short\r\n" + b"x" * 999 + b"\r\n",
        b"short\n" + b"x" * 999,
        b"x" * 500 + b"\r\n" + b"y" * 999 + b"\r\n" + b"z" * 5,
    ],
)
def test_line_of_999_octets_refused(body: bytes) -> None:
    with pytest.raises(LocalProtocolError, match="message line longer than 998 octets"):
        encode_data(body)


@pytest.mark.parametrize(
    "pieces",
    [
        [b"x" * 500, b"x" * 499],
        [b"a\r\n" + b"x" * 500, b"x" * 499 + b"\r\n"],
        [b"x" * 998, b"x"],
        [b"x" * 998, b"", b"x\r\n"],
        [b"x" * 400, b"x" * 400, b"x" * 199],
    ],
)
def test_long_line_split_across_chunks_refused(pieces: list[bytes]) -> None:
    with pytest.raises(LocalProtocolError, match="longer than 998"):
        encode_in_pieces(pieces)


def test_line_one_byte_at_a_time_refused_at_byte_999() -> None:
    encoder = DataEncoder()
    for _ in range(998):
        encoder.feed(b"x")
    with pytest.raises(LocalProtocolError):
        encoder.feed(b"x")


@pytest.mark.parametrize(
    "pieces",
    [
        [b"x" * 998 + b"\r", b"\n" + b"y" * 998],
        [b"x" * 998 + b"\r", b"y" * 998],  # the held-back CR ends the line
        [b"x" * 998 + b"\n", b"y" * 998],
        [b"x" * 500, b"x" * 498 + b"\r\n" + b"y" * 10, b"y" * 988],
    ],
)
def test_line_length_restarts_after_a_line_end_in_any_chunk(pieces: list[bytes]) -> None:
    assert encode_in_pieces(pieces).endswith(b"y" * 998 + b"\r\n.\r\n")


def test_line_limit_can_be_changed_or_switched_off() -> None:
    assert encode_data(b"x" * 5000, max_line=None) == b"x" * 5000 + b"\r\n.\r\n"
    assert encode_in_pieces([b"x" * 3000, b"x" * 3000], max_line=None).startswith(b"x" * 6000)
    assert encode_data(b"x" * 10, max_line=10) == b"x" * 10 + b"\r\n.\r\n"
    with pytest.raises(LocalProtocolError, match="longer than 10 octets"):
        encode_data(b"x" * 11, max_line=10)


def test_the_long_line_search_is_anchored_at_line_starts() -> None:
    # Unanchored, the search rescans a long line from every offset: quadratic in its length
    # (ten megabytes of 998-octet lines took over a minute). Anchored, a match can only
    # start where a line starts, which is what makes the scan linear.
    pattern = _long_line_pattern(998)
    assert pattern.search(b"x" * 1500, 1) is None  # not at a line start
    match = pattern.search(b"x" * 1500)
    assert match is not None
    assert match.start() == 0
    match = pattern.search(b"ab\r" + b"x" * 999)
    assert match is not None
    assert match.start() == 3
    assert pattern.search(b"ab\n" + b"x" * 998) is None


def test_encoding_ten_megabytes_of_long_lines_keeps_every_octet() -> None:
    body = (b"x" * 997 + b"\n") * 10_000
    wire = encode_data(body)
    assert len(wire) == len(body) + 10_000 + 3  # a CR per line, and ".\r\n"


# -- LineLimit: the one line-length rule, shared with the message checks -------------------


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([b"a" * 998], 0),
        ([b"a" * 999], 1),
        ([b"a" * 500, b"a" * 498, b"\r\n", b"b" * 998], 0),
        ([b"a" * 500, b"a" * 499], 1),
        ([b"ok\r\n", b"ok\n" + b"c" * 999], 3),
        ([b"x\r", b"y" * 998 + b"\n", b"z" * 998], 0),
        ([b"x\r" + b"y" * 999], 1),  # a bare CR ends a line (it becomes CRLF)
        ([b"ab\n" + b"c" * 999 + b"\n"], 2),  # bare LF: no CR to allow for
        ([b"ab\n" + b"c" * 998 + b"\n"], 0),
        ([b"ab\r\n" + b"c" * 999 + b"\n"], 2),  # mixed line ends
    ],
)
def test_line_limit_across_pieces(pieces: list[bytes], expected: int) -> None:
    limit = LineLimit()
    results = [limit.feed(piece) for piece in pieces]
    first_bad = next((r for r in results if r), 0)
    assert first_bad == expected


@pytest.mark.parametrize(
    ("pieces", "crlf_only"),
    [
        ([b"a\r\nb\r\n", b"c"], True),
        ([b"a\r\nb\n"], False),
        ([b"a\rb\r\n"], False),
        ([b"a\r", b"\nb"], False),  # split between pieces: not proven, so normalise
        ([b"no line end"], True),
    ],
)
def test_line_limit_tells_whether_every_line_end_was_crlf(
    pieces: list[bytes], crlf_only: bool
) -> None:
    limit = LineLimit()
    for piece in pieces:
        assert limit.feed(piece) == 0
    assert limit.crlf_only is crlf_only


def test_line_limit_is_linear_on_long_bodies() -> None:
    # 10 MB of 70-octet lines: a quadratic scan would take minutes, this takes milliseconds.
    body = (b"x" * 70 + b"\r\n") * 140_000
    assert LineLimit().feed(body) == 0
