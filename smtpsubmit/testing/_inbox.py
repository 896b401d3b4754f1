"""The web inbox's data: captured messages as a person reads them (``serve --web``).

Rule 1: every string this module hands out is safe to encode as UTF-8 (lone surrogates
from undecodable bytes become U+FFFD), and none of it is escaped: escaping belongs to the
renderer (``_inbox_html``), once, at the point where text becomes HTML. JSON needs none.

Rule 2: nothing here raises on a malformed message. A dev inbox shows what the client
sent, broken charsets, bad headers and all; a part that cannot be decoded shows as its
bytes decoded with replacement characters.

The ``Inbox`` lives on the event loop of the fake servers that feed it (their
``on_message`` runs there), so it needs no lock: readers on the same loop wait for a new
message with ``wait_beyond``.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage, Message
from functools import cached_property
from typing import Any

import anyio

from ._capture import CapturedMessage

__all__ = ["Attachment", "Inbox", "InboxEntry", "clean_text"]

_FILENAME_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def clean_text(text: str) -> str:
    """``text`` made safe to encode as UTF-8: lone surrogates (bytes kept by
    ``surrogateescape``) decoded again as UTF-8 where they form it, U+FFFD elsewhere."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class Attachment:
    """A part of a message other than its text and HTML bodies: a file, an inline image,
    an attached message."""

    #: Position among the message's attachments, from 0: the part's address in URLs.
    index: int
    #: A file name safe to offer in a download: no directory, no control characters.
    filename: str
    content_type: str
    #: ``Content-ID`` without its angle brackets, for ``cid:`` references in the HTML.
    content_id: str | None
    #: The decoded content (transfer encoding removed).
    content: bytes

    @property
    def size(self) -> int:
        """Decoded size in octets."""
        return len(self.content)


class InboxEntry:
    """One captured message and the views of it a person wants: bodies, attachments,
    header fields, whether a ``Bcc`` field was transmitted."""

    def __init__(self, captured: CapturedMessage) -> None:
        self.captured = captured

    @property
    def id(self) -> str:
        """The queue id (``250 2.0.0 Ok: queued as <ID>``): the message's address."""
        return self.captured.queue_id

    @property
    def message(self) -> EmailMessage:
        """The parsed message (``email.policy.default``)."""
        return self.captured.message

    @property
    def received_at(self) -> str:
        """Capture time, ISO 8601 in UTC with a ``Z``, to the second."""
        when = datetime.fromtimestamp(self.captured.received_at, tz=timezone.utc)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")

    def header(self, name: str) -> str:
        """The decoded value of the first ``name`` field, ``""`` if absent."""
        return _header_value(self.message, name)

    @cached_property
    def headers(self) -> list[tuple[str, str]]:
        """Every header field in order, values decoded (RFC 2047) and unfolded."""
        out = []
        for name, raw in self.message.raw_items():
            try:
                value = str(self.message.policy.header_fetch_parse(name, raw))
            except Exception:  # a field the email package cannot parse: show it raw
                value = str(raw)
            out.append((clean_text(name), _unfold(clean_text(value))))
        return out

    @property
    def bcc_transmitted(self) -> bool:
        """Whether the message data carried a ``Bcc`` field (a client should strip it)."""
        return any(name.lower() == "bcc" for name, _ in self.headers)

    @cached_property
    def _bodies(self) -> tuple[Message | None, Message | None]:
        def body(kind: str) -> Message | None:
            try:
                return self.message.get_body(preferencelist=(kind,))
            except Exception:  # a malformed MIME structure: no body of that kind
                return None

        return body("plain"), body("html")

    @cached_property
    def text(self) -> str | None:
        """The text/plain body, if there is one."""
        part = self._bodies[0]
        return None if part is None else _decoded_text(part)

    @cached_property
    def html(self) -> str | None:
        """The text/html body, if there is one (as sent: display it sandboxed)."""
        part = self._bodies[1]
        return None if part is None else _decoded_text(part)

    @cached_property
    def attachments(self) -> list[Attachment]:
        """Every leaf part but the bodies, in message order."""
        bodies = [id(part) for part in self._bodies if part is not None]
        out: list[Attachment] = []
        for part in _leaves(self.message):
            if id(part) in bodies:
                continue
            content_type = clean_text(part.get_content_type())
            cid = _header_value(part, "Content-ID").strip().strip("<>") or None
            out.append(
                Attachment(
                    index=len(out),
                    filename=_filename(part, content_type, len(out)),
                    content_type=content_type,
                    content_id=cid,
                    content=_content(part),
                )
            )
        return out

    def attachment_for_cid(self, content_id: str) -> Attachment | None:
        """The attachment whose Content-ID is ``content_id`` (a ``cid:`` URL, RFC 2392)."""
        return next((a for a in self.attachments if a.content_id == content_id), None)

    def summary(self) -> dict[str, Any]:
        """What the message list shows, as JSON-ready data."""
        c = self.captured
        return {
            "id": self.id,
            "received_at": self.received_at,
            "mail_from": clean_text(c.mail_from),
            "rcpt_to": [clean_text(r) for r in c.rcpt_to],
            "from": self.header("From"),
            "to": self.header("To"),
            "subject": self.header("Subject"),
            "size": len(c.data),
            "tls_version": c.tls_version,
            "auth_identity": None if c.auth_identity is None else clean_text(c.auth_identity),
            "attachments": len(self.attachments),
        }

    def detail(self) -> dict[str, Any]:
        """Everything about the message, as JSON-ready data (attachments without content)."""
        c = self.captured
        return {
            **self.summary(),
            "cc": self.header("Cc"),
            "date": self.header("Date"),
            "message_id": self.header("Message-ID"),
            "via": c.via,
            "client_name": clean_text(c.client_name),
            "peer": f"{c.peer[0]}:{c.peer[1]}",
            "acknowledged": c.acknowledged,
            "bcc_transmitted": self.bcc_transmitted,
            "headers": [list(field) for field in self.headers],
            "text": self.text,
            "html": self.html,
            "attachments": [
                {
                    "index": a.index,
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "content_id": a.content_id,
                    "size": a.size,
                }
                for a in self.attachments
            ],
        }

    def raw_text(self) -> str:
        """The message data as text (UTF-8, replacement characters for other bytes)."""
        return self.captured.data.decode("utf-8", "replace")


