"""Signing the exact octets that go on the wire (DKIM, RFC 6376), through a ``signer`` hook.

Theory of operation:

- A :class:`Signer` gets a message as it will be transmitted: serialised for this server,
  Bcc stripped, line ends CRLF, re-encoded to 7 bit when the server lacks 8BITMIME. It
  returns the header field(s) to put on top (a ``DKIM-Signature:`` field), never the whole
  message: the library prepends them, so the octets it checked are the octets that are
  signed and sent. Dot-stuffing (DATA) happens later and is undone by the server, so it
  does not touch what a verifier sees.
- What a signer returns is checked like everything else before any I/O: header field
  syntax, CRLF line ends only, no line over 998 octets (RFC 5321 4.5.3.1.6), no empty line
  (it would end the header section), and 8-bit octets only where the message may carry
  them. A signer that breaks this, or raises, gives a :class:`MessageError`; nothing is sent.
- Signing needs the whole message before its first octet is sent (the signature goes on
  top and covers the body), so a streamed body cannot be signed: :func:`refuse_stream`.
- The module needs no signing library: :class:`smtpsubmit.dkim.DKIMSigner` imports dkimpy
  when one is made.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Protocol, runtime_checkable

from ._errors import MessageError, SMTPError
from ._message import PreparedMessage
from .protocol._data import MAX_TEXT_LINE

__all__ = ["STREAM_REFUSED", "Signer", "refuse_stream", "sign_prepared"]

_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")

#: Why a streamed body cannot be signed (the text of the error :func:`refuse_stream` raises).
STREAM_REFUSED = (
    "a signer needs the whole message before its first octet is sent (the signature goes "
    "on top and covers the body), so a streamed body (a file or an async iterable) cannot "
    "be signed: read it into bytes first (it is then held in memory, about twice its size "
    "while it is signed), or send it from a client without signer="
)


@runtime_checkable
class Signer(Protocol):
    """Signs a message just before it is sent: ``signer=`` on every entry point.

    :meth:`sign` gets the exact octets of the message as they will be transmitted (RFC
    5322, CRLF line ends) and returns the header field(s) to prepend, each line ending
    with CRLF, e.g. ``b"DKIM-Signature: v=1; a=rsa-sha256; ...\\r\\n"``. It runs on the
    event loop, once per attempt (a retry is signed again), and may raise to refuse the
    message (the send then fails with :class:`MessageError` before any I/O).
    """

    def sign(self, message: bytes) -> bytes:
        """The header field(s) to put on top of ``message``."""
        ...


def refuse_stream() -> MessageError:
    """The error for a streamed body on a client that signs (see :data:`STREAM_REFUSED`)."""
    return MessageError(STREAM_REFUSED)


def sign_prepared(prepared: PreparedMessage, signer: Signer) -> PreparedMessage:
    """``prepared`` with the signer's header field(s) on top, checked (see the module doc)."""
    try:
        fields = signer.sign(prepared.data)
    except SMTPError:
        raise
    except Exception as exc:  # a signing library's own error: the message cannot go out
        raise MessageError(f"signing failed ({type(exc).__name__}: {exc})") from exc
    check_fields(fields, eightbit=prepared.smtputf8 or prepared.eightbit)
    return replace(prepared, data=bytes(fields) + prepared.data)


def check_fields(fields: object, *, eightbit: bool) -> None:
    """Refuse what a signer returned unless it is header fields that keep the message valid.

    ``eightbit``: the message itself carries 8-bit octets or UTF-8 headers (RFC 6532), so
    the added fields may too.
    """
    if not isinstance(fields, bytes | bytearray):
        raise MessageError(
            f"the signer returned {type(fields).__name__}, not the bytes of header fields"
        )
    if not fields.endswith(b"\r\n"):
        raise MessageError("the signer's header fields must end with CRLF")
    lines = bytes(fields[:-2]).split(b"\r\n")
    if not _FIELD_START.match(lines[0]):
        raise MessageError(f"the signer returned no header field: {bytes(fields[:40])!r}")
    for number, line in enumerate(lines, 1):
        continued = number > 1 and line[:1] in (b" ", b"\t")
        if not continued and not _FIELD_START.match(line):  # an empty line ends the header
            raise MessageError(f"line {number} of the signer's header fields is not one")
        if b"\r" in line or b"\n" in line or b"\0" in line:
            raise MessageError("the signer's header fields contain a bare CR, LF or NUL")
        if len(line) > MAX_TEXT_LINE:
            raise MessageError(
                f"line {number} of the signer's header fields is longer than "
                f"{MAX_TEXT_LINE} octets (RFC 5321 4.5.3.1.6)"
            )
    if not eightbit and not fields.isascii():
        raise MessageError(
            "the signer's header fields contain 8-bit octets and the message goes as 7 bit"
        )
