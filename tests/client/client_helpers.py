"""Shared helpers of the client tests (a plain module: conftest names collide)."""

from __future__ import annotations

import gc
from email.message import EmailMessage

from smtpsubmit.transport import AnyIOTransport


def make_message(
    *,
    sender: str = "alice@example.com",
    to: str = "bob@example.com",
    subject: str = "Hello",
    body: str = "Hi Bob,\n.a line starting with a dot\n",
    **headers: str,
) -> EmailMessage:
    """A small text message."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def bytes_reachable(root: object, depth: int = 12) -> int:
    """Octets in the bytes objects reachable from ``root`` (what it keeps alive)."""
    seen: set[int] = set()
    total = 0
    frontier = [root]
    for _ in range(depth):
        following = []
        for obj in frontier:
            if id(obj) in seen or isinstance(obj, type):
                continue
            seen.add(id(obj))
            if isinstance(obj, bytes | bytearray):
                total += len(obj)
            following.extend(gc.get_referents(obj))
        frontier = following
    return total


class TapeTransport(AnyIOTransport):
    """Records the order of writes ("W") and reads ("R") and what was written."""

    tape: list[tuple[str, bytes]]

    async def send(self, data: bytes) -> None:
        self.tape.append(("W", data))
        await super().send(data)

    async def receive(self) -> bytes:
        data = await super().receive()
        self.tape.append(("R", data))
        return data
