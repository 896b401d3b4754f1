"""smtpsubmit's public API against servers we did not write: Postfix and aiosmtpd."""

from __future__ import annotations

import hashlib
import ssl
import uuid
from email.message import EmailMessage

import anyio
import pytest

import smtpsubmit

pytestmark = [pytest.mark.interop, pytest.mark.anyio]

CLIENT_NAME = "client.interop.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def postfix_client(servers, *, tls: str = "starttls", **options) -> smtpsubmit.SMTPClient:  # type: ignore[no-untyped-def]
    pf = servers.postfix
    port = pf.starttls_port if tls == "starttls" else pf.implicit_port
    options.setdefault("username", servers.user)
    options.setdefault("password", servers.password)
    return smtpsubmit.SMTPClient(
        pf.host,
        port,
        tls=tls,
        ssl_context=servers.ssl_context(),
        server_hostname=servers.tls_server_name,
        local_hostname=CLIENT_NAME,
        timeout=30,
        **options,
    )


def raw_message(sender: str, rcpt: str, body: bytes, *, subject: str = "interop") -> bytes:
    head = (
        f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject} {uuid.uuid4().hex}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{CLIENT_NAME}>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode()
    return head + body


BODY = "Grüße\r\n.leading dot\r\n..two dots\r\nend\r\n".encode()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_postfix_delivers_byte_identical_over_both_tls_modes(
    interop_servers, tls: str, chunking: bool
) -> None:
    rcpt = interop_servers.unique_address()
    data = raw_message(interop_servers.sender, rcpt, BODY)
    async with postfix_client(interop_servers, tls=tls, chunking=chunking) as client:
        assert client.extensions.pipelining
        assert client.extensions.chunking
        result = await client.sendmail(interop_servers.sender, [rcpt], data)
        info = client.tls_info
    assert result.accepted == (rcpt,)
    assert result.queue_id
    assert info is not None
    assert info.version in ("TLSv1.2", "TLSv1.3")
    [delivered] = interop_servers.postfix.wait_for_messages(rcpt)
    assert delivered.submitted == data
    via = "ESMTPSA"  # Postfix's Received: "with ESMTPSA" = ESMTP + TLS + AUTH
    assert via in delivered.received_header


# Cyrus SASL also offers DIGEST-MD5 (moved to Historic by RFC 6331) and SCRAM-SHA-224/-384,
# which smtpsubmit deliberately does not implement; every mechanism it does run is here.
@pytest.mark.parametrize(
    "mechanism", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"]
)
async def test_every_sasl_mechanism_postfix_offers(interop_servers, mechanism: str) -> None:
    assert mechanism in interop_servers.postfix.auth_mechanisms
    auth = smtpsubmit.PasswordAuth(
        interop_servers.user, interop_servers.password, mechanisms=(mechanism,)
    )
    async with postfix_client(interop_servers, username=None, password=None, auth=auth) as client:
        assert client.authenticated_mechanism == mechanism
        rcpt = interop_servers.unique_address()
        await client.sendmail(
            interop_servers.sender, [rcpt], raw_message("a@x.test", rcpt, b"x\r\n")
        )
    interop_servers.postfix.wait_for_messages(rcpt)


async def test_automatic_mechanism_choice_is_the_strongest_scram(interop_servers) -> None:
    async with postfix_client(interop_servers) as client:
        assert client.authenticated_mechanism == "SCRAM-SHA-512"


async def test_wrong_password_is_535(interop_servers) -> None:
    with pytest.raises(smtpsubmit.AuthenticationError) as info:
        await postfix_client(interop_servers, password="wrong").connect()
    assert info.value.code == 535
    assert "wrong" not in str(info.value)


async def test_cleartext_port_with_credentials_is_refused_before_auth(interop_servers) -> None:
    pf = interop_servers.postfix
    client = smtpsubmit.SMTPClient(
        pf.host,
        pf.cleartext_port,
        tls=smtpsubmit.TLSMode.INSECURE_CLEARTEXT,
        username=interop_servers.user,
        password=interop_servers.password,
        local_hostname=CLIENT_NAME,
    )
    with pytest.raises(smtpsubmit.CleartextAuthError):
        await client.connect()


