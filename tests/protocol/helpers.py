"""Shared helpers: feeding readers three ways (the h11 habit) and scripted sessions."""

from __future__ import annotations

from smtpsubmit.protocol import (
    NEED_DATA,
    ClientConnection,
    Ehlo,
    Event,
    Reply,
    State,
)
from smtpsubmit.protocol._replies import ReplyParser

#: Every reader is fed all at once, one byte at a time, and followed by the start of
#: the next reply in the same read.
FEED_MODES = ("all_at_once", "byte_by_byte", "with_trailing_data")

#: The unfinished start of a following reply: it must stay buffered, untouched.
TRAILING = b"250-nex"

GREETING = b"220 mx.example ESMTP ready\r\n"


def parse_replies(data: bytes, mode: str, parser: ReplyParser | None = None) -> list[Reply]:
    """Feed ``data`` to a ReplyParser in ``mode`` and return every complete reply."""
    parser = parser if parser is not None else ReplyParser()
    replies: list[Reply] = []

    def drain() -> None:
        while (reply := parser.next_reply()) is not None:
            replies.append(reply)

    if mode == "byte_by_byte":
        for i in range(len(data)):
            parser.feed(data[i : i + 1])
            drain()
    else:
        parser.feed(data + (TRAILING if mode == "with_trailing_data" else b""))
        drain()
    if mode == "with_trailing_data":
        assert parser.buffered == len(TRAILING)
        assert parser.in_reply
    return replies


def receive(conn: ClientConnection, data: bytes, mode: str = "all_at_once") -> list[Event]:
    """Feed server bytes to ``conn`` in ``mode``; return the events up to NEED_DATA.

    In ``with_trailing_data`` mode the start of another reply follows ``data`` in the
    same read; it must not produce an event, and it is taken back afterwards so that a
    scripted session can go on.
    """
    events: list[Event] = []

    def drain() -> None:
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)

    if mode == "byte_by_byte":
        for i in range(len(data)):
            conn.receive_data(data[i : i + 1])
            drain()
        return events
    trailing = TRAILING if mode == "with_trailing_data" else b""
    conn.receive_data(data + trailing)
    drain()
    if trailing:
        assert conn._parser.buffered == len(trailing)
        del conn._parser._buffer[-len(trailing) :]
    return events


def reply(conn: ClientConnection, data: bytes, mode: str = "all_at_once") -> Reply:
    """Feed exactly one reply and return it."""
    events = receive(conn, data, mode)
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, Reply)
    return event


def ehlo_reply(*keywords: str) -> bytes:
    """A positive EHLO reply advertising ``keywords``."""
    lines = ["mx.example greets client.example", *keywords]
    out = b""
    for i, line in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out += f"250{sep}{line}\r\n".encode()
    return out


def greeted(**options: object) -> ClientConnection:
    """A connection that has read the 220 greeting (state HELLO)."""
    conn = ClientConnection(**options)  # type: ignore[arg-type]
    greeting = reply(conn, GREETING)
    assert greeting.code == 220
    assert conn.state is State.HELLO
    return conn


def ready(*keywords: str, **options: object) -> ClientConnection:
    """A connection after EHLO whose reply advertised ``keywords`` (state READY)."""
    conn = greeted(**options)
    assert conn.send(Ehlo("client.example")) == b"EHLO client.example\r\n"
    reply(conn, ehlo_reply(*keywords))
    assert conn.state is State.READY
    return conn
