"""Fixtures for the interop suite: real Postfix and aiosmtpd servers.

The servers are started outside pytest by ``interop/run.sh`` (``make interop``),
which describes them in a JSON file (``$SMTPSUBMIT_INTEROP_JSON``, default
``/tmp/smtpsubmit-interop/servers.json``). Every test in this folder is marked
``interop`` and therefore excluded from the default ``pytest`` run.

Without that file the ``interop_servers`` fixture *fails* (never skips): an
interop job that quietly skips everything would look green while testing
nothing.

Typical use::

    def test_x(interop_servers):
        pf = interop_servers.postfix
        rcpt = interop_servers.unique_address("x")
        ...send to rcpt via pf.host, pf.starttls_port, interop_servers.ssl_context()...
        [msg] = pf.wait_for_messages(rcpt)
        assert msg.submitted == sent_bytes
"""

from __future__ import annotations

import contextlib
import email
import email.message
import email.policy
import json
import os
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DEFAULT_JSON = "/tmp/smtpsubmit-interop/servers.json"
JSON_ENV = "SMTPSUBMIT_INTEROP_JSON"
SUPPORTED_FORMAT = 1
HERE = Path(__file__).resolve().parent

# Poll interval for the maildir/capture-dir waits. Postfix delivers
# asynchronously (queue manager -> virtual(8)), typically in well under a
# second; the deadline only bounds how long a genuine failure takes to report.
_POLL_INTERVAL = 0.05


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the mark must be on the items before pytest's own hook applies
    # `-m` selection. Limited to this folder: conftest hooks see every item.
    for item in items:
        if item.path.parent == HERE or HERE in item.path.parents:
            item.add_marker(pytest.mark.interop)


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------

# Header fields Postfix prepends on delivery, in this order: virtual(8) adds
# Return-Path, X-Original-To and Delivered-To; smtpd(8) adds one Received.
_POSTFIX_DELIVERY_FIELDS = (b"return-path", b"x-original-to", b"delivered-to")


def _split_fields(header_block: bytes) -> list[bytes]:
    """Split an LF-terminated header block into fields (with continuations)."""
    fields: list[bytes] = []
    for line in header_block.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def _field_name(f: bytes) -> bytes:
    return f.split(b":", 1)[0].strip().lower()


@dataclass(frozen=True)
class DeliveredMessage:
    """One message as Postfix stored it in a Maildir.

    ``raw`` is the file content: LF line endings (Maildir convention), Postfix's
    trace headers on top. ``submitted`` undoes both so it can be compared
    byte-for-byte with what the client sent.
    """

    path: Path
    raw: bytes
    delivered_to: str

    @property
    def submitted(self) -> bytes:
        """The message as the client submitted it (CRLF line endings).

        Exact for any message whose lines all ended in CRLF and were shorter
        than Postfix's line_length_limit (2048); bare LFs come back as CRLF.
        """
        head, sep, rest = self.raw.partition(b"\n\n")
        # Keep the header block's final LF with the fields; the blank line
        # and body go back on unchanged.
        head_block, tail = (head + b"\n", b"\n" + rest) if sep else (self.raw, b"")
        fields = _split_fields(head_block)
        i = 0
        while i < len(fields) and _field_name(fields[i]) in _POSTFIX_DELIVERY_FIELDS:
            i += 1
        if i < len(fields) and _field_name(fields[i]) == b"received":
            i += 1  # smtpd's own Received, always the next field
        original = b"".join(fields[i:]) + tail
        return original.replace(b"\n", b"\r\n")

    @property
    def headers_bytes(self) -> bytes:
        """Header block of ``submitted`` (without the blank separator line)."""
        return self.submitted.partition(b"\r\n\r\n")[0]

    @property
    def body(self) -> bytes:
        """Body of ``submitted`` (after the first empty line), CRLF endings."""
        return self.submitted.partition(b"\r\n\r\n")[2]

    @property
    def received_header(self) -> str:
        """Postfix's own Received header (shows TLS and authenticated sender)."""
        for f in _split_fields(self.raw.partition(b"\n\n")[0] + b"\n"):
            if _field_name(f) == b"received":
                return f.decode("utf-8", "replace")
        return ""

    def message(self) -> email.message.EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.SMTPUTF8)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