async def test_partial_recipient_refusal_is_per_recipient(interop_servers) -> None:
    good = interop_servers.unique_address()
    rejected, tempfail = interop_servers.rejected, interop_servers.tempfail
    async with postfix_client(interop_servers) as client:
        result = await client.sendmail(
            interop_servers.sender,
            [good, rejected.address, tempfail.address],
            raw_message(interop_servers.sender, good, b"partial\r\n"),
        )
    assert result.accepted == (good,)
    assert result.refused[rejected.address].code == rejected.code
    assert str(result.refused[rejected.address].enhanced) == rejected.enhanced
    assert result.refused[tempfail.address].code == tempfail.code
    interop_servers.postfix.wait_for_messages(good)


async def test_all_recipients_refused(interop_servers) -> None:
    async with postfix_client(interop_servers) as client:
        with pytest.raises(smtpsubmit.RecipientsRefusedError) as info:
            await client.sendmail(
                interop_servers.sender,
                [interop_servers.rejected.address],
                b"Subject: x\r\n\r\nx\r\n",
            )
        # The session survives (RSET) and the next message goes through.
        rcpt = interop_servers.unique_address()
        await client.sendmail(
            interop_servers.sender, [rcpt], raw_message("a@x.test", rcpt, b"ok\r\n")
        )
    assert info.value.code == interop_servers.rejected.code
    interop_servers.postfix.wait_for_messages(rcpt)


async def test_eight_bit_and_smtputf8_messages_arrive_intact(interop_servers) -> None:
    local = "jörg-" + uuid.uuid4().hex[:8]
    rcpt = f"{local}@{interop_servers.domain}"
    msg = EmailMessage()
    msg["From"] = f"Jörg <sender-ü@{interop_servers.domain}>"
    msg["To"] = rcpt
    msg["Subject"] = "Grüße, 你好"
    msg.set_content("Grüße aus Köln\n你好\n")
    async with postfix_client(interop_servers) as client:
        assert client.extensions.smtputf8
        result = await client.send_message(msg)
    assert result.accepted == (rcpt,)
    [delivered] = interop_servers.postfix.wait_for_messages(rcpt)
    received = delivered.message()
    assert received["Subject"] == "Grüße, 你好"
    assert received.get_content() == "Grüße aus Köln\n你好\n"


