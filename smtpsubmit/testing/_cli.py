"""``python -m smtpsubmit serve``: run the fake server standalone until Ctrl-C.

Prints where it listens, the CA certificate to trust and the credentials it accepts, then a
line per captured message. Meant for trying a client by hand, or for non-Python test suites.

SIGINT (Ctrl-C), SIGTERM (``kill``, service managers) and SIGHUP (a closed terminal) stop it
cleanly, the temporary CA directory included, with exit status 0. A signal the process was
started with ignored (``nohup``, a background job's SIGINT) stays ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import signal
import sys
from collections.abc import Callable, Sequence

import anyio

from ._capture import CapturedMessage
from ._config import Extension, Mode, ServerConfig
from ._server import FakeSMTPServer
from ._tls import ServerCertificates

__all__ = ["build_parser", "serve_main"]

_DEFAULT_USER = "user@example.com"
#: Signals that end ``serve``; their default action would kill the process before cleanup.
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``serve`` (exposed so the main CLI can embed it)."""
    parser = argparse.ArgumentParser(
        prog="smtpsubmit serve",
        description="Run the smtpsubmit fake SMTP submission server until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--starttls", type=int, metavar="PORT", help="STARTTLS listener port (0: any free)"
    )
    parser.add_argument(
        "--implicit-tls", type=int, metavar="PORT", help="implicit TLS listener port"
    )
    parser.add_argument("--plain", type=int, metavar="PORT", help="plaintext listener port")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="accepted credentials (repeatable; default: one user with a random password)",
    )
    parser.add_argument(
        "--token", action="append", default=[], metavar="NAME:TOKEN", help="OAuth bearer token"
    )
    parser.add_argument(
        "--disable",
        action="append",
        default=[],
        choices=[e.value for e in Extension],
        metavar="EXTENSION",
        help="do not advertise this extension (repeatable)",
    )
    parser.add_argument("--max-size", type=int, default=10 * 1024 * 1024, help="SIZE limit")
    parser.add_argument(
        "--allow-cleartext-auth", action="store_true", help="accept AUTH without TLS"
    )
    parser.add_argument("--require-auth", action="store_true", help="530 for MAIL before AUTH")
    return parser


def _pairs(values: Sequence[str], what: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, secret = value.partition(":")
        if not sep or not name:
            parser.error(f"{what} must look like NAME:{what.upper()}")
        out[name] = secret
    return out


def serve_main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), serve until a stop signal (Ctrl-C, SIGTERM,
    SIGHUP); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    users = _pairs(args.user, "password", parser)
    if not users:
        users = {_DEFAULT_USER: secrets.token_urlsafe(9)}
    tokens = _pairs(args.token, "token", parser)
    ports = {
        Mode.STARTTLS: args.starttls,
        Mode.IMPLICIT_TLS: args.implicit_tls,
        Mode.PLAIN: args.plain,
    }
    if all(port is None for port in ports.values()):
        ports[Mode.STARTTLS] = ports[Mode.IMPLICIT_TLS] = 0
    base = ServerConfig(
        host=args.host,
        users=users,
        oauth_tokens=tokens,
        extensions=frozenset(Extension) - {Extension(e) for e in args.disable},
        max_message_size=args.max_size,
        allow_cleartext_auth=args.allow_cleartext_auth,
        require_auth=args.require_auth,
        on_message=_print_message,
    )
    configs = [
        ServerConfig(**{**_fields(base), "mode": mode, "port": port})
        for mode, port in ports.items()
        if port is not None
    ]
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve, configs, users, tokens)
    return 0


def _fields(config: ServerConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


async def _serve(
    configs: list[ServerConfig], users: dict[str, str], tokens: dict[str, str]
) -> None:
    certificates = ServerCertificates()
    try:
        async with contextlib.AsyncExitStack() as stack:
            print("smtpsubmit fake SMTP server")
            for config in configs:
                server = FakeSMTPServer(config, certificates=certificates)
                await stack.enter_async_context(server)
                print(f"  {config.mode.value:<13} {server.host}:{server.port}")
            print(f"  CA certificate: {certificates.ca_pem_path}")
            for name, password in users.items():
                print(f"  user: {name}  password: {password}")
            for name, token in tokens.items():
                print(f"  user: {name}  oauth token: {token}")
            # Only printed once the signals are ours: a stop request from then on cleans up.
            await _wait_for_stop_signal(lambda: print("Press Ctrl-C to stop.", flush=True))
    finally:
        certificates.close()


async def _wait_for_stop_signal(ready: Callable[[], None]) -> None:
    wanted = [s for s in _STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    try:
        with anyio.open_signal_receiver(*wanted) as signals:
            ready()
            async for _ in signals:
                return
    except NotImplementedError:  # Windows on asyncio: Ctrl-C still raises KeyboardInterrupt
        ready()
        await anyio.sleep_forever()


def _print_message(message: CapturedMessage) -> None:
    print(
        f"queued {message.queue_id}: from <{message.mail_from}> to "
        f"{', '.join(f'<{r}>' for r in message.rcpt_to)} ({len(message.data)} octets, "
        f"tls={message.tls_version or 'no'}, auth={message.auth_identity or '-'})",
        flush=True,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve_main())
