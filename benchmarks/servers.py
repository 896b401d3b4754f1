"""The loopback servers the benchmark talks to, and the tools it compares with.

- Postfix's ``smtp-sink`` (C, discards mail; advertises PIPELINING but not CHUNKING) is
  the server of every row that does not need CHUNKING; ``smtp-source`` is a client row.
- smtpsubmit's own ``FakeSMTPServer`` in PLAIN mode, in a process of its own, is the
  server of the CHUNKING rows (``python benchmarks/servers.py fake`` runs it).
- ``proxy.py`` processes add latency in front of either.

Everything listens on 127.0.0.1 only; :class:`Services` kills what it started on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

__all__ = ["HOST", "Service", "Services", "ensure_tools", "find_postfix_tool", "main"]

HOST = "127.0.0.1"
HERE = Path(__file__).resolve().parent
POSTFIX_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/lib/postfix/sbin")


def find_postfix_tool(name: str) -> str | None:
    """Path of ``smtp-sink``/``smtp-source``, which Debian puts in /usr/sbin."""
    found = shutil.which(name)
    if found:
        return found
    for folder in POSTFIX_DIRS:
        candidate = Path(folder) / name
        if candidate.exists():
            return str(candidate)
    return None


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ensure_tools() -> list[str]:
    """Install aiosmtplib (PyPI) and Postfix's tools (Debian) if missing; return problems."""
    problems: list[str] = []
    try:
        import aiosmtplib  # noqa: F401
    except ImportError:
        _log("installing aiosmtplib with pip")
        pip = [sys.executable, "-m", "pip", "install", "-q", "aiosmtplib"]
        if subprocess.run(pip, check=False).returncode != 0:
            problems.append("aiosmtplib could not be installed: its rows are n/a")
    if find_postfix_tool("smtp-sink") and find_postfix_tool("smtp-source"):
        return problems
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        problems.append("smtp-sink/smtp-source missing (install Debian's postfix as root)")
        return problems
    _log("installing postfix (for smtp-sink and smtp-source) with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    selection = "postfix postfix/main_mailer_type select No configuration\n"
    subprocess.run(["debconf-set-selections"], input=selection, text=True, check=False)
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], env=env, check=False)
    if not find_postfix_tool("smtp-sink"):
        problems.append("postfix could not be installed: smtp-sink rows use the fake server")
    return problems


def free_port() -> int:
    """A port that was free a moment ago (smtp-sink needs one on its command line)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for_greeting(port: int, proc: subprocess.Popen[str], timeout: float = 15.0) -> None:
    """Wait until ``port`` answers with an SMTP 220 greeting."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                greeting = sock.recv(512)
                sock.sendall(b"QUIT\r\n")
            if greeting.startswith(b"220"):
                return
            last = RuntimeError(f"unexpected greeting {greeting!r}")
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on {HOST}:{port} ({last})")


@dataclass
class Service:
    """A running server or proxy process."""

    name: str
    port: int
    proc: subprocess.Popen[str]
    control_port: int | None = None  #: proxies only

    def __str__(self) -> str:
        return f"{self.name} on {HOST}:{self.port}"


class Services:
    """Starts servers and proxies as child processes; stops every one of them on exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Services:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                if proc.stdout is not None:
                    proc.stdout.close()
        self._procs.clear()

    def _spawn(self, argv: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._procs.append(proc)
        return proc

    def _announced(self, proc: subprocess.Popen[str], prefix: str) -> list[int]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(prefix):
            proc.kill()
            raise RuntimeError(f"{proc.args!r} did not start (said {line!r})")
        return [int(word) for word in line.split()[1:]]

    def smtp_sink(self) -> Service:
        """Postfix's smtp-sink: PIPELINING, 8BITMIME, DSN...; no CHUNKING, no SIZE."""
        sink = find_postfix_tool("smtp-sink")
        if sink is None:
            return self.fake_server(chunking=False, name="fake server (no smtp-sink)")
        port = free_port()
        argv = [sink]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # smtp-sink drops root privileges to this user
        proc = self._spawn([*argv, f"{HOST}:{port}", "1000"])
        wait_for_greeting(port, proc)
        return Service("smtp-sink", port, proc)

    def fake_server(self, *, chunking: bool = True, name: str | None = None) -> Service:
        """smtpsubmit's FakeSMTPServer (PLAIN, no size limit) in a process of its own."""
        argv = [sys.executable, str(HERE / "servers.py"), "fake"]
        if not chunking:
            argv.append("--no-chunking")
        proc = self._spawn(argv)
        (port,) = self._announced(proc, "PORT ")
        wait_for_greeting(port, proc)
        label = name or ("fake server (CHUNKING)" if chunking else "fake server")
        return Service(label, port, proc)

    def proxy(self, target: Service, delay: float) -> Service:
        """A latency proxy in front of ``target`` (``delay`` seconds each way)."""
        argv = [sys.executable, str(HERE / "proxy.py")]
        argv += ["--target", f"{HOST}:{target.port}", "--delay", str(delay)]
        proc = self._spawn(argv)
        port, control = self._announced(proc, "PORTS ")
        wait_for_greeting(port, proc)
        label = f"{target.name} + {delay * 1000:g} ms each way"
        return Service(label, port, proc, control_port=control)


@contextlib.contextmanager
def message_file(data: bytes, folder: Path) -> Iterator[Path]:
    """Write ``data`` to a file that worker processes read, removed afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"message-{os.getpid()}-{len(data)}.eml"
    path.write_bytes(data)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


# -- the fake server process ---------------------------------------------------------------


async def _serve_fake(chunking: bool) -> None:
    import anyio

    from smtpsubmit.testing import ALL_EXTENSIONS, Extension, FakeSMTPServer, Mode

    unwanted = {Extension.STARTTLS, Extension.AUTH, Extension.REQUIRETLS}
    if not chunking:
        unwanted |= {Extension.CHUNKING, Extension.BINARYMIME}
    server = FakeSMTPServer(
        mode=Mode.PLAIN,
        host=HOST,
        hostname="fake-smtp.bench",
        extensions=ALL_EXTENSIONS - unwanted,
        max_message_size=None,
    )
    async with server:
        print(f"PORT {server.port}", flush=True)
        await anyio.sleep_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark servers.")
    sub = parser.add_subparsers(dest="command", required=True)
    fake = sub.add_parser("fake", help="run smtpsubmit's fake server (PLAIN) until killed")
    fake.add_argument("--no-chunking", action="store_true", help="do not offer CHUNKING")
    args = parser.parse_args(argv)
    import anyio

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve_fake, not args.no_chunking)
    return 0


if __name__ == "__main__":
    sys.exit(main())
