"""Shared helpers of the blocking-facade tests (a plain module: conftest names collide)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

from smtpsubmit.testing import ThreadedSMTPServer

#: Upper bound on any wait in these tests; reaching it is a failure, never a pass.
BOUND = 30.0


def message(
    to: str = "user@example.com", subject: str = "sync", sender: str = "app@example.com"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("hello\n")
    return msg


def client_lines(server: ThreadedSMTPServer) -> list[str]:
    """Every line the clients sent, over all connections, in order."""
    return [e.line for t in server.transcripts for e in t if e.direction == "client"]


def verbs_per_connection(server: ThreadedSMTPServer) -> list[list[str]]:
    return [
        [e.line.split(" ")[0].upper() for e in t if e.direction == "client"]
        for t in server.transcripts
    ]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state no event announces (e.g. requests sitting in a pool's queue).

    It waits for the condition, not for a duration: it returns as soon as the condition
    holds and fails the test after ``BOUND`` seconds.
    """
    deadline = time.monotonic() + BOUND
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.002)


@contextlib.contextmanager
def unix_relay(path: str, target: tuple[str, int]) -> Iterator[None]:
    """A Unix socket at ``path`` whose connections are piped to ``target`` over TCP."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    pumps: list[threading.Thread] = []
    sockets: list[socket.socket] = []

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:  # the listener was closed: no more connections
                return
            upstream = socket.create_connection(target)
            sockets.extend((downstream, upstream))
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                thread = threading.Thread(target=pump, args=(source, sink), daemon=True)
                thread.start()
                pumps.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(BOUND)
        for thread in pumps:
            thread.join(BOUND)
        for sock in sockets:
            sock.close()
