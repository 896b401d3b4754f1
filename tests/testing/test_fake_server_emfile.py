"""Out of file descriptors: the server stops accepting for a while, then serves again.

Deterministic: a child process (``emfile_child.py``) lowers RLIMIT_NOFILE, fills its
descriptor table on command and reports the server's log lines; this test connects while
the table is full, waits for the server to *say* that accept() failed, frees the table and
checks that the waiting connections are served and that the server stops cleanly. Every
wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_smtp_helpers import LineReader

CHILD = Path(__file__).with_name("emfile_child.py")
BOUND = 20.0  # seconds for any one step; far above what each takes


class _Child:
    """The child process, with bounded waits on its output."""

    def __init__(self, backend: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        self.output = LineReader(self.proc.stdout, timeout=BOUND)
        self.seen = self.output.seen
        self.expect = self.output.expect

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def end(self) -> None:
        """Whatever happened: end the child, killing it after a bound."""
        try:
            self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(params=["asyncio", "trio"])
def child(request: pytest.FixtureRequest) -> Iterator[_Child]:
    started = _Child(str(request.param))
    try:
        yield started
    finally:
        if started.proc.poll() is None and started.proc.stdin is not None:
            started.proc.stdin.close()  # EOF on stdin: the child's loop ends
        started.end()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=BOUND)


def _reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_server_survives_running_out_of_descriptors(child: _Child) -> None:
    port = int(child.expect("port ").split()[1])
    child.send("fill")
    child.expect("full")
    # The kernel completes these handshakes into the backlog; the server cannot accept them.
    waiting = _connect(port)
    reset = _connect(port)
    child.expect("log: fake SMTP server 127.0.0.1:")  # "... accept() failed (... EMFILE ...)"
    assert "accept() failed" in child.seen[-1]
    assert "Too many open files" in child.seen[-1]
    # Reset while it waits to be accepted: the server must shrug that off as well.
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    reset.close()

    child.send("free")
    child.expect("freed")
    with waiting:
        assert _reply(waiting).startswith(b"220 ")
        waiting.sendall(b"QUIT\r\n")
        assert _reply(waiting).startswith(b"221 ")
    with _connect(port) as later:  # and new connections too
        assert _reply(later).startswith(b"220 ")
    child.expect(f"log: fake SMTP server 127.0.0.1:{port}: accepting again")

    child.send("stop")
    assert child.expect("stopped") == "stopped errors=[]"
    child.end()
    assert child.proc.returncode == 0, child.seen
