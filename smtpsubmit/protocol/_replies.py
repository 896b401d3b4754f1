"""SMTP reply parsing (RFC 5321 4.2) with enhanced status codes (RFC 3463, RFC 2034).

Theory of operation:

- :class:`ReplyParser` only buffers in :meth:`~ReplyParser.feed` and parses in
  :meth:`~ReplyParser.next_reply`, which returns a complete :class:`Reply` or ``None``
  when more bytes are needed.
- Memory is bounded no matter what the server sends: a line longer than ``max_line``
  octets (CRLF included, as in RFC 5321 4.5.3.1.5), or a reply with more than
  ``max_reply`` octets in total, is a :class:`RemoteProtocolError` as soon as the limit
  is crossed, without waiting for the line to end.
- Every line of a multi-line reply must carry the same code (RFC 5321 4.2.1); the code
  must match the grammar ``%x32-35 %x30-35 %x30-39``.
- An enhanced status code is read by the RFC 3463 2 grammar, ``class "." 1*3digit "."
  1*3digit``. Its prose forbids leading zeros, but servers send them (``5.07.01``): the
  code is read all the same and normalised (``EnhancedStatus(5, 7, 1)``, ``"5.7.1"``).
- Reply text is decoded as UTF-8 (invalid bytes escaped) and control characters are
  escaped as ``\\xNN`` (``\\u2028`` for the Unicode line separators), so text from a
  hostile server is always safe to print or log.
- Servers repeat the same one-line replies all day (``250 2.1.0 Ok``): the parser keeps
  the parsed form of the last few dozen distinct ones and hands the same immutable parts
  back when the exact same line comes again, so the common case costs one dict lookup.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import RemoteProtocolError

if TYPE_CHECKING:
    from ._commands import Command

__all__ = ["EnhancedStatus", "Reply", "ReplyParser"]

#: RFC 5321 4.5.3.1.5 sets 512 octets per reply line; real servers exceed it a little.
DEFAULT_MAX_LINE = 4096
DEFAULT_MAX_REPLY = 65536

_CODE = re.compile(rb"[2-5][0-5][0-9]")
#: How many distinct one-line replies the parser remembers (then it starts afresh).
_RECENT = 64

#: What a reply is made of: code, lines of text, enhanced status.
ReplyParts = tuple[int, tuple[str, ...], "EnhancedStatus | None"]
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)")
# C0 (but TAB), DEL, C1 and the Unicode line/paragraph separators: a hostile server must
# not be able to start a new log line or a terminal escape sequence.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = ord(match.group())
    return f"\\x{char:02x}" if char < 0x100 else f"\\u{char:04x}"


def _escape_controls(text: str) -> str:
    if text.isprintable():  # nothing to escape: the usual case, checked in C
        return text
    return _CONTROL.sub(_escape, text)


@dataclass(frozen=True, order=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code ``class.subject.detail``, e.g. ``5.1.1``.

    Its ``str`` is the canonical form, without leading zeros (RFC 3463 2).
    """

    klass: int
    subject: int
    detail: int

    @classmethod
    def parse(cls, text: str) -> EnhancedStatus:
        """Parse ``"5.7.8"`` (or ``"5.07.008"``, the same code); raises ``ValueError``
        when malformed."""
        match = _ENHANCED.fullmatch(text)
        if match is None:
            raise ValueError(f"not an enhanced status code: {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


@dataclass(frozen=True)
class Reply:
    """One complete server reply.

    ``lines`` holds the text of each line without the code, separator and enhanced
    status; ``enhanced`` is the enhanced status of the first line when the server
    advertised ENHANCEDSTATUSCODES (RFC 2034) and the line carries one. ``command`` is
    the command this reply answers (``None`` for the greeting and unsolicited replies).
    """

    code: int
    lines: tuple[str, ...] = ("",)
    enhanced: EnhancedStatus | None = None
    command: Command | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        """All lines joined with newlines (control characters already escaped)."""
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        """2xx: the command succeeded."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: the server waits for more (354 for DATA, 334 for AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: temporary failure; the same command may succeed later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: permanent failure."""
        return self.code >= 500

    def __str__(self) -> str:
        status = f" {self.enhanced}" if self.enhanced else ""
        return f"{self.code}{status} {self.text}".rstrip()


class ReplyParser:
    """Incremental parser of server replies with hard size bounds.

    ``enhanced_status_codes`` may be switched on once the server advertised
    ENHANCEDSTATUSCODES; it affects replies parsed after the switch.
    """

    def __init__(
        self, *, max_line: int = DEFAULT_MAX_LINE, max_reply: int = DEFAULT_MAX_REPLY
    ) -> None:
        self.max_line = max_line
        self.max_reply = max_reply
        self._enhanced = False
        self._recent: dict[bytes, ReplyParts] = {}  # one-line reply as received -> parts
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self._reply_size = 0
        self._code: bytes | None = None

    @property
    def enhanced_status_codes(self) -> bool:
        """Whether replies carry RFC 3463 codes to split off (the server said so, RFC 2034)."""
        return self._enhanced

    @enhanced_status_codes.setter
    def enhanced_status_codes(self, value: bool) -> None:
        if value != self._enhanced:
            self._recent.clear()  # the same line now parses differently
        self._enhanced = value

    @property
    def buffered(self) -> int:
        """Octets received and not yet consumed by a complete reply."""
        return len(self._buffer) + self._reply_size

    @property
    def in_reply(self) -> bool:
        """True when some bytes of an unfinished reply have been received."""
        return bool(self._buffer) or bool(self._lines)

    def feed(self, data: bytes) -> None:
        """Buffer received bytes; parsing happens in :meth:`next_reply`."""
        self._buffer += data

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or ``None`` if more bytes are needed."""
        parts = self.next_parts()
        return None if parts is None else Reply(*parts)

    def next_parts(self) -> ReplyParts | None:
        """:meth:`next_reply` as ``(code, lines, enhanced)``, for a caller that builds the
        :class:`Reply` itself (the connection adds the command answered)."""
        buffer = self._buffer
        if not self._lines:
            end = buffer.find(b"\n", 0, self.max_line)
            if end >= 0:
                known = self._recent.get(bytes(buffer[:end]))
                if known is not None:
                    del buffer[: end + 1]
                    return known
        while True:
            # The LF may be at index max_line - 1 at most, so the line fits in max_line.
            end = self._buffer.find(b"\n", 0, self.max_line)
            if end < 0:
                if len(self._buffer) >= self.max_line:
                    raise RemoteProtocolError(f"reply line longer than {self.max_line} octets")
                return None
            received = raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._reply_size += end + 1
            if self._reply_size > self.max_reply:
                raise RemoteProtocolError(f"reply longer than {self.max_reply} octets")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            final = self._check_line(raw)
            self._lines.append(raw)
            if final:
                one_line = len(self._lines) == 1
                parts = self._finish()
                if one_line:
                    if len(self._recent) >= _RECENT:
                        self._recent.clear()
                    self._recent[received] = parts
                return parts

    def _check_line(self, raw: bytes) -> bool:
        code = raw[:3]
        if not _CODE.fullmatch(code):
            raise RemoteProtocolError(f"malformed reply line: {_preview(raw)}")
        if self._code is not None and code != self._code:
            raise RemoteProtocolError(
                f"multi-line reply changed code from {self._code.decode()} to {code.decode()}"
            )
        self._code = code
        sep = raw[3:4]
        if sep == b"-":
            return False
        if sep in (b" ", b""):
            return True
        raise RemoteProtocolError(f"malformed reply line: {_preview(raw)}")

    def _finish(self) -> ReplyParts:
        assert self._code is not None
        code = int(self._code)
        texts = [
            _escape_controls(line[4:].decode("utf-8", "backslashreplace")) for line in self._lines
        ]
        self._lines = []
        self._code = None
        self._reply_size = 0
        enhanced = None
        if self._enhanced:
            enhanced, texts = _split_enhanced(code, texts)
        return code, tuple(texts), enhanced


@functools.lru_cache(maxsize=256)
def _status(klass: str, subject: str, detail: str) -> tuple[EnhancedStatus, str]:
    """Statuses repeat all day long (2.1.0, 2.1.5, 2.0.0): build each once. Returns the
    status and the code as the server wrote it (with any leading zeros)."""
    status = EnhancedStatus(int(klass), int(subject), int(detail))
    return status, f"{klass}.{subject}.{detail}"


def _split_enhanced(code: int, texts: list[str]) -> tuple[EnhancedStatus | None, list[str]]:
    """Take the RFC 3463 status of the first line off each line that starts with it; its
    class must match the reply's (RFC 3463 2)."""
    match = _ENHANCED.match(texts[0])
    if match is None or int(match[1]) != code // 100:
        return None, texts
    status, prefix = _status(match[1], match[2], match[3])
    stripped = []
    for text in texts:
        # "5.1.1" must not be taken off "5.1.10 ...": the code ends at a space or the end.
        if text == prefix or text.startswith(prefix + " "):
            text = text[len(prefix) + 1 :]
        else:  # the same code written another way ("5.7.1" after "5.07.01")?
            other = _ENHANCED.match(text)
            if other is not None and _status(other[1], other[2], other[3])[0] == status:
                text = text[other.end() :]
        stripped.append(text)
    return status, stripped


def _preview(raw: bytes) -> str:
    return _escape_controls(raw[:40].decode("utf-8", "backslashreplace"))
