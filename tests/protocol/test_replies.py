"""ReplyParser: RFC 5321 4.2 replies, RFC 3463 enhanced codes, hard size bounds."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from smtpsubmit.protocol import EnhancedStatus, RemoteProtocolError, Reply
from smtpsubmit.protocol._replies import ReplyParser

from .helpers import parse_replies


def test_single_line_reply(feed_mode: str) -> None:
    assert parse_replies(b"250 OK\r\n", feed_mode) == [Reply(250, ("OK",))]


def test_multi_line_reply_keeps_every_line_text(feed_mode: str) -> None:
    data = b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
    (got,) = parse_replies(data, feed_mode)
    assert got == Reply(250, ("mx.example", "PIPELINING", "SIZE 1000"))
    assert got.text == "mx.example\nPIPELINING\nSIZE 1000"


def test_several_replies_in_one_read_come_out_in_order(feed_mode: str) -> None:
    data = b"250 first\r\n550-no\r\n550 such user\r\n354 go ahead\r\n"
    assert parse_replies(data, feed_mode) == [
        Reply(250, ("first",)),
        Reply(550, ("no", "such user")),
        Reply(354, ("go ahead",)),
    ]


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"250\r\n", ("",)),  # code alone: Reply-code [ SP textstring ] CRLF
        (b"250 \r\n", ("",)),
        (b"250-\r\n250\r\n", ("", "")),
        (b"250  two spaces\r\n", (" two spaces",)),
        (b"250 bare LF tolerated\n", ("bare LF tolerated",)),
    ],
)
def test_reply_text_edge_cases(data: bytes, lines: tuple[str, ...], feed_mode: str) -> None:
    assert parse_replies(data, feed_mode) == [Reply(250, lines)]


def test_continuation_line_with_another_code_is_remote_error(feed_mode: str) -> None:
    with pytest.raises(RemoteProtocolError, match="changed code from 250 to 251"):
        parse_replies(b"250-first\r\n251 second\r\n", feed_mode)


@pytest.mark.parametrize(
    "line",
    [
        b"25\r\n",
        b"\r\n",
        b"abc def\r\n",
        b" 250 leading space\r\n",
        b"250x\r\n",
        b"250_text\r\n",
        b"2500 four digits\r\n",
        b"150 first digit 1\r\n",
        b"650 first digit 6\r\n",
        b"260 second digit 6\r\n",
        b"25a letter\r\n",
    ],
)
def test_malformed_reply_line_is_remote_error(line: bytes, feed_mode: str) -> None:
    with pytest.raises(RemoteProtocolError, match="malformed reply line"):
        parse_replies(line, feed_mode)


def test_control_characters_in_text_come_out_escaped(feed_mode: str) -> None:
    data = b"250 a\x00b\x1b[31mc\x7fd\re\tf\xc2\x85g\xe2\x80\xa8h\r\n"
    (got,) = parse_replies(data, feed_mode)
    assert got.lines == ("a\\x00b\\x1b[31mc\\x7fd\\x0de\tf\\x85g\\u2028h",)


def test_invalid_utf8_in_text_comes_out_escaped(feed_mode: str) -> None:
    (got,) = parse_replies(b"250 caf\xc3\xa9 \xff\xfe\r\n", feed_mode)
    assert got.lines == ("caf\u00e9 \\xff\\xfe",)


def test_malformed_line_error_message_is_escaped_and_short() -> None:
    parser = ReplyParser()
    parser.feed(b"\x1b[2J" + b"x" * 100 + b"\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_reply()
    assert "\x1b" not in str(info.value)
    assert "\\x1b[2J" + "x" * 36 in str(info.value)
    assert "x" * 37 not in str(info.value)


def test_a_repeated_line_parses_the_same_every_time() -> None:
    parser = ReplyParser()
    for _ in range(3):
        parser.feed(b"250 2.1.0 Ok\r\n")
        assert parser.next_reply() == Reply(250, ("2.1.0 Ok",))
        assert parser.buffered == 0


def test_many_distinct_replies_then_the_first_again() -> None:
    parser = ReplyParser()
    for i in range(200):
        parser.feed(b"250 queued as %d\r\n" % i)
        assert parser.next_reply() == Reply(250, (f"queued as {i}",))
    parser.feed(b"250 queued as 0\r\n250 queued as 199\r\n")
    assert parser.next_reply() == Reply(250, ("queued as 0",))
    assert parser.next_reply() == Reply(250, ("queued as 199",))


def test_a_remembered_line_still_waits_for_its_line_end() -> None:
    parser = ReplyParser()
    parser.feed(b"250 Ok\r\n")
    parser.next_reply()
    parser.feed(b"250 Ok")
    assert parser.next_reply() is None
    parser.feed(b"\r\n")
    assert parser.next_reply() == Reply(250, ("Ok",))


# -- enhanced status codes (RFC 3463, RFC 2034) ------------------------------------------


def test_switching_enhanced_codes_on_reparses_a_line_seen_before() -> None:
    parser = ReplyParser()
    parser.feed(b"250 2.1.0 Ok\r\n")
    assert parser.next_reply() == Reply(250, ("2.1.0 Ok",))
    parser.enhanced_status_codes = True
    assert parser.enhanced_status_codes
    parser.feed(b"250 2.1.0 Ok\r\n")
    assert parser.next_reply() == Reply(250, ("Ok",), EnhancedStatus(2, 1, 0))


def enhanced_parser() -> ReplyParser:
    parser = ReplyParser()
    parser.enhanced_status_codes = True
    return parser


@pytest.mark.parametrize(
    ("data", "enhanced", "lines"),
    [
        (b"250 2.1.0 Sender OK\r\n", EnhancedStatus(2, 1, 0), ("Sender OK",)),
        (b"550 5.1.1 No such user\r\n", EnhancedStatus(5, 1, 1), ("No such user",)),
        (b"451 4.7.1 Try later\r\n", EnhancedStatus(4, 7, 1), ("Try later",)),
        (b"250 2.0.0\r\n", EnhancedStatus(2, 0, 0), ("",)),
        (b"554 5.123.999 max\r\n", EnhancedStatus(5, 123, 999), ("max",)),
        # The class must match the reply's first digit (RFC 3463 2).
        (b"550 2.1.0 wrong class\r\n", None, ("2.1.0 wrong class",)),
        (b"250 5.1.1 wrong class\r\n", None, ("5.1.1 wrong class",)),
        # 3xx replies have no enhanced class.
        (b"354 3.0.0 go ahead\r\n", None, ("3.0.0 go ahead",)),
        (b"354 2.0.0 go ahead\r\n", None, ("2.0.0 go ahead",)),
        # RFC 3463 2: subject and detail are 1*3digit. Leading zeros break its prose ("MUST
        # be expressed without leading zero digits") but not its grammar: read, normalised.
        (b"250 2.01.0 leading zero\r\n", EnhancedStatus(2, 1, 0), ("leading zero",)),
        (b"250 2.0.00 Ok\r\n", EnhancedStatus(2, 0, 0), ("Ok",)),
        (b"451 4.07.001 Try later\r\n", EnhancedStatus(4, 7, 1), ("Try later",)),
        (b"550 5.07.01\r\n", EnhancedStatus(5, 7, 1), ("",)),
        (b"554 5.000.000 x\r\n", EnhancedStatus(5, 0, 0), ("x",)),
        (b"554 5.099.999 x\r\n", EnhancedStatus(5, 99, 999), ("x",)),
        (b"550 2.07.01 wrong class\r\n", None, ("2.07.01 wrong class",)),
        # Malformed codes are text.
        (b"250 2.1000.0 too long\r\n", None, ("2.1000.0 too long",)),
        (b"250 2.0001.0 too long\r\n", None, ("2.0001.0 too long",)),
        (b"250 2.1.0000 too long\r\n", None, ("2.1.0000 too long",)),
        (b"250 2..0 empty\r\n", None, ("2..0 empty",)),
        (b"250 2.\xd9\xa1.0 arabic digit\r\n", None, ("2.\u0661.0 arabic digit",)),
        (b"250 2.0.0x glued\r\n", None, ("2.0.0x glued",)),
        (b"250 2.0 short\r\n", None, ("2.0 short",)),
        (b"250 OK\r\n", None, ("OK",)),
    ],
)
def test_enhanced_status_code_parsed_when_advertised(
    data: bytes, enhanced: EnhancedStatus | None, lines: tuple[str, ...], feed_mode: str
) -> None:
    (got,) = parse_replies(data, feed_mode, enhanced_parser())
    assert got.enhanced == enhanced
    assert got.lines == lines


def test_enhanced_status_code_left_in_text_when_not_advertised(feed_mode: str) -> None:
    (got,) = parse_replies(b"550 5.1.1 No such user\r\n", feed_mode)
    assert got.enhanced is None
    assert got.lines == ("5.1.1 No such user",)


def test_enhanced_code_taken_off_every_line_of_a_multi_line_reply(feed_mode: str) -> None:
    data = b"550-5.1.1 first\r\n550-5.1.1\r\n550-5.1.10 other code\r\n550 5.1.1 last\r\n"
    (got,) = parse_replies(data, feed_mode, enhanced_parser())
    assert got.enhanced == EnhancedStatus(5, 1, 1)
    # "5.1.10" is another code, not "5.1.1" followed by "0".
    assert got.lines == ("first", "", "5.1.10 other code", "last")


def test_enhanced_code_with_leading_zeros_taken_off_every_line(feed_mode: str) -> None:
    data = b"550-5.07.01 first\r\n550-5.7.1 same code\r\n550-5.7.10 other\r\n550 5.07.01\r\n"
    (got,) = parse_replies(data, feed_mode, enhanced_parser())
    assert got.enhanced == EnhancedStatus(5, 7, 1)
    assert str(got.enhanced) == "5.7.1"
    assert got.lines == ("first", "same code", "5.7.10 other", "")
    assert str(got) == "550 5.7.1 first\nsame code\n5.7.10 other"


def test_enhanced_status_parse_and_str() -> None:
    assert EnhancedStatus.parse("5.7.8") == EnhancedStatus(5, 7, 8)
    assert EnhancedStatus.parse("5.07.008") == EnhancedStatus(5, 7, 8)
    assert str(EnhancedStatus.parse("4.07.001")) == "4.7.1"
    assert str(EnhancedStatus(4, 12, 345)) == "4.12.345"
    assert EnhancedStatus(4, 7, 1) < EnhancedStatus(5, 0, 0)
    for bad in ["", "5.7", "3.0.0", "5.7.8.1", "x.y.z", "5.7.8x", "5.0007.8", "5.7.1000"]:
        with pytest.raises(ValueError, match="not an enhanced status code"):
            EnhancedStatus.parse(bad)


# -- Reply value -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "flags"),
    [
        (220, (True, False, False, False)),
        (354, (False, True, False, False)),
        (421, (False, False, True, False)),
        (554, (False, False, False, True)),
    ],
)
def test_reply_class_properties(code: int, flags: tuple[bool, bool, bool, bool]) -> None:
    got = Reply(code)
    assert (got.is_positive, got.is_intermediate, got.is_transient, got.is_permanent) == flags


def test_reply_str_and_equality_ignore_command() -> None:
    assert str(Reply(250, ("a", "b"), EnhancedStatus(2, 0, 0))) == "250 2.0.0 a\nb"
    assert str(Reply(250)) == "250"
    assert Reply(250, command=object()) == Reply(250)  # type: ignore[arg-type]


# -- bounds --------------------------------------------------------------------------------


def test_line_exactly_at_limit_including_crlf_is_accepted(feed_mode: str) -> None:
    data = b"250 " + b"x" * 6 + b"\r\n"  # 12 octets
    (got,) = parse_replies(data, feed_mode, ReplyParser(max_line=12))
    assert got.lines == ("xxxxxx",)


def test_line_one_octet_over_limit_is_remote_error(feed_mode: str) -> None:
    data = b"250 " + b"x" * 7 + b"\r\n"  # 13 octets
    with pytest.raises(RemoteProtocolError, match="reply line longer than 12 octets"):
        parse_replies(data, feed_mode, ReplyParser(max_line=12))


def test_unterminated_line_raises_as_soon_as_it_cannot_fit() -> None:
    parser = ReplyParser(max_line=12)
    parser.feed(b"250 " + b"x" * 7)  # 11 octets: a bare LF would still fit in 12
    assert parser.next_reply() is None
    parser.feed(b"x")  # 12 octets and no LF: the line is at least 13 long
    with pytest.raises(RemoteProtocolError, match="longer than 12 octets"):
        parser.next_reply()


def flood(parser: ReplyParser, pieces: Iterable[bytes], bound: int, fed: list[int]) -> None:
    """Feed pieces, parsing after each; ``fed`` records the size of each piece that went in."""
    for piece in pieces:
        parser.feed(piece)
        fed.append(len(piece))
        assert parser.next_reply() is None
        assert parser.buffered <= bound


def test_ten_megabytes_without_newline_raises_on_first_oversized_piece() -> None:
    parser = ReplyParser()  # max_line 4096
    piece = b"2" * 65536
    fed: list[int] = []
    with pytest.raises(RemoteProtocolError, match="reply line longer than 4096 octets"):
        flood(parser, [piece] * (10 * 1024 * 1024 // len(piece)), 4096, fed)
    assert fed == [len(piece)]
    assert len(parser._buffer) == len(piece)
    assert parser.buffered == len(piece)


def test_line_limit_crossed_in_the_middle_of_a_long_stream_raises_at_that_piece() -> None:
    max_line = 1_000_000
    parser = ReplyParser(max_line=max_line, max_reply=10 * max_line)
    first = b"250-" + b"x" * (65536 - 4)
    pieces = [first] + [b"x" * 65536] * (10 * 1024 * 1024 // 65536 - 1)
    fed: list[int] = []
    with pytest.raises(RemoteProtocolError, match="reply line longer"):
        flood(parser, pieces, max_line, fed)
    assert len(fed) == 16  # 16 * 65536 is the first total past 1 000 000 octets
    assert parser.buffered <= max_line + 65536


def test_reply_exactly_at_size_limit_is_accepted(feed_mode: str) -> None:
    data = b"250-abc\r\n250 defgh\r\n"  # 20 octets
    (got,) = parse_replies(data, feed_mode, ReplyParser(max_reply=20))
    assert got.lines == ("abc", "defgh")


def test_reply_over_size_limit_is_remote_error(feed_mode: str) -> None:
    data = b"250-abc\r\n250 defghi\r\n"  # 21 octets
    with pytest.raises(RemoteProtocolError, match="reply longer than 20 octets"):
        parse_replies(data, feed_mode, ReplyParser(max_reply=20))


def test_endless_continuation_lines_hit_the_reply_limit() -> None:
    parser = ReplyParser()  # max_reply 65536
    line = b"250-" + b"x" * 94 + b"\r\n"  # 100 octets
    with pytest.raises(RemoteProtocolError, match="reply longer than 65536 octets"):
        flood(parser, [line] * 100_000, 65536, [])
    assert parser.buffered <= 65536 + len(line)


def test_reply_size_counter_restarts_for_each_reply() -> None:
    parser = ReplyParser(max_reply=20)
    for _ in range(5):
        parser.feed(b"250-abc\r\n250 defgh\r\n")
        assert parser.next_reply() == Reply(250, ("abc", "defgh"))
    assert parser.buffered == 0


def test_buffered_and_in_reply_track_unfinished_replies() -> None:
    parser = ReplyParser()
    assert (parser.buffered, parser.in_reply) == (0, False)
    parser.feed(b"250-one\r\n250 tw")
    assert parser.next_reply() is None
    assert (parser.buffered, parser.in_reply) == (len(b"250-one\r\n250 tw"), True)
    parser.feed(b"o\r\n")
    assert parser.next_reply() == Reply(250, ("one", "two"))
    assert (parser.buffered, parser.in_reply) == (0, False)
    assert parser.next_reply() is None
