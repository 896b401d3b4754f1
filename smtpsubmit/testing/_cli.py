"""``python -m smtpsubmit serve``: run the fake server standalone until Ctrl-C.

Prints where it listens, the CA certificate to trust and the credentials it accepts, then a
line per captured message. Meant for trying a client by hand, for non-Python test suites,
and as a development inbox: ``--web PORT`` adds a web page (and a JSON API) to read the
captured messages (the ``inbox`` extra, imported only then), ``--state-dir DIR`` keeps the
CA across restarts and writes every message to a Maildir there.

SIGINT (Ctrl-C), SIGTERM (``kill``, service managers) and SIGHUP (a closed terminal) stop it
cleanly, the temporary CA directory included, with exit status 0. A signal the process was
started with ignored (``nohup``, a background job's SIGINT) stays ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence

import anyio

from ._capture import CapturedMessage
from ._config import Extension, Mode, ServerConfig
from ._maildir import MaildirWriter
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
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="keep the CA and server certificate in DIR/tls across restarts, and write "
        "every captured message to the Maildir DIR/Maildir",
    )
    web = parser.add_argument_group("web inbox (needs the inbox extra)")
    web.add_argument(
        "--web",
        type=int,
        metavar="PORT",
        help="serve a web page and a JSON API of the captured messages (0: any free port)",
    )
    web.add_argument(
        "--web-host", default="127.0.0.1", metavar="HOST", help="address of the web inbox"
    )
    web.add_argument(
        "--web-allow-remote",
        action="store_true",
        help="let --web-host be a non-loopback address: whoever reaches it reads every "
        "captured message",
    )
    return parser


@dataclasses.dataclass(frozen=True)
class _Options:
    """What ``_serve`` does besides the SMTP listeners."""

    users: dict[str, str]
    tokens: dict[str, str]
    state_dir: str | None
    web_port: int | None
    web_host: str
    web_allow_remote: bool


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
    if args.web is not None:
        missing = _missing_inbox_dependencies()
        if missing is not None:
            print(missing, file=sys.stderr)
            return 1
        from ._inbox_web import is_loopback

        if not is_loopback(args.web_host) and not args.web_allow_remote:
            parser.error(
                f"--web-host {args.web_host} is not a loopback address: whoever reaches it "
                "would read every captured message; add --web-allow-remote to mean it"
            )
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
    )
    configs = [
        ServerConfig(**{**_fields(base), "mode": mode, "port": port})
        for mode, port in ports.items()
        if port is not None
    ]
    options = _Options(
        users=users,
        tokens=tokens,
        state_dir=None if args.state_dir is None else os.path.abspath(args.state_dir),
        web_port=args.web,
        web_host=args.web_host,
        web_allow_remote=args.web_allow_remote,
    )
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve, configs, options)
    return 0


def _missing_inbox_dependencies() -> str | None:
    """One line saying what to install, if the web inbox cannot run here."""
    missing = [
        name for name in ("starlette", "hypercorn") if importlib.util.find_spec(name) is None
    ]
    if not missing:
        return None
    return (
        f"python -m smtpsubmit serve --web: the web inbox needs {' and '.join(missing)}, "
        "from the inbox extra: pip install 'smtpsubmit[inbox]'"
    )


def _fields(config: ServerConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


async def _serve(configs: list[ServerConfig], options: _Options) -> None:
    state = options.state_dir
    certificates = ServerCertificates(
        directory=None if state is None else os.path.join(state, "tls")
    )
    try:
        sinks: list[Callable[[CapturedMessage], None]] = [_print_message]
        maildir = None
        if state is not None:
            maildir = MaildirWriter(os.path.join(state, "Maildir"), hostname=configs[0].hostname)
            sinks.append(_delivering_to(maildir))
        inbox = None
        if options.web_port is not None:
            from ._inbox import Inbox

            inbox = Inbox()  # made here: it lives on this event loop, like the servers
            sinks.append(inbox.add)

        def on_message(message: CapturedMessage) -> None:
            for sink in sinks:
                sink(message)

        async with contextlib.AsyncExitStack() as stack:
            print("smtpsubmit fake SMTP server")
            for config in configs:
                config = dataclasses.replace(config, on_message=on_message)
                server = FakeSMTPServer(config, certificates=certificates)
                await stack.enter_async_context(server)
                print(f"  {config.mode.value:<13} {server.host}:{server.port}")
            kept = " (kept across restarts)" if state is not None else ""
            print(f"  CA certificate: {certificates.ca_pem_path}{kept}")
            if maildir is not None:
                print(f"  Maildir: {maildir.path}")
            if inbox is not None:
                from ._inbox_web import serve_inbox

                url = await stack.enter_async_context(
                    serve_inbox(
                        inbox,
                        options.web_host,
                        options.web_port or 0,
                        allow_remote=options.web_allow_remote,
                    )
                )
                print(f"  web inbox: {url}")
            for name, password in options.users.items():
                print(f"  user: {name}  password: {password}")
            for name, token in options.tokens.items():
                print(f"  user: {name}  oauth token: {token}")
            # Only printed once the signals are ours: a stop request from then on cleans up.
            await _wait_for_stop_signal(lambda: print("Press Ctrl-C to stop.", flush=True))
    finally:
        certificates.close()


def _delivering_to(maildir: MaildirWriter) -> Callable[[CapturedMessage], None]:
    def deliver(message: CapturedMessage) -> None:
        # A full disk must not stop the server: the message is still captured and shown.
        try:
            maildir.deliver(message)
        except OSError as exc:
            print(f"  not written to the Maildir: {exc}", file=sys.stderr, flush=True)

    return deliver


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