class Inbox:
    """The captured messages of a ``serve`` run, oldest first, for the web view.

    While a reader waits (``wait_beyond``), ``add`` and ``close`` must be called on that
    reader's event loop: the fake servers' one, where their ``on_message`` runs.
    """

    def __init__(self) -> None:
        self._entries: list[InboxEntry] = []
        self._by_id: dict[str, InboxEntry] = {}
        # Made by the first waiter: an Event belongs to a running event loop, and the inbox
        # may be built (and filled, in tests) before one runs.
        self._changed: anyio.Event | None = None
        self._closed = False

    def add(self, captured: CapturedMessage) -> None:
        """Record a message and wake the readers waiting for one (``on_message``)."""
        entry = InboxEntry(captured)
        self._entries.append(entry)
        self._by_id.setdefault(entry.id, entry)
        self._wake()

    def close(self) -> None:
        """Wake every reader for good: the server is stopping."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[InboxEntry]:
        return iter(list(self._entries))

    def get(self, message_id: str) -> InboxEntry | None:
        """The message with this queue id, if captured."""
        return self._by_id.get(message_id)

    def since(self, count: int) -> list[InboxEntry]:
        """The messages after the first ``count``."""
        return self._entries[count:]

    async def wait_beyond(self, count: int) -> bool:
        """Wait until there are more than ``count`` messages (True) or the inbox closes
        (False)."""
        while len(self._entries) <= count and not self._closed:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        return not self._closed


def _header_value(part: Message, name: str) -> str:
    try:
        value = part.get(name)
    except Exception:  # an unparsable field: its raw text
        value = next((v for n, v in part.raw_items() if n.lower() == name.lower()), None)
    return "" if value is None else _unfold(clean_text(str(value)))


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value)


def _leaves(part: Message) -> Iterator[Message]:
    """Leaf parts in order; an attached message (message/rfc822) is one leaf."""
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _leaves(sub)
    elif part.get_content_maintype() != "multipart":
        yield part


def _decoded_text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return clean_text(content)
    except Exception:  # unknown charset, bad transfer encoding: the bytes, replaced
        pass
    return _content(part).decode("utf-8", "replace")


def _content(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            return inner.as_bytes()
    decoded = part.get_payload(decode=True)
    if isinstance(decoded, bytes):
        return decoded
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _filename(part: Message, content_type: str, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:  # a broken RFC 2231 parameter
        name = None
    if name:
        # A path in the name (attacker-chosen, "../../.bashrc") keeps its last segment.
        base = re.split(r"[/\\]", clean_text(name))[-1]
        safe = _FILENAME_UNSAFE.sub("_", base).strip(" .")[:200]
        if safe:
            return safe
    extension = mimetypes.guess_extension(content_type) or ".bin"
    return f"part-{index + 1}{extension}"
