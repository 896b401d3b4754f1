"""Command line: ``python -m smtpsubmit demo | serve | send | probe``."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from email.message import EmailMessage

import anyio

from smtpsubmit import __version__

__all__ = ["main"]


def _message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "demo@example.com"
    msg["To"] = "you@example.com"
    msg["Bcc"] = "audit@example.com"
    msg["Subject"] = subject
    msg.set_content("Sent by smtpsubmit's demo through its embedded fake server.\n")
    return msg


async def _demo() -> int:
    import smtpsubmit
    from smtpsubmit.testing import FakeSMTPServer, Mode, ServerCertificates

    users = {"demo": "demo-password"}
    certificates = ServerCertificates()
    print("smtpsubmit demo: an embedded fake server with a throwaway CA (trustme)\n")
    for mode, tls, label in [
        (Mode.IMPLICIT_TLS, smtpsubmit.TLSMode.IMPLICIT, "implicit TLS (like port 465)"),
        (Mode.STARTTLS, smtpsubmit.TLSMode.STARTTLS, "STARTTLS (like port 587)"),
    ]:
        async with FakeSMTPServer(mode=mode, users=users, certificates=certificates) as server:
            async with smtpsubmit.SMTPClient(
                server.host,
                server.port,
                tls=tls,
                ssl_context=server.client_ssl_context(),
                username="demo",
                password=users["demo"],
            ) as client:
                result = await client.send_message(_message(f"Hello over {label}"))
                info = client.tls_info
                mechanism = client.authenticated_mechanism
            await server.wait_for_messages(1)
            captured = server.messages[0]
            where = f"{server.host}:{server.port}"
        print(f"== {label} on {where}")
        print(f"   TLS: {info.version if info else None}, AUTH {mechanism}")
        print(f"   accepted: {', '.join(result.accepted)}")
        print(f"   final reply: {result.reply}  (queue id {result.queue_id})")
        print(
            f"   server saw TLS={captured.tls}, identity={captured.auth_identity}, "
            f"Bcc header transmitted: {b'Bcc:' in captured.data}"
        )
        print("   transcript:")
        for line in result.transcript:
            print(f"     {line}")
        print()

    print("== cleartext with credentials: refused before AUTH is sent")
    async with FakeSMTPServer(mode=Mode.PLAIN, users=users, allow_cleartext_auth=True) as server:
        try:
            await smtpsubmit.send(
                _message("never sent"),
                host=server.host,
                port=server.port,
                tls=smtpsubmit.TLSMode.INSECURE_CLEARTEXT,
                username="demo",
                password=users["demo"],
            )
        except smtpsubmit.CleartextAuthError as exc:
            print(f"   CleartextAuthError: {exc}")
        sent = [e.line for t in server.transcripts for e in t if e.direction == "client"]
        print(f"   what the server received: {sent}")
    print("\n== port 2525 with no TLS mode: refused before any I/O (RFC 8314)")
    try:
        smtpsubmit.SMTPClient("smtp.example.com", 2525)
    except smtpsubmit.TLSPolicyError as exc:
        print(f"   TLSPolicyError: {exc}")
    certificates.close()
    return 0


def _missing_fake_server_dependency(command: str) -> str | None:
    """One line saying what to install, if the fake server cannot run here.

    ``serve`` and ``demo`` run the fake server, whose throwaway CA comes from trustme: an
    optional dependency (the ``testing`` extra), not one of the library's.
    """
    if importlib.util.find_spec("trustme") is not None:
        return None
    return (
        f"python -m smtpsubmit {command}: the fake server needs trustme, "
        "from the testing extra: pip install 'smtpsubmit[testing]'"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m smtpsubmit``."""
    parser = argparse.ArgumentParser(prog="python -m smtpsubmit")
    parser.add_argument("--version", action="version", version=f"smtpsubmit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="send through the embedded fake server over 465 and 587")
    sub.add_parser("serve", help="run the fake SMTP server standalone", add_help=False)
    sub.add_parser("send", help="submit one message (like swaks)", add_help=False)
    sub.add_parser("probe", help="diagnose a server's submission ports and TLS", add_help=False)
    args, rest = parser.parse_known_args(argv)
    wants_help = bool({"-h", "--help"} & set(rest))
    if args.command in ("serve", "demo") and not wants_help:
        missing = _missing_fake_server_dependency(args.command)
        if missing is not None:
            print(missing, file=sys.stderr)
            return 1
    if args.command == "serve":
        from smtpsubmit.testing._cli import serve_main

        return serve_main(rest)
    if args.command == "send":
        from smtpsubmit.cli import send_main

        return send_main(rest)
    if args.command == "probe":
        from smtpsubmit.cli import probe_main

        return probe_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return anyio.run(_demo)


if __name__ == "__main__":
    sys.exit(main())
