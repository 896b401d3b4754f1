"""``python -m smtpsubmit send``: submit one message from the command line (like swaks).

Theory of operation:

- The message is an ``EmailMessage`` built here; the envelope, Bcc stripping, TLS policy
  (RFC 8314 by port), authentication and every check are the library's, through
  :class:`SMTPClient`. This module adds no protocol rule of its own.
- The password never comes from argv by default (visible in ``ps`` and shell history): it
  comes from an environment variable or an interactive prompt. The deliberately named
  ``--insecure-password-argv`` exists for throwaway test servers only.
- ``-v`` shows the session: connection set-up (EHLO, STARTTLS, AUTH) through the
  ``smtpsubmit`` logger, the transaction from ``SendResult.transcript``. Both are redacted
  by the library (AUTH payloads never appear).
- Errors are one line, ``ClassName: message``; library messages never contain secrets.
  A bad option value is refused by the library's own argument checks, before any I/O,
  and said in this command's words (``--port``, ``--tls implicit``; see :func:`_spelling`)
  with exit status 2.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import mimetypes
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TextIO
from urllib.parse import quote, urlsplit, urlunsplit

import anyio

from .. import __version__
from .._client import SMTPClient
from .._errors import (
    ArgumentError,
    OutcomeUnknownError,
    RecipientsRefusedError,
    SMTPError,
    Spelling,
    TimeoutError,
    TransientReplyError,
)
from .._options import ClientOptions
from .._results import SendResult
from .._signing import Signer
from .._validate import check_client_arguments, respelled
from ..policy import RetryPolicy
from ._common import BACKENDS, TRUST_CHOICES, CommandLineError, ssl_context_for

__all__ = ["build_parser", "build_message", "send_main"]

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_TEMPORARY = 4
EXIT_UNKNOWN = 5

_EPILOG = """\
The password is read from the environment variable named by --password-env (default
SMTPSUBMIT_PASSWORD), else prompted for when stdin is a terminal. It is never taken from
the command line, except with --insecure-password-argv, which exposes it to every local
user (ps, /proc) and to your shell history: only for throwaway test servers.

--proxy sends through a SOCKS or HTTP CONNECT proxy; TLS still runs end to end with the
server and is checked against --server's name. A proxy password is read from the
environment variable named by --proxy-password-env, never from the command line.

--tls auto follows RFC 8314: implicit TLS on 465, STARTTLS (required) on 587; other ports
need an explicit mode. insecure-cleartext sends the message unencrypted, and AUTH then also
needs --allow-cleartext-auth.

