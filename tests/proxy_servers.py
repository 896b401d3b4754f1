"""Real proxy servers for the tests: Dante (``danted``: SOCKS4, SOCKS5) and tinyproxy
(HTTP CONNECT), the Debian packages ``dante-server`` and ``tinyproxy``.

Each runs in the foreground as a child process (no systemd), listening on 127.0.0.1 with
its configuration, log and pid file in a temporary directory, and is stopped by the code
that started it. Both send their outgoing connections from **127.0.0.2** (Dante's
``external:``, tinyproxy's ``Bind``), so a server that sees its client at 127.0.0.2 knows
the connection came through the proxy (nothing else here connects from that address).

SOCKS5 user name authentication (RFC 1929) in Dante checks a *system* account: as root,
:func:`system_user` creates a throwaway one (``useradd``, ``chpasswd``) and deletes it
afterwards; without root those tests skip, saying so. CI runs as root and installs both
packages (``.ci/run``), so there nothing skips.

Readiness is a condition, not a pause: :func:`wait_listening` watches the kernel's socket
table (``/proc/net/tcp``) until the port is in LISTEN, or the process has exited.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

#: The address both proxies connect to the mail server from.
OUTGOING = "127.0.0.2"
#: The throwaway system account Dante checks SOCKS5 user names against.
PROXY_USER = "smtpsubmitpx"
#: How long a proxy may take to start listening.
START_TIMEOUT = 15.0


def is_root() -> bool:
    return os.geteuid() == 0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the proxy binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something is in LISTEN on 127.0.0.1:port (read from /proc, no connection)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        return any(
            fields[1] == wanted and fields[3] == "0A" for fields in (line.split() for line in table)
        )


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once ``port`` listens; fail with the log if the process exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT
    while not listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            pytest.fail(f"the proxy did not start listening on {port}:\n{text[-3000:]}")
        time.sleep(0.02)  # polling a condition with a deadline, not a pacing sleep


@dataclass
class ProxyServer:
    """A running proxy: ``scheme://127.0.0.1:port``; its log for failure messages."""

    scheme: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    def url(self, scheme: str | None = None, user: str | None = None, password: str = "") -> str:
        """The proxy's URL, with ``user:password@`` when a user is given."""
        credentials = ""
        if user is not None:
            secret = f":{quote(password, safe='')}" if password else ""
            credentials = f"{quote(user, safe='')}{secret}@"
        return f"{scheme or self.scheme}://{credentials}{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _need(program: str, package: str) -> str:
    path = shutil.which(program) or (
        f"/usr/sbin/{program}" if os.path.exists(f"/usr/sbin/{program}") else None
    )
    if path is None:
        pytest.skip(f"{program} is not installed (apt-get install {package}; .ci/run does)")
    return path


@contextlib.contextmanager
def dante(*, username_auth: bool) -> Iterator[ProxyServer]:
    """danted with SOCKS4 and SOCKS5, without authentication or with RFC 1929 user names."""
    danted = _need("danted", "dante-server")
    if username_auth and not is_root():
        pytest.skip("Dante checks SOCKS5 user names against system accounts: needs root")
    with tempfile.TemporaryDirectory(prefix="smtpsubmit-dante-") as directory:
        folder = Path(directory)
        port = free_port()
        log = folder / "danted.log"
        users = "user.privileged: root\nuser.unprivileged: nobody\n" if is_root() else ""
        (folder / "danted.conf").write_text(
            f"logoutput: {log}\n"
            f"internal: 127.0.0.1 port = {port}\n"
            f"external: {OUTGOING}\n"
            f"socksmethod: {'username' if username_auth else 'none'}\n"
            "clientmethod: none\n"
            f"{users}"
            "client pass {\n    from: 127.0.0.0/8 to: 0.0.0.0/0\n}\n"
            "socks pass {\n    from: 127.0.0.0/8 to: 0.0.0.0/0\n    command: connect\n"
            "    log: error connect\n}\n"
        )
        process = subprocess.Popen(
            [danted, "-f", str(folder / "danted.conf"), "-p", str(folder / "pid"), "-N", "1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        server = ProxyServer("socks5", port, log, process)
        try:
            wait_listening(port, process, log)
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def tinyproxy(
    *, connect_ports: Sequence[int], credentials: tuple[str, str] | None = None
) -> Iterator[ProxyServer]:
    """tinyproxy allowing CONNECT to ``connect_ports`` only, with Basic auth if given."""
    program = _need("tinyproxy", "tinyproxy")
    with tempfile.TemporaryDirectory(prefix="smtpsubmit-tinyproxy-") as directory:
        folder = Path(directory)
        os.chmod(folder, 0o755)
        port = free_port()
        log = folder / "tinyproxy.log"
        log.touch()
        if is_root():  # tinyproxy drops to User/Group; the log must stay writable
            shutil.chown(log, "nobody")
        lines = [
            *(["User nobody", "Group nogroup"] if is_root() else []),
            f"Port {port}",
            "Listen 127.0.0.1",
            f"Bind {OUTGOING}",
            "Timeout 30",
            f'LogFile "{log}"',
            "LogLevel Info",
            "MaxClients 16",
            "Allow 127.0.0.1",
            *(f"ConnectPort {allowed}" for allowed in connect_ports),
        ]
        if credentials is not None:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        config = folder / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        process = subprocess.Popen(
            [program, "-d", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        server = ProxyServer("http", port, log, process)
        try:
            wait_listening(port, process, log)
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def system_user() -> Iterator[tuple[str, str]]:
    """A throwaway system account (user, password) for Dante's RFC 1929 check; root only.

    Deleted afterwards. One left over by an interrupted run is reused with a new password.
    """
    if not is_root() or shutil.which("useradd") is None:
        pytest.skip("creating a system account for Dante's user name check needs root")
    password = "px-" + secrets.token_urlsafe(12)
    exists = subprocess.run(["id", PROXY_USER], capture_output=True).returncode == 0
    if not exists:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PROXY_USER,
            ],
            check=True,
            capture_output=True,
        )
    try:
        subprocess.run(["chpasswd"], input=f"{PROXY_USER}:{password}\n".encode(), check=True)
        yield PROXY_USER, password
    finally:
        subprocess.run(["userdel", PROXY_USER], capture_output=True)
