"""``python -m smtpsubmit probe HOST``: what an admin does with telnet and ``openssl s_client``.

Theory of operation:

- Each port is probed in its own task with only EHLO, STARTTLS and QUIT: never AUTH, never
  MAIL, so probing a production server changes nothing and reveals no secret.
- The dialogue runs over the client layer's :class:`Session` (the one driver of the
  protocol core over a transport), not over :class:`SMTPClient`, because the probe needs
  what the client hides on purpose: the EHLO reply *before* TLS, and a session that goes
  on after a certificate failure.
- First attempt: the library's own policy (certifi or ``--cafile``, host name checked,
  TLS 1.2+). When the certificate is refused, a second attempt with verification off still
  shows the certificate and the capabilities after TLS; when the handshake fails for
  another reason, an implicit-TLS port is checked for a plaintext greeting, then a legacy
  handshake (TLS 1.0+, any cipher) tells an outdated server from a broken one.
- Every step has its own deadline (``--timeout``). The network code only records facts;
  the verdict is drawn by :func:`._report.assess`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import ssl
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import anyio

from .._errors import (
    CertificateError,
    ConnectError,
    ProtocolViolationError,
    ReplyError,
    ResponseInjectionError,
    SMTPError,
    TLSError,
)
from .._gate import loop_clock
from .._session import Session
from ..policy import Timeouts, ascii_hostname, ehlo_name
from ..protocol import (
    ClientConnection,
    Command,
    Ehlo,
    LocalProtocolError,
    Quit,
    RemoteProtocolError,
    Reply,
    StartTLS,
)
from ..transport import connect_tcp
from ._common import BACKENDS, TRUST_CHOICES, CommandLineError, ssl_context_for
from ._report import (
    JSON_SCHEMA,
    Mode,
    PortFacts,
    PortReport,
    TLSFacts,
    assess,
    render_text,
    to_json,
)
from ._x509 import parse_certificate

__all__ = ["build_parser", "probe", "probe_main"]

_DEFAULT_TARGETS: tuple[tuple[int, Mode], ...] = ((465, "implicit"), (587, "starttls"))
_PORT25: tuple[int, Mode] = (25, "starttls")
_STANDARD_MODES: dict[int, Mode] = {465: "implicit", 587: "starttls", 25: "starttls"}

_EPILOG = """\
By default ports 465 (implicit TLS) and 587 (STARTTLS) are probed; --port25 adds 25
(STARTTLS, judged as a relay: missing STARTTLS is only a warning there). --port N --tls MODE
(both repeatable, paired in order) probes exactly the ports given; --tls may be omitted for
465, 587 and 25. Only EHLO, STARTTLS and QUIT are sent: never AUTH, never MAIL.

The certificate is verified against certifi's CAs, the system store (--trust system), or
only against --cafile. When it is refused, the probe reconnects without verification to
still show it.

Findings (severity, code): error: unreachable, timeout, connection-lost, protocol-violation,
greeting-refused, ehlo-refused, not-tls, tls-handshake-failed, tls-version-obsolete,
starttls-missing (a warning on 25), starttls-refused, starttls-injection,
certificate-untrusted, certificate-hostname-mismatch, certificate-expired,
certificate-not-yet-valid. warning: auth-before-tls, auth-not-offered, certificate-expiring,
certificate-unreadable. info: ok.

--json prints one object {"schema": "smtpsubmit.probe/1", "host", "ok", "ports": [...]},
one entry per port with its facts, "verdict" and "findings" [{severity, code, message}];
--json-schema prints its JSON Schema.

exit status: 0 no port has an error finding (with --strict: nor a warning),
             1 problems found, 2 usage error."""


@dataclass(frozen=True)
class ProbeOptions:
    """How to probe: per-step timeout, trust, EHLO name, expiry warning threshold."""

    timeout: float = 10.0
    cafile: str | None = None
    #: "certifi" or "system" (the operating system's store, through truststore).
    trust: str = "certifi"
    ehlo_name: str = "[127.0.0.1]"
    expiry_warning_days: int = 14


class _Stop(Exception):
    """The dialogue cannot go on; ``code`` and ``message`` become an error finding."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now_ms() -> float:
    return time.perf_counter() * 1000


