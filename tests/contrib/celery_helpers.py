"""Real components for the Celery tests: a redis-server and Celery worker processes.

Both are processes this module starts (in a session of their own, so nothing of theirs
outlives a test run) and stops: SIGTERM first, SIGKILL after a bound, always in
``finally``. Waits poll observable state (a Redis PING, a readiness file a worker writes
from its ``worker_ready`` signal) with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

HERE = Path(__file__).resolve().parent
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something other than None/False, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL of its whole session after ``timeout`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    # Its children (prefork workers) too: the session was made for this process alone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


class RedisServer:
    """``redis-server`` on a free loopback port, data in ``directory``, no persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL without a database number."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        log = self.directory / "redis.log"
        for _ in range(3):  # the free port may be taken in between: try another
            self.port = free_port()
            command = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", str(log),
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                wait_for(self._ready, 10, "redis-server to answer PING")
                return
            except AssertionError:
                stop_process(self.proc)
        raise AssertionError(f"redis-server did not start: {log.read_text(errors='replace')}")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


class CeleryWorker:
    """``celery -A celery_testapp worker`` with its own node name and log file."""

    def __init__(
        self,
        name: str,
        directory: Path,
        env: dict[str, str],
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        queues: str = "celery",
    ) -> None:
        self.name = name
        self.directory = directory
        self.env = env
        self.pool = pool
        self.concurrency = concurrency
        self.queues = queues
        self.log = directory / f"worker-{name}.log"
        self.ready_file = directory / "ready" / f"{name}@{socket.gethostname()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.directory / "ready").mkdir(exist_ok=True)
        env = {
            **os.environ,
            **self.env,
            "SMTPSUBMIT_TEST_READY_DIR": str(self.directory / "ready"),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        command = [
            sys.executable, "-m", "celery", "-A", "celery_testapp", "worker",
            "--pool", self.pool,
            "--concurrency", str(self.concurrency),
            "--loglevel", "warning",
            "--hostname", f"{self.name}@%h",
            "--queues", self.queues,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                command, cwd=self.directory, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.output()}")
            return self.ready_file.exists()

        wait_for(ready, timeout, f"worker {self.name} to be ready", interval=0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self) -> None:
        """Ask for a warm shutdown (running tasks finish), without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)


@contextlib.contextmanager
def workers(
    directory: Path, env: dict[str, str], specs: list[dict[str, object]]
) -> Iterator[list[CeleryWorker]]:
    """Start a worker per spec (``name`` plus CeleryWorker keywords) and stop them all."""
    started: list[CeleryWorker] = []
    try:
        for spec in specs:
            options = dict(spec)
            name = str(options.pop("name"))
            worker = CeleryWorker(name, directory, env, **options)  # type: ignore[arg-type]
            started.append(worker)
            worker.start()
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.terminate()
        for worker in started:
            worker.stop()
