"""aiosmtpd as a second, independent submission server for the interop tests.

Two listeners share one handler:

* ``starttls``: plain connect, STARTTLS required before anything else
  (``require_starttls``), AUTH only after TLS, AUTH required before MAIL.
* ``implicit``: TLS from the first byte (RFC 8314 "submissions"), AUTH required.

Each accepted message is written to ``<dir>/messages`` as ``<id>.eml`` (the raw
DATA bytes exactly as aiosmtpd received them: CRLF line endings, dot-unstuffed)
plus ``<id>.json`` (envelope and session facts). The JSON is renamed into place
last, so a reader that sees it can rely on the ``.eml`` being complete.

When both listeners are up, ``<dir>/ready.json`` is written with the ports;
``interop/aiosmtpd/start.sh`` waits for that file. SIGTERM/SIGINT stop cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _listener_name(server: SMTP) -> str:
    # server.hostname is the server_hostname each Controller was given.
    return "implicit" if server.hostname.startswith("aiosmtpd-implicit") else "starttls"


class CaptureHandler:
    """Stores every message; refuses the two well-known failure recipients."""

    def __init__(self, outdir: Path, rejected: str, tempfail: str) -> None:
        self.outdir = outdir
        self.rejected = rejected.lower()
        self.tempfail = tempfail.lower()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        # Same replies as the Postfix instance so tests can share expectations.
        if address.lower() == self.rejected:
            return "550 5.1.1 no such user"
        if address.lower() == self.tempfail:
            return "450 4.2.0 try later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)  # type: ignore[arg-type]
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            seq = next(self._seq)
        # Sortable by arrival; pid disambiguates restarts into the same dir.
        msg_id = f"{time.time_ns():020d}-{os.getpid()}-{seq:06d}"
        raw = envelope.original_content or b""
        transport = server.transport
        tls_obj = transport.get_extra_info("ssl_object") if transport is not None else None
        meta: dict[str, Any] = {
            "id": msg_id,
            "listener": _listener_name(server),
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "smtp_utf8": envelope.smtp_utf8,
            "size": len(raw),
            "authenticated": bool(session.authenticated),
            "auth_login": session.auth_data if isinstance(session.auth_data, str) else None,
            # session.ssl is only set for STARTTLS; the transport knows both.
            "tls_version": tls_obj.version() if tls_obj is not None else None,
            "peer": list(session.peer) if session.peer else None,
            "host_name": session.host_name,
            "extended_smtp": session.extended_smtp,
            "received_at": time.time(),
            "eml": f"{msg_id}.eml",
        }
        _atomic_write(self.outdir / f"{msg_id}.eml", raw)
        _atomic_write(
            self.outdir / f"{msg_id}.json",
            json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"),
        )
        return f"250 2.0.0 OK queued as {msg_id}"


class PasswordAuthenticator:
    """Single test user; PLAIN and LOGIN (all aiosmtpd implements)."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user.encode()
        self.password = password.encode()

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.user
            and auth_data.password == self.password
        ):
            return AuthResult(success=True, auth_data=auth_data.login.decode())
        # handled=False: aiosmtpd sends its standard "535 5.7.8" reply.
        return AuthResult(success=False, handled=False)


def _free_port(host: str) -> int:
    # aiosmtpd's Controller cannot bind port 0 (it connects to self.port to
    # check readiness), so ask the kernel for a free one first. The window
    # between close and bind is tiny and we retry on EADDRINUSE anyway.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _start(make: Any, host: str, port: int) -> Controller:
    last: Exception | None = None
    for _ in range(5):
        p = port or _free_port(host)
        ctl = make(p)
        try:
            ctl.start()
            return ctl
        except OSError as exc:  # port raced away; only retry when we picked it
            last = exc
            with contextlib.suppress(Exception):
                ctl.stop()
            if port:
                break
    raise SystemExit(f"aiosmtpd: cannot listen on {host}:{port or 'any'}: {last}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, type=Path, help="state dir (messages/, ready.json)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="STARTTLS port (0 = pick a free one)")
    ap.add_argument("--implicit-port", type=int, default=0, help="implicit TLS port (0 = pick)")
    ap.add_argument("--cert", required=True, help="PEM server certificate chain")
    ap.add_argument("--key", required=True, help="PEM private key")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--rejected", required=True, help="recipient answered with 550")
    ap.add_argument("--tempfail", required=True, help="recipient answered with 450")
    ap.add_argument("--size-limit", type=int, default=50 * 1024 * 1024)
    args = ap.parse_args(argv)

    # Connection/command log goes to stderr, which start.sh sends to the log
    # file run.sh prints on failure.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    msgdir = args.dir / "messages"
    msgdir.mkdir(parents=True, exist_ok=True)
    ready = args.dir / "ready.json"
    ready.unlink(missing_ok=True)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)

    handler = CaptureHandler(msgdir, args.rejected, args.tempfail)
    auth = PasswordAuthenticator(args.user, args.password)
    common: dict[str, Any] = {
        "data_size_limit": args.size_limit,
        "enable_SMTPUTF8": True,
        "decode_data": False,  # keep raw bytes for byte-exact comparisons
        "authenticator": auth,
        "auth_required": True,
    }

    def make_starttls(port: int) -> Controller:
        return Controller(
            handler,
            hostname=args.host,
            port=port,
            server_hostname="aiosmtpd-starttls.interop.test",
            tls_context=tls,
            require_starttls=True,
            auth_require_tls=True,
            **common,
        )

    def make_implicit(port: int) -> Controller:
        # aiosmtpd only counts STARTTLS as "TLS" for auth_require_tls, so it
        # has to be off here (and its warning about that is moot): the socket
        # is TLS from the first byte.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return Controller(
                handler,
                hostname=args.host,
                port=port,
                server_hostname="aiosmtpd-implicit.interop.test",
                ssl_context=tls,
                auth_require_tls=False,
                **common,
            )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    controllers = [_start(make_starttls, args.host, args.port)]
    try:
        controllers.append(_start(make_implicit, args.host, args.implicit_port))
        info = {
            "pid": os.getpid(),
            "host": args.host,
            "starttls_port": controllers[0].port,
            "implicit_tls_port": controllers[1].port,
            "messages_dir": str(msgdir),
        }
        _atomic_write(ready, json.dumps(info, indent=1).encode())
        print(json.dumps(info), flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        for ctl in reversed(controllers):
            with contextlib.suppress(Exception):
                ctl.stop()
        ready.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