def _legacy_context() -> ssl.SSLContext:
    """Verification off, TLS 1.0+, every cipher: only to *describe* a server that the
    library's policy refuses. No secret is ever sent on it (the probe sends no AUTH)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Deprecated on purpose, and that is what we want to detect: silence the warning.
    with warnings.catch_warnings(), contextlib.suppress(ValueError, ssl.SSLError):
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


class _Dialogue:
    """One connection to one port: connect, (TLS,) greeting, EHLO, (STARTTLS, TLS, EHLO),
    QUIT, recording facts as it goes."""

    def __init__(self, facts: PortFacts, options: ProbeOptions) -> None:
        self.facts = facts
        self.options = options
        self.session: Session  # made by connect()

    @contextlib.contextmanager
    def _step(self, step: str) -> Iterator[None]:
        limit = self.options.timeout
        try:
            with anyio.fail_after(limit):
                yield
        except TimeoutError:  # the step's, or the session's phase limit (the same value)
            if step == "connect":  # dropped by a firewall: as unreachable as a refusal
                raise _Stop(
                    "unreachable",
                    f"port {self.facts.port} is unreachable: no answer within {limit:g} s",
                ) from None
            hint = ""
            if step == "greeting" and self.facts.mode == "starttls":
                hint = " (is it an implicit TLS port? try --tls implicit)"
            raise _Stop("timeout", f"{step} timed out after {limit:g} s{hint}") from None
        except ConnectError as exc:  # ConnectionLostError included
            if step == "connect":
                raise _Stop(
                    "unreachable", f"port {self.facts.port} is unreachable: {exc}"
                ) from None
            raise _Stop(
                "connection-lost", f"the server closed the connection during {step}"
            ) from None
        except ResponseInjectionError as exc:
            raise _Stop(
                "starttls-injection",
                f"response injection after STARTTLS: {exc}. A man in the middle (or a "
                "broken server) can insert commands; clients must reject this",
            ) from None
        except ProtocolViolationError as exc:
            raise _Stop("protocol-violation", f"{step}: {exc}") from None

    async def connect(self) -> None:
        """Open the connection and the session over it (no byte read yet)."""
        f = self.facts
        start = _now_ms()
        with self._step("connect"):
            transport = await connect_tcp(f.host, f.port)
        f.connect_ms = _now_ms() - start
        f.reachable = True
        f.address = transport.remote_ip
        self.session = Session(
            transport,
            ClientConnection(encrypted=f.mode == "implicit"),
            host=f.host,
            port=f.port,
            timeouts=Timeouts.uniform(self.options.timeout),
            clock=loop_clock(),
        )

    async def run(self, context: ssl.SSLContext) -> None:
        """Run the whole dialogue with ``context`` for TLS; always closes the connection."""
        await self.connect()
        try:
            await self._dialogue(context)
        finally:
            await self.session.close()

    async def _dialogue(self, context: ssl.SSLContext) -> None:
        f = self.facts
        implicit = f.mode == "implicit"
        if implicit:
            await self._handshake(context)
        start = _now_ms()
        greeting = await self._read("greeting")
        f.greeting_ms = _now_ms() - start
        f.greeting = str(greeting)
        if greeting.code != 220:
            raise _Stop("greeting-refused", f"port {f.port} refused the session: {greeting}")
        capabilities, auth = await self._ehlo()
        if implicit:
            f.ehlo_after_tls, f.auth_after_tls = capabilities, auth
            await self._quit()
            return
        f.ehlo_before_tls, f.auth_before_tls = capabilities, auth
        if not self.session.conn.extensions.starttls:
            await self._quit()  # assess() reports it: it is a finding, not a failed step
            return
        reply = await self._command(StartTLS(), "STARTTLS")
        if reply.code != 220:
            raise _Stop("starttls-refused", f"port {f.port} refused STARTTLS: {reply}")
        await self._handshake(context)
        with self._step("STARTTLS"):
            try:  # raises if the server injected data (RFC 3207 6)
                self.session.conn.start_tls_done()
            except RemoteProtocolError as exc:
                raise self.session.error_for(exc, "tls") from None
        f.ehlo_after_tls, f.auth_after_tls = await self._ehlo()
        await self._quit()

    async def _handshake(self, context: ssl.SSLContext) -> None:
        start = _now_ms()
        with self._step("TLS handshake"):
            await self.session.start_tls(context, self.facts.host)
        self.facts.tls_ms = _now_ms() - start
        info = self.session.tls_info
        assert info is not None
        tls = TLSFacts(version=info.version, cipher=info.cipher)
        if info.peer_certificate:
            try:
                tls.certificate = parse_certificate(info.peer_certificate)
            except ValueError as exc:
                tls.certificate_error = f"the server's certificate is unreadable: {exc}"
        self.facts.tls = tls

    async def _ehlo(self) -> tuple[list[str], list[str]]:
        reply = await self._command(Ehlo(self.options.ehlo_name), "EHLO")
        if not reply.is_positive:
            raise _Stop("ehlo-refused", f"port {self.facts.port} refused EHLO: {reply}")
        return list(reply.lines[1:]), sorted(self.session.conn.extensions.auth)

    async def _command(self, command: Command, step: str) -> Reply:
        with self._step(step):
            try:
                return await self.session.command(command)
            except ReplyError as exc:  # a 421: the server is closing; the reply is a fact
                return exc.reply

    async def _read(self, step: str) -> Reply:
        with self._step(step):
            try:
                return await self.session.read_reply("greeting")
            except ReplyError as exc:  # a 421 greeting: the server refuses the session
                return exc.reply

    async def _quit(self) -> None:
        # Politeness only: a server that drops the line at QUIT has told us all we need.
        with contextlib.suppress(_Stop, SMTPError, RemoteProtocolError):
            await self._command(Quit(), "QUIT")


async def _plaintext_greeting(facts: PortFacts, options: ProbeOptions) -> str | None:
    """The greeting of a port that answers in cleartext without waiting for TLS."""
    probe = _Dialogue(PortFacts(facts.host, facts.port, "starttls"), options)
    try:
        await probe.connect()
        try:
            return str(await probe._read("greeting"))
        finally:
            await probe.session.close()
    except (_Stop, SMTPError):
        return None


async def probe_port(host: str, port: int, mode: Mode, options: ProbeOptions) -> PortFacts:
    """Probe one port; never raises for anything the server does."""
    facts = PortFacts(host, port, mode)
    try:
        await _Dialogue(facts, options).run(ssl_context_for(options.cafile, options.trust))
        return facts
    except _Stop as stop:
        facts.failure = (stop.code, stop.message)
        return facts
    except CertificateError as exc:
        cause = exc.__cause__
        verify_code = getattr(cause, "verify_code", None)
        verify_error = getattr(cause, "verify_message", None) or str(exc)
        strict_failure: TLSError = exc
    except TLSError as exc:
        strict_failure = exc
        verify_code = verify_error = None
        if mode == "implicit":
            greeting = await _plaintext_greeting(facts, options)
            if greeting is not None:
                facts.failure = (
                    "not-tls",
                    f"port {port} is not speaking TLS: it greets in cleartext ({greeting}); "
                    "implicit TLS needs TLS from the first byte (RFC 8314 3.3)",
                )
                return facts
    # A second look with verification off, to show what the first attempt refused.
    retry = PortFacts(host, port, mode)
    try:
        await _Dialogue(retry, options).run(_legacy_context())
    except _Stop as stop:
        retry.failure = (stop.code, stop.message)
    except TLSError:
        facts.failure = ("tls-handshake-failed", f"TLS handshake failed: {strict_failure}")
        return facts
    if retry.tls is not None:
        if isinstance(strict_failure, CertificateError):
            retry.tls.verified = False
            retry.tls.verify_code = verify_code
            retry.tls.verify_error = verify_error
        else:
            retry.tls.verified = None
            retry.tls.policy_error = str(strict_failure)
    return retry


async def probe(
    host: str, targets: Sequence[tuple[int, Mode]], options: ProbeOptions
) -> list[PortReport]:
    """Probe every ``(port, mode)`` concurrently; one report per target, in order.

    A non-ASCII ``host`` is probed as its A-label (IDNA 2008): the name looked up, sent as
    SNI and matched against the certificate is the same (``ValueError`` if it has none).
    """
    host = ascii_hostname(host)
    results: list[PortFacts | None] = [None] * len(targets)

    async def one(index: int, port: int, mode: Mode) -> None:
        results[index] = await probe_port(host, port, mode, options)

    async with anyio.create_task_group() as group:
        for index, (port, mode) in enumerate(targets):
            group.start_soon(one, index, port, mode)
    now = datetime.now(timezone.utc)
    return [
        assess(facts, now=now, expiry_warning_days=options.expiry_warning_days)
        for facts in results
        if facts is not None
    ]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``probe``."""
    parser = argparse.ArgumentParser(
        prog="python -m smtpsubmit probe",
        description="Check a mail server's submission ports: reachability, TLS, certificate,\n"
        "capabilities before and after TLS, and an RFC 8314 verdict with advice.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", help="server name or address")
    parser.add_argument(
        "--port", type=int, action="append", default=[], metavar="N", help="probe this port"
    )
    parser.add_argument(
        "--tls",
        action="append",
        default=[],
        choices=["implicit", "starttls"],
        help="TLS mode of the matching --port (default: by port, 465/587/25 only)",
    )
    parser.add_argument("--port25", action="store_true", help="also probe port 25 (STARTTLS)")
    parser.add_argument("--cafile", metavar="PEM", help="trust only this CA bundle")
    parser.add_argument(
        "--trust",
        choices=TRUST_CHOICES,
        default="certifi",
        help="CAs to trust: certifi's (default) or the operating system's store",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="per-step timeout (default 10)"
    )
    parser.add_argument("--ehlo", metavar="NAME", help="EHLO name (default: this host's FQDN)")
    parser.add_argument(
        "--expiry-warning-days",
        type=int,
        default=14,
        metavar="D",
        help="warn when the certificate expires within D days (default 14)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--json-schema", action="store_true", help="print the JSON Schema of --json and exit"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument("--backend", choices=BACKENDS, default="asyncio", help=argparse.SUPPRESS)
    return parser


def _targets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[int, Mode]]:
    ports: list[int] = args.port
    modes: list[Mode] = args.tls
    if not ports:
        if modes:
            parser.error("--tls needs a --port")
        return [*_DEFAULT_TARGETS, *([_PORT25] if args.port25 else [])]
    if len(modes) not in (0, 1, len(ports)):
        parser.error("give one --tls per --port, a single --tls for all, or none")
    targets: list[tuple[int, Mode]] = []
    for index, port in enumerate(ports):
        if not 0 < port < 65536:
            parser.error(f"invalid port {port}")
        mode = modes[index if len(modes) > 1 else 0] if modes else _STANDARD_MODES.get(port)
        if mode is None:
            parser.error(f"port {port} has no standard TLS mode: add --tls implicit|starttls")
        targets.append((port, mode))
    if args.port25:
        targets.append(_PORT25)
    return targets


