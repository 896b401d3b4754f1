"""What the fake server records: transcripts and captured messages, shared across threads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, NamedTuple

__all__ = ["CapturedMessage", "MessageStore", "Recipient", "TranscriptEntry"]

Direction = Literal["client", "server", "event"]


class TranscriptEntry(NamedTuple):
    """One line of a transcript: who sent it and the line without CRLF.

    ``event`` entries are the server's notes (TLS established, message data length...).
    AUTH payloads are replaced by ``<redacted>``.
    """

    direction: Direction
    line: str


@dataclass(frozen=True)
class Recipient:
    """One accepted RCPT TO: the address and its parameters (NOTIFY, ORCPT xtext-decoded)."""

    address: str
    params: dict[str, str | None]


@dataclass(frozen=True)
class CapturedMessage:
    """One accepted mail transaction, exactly as the server received it."""

    #: The queue ID from ``250 2.0.0 Ok: queued as <ID>``.
    queue_id: str
    #: Reverse path (``""`` for the null path ``<>``) and MAIL parameters, keys upper-case;
    #: xtext values (ENVID, AUTH) decoded (RFC 3461 4).
    mail_from: str
    mail_from_params: dict[str, str | None]
    recipients: tuple[Recipient, ...]
    #: The content after dot-unstuffing (RFC 5321 4.5.2), or the BDAT chunks concatenated.
    data: bytes
    #: ``data`` parsed with ``email.policy.default`` (CRLF read as ``\n`` unless BINARYMIME).
    message: EmailMessage
    #: "DATA" or "BDAT".
    via: Literal["DATA", "BDAT"]
    tls: bool
    #: e.g. "TLSv1.3", or ``None`` without TLS.
    tls_version: str | None
    #: The SASL identity that authenticated on this connection, if any.
    auth_identity: str | None
    #: The name the client gave in EHLO/HELO.
    client_name: str
    #: (host, port) of the client.
    peer: tuple[str, int]
    #: The connection's transcript up to and including the final reply.
    transcript: tuple[TranscriptEntry, ...]
    #: False when a fault dropped the connection before the final reply was sent.
    acknowledged: bool = True
    #: Wall-clock time of capture.
    received_at: float = field(default_factory=time.time)

    @property
    def rcpt_to(self) -> list[str]:
        """The recipient addresses, in order."""
        return [r.address for r in self.recipients]


class MessageStore:
    """Thread-safe list of captured messages and transcripts with blocking waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._messages: list[CapturedMessage] = []
        self._transcripts: list[list[TranscriptEntry]] = []
        self._closed = False

    def add(self, message: CapturedMessage) -> None:
        """Record a message and wake waiters."""
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def new_transcript(self) -> list[TranscriptEntry]:
        """Register (and return) the transcript list of a new connection."""
        transcript: list[TranscriptEntry] = []
        with self._cond:
            self._transcripts.append(transcript)
        return transcript

    def messages(self) -> list[CapturedMessage]:
        """A snapshot of the captured messages."""
        with self._cond:
            return list(self._messages)

    def transcripts(self) -> list[list[TranscriptEntry]]:
        """A snapshot of every connection's transcript, in connection order."""
        with self._cond:
            return [list(t) for t in self._transcripts]

    def clear(self) -> None:
        """Forget captured messages and transcripts."""
        with self._cond:
            self._messages.clear()
            self._transcripts.clear()

    def close(self) -> None:
        """Wake every waiter: the server is gone."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait(self, count: int, timeout: float | None) -> list[CapturedMessage]:
        """Block until at least ``count`` messages are captured; return all of them.

        Raises TimeoutError after ``timeout`` seconds, or if the server stops first.
        """
        with self._cond:
            if (
                not self._cond.wait_for(
                    lambda: len(self._messages) >= count or self._closed, timeout
                )
                or len(self._messages) < count
            ):
                raise TimeoutError(
                    f"expected {count} message(s), got {len(self._messages)}"
                    + (" (server stopped)" if self._closed else f" within {timeout} s")
                )
            return list(self._messages)
