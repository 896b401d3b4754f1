"""Wheel smoke test: send one message through the fake server with the public API.

Run by ``wheel_smoke.py`` with the interpreter of a virtualenv holding only the built wheel
and its ``testing`` extra, from a directory outside the checkout. It also checks that what
it imported is that installed copy, that it is typed (``py.typed``, PEP 561) and that its
version is the one in its metadata.
"""

from __future__ import annotations

import importlib.metadata
import sys
from email.message import EmailMessage
from pathlib import Path

import anyio

import smtpsubmit
from smtpsubmit.testing import FakeSMTPServer, Mode


def check_installed_copy() -> Path:
    package = Path(smtpsubmit.__file__).resolve().parent
    prefix = Path(sys.prefix).resolve()
    assert prefix in package.parents, f"imported {package}, not the copy in {prefix}"
    assert (package / "py.typed").is_file(), f"no py.typed in {package}"
    assert importlib.metadata.version("smtpsubmit") == smtpsubmit.__version__
    return package


async def main() -> None:
    package = check_installed_copy()
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "you@example.org"
    msg["Subject"] = "wheel smoke test"
    msg.set_content("Sent from the installed wheel.\n")
    users = {"app@example.com": "app-password"}
    async with FakeSMTPServer(mode=Mode.IMPLICIT_TLS, users=users) as server:
        result = await smtpsubmit.send(
            msg,
            host=server.host,
            port=server.port,
            tls=smtpsubmit.TLSMode.IMPLICIT,
            ssl_context=server.client_ssl_context(),
            username="app@example.com",
            password=users["app@example.com"],
        )
        [captured] = await server.wait_for_messages(1)
    assert result.accepted == ("you@example.org",), result
    assert captured.tls
    assert captured.auth_identity == "app@example.com"
    assert captured.message["Subject"] == "wheel smoke test"
    print(f"smtpsubmit {smtpsubmit.__version__} from {package}: sent, {result.reply}")


if __name__ == "__main__":
    anyio.run(main)
