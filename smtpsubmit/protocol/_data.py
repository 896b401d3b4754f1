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

import functools
import re

from ._errors import LocalProtocolError

__all__ = [
    "MAX_TEXT_LINE",
    "DataEncoder",
    "LineLimit",
    "NewlineNormalizer",
    "encode_data",
    "normalize_newlines",
]

#: RFC 5321 4.5.3.1.6: 1000 octets per text line including CRLF.
MAX_TEXT_LINE = 998

_NEWLINES = re.compile(rb"\r\n|\r|\n")


def normalize_newlines(data: bytes) -> bytes:
    """Turn bare CR and bare LF into CRLF (a whole body at once)."""
    if data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r"):
        return data  # already CRLF throughout: the common case, no copy
    return _NEWLINES.sub(b"\r\n", data)


@functools.lru_cache(maxsize=8)
def _long_line_pattern(max_line: int) -> re.Pattern[bytes]:
    # Anchored at line starts: unanchored, the search rescans each line from every offset,
    # which is quadratic in the line length.
    return re.compile(rb"(?<![^\r\n])[^\r\n]{%d}" % (max_line + 1))


class LineLimit:
    """Finds lines longer than ``max_line`` octets (RFC 5321 4.5.3.1.6) across the pieces of
    a body. CR and LF both end a line: bare ones become CRLF on the wire.

    It also tells whether every line end fed so far was CRLF (``crlf_only``), from the same
    scans, so a caller that has checked a body need not scan it again to normalise it.
    """

    def __init__(self, max_line: int = MAX_TEXT_LINE) -> None:
        self.max_line = max_line
        self._pattern = _long_line_pattern(max_line)
        self._run = 0  # octets since the last CR or LF
        self._lines = 0  # LFs seen before the current piece
        #: True while every CR and LF fed so far belonged to a CRLF inside one piece.
        self.crlf_only = True

    def feed(self, piece: bytes) -> int:
        """0 while every line fits, else the 1-based number of the first line that does not."""
        cr, lf = piece.find(b"\r"), piece.find(b"\n")
        first = min(cr, lf) if cr >= 0 and lf >= 0 else max(cr, lf)
        head = len(piece) if first < 0 else first
        if self._run + head > self.max_line:
            return self._lines + 1
        # One pass each, in C: the CR count, the CRLF count and the lines split at LF. When
        # every line end is CRLF, a line split at LF may be max_line + 1 long (its CR); when
        # every line end is a bare LF, max_line. Otherwise (a mix, bare CRs), or when some
        # line is too long, the exact and slower search decides.
        crs = piece.count(b"\r") if cr >= 0 else 0
        crlfs = piece.count(b"\r\n") if crs else 0
        lines = piece.split(b"\n")
        lfs = len(lines) - 1
        only_crlf = crs == crlfs == lfs
        self.crlf_only = self.crlf_only and only_crlf
        limit = self.max_line + 1 if only_crlf else self.max_line if not crs else -1
        fits = max(map(len, lines)) <= limit and len(lines[-1]) <= self.max_line
        if not fits:
            match = self._pattern.search(piece)
            if match:
                return self._lines + piece.count(b"\n", 0, match.start()) + 1
        if first < 0:
            self._run += len(piece)
        else:
            self._run = len(piece) - 1 - max(piece.rfind(b"\r"), piece.rfind(b"\n"))
        self._lines += lfs
        return 0


class NewlineNormalizer:
    """Incremental bare CR / bare LF to CRLF conversion (RFC 5321 2.3.8).

    A CR at the end of one piece waits for the next, so the result does not depend on how
    the body was split; ``end()`` releases it.
    """

    def __init__(self) -> None:
        self.pending_cr = False

    def feed(self, chunk: bytes) -> bytes:
        """The next piece with CRLF line ends (a trailing CR held back)."""
        if self.pending_cr:
            chunk = b"\r" + chunk
            self.pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self.pending_cr = True
        return normalize_newlines(chunk)

    def end(self) -> bytes:
        """The held-back CR as a line end, if any."""
        pending, self.pending_cr = self.pending_cr, False
        return b"\r\n" if pending else b""


class DataEncoder:
    """Incremental DATA body encoder: ``feed()`` each chunk, then ``end()`` once."""

    def __init__(self, *, max_line: int | None = MAX_TEXT_LINE) -> None:
        self.max_line = max_line
        self._newlines = NewlineNormalizer()
        self._at_line_start = True
        self._limit = LineLimit(max_line) if max_line is not None else None

    def feed(self, chunk: bytes) -> bytes:
        """Encode a chunk; may hold back one trailing CR until the next call."""
        if not chunk:
            return b""
        if self._limit is not None and self._limit.feed(chunk):
            raise LocalProtocolError(
                f"message line longer than {self.max_line} octets (RFC 5321 4.5.3.1.6)"
            )
        text = self._newlines.feed(chunk)
        stuffed = text.replace(b"\n.", b"\n..")
        if self._at_line_start and stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        if text:
            self._at_line_start = text.endswith(b"\n")
        if self._newlines.pending_cr:
            # The held-back CR is a line end whatever follows it.
            self._at_line_start = True
        return stuffed

    def end(self) -> bytes:
        """Finish the body: the pending line end, a CRLF if needed, and ``.CRLF``."""
        out = self._newlines.end()
        if not out and not self._at_line_start:
            out = b"\r\n"
        self._at_line_start = True
        if self._limit is not None:
            self._limit = LineLimit(self._limit.max_line)  # the next body starts afresh
        return out + b".\r\n"


def encode_data(body: bytes, *, max_line: int | None = MAX_TEXT_LINE) -> bytes:
    """Encode a whole body for DATA, terminator included."""
    encoder = DataEncoder(max_line=max_line)
    return encoder.feed(body) + encoder.end()
