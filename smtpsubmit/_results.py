"""What a send returns: per-recipient outcome, final reply, queue id and transcript."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, NamedTuple

from .protocol import Reply

__all__ = ["SendResult", "TranscriptLine"]

# Postfix/Sendmail "queued as X", Exim "id=X", and generic "<X> queued".
_QUEUE_ID = re.compile(r"queued as ([\w.@<>-]+)|\bid=([\w.@<>-]+)", re.IGNORECASE)


class TranscriptLine(NamedTuple):
    """One line of the session as it crossed the wire, secrets redacted.

    ``direction`` is ``"C"`` for client to server and ``"S"`` for server to client.
    (A named tuple: one is made for every line of every message, so it must be cheap.)
    """

    direction: Literal["C", "S"]
    text: str

    def __str__(self) -> str:
        return f"{self.direction}: {self.text}"


def queue_id_from(reply: Reply) -> str | None:
    """The server's queue id in a final reply, when it gives one in a known form."""
    match = _QUEUE_ID.search(reply.text)
    if match is None:
        return None
    return (match.group(1) or match.group(2)).strip("<>")


@dataclass(frozen=True)
class SendResult:
    """The outcome of one message.

    ``accepted`` lists the recipients the server accepted, in envelope order; ``refused``
    maps each refused recipient to its reply (code, enhanced status, text). ``reply`` is
    the server's final reply to the message (end of data or the last BDAT), and
    ``queue_id`` the id it gave, if recognisable. ``transcript`` holds the lines of this
    transaction, AUTH payloads redacted.
    """

    sender: str
    accepted: tuple[str, ...]
    refused: Mapping[str, Reply]
    reply: Reply
    transcript: tuple[TranscriptLine, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "refused", MappingProxyType(dict(self.refused)))

    @property
    def queue_id(self) -> str | None:
        """The queue id from the final reply, e.g. Postfix's ``queued as 4F2C...``."""
        return queue_id_from(self.reply)

    @property
    def ok(self) -> bool:
        """True when every recipient was accepted."""
        return not self.refused
