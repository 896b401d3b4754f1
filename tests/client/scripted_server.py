"""A loopback SMTP server that answers each command from a script (for outcome tables).

Unlike the fake server, it has no rules of its own: it replies what the test says, in the
order commands arrive, and closes the connection where the script says ``CLOSE`` (and
after a 421). That is how a test reaches every reply order a pipelined transaction can
meet. Closing means ending its side (FIN) and reading on until the client closes: a reset
while the client still writes would make what the client saw first a race.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc

CLOSE = "CLOSE"
EXTENSIONS = ("PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES", "8BITMIME")


@dataclass
class Script:
    """Replies for the commands after EHLO, in order; ``CLOSE`` closes instead of a reply,
    and ``{arg}`` in a reply quotes the command's last argument (or the whole line).

    Commands past the end of the script get ``250 2.0.0 ok`` (``354`` for DATA, ``221`` for
    QUIT). ``seen`` records every command line the server read, and ``bodies`` every body
    it received in full (the end of DATA or of a ``BDAT ... LAST``).
    """

    replies: list[str]
    extensions: tuple[str, ...] = EXTENSIONS
    seen: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[int]:
    """Serve ``script`` on 127.0.0.1 (one connection at a time); yields the port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, lambda stream: _serve(stream, script))
        try:
            yield port
        finally:
            tg.cancel_scope.cancel()


class _Reader:
    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def line(self) -> bytes | None:
        while b"\r\n" not in self.buffer:
            if not await self.more():
                return None
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    async def exactly(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not await self.more():
                return None
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    async def until_dot(self) -> bytes | None:
        while b"\r\n.\r\n" not in b"\r\n" + self.buffer:
            if not await self.more():
                return None
        body, _, self.buffer = (b"\r\n" + self.buffer).partition(b"\r\n.\r\n")
        return body[2:]

    async def more(self) -> bool:
        try:
            self.buffer += await self.stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return False
        return True


async def _serve(stream: anyio.abc.SocketStream, script: Script) -> None:
    reader = _Reader(stream)
    async with stream:
        await _dialogue(stream, reader, script)
        await stream.send_eof()
        while await reader.more():  # until the client closes: no reset, no race
            pass


async def _dialogue(stream: anyio.abc.SocketStream, reader: _Reader, script: Script) -> None:
    replies = iter(script.replies)
    await stream.send(b"220 scripted.example ESMTP\r\n")
    body: list[bytes] = []
    while (raw := await reader.line()) is not None:
        line = raw.decode("utf-8", "replace")
        verb = line.split(" ")[0].upper()
        if verb in ("EHLO", "HELO"):
            await stream.send(_ehlo(script.extensions))
            continue
        script.seen.append(line)
        if verb == "BDAT":
            parts = line.split()
            chunk = await reader.exactly(int(parts[1]))
            if chunk is None:
                return
            body.append(chunk)
            if parts[-1].upper() == "LAST":
                script.bodies.append(b"".join(body))
                body = []
        # "{arg}" quotes what the client sent (a server echoing AUTH payloads).
        reply = next(replies, _default(verb)).replace("{arg}", line.split(" ", 2)[-1])
        if reply == CLOSE:
            return
        await stream.send(reply.encode() + b"\r\n")
        if verb == "DATA" and reply.startswith("354"):
            data = await reader.until_dot()
            if data is None:
                return
            script.bodies.append(data)
            final = next(replies, "250 2.0.0 queued as SCRIPTED")
            if final == CLOSE:
                return
            await stream.send(final.encode() + b"\r\n")
        if verb == "QUIT" or reply.startswith("421"):
            return


def _default(verb: str) -> str:
    return {"DATA": "354 go ahead", "QUIT": "221 bye"}.get(verb, "250 2.0.0 ok")


def _ehlo(extensions: Iterable[str]) -> bytes:
    lines = ["scripted.example", *extensions]
    return b"".join(
        f"250{'-' if i < len(lines) - 1 else ' '}{text}\r\n".encode()
        for i, text in enumerate(lines)
    )
