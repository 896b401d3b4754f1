"""Buffered reading from a byte stream: lines and exact byte counts, never losing bytes.

Theory of operation: the reader owns one buffer. Pipelined commands (RFC 2920) simply stay
in it until the session asks for the next line, so replies go out in command order and no
byte is lost. The buffer is dropped on purpose only once: after STARTTLS (RFC 3207 6).
"""

from __future__ import annotations

import ssl

import anyio
from anyio.abc import ByteStream

__all__ = ["ConnectionClosed", "IdleTimeout", "Reader"]


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke): the session ends quietly."""


class IdleTimeout(Exception):
    """The peer sent nothing (or, with ``sending``, read nothing) for the idle timeout."""

    def __init__(self, seconds: float, *, sending: bool) -> None:
        super().__init__(f"idle for {seconds} s " + ("while sending" if sending else "waiting"))
        self.seconds = seconds
        self.sending = sending


class Reader:
    """Reads lines and exact byte counts from ``stream``; ``stream`` may be swapped for TLS.

    Every wait for the peer's bytes is bounded by ``idle_timeout`` (``IdleTimeout``), so an
    abandoned connection is not held forever whatever the session was reading.
    """

    def __init__(self, stream: ByteStream, *, idle_timeout: float | None = None) -> None:
        self.stream = stream
        self.idle_timeout = idle_timeout
        self._buf = bytearray()

    def discard_buffer(self) -> int:
        """Drop whatever is buffered; return how many octets that was."""
        n = len(self._buf)
        self._buf.clear()
        return n

    async def _fill(self) -> None:
        try:
            with anyio.move_on_after(self.idle_timeout) as idle:
                chunk = await self.stream.receive()
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            ssl.SSLError,
            OSError,
        ) as exc:
            raise ConnectionClosed from exc
        if idle.cancelled_caught:
            assert self.idle_timeout is not None
            raise IdleTimeout(self.idle_timeout, sending=False)
        self._buf += chunk

    async def readline(self, limit: int, *, strict_crlf: bool = False) -> tuple[bytes, bool]:
        """Return ``(line, too_long)``; ``line`` ends with its line terminator.

        Commands may end with a bare LF (tolerated like most servers do); message data only
        ends lines at CRLF (``strict_crlf``), so ``<LF>.<LF>`` can never end a message (the
        "SMTP smuggling" confusion). A line longer than ``limit`` is consumed up to its end
        and returned truncated with ``too_long=True``, keeping memory bounded.
        """
        delim = b"\r\n" if strict_crlf else b"\n"
        start = 0
        head = b""
        too_long = False
        while True:
            idx = self._buf.find(delim, start)
            if idx >= 0:
                end = idx + len(delim)
                line = bytes(self._buf[:end])
                del self._buf[:end]
                if too_long or len(line) > limit:
                    return (head or line[:limit]), True
                return line, False
            if len(self._buf) > limit:
                # Keep the last octet: it may be the CR of a CRLF split across reads.
                if not too_long:
                    head = bytes(self._buf[:limit])
                too_long = True
                del self._buf[:-1]
            start = max(0, len(self._buf) - len(delim) + 1)
            await self._fill()

    async def readexactly(self, n: int) -> bytes:
        """Return exactly ``n`` octets (for BDAT, RFC 3030 2)."""
        while len(self._buf) < n:
            await self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def skip(self, n: int) -> None:
        """Consume and drop exactly ``n`` octets without holding them in memory."""
        while n > 0:
            if not self._buf:
                await self._fill()
            taken = min(n, len(self._buf))
            del self._buf[:taken]
            n -= taken
