"""DKIM signatures checked by a verifier we did not write: OpenDKIM, as Postfix's milter.

Two Postfix listeners hand every message to OpenDKIM (interop/opendkim/), which adds
``Authentication-Results: opendkim.interop.test; dkim=...`` before delivery; the second
listener offers neither 8BITMIME nor SMTPUTF8, so smtpsubmit re-encodes to 7 bit before it
signs. The public keys are published through OpenDKIM's own resolver (libunbound with a
local zone), and were written by openssl, not by the library under test.
"""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import smtpsubmit
from smtpsubmit.dkim import DKIMSigner

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Verifier:
    """The "dkim" section of servers.json."""

    raw: dict[str, Any]

    def signer(self, algorithm: str) -> DKIMSigner:
        key = self.raw["keys"][algorithm]
        return DKIMSigner(
            domain=self.raw["domain"],
            selector=key["selector"],
            private_key=Path(key["private_key_file"]).read_bytes(),
        )

    def results(self, raw: bytes) -> list[str]:
        """The delivered message's Authentication-Results fields by OpenDKIM, unfolded."""
        head = raw.partition(b"\n\n")[0].decode("utf-8", "replace")
        fields = re.findall(r"^Authentication-Results:(.*(?:\n[ \t].*)*)", head, re.MULTILINE)
        unfolded = [" ".join(f.split()) for f in fields]
        return [f for f in unfolded if f.startswith(self.raw["authserv_id"] + ";")]


@pytest.fixture(scope="module")
def verifier(interop_servers: Any) -> Verifier:
    return Verifier(interop_servers.raw["dkim"])


def client(servers: Any, verifier: Verifier, *, seven_bit: bool = False, **options: Any) -> Any:
    port = verifier.raw["ports"]["postfix_7bit" if seven_bit else "postfix"]
    return smtpsubmit.SMTPClient(
        verifier.raw["host"],
        port,
        tls="starttls",
        ssl_context=servers.ssl_context(),
        server_hostname=servers.tls_server_name,
        username=servers.user,
        password=servers.password,
        timeout=30,
        **options,
    )