async def test_dsn_parameters_are_accepted(interop_servers) -> None:
    rcpt = interop_servers.unique_address()
    dsn = smtpsubmit.DSN(
        notify=("FAILURE", "DELAY"), ret="HDRS", envid="interop-" + uuid.uuid4().hex
    )
    async with postfix_client(interop_servers) as client:
        assert client.extensions.dsn
        result = await client.sendmail(
            interop_servers.sender, [rcpt], raw_message("a@x.test", rcpt, b"dsn\r\n"), dsn=dsn
        )
    assert result.accepted == (rcpt,)
    interop_servers.postfix.wait_for_messages(rcpt)


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat", "data"])
async def test_ten_megabyte_message_arrives_byte_identical(interop_servers, chunking: bool) -> None:
    rcpt = interop_servers.unique_address()
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    body = b"".join(
        b"." + line if i % 7 == 0 else line for i in range(10 * 1024 * 1024 // len(line))
    )
    data = raw_message(interop_servers.sender, rcpt, body)
    async with postfix_client(interop_servers, chunking=chunking) as client:
        await client.sendmail(interop_servers.sender, [rcpt], data)
    [delivered] = interop_servers.postfix.wait_for_messages(rcpt, timeout=60)
    assert hashlib.sha256(delivered.submitted).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_two_hundred_messages_over_one_connection(interop_servers) -> None:
    rcpt = interop_servers.unique_address("bulk")
    async with postfix_client(interop_servers) as client:
        for i in range(200):
            await client.sendmail(
                interop_servers.sender, [rcpt], raw_message("a@x.test", rcpt, f"n{i}\r\n".encode())
            )
        assert client.messages_sent == 200
    interop_servers.postfix.wait_for_messages(rcpt, count=200, timeout=120)


async def test_pool_sends_concurrently_to_postfix(interop_servers) -> None:
    rcpt = interop_servers.unique_address("pool")
    pf = interop_servers.postfix
    async with smtpsubmit.SMTPPool(
        pf.host,
        pf.implicit_port,
        tls="implicit",
        ssl_context=interop_servers.ssl_context(),
        server_hostname=interop_servers.tls_server_name,
        username=interop_servers.user,
        password=interop_servers.password,
        local_hostname=CLIENT_NAME,
        max_connections=4,
    ) as pool:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(
                    pool.sendmail,
                    interop_servers.sender,
                    [rcpt],
                    raw_message("a@x.test", rcpt, f"p{i}\r\n".encode()),
                )
    interop_servers.postfix.wait_for_messages(rcpt, count=40, timeout=60)


async def test_server_certificate_from_an_unknown_ca_is_refused(interop_servers) -> None:
    other_ca = ssl.create_default_context()  # system/certifi roots: not the interop CA
    pf = interop_servers.postfix
    client = smtpsubmit.SMTPClient(
        pf.host,
        pf.implicit_port,
        tls="implicit",
        ssl_context=other_ca,
        server_hostname=interop_servers.tls_server_name,
        local_hostname=CLIENT_NAME,
    )
    with pytest.raises(smtpsubmit.CertificateError):
        await client.connect()
    default = smtpsubmit.SMTPClient(
        pf.host,
        pf.starttls_port,
        tls="starttls",
        local_hostname=CLIENT_NAME,
        server_hostname=interop_servers.tls_server_name,
    )
    with pytest.raises(smtpsubmit.CertificateError):
        await default.connect()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_aiosmtpd_over_both_tls_modes(interop_servers, tls: str) -> None:
    ai = interop_servers.aiosmtpd
    rcpt = interop_servers.unique_address()
    data = raw_message(interop_servers.sender, rcpt, BODY)
    async with smtpsubmit.SMTPClient(
        ai.host,
        ai.starttls_port if tls == "starttls" else ai.implicit_port,
        tls=tls,
        ssl_context=interop_servers.ssl_context(),
        server_hostname=interop_servers.tls_server_name,
        username=interop_servers.user,
        password=interop_servers.password,
        local_hostname=CLIENT_NAME,
    ) as client:
        assert client.authenticated_mechanism in ("PLAIN", "LOGIN")
        result = await client.sendmail(
            interop_servers.sender, [rcpt, interop_servers.rejected.address], data
        )
    assert result.accepted == (rcpt,)
    assert result.refused[interop_servers.rejected.address].code == 550
    [captured] = ai.wait_for_messages(rcpt)
    assert captured.body == BODY or captured.raw.endswith(BODY)


@pytest.mark.parametrize("chunking", [True, False], ids=["bdat-window", "data-chain"])
async def test_batch_with_a_refusal_in_the_middle_against_postfix(
    interop_servers, chunking: bool
) -> None:
    good = [interop_servers.unique_address("batch") for _ in range(6)]
    rejected = interop_servers.rejected.address
    items = [
        (interop_servers.sender, [rcpt], raw_message(interop_servers.sender, rcpt, b"b\r\n"))
        for rcpt in good
    ]
    # The third message goes only to the rejected address; the fifth to both.
    items[2] = (interop_servers.sender, [rejected], items[2][2])
    items[4] = (interop_servers.sender, [rejected, good[4]], items[4][2])
    async with postfix_client(interop_servers, chunking=chunking) as client:
        results = await client.send_batch(items, window=4)
        assert client.is_connected
    assert isinstance(results[2], smtpsubmit.RecipientsRefusedError)
    assert results[2].refused[rejected].code == interop_servers.rejected.code
    partial = results[4]
    assert isinstance(partial, smtpsubmit.SendResult)
    assert partial.accepted == (good[4],)
    assert rejected in partial.refused
    for index in (0, 1, 3, 5):
        result = results[index]
        assert isinstance(result, smtpsubmit.SendResult), result
        assert result.accepted == (good[index],)
        assert result.queue_id
    for index in (0, 1, 3, 4, 5):
        interop_servers.postfix.wait_for_messages(good[index])


async def test_retry_policy_against_postfix_retries_450_not_550(interop_servers) -> None:
    # Postfix answers tempfail@ with 450 and rejected@ with 550 at RCPT, every time: the 450
    # recipient is tried again (alone) until the attempts run out, the 550 one never, and
    # the good recipient gets the message once.
    good = interop_servers.unique_address("retry")
    rejected, tempfail = interop_servers.rejected, interop_servers.tempfail
    data = raw_message(interop_servers.sender, good, BODY)
    policy = smtpsubmit.RetryPolicy(attempts=3, backoff=0.05)
    async with postfix_client(interop_servers, retry=policy) as client:
        result = await client.sendmail(
            interop_servers.sender, [good, rejected.address, tempfail.address], data
        )
    assert result.accepted == (good,)
    assert result.attempts == 3
    assert [a.recipients for a in result.history] == [
        (good, rejected.address, tempfail.address),
        (tempfail.address,),
        (tempfail.address,),
    ]
    assert result.refused[rejected.address].code == rejected.code
    assert result.refused[tempfail.address].code == tempfail.code
    assert len(interop_servers.postfix.wait_for_messages(good)) == 1