def probe_main(argv: Sequence[str] | None = None) -> int:
    """Run ``probe`` with ``argv``; returns the exit status (0 ok, 1 problems, 2 usage).

    Usage errors and ``--help`` return 2 and 0 instead of exiting, for in-process callers.
    """
    try:
        return _probe_main(argv)
    except SystemExit as exc:  # argparse's way out: --help, usage errors
        return exc.code if isinstance(exc.code, int) else 2


def _probe_main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json_schema:
        print(json.dumps(JSON_SCHEMA, indent=2))
        return 0
    if not args.host:
        parser.error("the HOST argument is required")
    try:
        # One ASCII form (the A-label) to connect to, send as SNI and match certificates on.
        host = ascii_hostname(args.host)
    except ValueError as exc:
        parser.error(f"HOST {args.host!r} is {exc}")
    if not args.timeout > 0:  # NaN too
        parser.error("--timeout must be a positive number of seconds")
    targets = _targets(parser, args)
    options = ProbeOptions(
        timeout=args.timeout,
        cafile=args.cafile,
        trust=args.trust,
        ehlo_name=args.ehlo or ehlo_name(),
        expiry_warning_days=args.expiry_warning_days,
    )
    try:
        ssl_context_for(
            options.cafile, options.trust
        )  # an unreadable CA file is a usage error, up front
    except CommandLineError as exc:
        parser.error(str(exc))
    try:
        Ehlo(options.ehlo_name)
    except LocalProtocolError as exc:
        parser.error(f"--ehlo is not a valid EHLO name: {exc}")
    reports = anyio.run(probe, host, targets, options, backend=args.backend)
    if args.json:
        print(json.dumps(to_json(host, reports), indent=2))
    else:
        print(render_text(host, reports))
    bad = ("error", "warning") if args.strict else ("error",)
    return 1 if any(r.verdict in bad for r in reports) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(probe_main())