def message(servers: Any, rcpt: str, *, sender: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender or servers.sender
    msg["To"] = rcpt
    msg["Subject"] = f"Grüße {uuid.uuid4().hex[:8]}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@client.interop.test>"
    msg.set_content("Grüße aus Köln.\n.a line starting with a dot\nTrailing space   \n\n\n")
    return msg


def passed(result: str, algorithm: str, selector: str) -> bool:
    return bool(
        re.search(r"\bdkim=pass\b", result)
        and f"header.a={algorithm}" in result
        and f"header.s={selector}" in result
        and "header.d=example.test" in result
    )


def test_the_dkim_listeners_offer_what_the_tests_rely_on(verifier: Verifier) -> None:
    full = verifier.raw["ehlo"]["postfix"]["after_tls"]
    seven_bit = verifier.raw["ehlo"]["postfix_7bit"]["after_tls"]
    assert {"8BITMIME", "SMTPUTF8", "CHUNKING"} <= set(full)
    assert "CHUNKING" in seven_bit
    assert not {"8BITMIME", "SMTPUTF8"} & set(seven_bit)
    assert "OpenDKIM" in verifier.raw["verifier"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("seven_bit", [False, True], ids=["8bitmime", "7bit"])
@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_opendkim_passes_what_smtpsubmit_signed(
    interop_servers: Any, verifier: Verifier, algorithm: str, seven_bit: bool, chunking: bool
) -> None:
    rcpt = interop_servers.unique_address("dkim")
    signer = verifier.signer(algorithm)
    async with client(
        interop_servers, verifier, seven_bit=seven_bit, chunking=chunking, signer=signer
    ) as smtp:
        result = await smtp.send_message(message(interop_servers, rcpt))
    assert result.accepted == (rcpt,)
    [delivered] = interop_servers.postfix.wait_for_messages(rcpt)
    [verdict] = verifier.results(delivered.raw)
    print(f"Authentication-Results: {verdict}")
    assert passed(verdict, algorithm, signer.selector), verdict
    body = delivered.raw.partition(b"\n\n")[2]
    assert body.isascii() == seven_bit  # re-encoded (then signed) for the 7-bit listener
    assert "ESMTPSA" in delivered.received_header  # TLS and AUTH, like the other listeners


async def test_opendkim_passes_utf8_addresses_and_headers_with_smtputf8(
    interop_servers: Any, verifier: Verifier
) -> None:
    rcpt = f"zoë-{uuid.uuid4().hex[:8]}@{interop_servers.domain}"
    signer = verifier.signer("ed25519-sha256")
    msg = message(interop_servers, rcpt, sender=f"jürgen@{interop_servers.domain}")
    async with client(interop_servers, verifier, signer=signer) as smtp:
        await smtp.send_message(msg, sender=interop_servers.sender)
    [delivered] = interop_servers.postfix.wait_for_messages(rcpt)
    assert f"To: {rcpt}".encode() in delivered.raw  # UTF-8 in the header (RFC 6532)
    [verdict] = verifier.results(delivered.raw)
    print(f"Authentication-Results: {verdict}")
    assert passed(verdict, "ed25519-sha256", signer.selector), verdict


async def test_a_pool_signs_every_message_opendkim_passes_them_all(
    interop_servers: Any, verifier: Verifier
) -> None:
    rcpts = [interop_servers.unique_address("dkim-pool") for _ in range(4)]
    signer = verifier.signer("rsa-sha256")
    async with smtpsubmit.SMTPPool(
        verifier.raw["host"],
        verifier.raw["ports"]["postfix"],
        tls="starttls",
        ssl_context=interop_servers.ssl_context(),
        server_hostname=interop_servers.tls_server_name,
        username=interop_servers.user,
        password=interop_servers.password,
        signer=signer,
        max_connections=2,
    ) as pool:
        outcomes = await pool.send_batch([message(interop_servers, r) for r in rcpts])
    assert all(isinstance(o, smtpsubmit.SendResult) for o in outcomes), outcomes
    for rcpt in rcpts:
        [delivered] = interop_servers.postfix.wait_for_messages(rcpt)
        [verdict] = verifier.results(delivered.raw)
        assert passed(verdict, "rsa-sha256", signer.selector), verdict


async def test_a_streamed_body_is_refused_not_sent_unsigned(
    interop_servers: Any, verifier: Verifier
) -> None:
    rcpt = interop_servers.unique_address("dkim-stream")
    data = message(interop_servers, rcpt).as_bytes()
    async with client(interop_servers, verifier, signer=verifier.signer("rsa-sha256")) as smtp:
        with pytest.raises(smtpsubmit.MessageError, match="streamed body"):
            await smtp.sendmail(interop_servers.sender, [rcpt], io.BytesIO(data))
    assert interop_servers.postfix.messages(rcpt) == []


async def test_control_the_milter_reports_unsigned_mail_as_none(
    interop_servers: Any, verifier: Verifier
) -> None:
    rcpt = interop_servers.unique_address("unsigned")
    async with client(interop_servers, verifier) as smtp:
        await smtp.send_message(message(interop_servers, rcpt))
    [verdict] = verifier.results(interop_servers.postfix.wait_for_messages(rcpt)[0].raw)
    print(f"Authentication-Results: {verdict}")
    assert "dkim=none" in verdict


@pytest.mark.parametrize(("seven_bit", "outcome"), [(False, "pass"), (True, "fail")])
async def test_control_signing_before_send_fails_once_the_message_is_reencoded(
    interop_servers: Any, verifier: Verifier, seven_bit: bool, outcome: str
) -> None:
    # A signature made on the 8-bit message before send() holds while the message goes
    # as it is, and breaks when a server without 8BITMIME makes the library re-encode it
    # to 7 bit: why the signer= hook signs after that.
    rcpt = interop_servers.unique_address("presigned")
    msg = message(interop_servers, rcpt)
    signer = verifier.signer("rsa-sha256")
    field = signer.sign(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    name, _, value = field.decode().partition(":")
    msg[name] = " ".join(value.split())  # the same field, refolded by the email package
    async with client(interop_servers, verifier, seven_bit=seven_bit) as smtp:
        await smtp.send_message(msg)
    [verdict] = verifier.results(interop_servers.postfix.wait_for_messages(rcpt)[0].raw)
    print(f"Authentication-Results: {verdict}")
    assert re.search(rf"\bdkim={outcome}\b", verdict), verdict
