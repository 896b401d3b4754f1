"""Test helpers: a deliberately dumb raw SMTP client for asserting on bytes on the wire, and
a line reader with bounded waits for the output of child processes."""

from __future__ import annotations

import base64
import queue
import socket
import ssl
import threading
from types import TracebackType
from typing import IO


class RawClient:
    """Blocking socket client: send bytes, read replies line by line."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        """One line including CRLF; b"" at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self) -> tuple[int, list[str]]:
        """Read one (multi-line) reply: (code, texts). Raises EOFError at EOF."""
        texts = []
        while True:
            line = self.read_line()
            if not line:
                raise EOFError("connection closed")
            text = line.rstrip(b"\r\n").decode()
            texts.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), texts

    def cmd(self, line: str) -> tuple[int, list[str]]:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def at_eof(self) -> bool:
        """True when the server closed the connection (after any buffered bytes)."""
        return not self.buf and self.sock.recv(1) == b""

    def starttls(self, context: ssl.SSLContext, hostname: str = "localhost") -> None:
        assert self.cmd("STARTTLS")[0] == 220
        assert self.buf == b"", f"bytes after 220 STARTTLS: {self.buf!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname=hostname)

    def auth(self, mechanism: str, *responses: bytes, initial: bytes | None = None) -> list[bytes]:
        """Run an AUTH exchange; return the decoded 334 challenges and leave the final reply."""
        line = f"AUTH {mechanism}"
        if initial is not None:
            line += " " + (base64.b64encode(initial).decode() or "=")
        code, texts = self.cmd(line)
        challenges = []
        for response in responses:
            assert code == 334, (code, texts)
            challenges.append(base64.b64decode(texts[0]))
            code, texts = self.cmd(base64.b64encode(response).decode())
        self.last = (code, texts)
        return challenges


class LineReader:
    """Reads a child process's text output on a thread, so that waits can be bounded."""

    def __init__(self, stream: IO[str], *, timeout: float = 20.0) -> None:
        self.timeout = timeout
        #: Every line read so far by ``expect`` (for failure messages).
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def expect(self, prefix: str) -> str:
        """The next line starting with ``prefix``, skipping others; AssertionError if none
        comes within ``timeout`` seconds or the output ends first."""
        while True:
            try:
                line = self._lines.get(timeout=self.timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no {prefix!r} line in {self.timeout} s; got {self.seen}"
                ) from None
            if line is None:
                raise AssertionError(f"output ended before {prefix!r}: {self.seen}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line