exit status:
  0  the server accepted the message for every recipient
  1  accepted for some recipients; the refused ones are listed on stderr
  2  usage error (bad option, unreadable file, no password, TLS mode contradicts the port)
  3  not sent: connection, TLS, security policy, authentication, or a 5xx refusal
  4  not sent, temporarily: a 4xx reply or a timeout; retrying later may work
  5  outcome unknown: the connection failed after the whole message was sent; the server
     may have queued it, so resending may deliver it twice"""


#: The library's keywords as this command's options (see ``_spelling``).
_OPTIONS = {
    "host": "--server",
    "port": "--port",
    "tls": "--tls",
    "ssl_context": "--cafile",
    "username": "--user",
    "timeout": "--timeout",
    "local_hostname": "--ehlo",
    "allow_cleartext_auth": "--allow-cleartext-auth",
    "proxy": "--proxy",
    # DKIMSigner's keywords.
    "domain": "--dkim-domain",
    "selector": "--dkim-selector",
    "private_key": "--dkim-key",
}


def _spelling(password_env: str) -> Spelling:
    """How the library's argument errors read here: ``--port``, ``--tls implicit``."""

    def spell(argument: str, value: str | None) -> str | None:
        if argument == "password":
            return f"a password (in ${password_env})" if value is None else None
        if value is None:
            return _OPTIONS.get(argument)
        if argument in ("tls", "port"):
            return f"--{argument} {value}"
        if argument == "allow_cleartext_auth" and value == "True":
            return "--allow-cleartext-auth"
        return None

    return spell


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``send``."""
    parser = argparse.ArgumentParser(
        prog="python -m smtpsubmit send",
        description="Submit one message to a mail server (RFC 6409) and report the outcome.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conn = parser.add_argument_group("connection")
    conn.add_argument("--server", required=True, metavar="HOST", help="server name or address")
    conn.add_argument("--port", type=int, default=587, help="default 587")
    conn.add_argument(
        "--tls",
        choices=["auto", "implicit", "starttls", "insecure-cleartext"],
        default="auto",
        help="TLS mode (default auto: by port, RFC 8314)",
    )
    conn.add_argument("--cafile", metavar="PEM", help="trust only this CA bundle (not certifi)")
    conn.add_argument(
        "--trust",
        choices=TRUST_CHOICES,
        default="certifi",
        help="CAs to trust: certifi's (default) or the operating system's store "
        "(needs smtpsubmit[truststore])",
    )
    conn.add_argument(
        "--timeout", type=float, metavar="S", help="seconds for each phase (default: per phase)"
    )
    conn.add_argument("--ehlo", metavar="NAME", help="EHLO name (default: this host's FQDN)")
    conn.add_argument(
        "--retry",
        type=int,
        default=1,
        metavar="N",
        help="tries in all after a transient failure (default 1: no retry); only recipients "
        "refused with 4xx are tried again, never a message that may have been queued",
    )
    conn.add_argument(
        "--proxy",
        metavar="URL",
        help="connect through this proxy: socks5://, socks5h://, socks4:// or http:// "
        "[user@]host:port (its password comes from --proxy-password-env)",
    )
    conn.add_argument(
        "--proxy-password-env",
        default="SMTPSUBMIT_PROXY_PASSWORD",
        metavar="VAR",
        help="environment variable holding the proxy's password (default "
        "SMTPSUBMIT_PROXY_PASSWORD)",
    )
    conn.add_argument("--backend", choices=BACKENDS, default="asyncio", help=argparse.SUPPRESS)
    auth = parser.add_argument_group("authentication")
    auth.add_argument("--user", help="authenticate as this user")
    auth.add_argument(
        "--password-env",
        default="SMTPSUBMIT_PASSWORD",
        metavar="VAR",
        help="environment variable holding the password (default SMTPSUBMIT_PASSWORD)",
    )
    auth.add_argument(
        "--insecure-password-argv",
        metavar="PASSWORD",
        help="INSECURE: the password on the command line, visible to other users and kept "
        "in shell history; for throwaway test servers only",
    )
    auth.add_argument(
        "--allow-cleartext-auth",
        action="store_true",
        help="allow AUTH without TLS (with --tls insecure-cleartext)",
    )
    msg = parser.add_argument_group("message")
    msg.add_argument("--from", dest="sender", metavar="ADDRESS", help="default: --user")
    for name in ("to", "cc", "bcc"):
        msg.add_argument(
            f"--{name}", action="append", default=[], metavar="ADDRESS", help="repeatable"
        )
    msg.add_argument("--subject", default="smtpsubmit test", help="default 'smtpsubmit test'")
    body = msg.add_mutually_exclusive_group()
    body.add_argument("--body", metavar="TEXT", help="message text")
    body.add_argument("--body-file", metavar="FILE", help="message text from a file, - for stdin")
    msg.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'", help="repeatable"
    )
    msg.add_argument("--attach", action="append", default=[], metavar="FILE", help="repeatable")
    dkim = parser.add_argument_group("DKIM signing (needs the smtpsubmit[dkim] extra)")
    dkim.add_argument("--dkim-domain", metavar="DOMAIN", help="sign as this domain (d=)")
    dkim.add_argument("--dkim-selector", metavar="NAME", help="key selector (s=)")
    dkim.add_argument(
        "--dkim-key", metavar="PEM", help="private key file (RSA or Ed25519, PEM or base64)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print the session (secrets redacted)"
    )
    return parser


def _dkim_signer(args: argparse.Namespace) -> Signer | None:
    """The signer the ``--dkim-*`` options describe (all three, or none of them)."""
    given = [args.dkim_domain, args.dkim_selector, args.dkim_key]
    if not any(given):
        return None
    if not all(given):
        raise CommandLineError("--dkim-domain, --dkim-selector and --dkim-key go together")
    try:
        with open(args.dkim_key, "rb") as file:
            key = file.read()
    except OSError as exc:
        raise CommandLineError(f"cannot read --dkim-key: {exc.strerror or exc}") from None
    try:
        from ..dkim import DKIMSigner

        return DKIMSigner(domain=args.dkim_domain, selector=args.dkim_selector, private_key=key)
    except ImportError as exc:
        raise CommandLineError(str(exc)) from None


def build_message(args: argparse.Namespace, stdin: TextIO) -> EmailMessage:
    """The message described by the parsed options; raises ``CommandLineError`` on bad input."""
    sender = args.sender or (args.user if args.user and "@" in args.user else None)
    if not sender:
        raise CommandLineError("--from is required (or a --user that is an address)")
    if not (args.to or args.cc or args.bcc):
        raise CommandLineError("at least one --to, --cc or --bcc is required")
    msg = EmailMessage()
    try:
        msg["From"] = sender
        for name, values in (("To", args.to), ("Cc", args.cc), ("Bcc", args.bcc)):
            if values:
                msg[name] = ", ".join(values)  # the library strips Bcc from the content
        msg["Subject"] = args.subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
        msg["User-Agent"] = f"smtpsubmit/{__version__}"
        for header in args.header:
            name, sep, value = header.partition(":")
            if not sep or not name.strip():
                raise CommandLineError(f"--header needs 'Name: value', got {header!r}")
            msg[name.strip()] = value.strip()
    except (ValueError, TypeError) as exc:  # CR/LF in a value, unparsable address
        raise CommandLineError(f"invalid header: {exc}") from None
    msg.set_content(_body(args, stdin))
    for path in args.attach:
        _attach(msg, path)
    return msg


def _body(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.body is not None:
        return str(args.body) + "\n"
    if args.body_file == "-":
        return stdin.read()
    if args.body_file is not None:
        try:
            with open(args.body_file, encoding="utf-8") as file:
                return file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandLineError(f"cannot read --body-file: {exc}") from None
    return "This is a test message sent by python -m smtpsubmit send.\n"


def _attach(msg: EmailMessage, path: str) -> None:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise CommandLineError(f"cannot read --attach file: {exc}") from None
    guessed, encoding = mimetypes.guess_type(path)
    if guessed is None or encoding is not None:  # a .gz is not its content type
        guessed = "application/octet-stream"
    maintype, _, subtype = guessed.partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=os.path.basename(path))


def _proxy(args: argparse.Namespace) -> str | None:
    """``--proxy``, with the password from the environment when it names a user.

    Never a password in argv (visible in ``ps``): one there is a usage error. A URL the
    library will refuse anyway (no port, unknown scheme) is passed on for it to say so.
    """
    url: str | None = args.proxy
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return url
    variable = args.proxy_password_env
    if password is not None:
        raise CommandLineError(
            f"--proxy must not contain the proxy's password (other users see the command "
            f"line): give [user@]host:port and put the password in ${variable}"
        )
    if not user or parts.scheme.lower() == "socks4":
        return url  # no password needed (SOCKS4 has only a user id)
    secret = os.environ.get(variable)
    if not secret:
        raise CommandLineError(f"--proxy names the user {user!r}: set ${variable} too")
    netloc = f"{parts.netloc.rpartition('@')[0]}:{quote(secret, safe='')}@"
    netloc += parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _password(args: argparse.Namespace, stdin: TextIO, err: TextIO) -> str | None:
    if not args.user:
        return None
    if args.insecure_password_argv is not None:
        print("warning: the password was given on the command line", file=err)
        return str(args.insecure_password_argv)
    value = os.environ.get(args.password_env)
    if value is not None:
        return value
    if stdin.isatty():
        return getpass.getpass(f"password for {args.user}: ")
    raise CommandLineError(
        f"no password for {args.user}: set ${args.password_env}, or run on a terminal"
    )


class _SessionLog(logging.Handler):
    """Shows the ``smtpsubmit`` logger's session lines as ``C: ...`` / ``S: ...``.

    ``hold()`` buffers instead of printing while a transaction runs: on success the
    transaction is printed from ``SendResult.transcript``; on failure the buffer is.
    """

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self._write = write
        self.held: list[str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if record.msg == "%s %s: %s" and isinstance(args, tuple) and len(args) == 3:
            line = f"{args[1]}: {args[2]}"  # drop the host: there is only one
        else:
            line = f"*  {record.getMessage()}"
        if self.held is not None:
            self.held.append(line)
        else:
            self._write(line)

    def flush_held(self) -> None:
        """Print what was held back, and print directly again from now on."""
        held, self.held = self.held or [], None
        for line in held:
            self._write(line)


@contextmanager
def _session_log(enabled: bool, write: Callable[[str], None]) -> Iterator[_SessionLog | None]:
    if not enabled:
        yield None
        return
    logger = logging.getLogger("smtpsubmit")
    handler = _SessionLog(write)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _submit(
    client: SMTPClient, msg: EmailMessage, log: _SessionLog | None, write: Callable[[str], None]
) -> SendResult:
    async with client:
        if log is not None:
            log.held = []
        try:
            result = await client.send_message(msg)
        except BaseException:
            if log is not None:
                log.flush_held()
            raise
        if log is not None:
            log.held = None
            for line in result.transcript:
                write(str(line))
        return result


def _one_line(exc: BaseException, *, named: bool = True) -> str:
    text = " / ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return f"{type(exc).__name__}: {text}" if named else text


def _exit_status(exc: SMTPError) -> int:
    if isinstance(exc, OutcomeUnknownError):
        return EXIT_UNKNOWN
    if isinstance(exc, TransientReplyError | TimeoutError):
        return EXIT_TEMPORARY
    # RecipientsRefusedError (all 4xx) and AuthenticationError (454) know if they are.
    if getattr(exc, "transient", False) is True:
        return EXIT_TEMPORARY
    return EXIT_FAILED


def send_main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``send`` with ``argv``; returns the exit status (see the ``--help`` epilog).

    ``stdin``/``stdout``/``stderr`` default to the process's; usage errors and ``--help``
    return 2 and 0 instead of exiting, for in-process callers.
    """
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way out: --help, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    def write(line: str) -> None:
        print(line, file=out, flush=True)

    def fail(message: str, status: int) -> int:
        print(f"smtpsubmit send: {message}", file=err)
        return status

    spelling = _spelling(args.password_env)
    connection: ClientOptions = {
        "tls": None if args.tls == "auto" else args.tls,
        "timeout": args.timeout,
        "local_hostname": args.ehlo,
        "allow_cleartext_auth": args.allow_cleartext_auth,
    }
    try:
        if args.retry != 1:
            connection["retry"] = RetryPolicy(attempts=args.retry)
        connection["proxy"] = _proxy(args)
        # The connection options first: a bad --port is reported before a password prompt.
        check_client_arguments(args.server, args.port, **connection)
        msg = build_message(args, stdin)
        signer = _dkim_signer(args)  # a bad key is reported before a password prompt
        password = _password(args, stdin, err)
        context = (
            ssl_context_for(args.cafile, args.trust) if args.tls != "insecure-cleartext" else None
        )
        connection["ssl_context"] = context
        connection["username"] = args.user
        connection["password"] = password
        connection["signer"] = signer
        client = SMTPClient(args.server, args.port, **connection)
    except CommandLineError as exc:
        return fail(f"error: {exc}", EXIT_USAGE)
    except (TypeError, ValueError) as exc:  # a RetryPolicy refusing --retry
        if isinstance(exc, ArgumentError):
            return fail(f"error: {_one_line(exc.spelled(spelling), named=False)}", EXIT_USAGE)
        return fail(f"error: --retry: {exc}", EXIT_USAGE)
    except ArgumentError as exc:  # TLSPolicyError too: the mode contradicts the port
        return fail(f"error: {_one_line(exc.spelled(spelling), named=False)}", EXIT_USAGE)
    with _session_log(args.verbose, write) as log:
        try:
            result = anyio.run(_submit, client, msg, log, write, backend=args.backend)
        except RecipientsRefusedError as exc:
            for rcpt, reply in exc.refused.items():
                print(f"refused: {rcpt}: {reply}", file=err)
            return fail(_one_line(exc), _exit_status(exc))
        except SMTPError as exc:
            return fail(_one_line(respelled(exc, spelling)), _exit_status(exc))
        except KeyboardInterrupt:
            return fail("interrupted", 130)  # the shell's convention for SIGINT
    queue = f" as {result.queue_id}" if result.queue_id else ""
    write(f"sent{queue} to {len(result.accepted)} recipient(s): {result.reply}")
    if result.refused:
        for rcpt, reply in result.refused.items():
            print(f"refused: {rcpt}: {reply}", file=err)
        return EXIT_PARTIAL
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(send_main())
