"""Message content for DATA (RFC 5321 4.1.1.4, 4.5.2) and BDAT (RFC 3030).

Theory of operation for DATA:

- Every line ending on the wire is CRLF: a bare CR, a bare LF and CRLF all become CRLF
  (RFC 5321 2.3.8 forbids bare CR and LF). A CR at the end of one chunk waits for the
  next chunk before we decide, so the result does not depend on how the body was split.
- Every line that starts with ``.`` gets one more ``.`` (transparency, RFC 5321 4.5.2),
  the first line of the body included.
- The body always ends with CRLF before ``.CRLF``, so the end-of-data marker can never be
  ambiguous.
- Lines longer than ``max_line`` octets (998, RFC 5321 4.5.3.1.6, not counting CRLF) are
  refused with :class:`LocalProtocolError` unless the limit is switched off.

BDAT needs none of this: chunks are sent as they are, with their exact length.
"""

from __future__ import annotations

import re

from ._errors import LocalProtocolError

__all__ = ["MAX_TEXT_LINE", "DataEncoder", "encode_data", "normalize_newlines"]

#: RFC 5321 4.5.3.1.6: 1000 octets per text line including CRLF.
MAX_TEXT_LINE = 998

_NEWLINES = re.compile(rb"\r\n|\r|\n")


def normalize_newlines(data: bytes) -> bytes:
    """Turn bare CR and bare LF into CRLF (a whole body at once)."""
    return _NEWLINES.sub(b"\r\n", data)


class DataEncoder:
    """Incremental DATA body encoder: ``feed()`` each chunk, then ``end()`` once."""

    def __init__(self, *, max_line: int | None = MAX_TEXT_LINE) -> None:
        self.max_line = max_line
        self._pending_cr = False
        self._line_length = 0  # octets of the current, unfinished line (after normalising)
        self._at_line_start = True
        # Anchored at line starts: unanchored, the search rescans each line from every
        # offset, which is quadratic in the line length.
        self._long_line = (
            re.compile(rb"(?<![^\r\n])[^\r\n]{%d}" % (max_line + 1))
            if max_line is not None
            else None
        )

    def feed(self, chunk: bytes) -> bytes:
        """Encode a chunk; may hold back one trailing CR until the next call."""
        if not chunk:
            return b""
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self._pending_cr = True
        text = _NEWLINES.sub(b"\r\n", chunk)
        self._check_lengths(text)
        stuffed = text.replace(b"\n.", b"\n..")
        if self._at_line_start and stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        if text:
            self._at_line_start = text.endswith(b"\n")
        if self._pending_cr:
            # The held-back CR is a line end whatever follows it.
            self._at_line_start = True
        return stuffed

    def _check_lengths(self, text: bytes) -> None:
        if self._long_line is None or self.max_line is None:
            return
        first_end = text.find(b"\r")
        first = len(text) if first_end < 0 else first_end
        if self._line_length + first > self.max_line or self._long_line.search(text):
            raise LocalProtocolError(
                f"message line longer than {self.max_line} octets (RFC 5321 4.5.3.1.6)"
            )
        if first_end < 0:
            self._line_length += len(text)
        else:
            self._line_length = len(text) - text.rfind(b"\n") - 1
        if self._pending_cr:
            self._line_length = 0

    def end(self) -> bytes:
        """Finish the body: the pending line end, a CRLF if needed, and ``.CRLF``."""
        out = b""
        if self._pending_cr:
            out = b"\r\n"
            self._pending_cr = False
        elif not self._at_line_start:
            out = b"\r\n"
        self._at_line_start = True
        self._line_length = 0
        return out + b".\r\n"


def encode_data(body: bytes, *, max_line: int | None = MAX_TEXT_LINE) -> bytes:
    """Encode a whole body for DATA, terminator included."""
    encoder = DataEncoder(max_line=max_line)
    return encoder.feed(body) + encoder.end()