@dataclass(frozen=True)
class CapturedMessage:
    """One message captured by interop/aiosmtpd_server.py.

    ``raw`` is DATA exactly as received (CRLF, dot-unstuffed); ``meta`` holds
    the envelope (mail_from, rcpt_tos, mail_options, rcpt_options, smtp_utf8),
    auth_login, tls_version and listener ("starttls"/"implicit").
    """

    meta: dict[str, Any]
    raw: bytes
    path: Path

    @property
    def mail_from(self) -> str:
        return str(self.meta["mail_from"])

    @property
    def rcpt_tos(self) -> list[str]:
        return list(self.meta["rcpt_tos"])

    @property
    def body(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[2]

    def message(self) -> email.message.EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.SMTPUTF8)
        assert isinstance(msg, email.message.EmailMessage)
        return msg


def _same_address(a: str, b: str) -> bool:
    # Postfix folds case for lookups but keeps the case the client used.
    return a.casefold() == b.casefold()


def _wait(
    snapshot: Any,
    count: int,
    timeout: float,
    describe_failure: Any,
) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = snapshot()
        if len(found) >= count:
            return list(found)
        if time.monotonic() >= deadline:
            pytest.fail(describe_failure(found), pytrace=False)
        time.sleep(_POLL_INTERVAL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return b"\n".join(data.splitlines()[-lines:]).decode("utf-8", "replace")


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PostfixServer:
    host: str
    starttls_port: int
    implicit_port: int
    # Offers AUTH without TLS: only for proving the client refuses to use it.
    cleartext_port: int
    auth_mechanisms: tuple[str, ...]
    ehlo: dict[str, Any]
    maildir_base: Path
    log_file: Path
    version: str

    def _maildir_files(self) -> Iterator[Path]:
        # Every mailbox (named ones and the catch-all) lives directly under
        # maildir_base; new/ before delivery is noticed, cur/ once read.
        for box in sorted(self.maildir_base.iterdir()) if self.maildir_base.is_dir() else ():
            for sub in ("new", "cur"):
                d = box / sub
                if d.is_dir():
                    yield from sorted(d.iterdir())

    @staticmethod
    def _delivered_to(path: Path) -> str | None:
        try:
            with path.open("rb") as fh:
                head = fh.read(16384)
        except FileNotFoundError:  # moved new/ -> cur/ under our feet
            return None
        for f in _split_fields(head.partition(b"\n\n")[0] + b"\n"):
            if _field_name(f) == b"delivered-to":
                return f.split(b":", 1)[1].strip().decode("utf-8", "surrogateescape")
        return None

    def messages(self, recipient: str | None = None) -> list[DeliveredMessage]:
        """Snapshot of delivered messages (optionally for one recipient), oldest first."""
        found: list[tuple[int, str, DeliveredMessage]] = []
        for p in self._maildir_files():
            to = self._delivered_to(p)
            if to is None or (recipient is not None and not _same_address(to, recipient)):
                continue
            try:
                # Maildir names only carry whole seconds; mtime orders within one.
                mtime = p.stat().st_mtime_ns
                msg = DeliveredMessage(path=p, raw=p.read_bytes(), delivered_to=to)
            except FileNotFoundError:
                continue
            found.append((mtime, p.name, msg))
        return [m for _, _, m in sorted(found, key=lambda t: (t[0], t[1]))]

    def wait_for_messages(
        self, recipient: str, count: int = 1, timeout: float = 20.0
    ) -> list[DeliveredMessage]:
        """Poll the maildirs until ``count`` copies for ``recipient`` arrived.

        Fails the test (with the Postfix log tail) when the deadline passes.
        """

        def failure(found: list[DeliveredMessage]) -> str:
            seen = sorted({m.delivered_to for m in self.messages()})
            return (
                f"Postfix delivered {len(found)}/{count} message(s) for {recipient!r} "
                f"within {timeout}s.\nDelivered-To values present: {seen}\n"
                f"--- tail of {self.log_file} ---\n{_tail(self.log_file)}"
            )

        return _wait(lambda: self.messages(recipient), count, timeout, failure)


@dataclass(frozen=True)
class AiosmtpdServer:
    host: str
    starttls_port: int
    implicit_port: int
    auth_mechanisms: tuple[str, ...]
    ehlo: dict[str, Any]
    messages_dir: Path
    log_file: Path

    def messages(self, recipient: str | None = None) -> list[CapturedMessage]:
        """Snapshot of captured messages (optionally for one recipient), oldest first."""
        out = []
        if not self.messages_dir.is_dir():
            return out
        # File names start with a zero-padded time_ns: lexical = arrival order.
        for meta_path in sorted(self.messages_dir.glob("*.json")):
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if recipient is not None and not any(
                _same_address(r, recipient) for r in meta["rcpt_tos"]
            ):
                continue
            eml = self.messages_dir / meta["eml"]
            out.append(CapturedMessage(meta=meta, raw=eml.read_bytes(), path=eml))
        return out

    def wait_for_messages(
        self, recipient: str | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[CapturedMessage]:
        """Like PostfixServer.wait_for_messages. aiosmtpd writes before it
        answers 250, so this normally returns on the first look."""

        def failure(found: list[CapturedMessage]) -> str:
            return (
                f"aiosmtpd captured {len(found)}/{count} message(s) for {recipient!r} "
                f"within {timeout}s.\n--- tail of {self.log_file} ---\n{_tail(self.log_file)}"
            )

        return _wait(lambda: self.messages(recipient), count, timeout, failure)


@dataclass(frozen=True)
class RefusedAddress:
    address: str
    code: int
    enhanced: str


@dataclass(frozen=True)
class InteropServers:
    """Everything from servers.json, plus helpers. ``raw`` is the parsed JSON."""

    raw: dict[str, Any] = field(repr=False)
    json_path: Path
    ca_file: Path
    tls_server_name: str
    domain: str
    user: str
    password: str
    sender: str
    rejected: RefusedAddress
    tempfail: RefusedAddress
    message_size_limit: int
    postfix: PostfixServer
    aiosmtpd: AiosmtpdServer

    def ssl_context(self) -> ssl.SSLContext:
        """Client context trusting only the throwaway interop CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def unique_address(self, prefix: str = "rcpt") -> str:
        """A fresh deliverable address (Postfix's catch-all takes it), so tests
        never see each other's mail."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}@{self.domain}"


def _load(path: Path) -> InteropServers:
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != SUPPORTED_FORMAT:
        pytest.fail(
            f"{path}: format {data.get('format')!r}, expected {SUPPORTED_FORMAT}; "
            "re-run `make interop`",
            pytrace=False,
        )
    pf, ai = data["servers"]["postfix"], data["servers"]["aiosmtpd"]
    return InteropServers(
        raw=data,
        json_path=path,
        ca_file=Path(data["ca_file"]),
        tls_server_name=data["tls_server_name"],
        domain=data["domain"],
        user=data["user"],
        password=data["password"],
        sender=data["sender"],
        rejected=RefusedAddress(**data["rejected"]),
        tempfail=RefusedAddress(**data["tempfail"]),
        message_size_limit=int(data["message_size_limit"]),
        postfix=PostfixServer(
            host=pf["host"],
            starttls_port=int(pf["ports"]["starttls"]),
            implicit_port=int(pf["ports"]["implicit"]),
            cleartext_port=int(pf["ports"]["cleartext"]),
            auth_mechanisms=tuple(pf["auth_mechanisms"]),
            ehlo=pf["ehlo"],
            maildir_base=Path(pf["maildir_base"]),
            log_file=Path(pf["log_file"]),
            version=pf["version"],
        ),
        aiosmtpd=AiosmtpdServer(
            host=ai["host"],
            starttls_port=int(ai["ports"]["starttls"]),
            implicit_port=int(ai["ports"]["implicit"]),
            auth_mechanisms=tuple(ai["auth_mechanisms"]),
            ehlo=ai["ehlo"],
            messages_dir=Path(ai["messages_dir"]),
            log_file=Path(ai["log_file"]),
        ),
    )


def _unreachable(servers: InteropServers) -> list[str]:
    targets = [
        ("postfix starttls", servers.postfix.host, servers.postfix.starttls_port),
        ("postfix implicit", servers.postfix.host, servers.postfix.implicit_port),
        ("aiosmtpd starttls", servers.aiosmtpd.host, servers.aiosmtpd.starttls_port),
        ("aiosmtpd implicit", servers.aiosmtpd.host, servers.aiosmtpd.implicit_port),
    ]
    down = []
    for name, host, port in targets:
        try:
            with contextlib.closing(socket.create_connection((host, port), timeout=2.0)):
                pass
        except OSError as exc:
            down.append(f"{name} {host}:{port} ({exc})")
    return down


@pytest.fixture(scope="session")
def interop_servers() -> InteropServers:
    """The running interop servers; fails (never skips) when they are absent."""
    path = Path(os.environ.get(JSON_ENV) or DEFAULT_JSON)
    if not path.is_file():
        pytest.fail(
            f"interop server description {path} not found (set by ${JSON_ENV}). "
            "The interop tests need real servers: run `make interop` "
            "(or `bash interop/up.sh` to start them and keep them running).",
            pytrace=False,
        )
    servers = _load(path)
    down = _unreachable(servers)
    if down:
        pytest.fail(
            f"interop servers described in {path} are not reachable: {'; '.join(down)}. "
            "Run `make interop` (or `bash interop/up.sh`).",
            pytrace=False,
        )
    return servers
