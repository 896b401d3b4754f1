"""Raw bodies: checked in slices that never cut a CRLF, normalised only when needed."""

from __future__ import annotations

import pytest

from smtpsubmit import MessageError
from smtpsubmit._message import _SLICE, BodyChecker, prepare_raw
from smtpsubmit.protocol import Extensions
from smtpsubmit.protocol._data import normalize_newlines

EXT = Extensions.parse(["mx.example", "8BITMIME"])
LINE = b"x" * 76 + b"\r\n"  # 78 octets: slices of 1 MiB fall inside a line


# 17-octet lines put the end of the first 1 MiB slice between a CR and its LF
# (2**20 + 1 = 17 * 61681): a slice cut there would hide the CRLF.
SHORT = b"x" * 15 + b"\r\n"


@pytest.mark.parametrize("line", [LINE, SHORT])
def test_a_large_crlf_body_is_proven_crlf_across_slices(line: bytes) -> None:
    body = line * (3 * _SLICE // len(line) + 7)
    checker = BodyChecker()
    checker.feed(body)
    assert checker.crlf_only
    prepared = prepare_raw("a@example.com", ["b@example.com"], body, EXT)
    assert prepared.data is body  # not even copied


@pytest.mark.parametrize("bad", [b"bare LF\n", b"bare CR\r", b"CR then\r\rLF\n"])
def test_a_bare_line_end_past_the_first_slice_is_normalised(bad: bytes) -> None:
    head = LINE * (_SLICE // len(LINE) + 1)
    body = head + bad + LINE
    checker = BodyChecker()
    checker.feed(body)
    assert not checker.crlf_only
    prepared = prepare_raw("a@example.com", ["b@example.com"], body, EXT)
    assert prepared.data != body
    assert prepared.data == normalize_newlines(body)
    data = prepared.data
    assert data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n")  # CRLF only


def test_an_over_long_line_past_the_first_slice_is_refused() -> None:
    body = LINE * (_SLICE // len(LINE) + 1) + b"y" * 999 + b"\r\n"
    with pytest.raises(MessageError, match="longer than 998"):
        prepare_raw("a@example.com", ["b@example.com"], body, EXT)
