"""Captured messages written to a Maildir, one file per message (``serve --state-dir``).

A message is delivered the way a mail delivery agent would: into ``tmp/``, synced, then
moved into ``new/`` (``mailbox.Maildir`` does that), before the server sends its ``250``,
so an acknowledged message is on disk. The file is the message as received with two
trace fields in front, as RFC 5321 4.4 asks of the server that delivers: ``Return-Path``
(the reverse path) and ``Received`` (client, queue id, TLS version, SASL identity). Line
ends are LF, the Maildir convention, except for BINARYMIME content, kept byte for byte.
"""

from __future__ import annotations

import mailbox
import os
import re
from email.utils import formatdate

from ._capture import CapturedMessage

__all__ = ["MaildirWriter"]

#: Control characters in a trace field value: the client chose these strings (EHLO name,
#: reverse path, SASL identity), and a CR or LF would start a header field of its own.
#: Other non-ASCII text stays (UTF-8 header fields, RFC 6532, as with SMTPUTF8).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class MaildirWriter:
    """Deliver captured messages into the Maildir at ``path`` (``new``, ``cur``, ``tmp``
    created if missing)."""

    def __init__(self, path: str | os.PathLike[str], *, hostname: str) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._hostname = hostname
        self._maildir = mailbox.Maildir(self.path, create=True)

    def deliver(self, message: CapturedMessage) -> str:
        """Write ``message`` into ``new/``; return the file's path."""
        body = message.data
        if message.mail_from_params.get("BODY") != "BINARYMIME":
            body = body.replace(b"\r\n", b"\n")
        key = self._maildir.add(trace_fields(message, self._hostname) + body)
        return os.path.join(self.path, "new", key)


def trace_fields(message: CapturedMessage, hostname: str) -> bytes:
    """The ``Return-Path`` and ``Received`` fields (RFC 5321 4.4) for ``message``, LF ends,
    UTF-8."""
    details = [f"using {message.tls_version}" if message.tls_version else "no TLS"]
    if message.auth_identity is not None:
        details.append(f"authenticated as {_clean(message.auth_identity)}")
    received = (
        f"from {_clean(message.client_name) or 'unknown'} ([{message.peer[0]}]) "
        f"by {_clean(hostname)} (smtpsubmit fake server) ({', '.join(details)}) "
        f"id {message.queue_id}; {formatdate(message.received_at, localtime=True)}"
    )
    return f"Return-Path: <{_clean(message.mail_from)}>\nReceived: {received}\n".encode(
        "utf-8", "replace"
    )


def _clean(text: str) -> str:
    return _UNSAFE.sub("?", text)
