"""What a send returns: per-recipient outcome, final reply, queue id and transcript."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, NamedTuple, overload

from ._errors import ReplyError, SMTPError
from .protocol import Command, Reply

__all__ = ["Attempt", "SendResult", "Transcript", "TranscriptLine", "lines_of"]

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


def lines_of(item: Command | Reply) -> list[TranscriptLine]:
    """The transcript lines of a command sent (secrets redacted) or of a reply received."""
    if not isinstance(item, Reply):
        return [TranscriptLine("C", item.log_line())]
    status = f"{item.enhanced} " if item.enhanced else ""
    last = len(item.lines) - 1
    return [
        TranscriptLine("S", f"{item.code}{' ' if i == last else '-'}{status}{line}".rstrip())
        for i, line in enumerate(item.lines)
    ]


class Transcript(Sequence[TranscriptLine]):
    """The lines of a transaction, rendered from its commands and replies when first read.

    Sending keeps the command and reply objects (no formatting on the hot path); the text,
    secrets already redacted by :meth:`Command.log_line`, is made only if someone looks.
    Compares equal to any sequence of the same lines.
    """

    __slots__ = ("_items", "_lines")

    def __init__(self, items: Iterable[Command | Reply | TranscriptLine] = ()) -> None:
        self._items = tuple(items)
        self._lines: tuple[TranscriptLine, ...] | None = None

    def _rendered(self) -> tuple[TranscriptLine, ...]:
        if self._lines is None:
            lines: list[TranscriptLine] = []
            for item in self._items:
                if isinstance(item, TranscriptLine):
                    lines.append(item)
                else:
                    lines.extend(lines_of(item))
            self._lines = tuple(lines)
            self._items = ()
        return self._lines

    @overload
    def __getitem__(self, index: int) -> TranscriptLine: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[TranscriptLine]: ...
    def __getitem__(self, index: int | slice) -> TranscriptLine | Sequence[TranscriptLine]:
        return self._rendered()[index]

    def __len__(self) -> int:
        return len(self._rendered())

    def __iter__(self) -> Iterator[TranscriptLine]:
        return iter(self._rendered())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Transcript | tuple | list):
            return self._rendered() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._rendered())

    def __repr__(self) -> str:
        return f"Transcript({list(self._rendered())!r})"

    def __reduce__(self) -> tuple[type[Transcript], tuple[tuple[TranscriptLine, ...]]]:
        # The rendered (redacted) lines, never the command objects.
        return (Transcript, (self._rendered(),))


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
    transaction, AUTH payloads redacted (a :class:`Transcript`, rendered when first read).
    Under a :class:`~smtpsubmit.RetryPolicy`, ``attempts`` counts the tries it took and
    ``history`` has an :class:`Attempt` for each (``accepted`` and ``refused`` then cover
    every attempt, ``reply`` and ``transcript`` are the last successful one's).
    """

    sender: str
    accepted: tuple[str, ...]
    refused: Mapping[str, Reply]
    reply: Reply
    transcript: Sequence[TranscriptLine] = field(default=(), repr=False)
    attempts: int = 1
    history: tuple[Attempt, ...] = field(default=(), repr=False)

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


@dataclass(frozen=True)
class Attempt:
    """One try of a message under a retry policy: to whom it went and what came of it.

    ``number`` counts from 1; ``outcome`` is that try's :class:`SendResult` or error.
    """

    number: int
    recipients: tuple[str, ...]
    outcome: SendResult | SMTPError

    @property
    def replies(self) -> dict[str, Reply | None]:
        """Each recipient's reply in this try: the final reply for an accepted one, its
        RCPT reply for a refused one, the error's reply (a 421...) or ``None`` when the
        connection failed without one."""
        outcome = self.outcome
        if isinstance(outcome, SendResult):
            return {
                r: outcome.refused.get(r, outcome.reply if r in outcome.accepted else None)
                for r in self.recipients
            }
        refused = getattr(outcome, "refused", None)
        reply = outcome.reply if isinstance(outcome, ReplyError) else None
        return {r: (refused or {}).get(r, reply) for r in self.recipients}
