"""What each script block of the docs is for, checked after it runs.

A block that raises nothing proves little: an ``except`` branch that prints may have run
instead of the success path, or the mail may have gone to the wrong server, sender or
recipient. Each script block has one check here, found by its document and a piece of
text that occurs in that block only (line numbers move when the docs are edited). A check
gets what the block printed, what the sandbox's fake servers captured and the block's
namespace. Expected values come from the block's own inputs (addresses, subjects, demo
credentials) and from what the servers captured (queue ids), never from an earlier run.

Blocks that define pytest tests are checked by their own assertions (and by how many
passed), fragments are only compiled: neither needs an entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smtpsubmit.testing import CapturedMessage, ThreadedSMTPServer

__all__ = ["EXPECTATIONS", "Run"]


@dataclass
class Run:
    """The result of running one block."""

    out: list[str]  #: printed lines
    sandbox: Any  #: conftest.DocsSandbox (not imported: conftest modules share a name)
    namespace: dict[str, Any]

    @property
    def implicit(self) -> list[CapturedMessage]:
        """Messages captured by the port-465 stand-in."""
        return list(self.sandbox.implicit.messages)

    @property
    def starttls(self) -> list[CapturedMessage]:
        """Messages captured by the port-587 stand-in."""
        return list(self.sandbox.starttls.messages)

    def counts(self) -> dict[str, int]:
        """Messages per sandbox server."""
        return {
            "implicit": len(self.sandbox.implicit.messages),
            "starttls": len(self.sandbox.starttls.messages),
            "plain": len(self.sandbox.plain.messages),
        }

    def assert_no_network(self) -> None:
        """The block never reached a sandbox server (it used its own, or no I/O at all)."""
        assert [s.transcripts for s in self.sandbox.servers] == [[], [], []]


Check = Callable[[Run], None]

#: ``(document, text found in that block only) -> check``.
EXPECTATIONS: dict[tuple[str, str], Check] = {}


def expect(document: str, marker: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        assert (document, marker) not in EXPECTATIONS
        EXPECTATIONS[(document, marker)] = check
        return check

    return register


def client_verbs(server: ThreadedSMTPServer) -> list[list[str]]:
    """Per connection, the verbs the client sent."""
    return [
        [e.line.split(" ")[0].upper() for e in t if e.direction == "client"]
        for t in server.transcripts
    ]


def auth_mechanisms(server: ThreadedSMTPServer) -> list[str]:
    return [
        e.line.split(" ")[1]
        for t in server.transcripts
        for e in t
        if e.direction == "client" and e.line.startswith("AUTH ")
    ]


def final_reply(message: CapturedMessage) -> str:
    """The server's final reply to ``message`` as ``Reply.__str__`` renders it."""
    return f"250 2.0.0 Ok: queued as {message.queue_id}"


def one_line(run: Run, pattern: str) -> re.Match[str]:
    """The block printed exactly one line, and it matches ``pattern`` in full."""
    assert len(run.out) == 1, run.out
    match = re.fullmatch(pattern, run.out[0])
    assert match, run.out[0]
    return match


# -- README.md -------------------------------------------------------------------------------


@expect("README.md", "# One message: port 465 means implicit TLS.")
def _readme_quick_start(run: Run) -> None:
    [sent] = run.implicit
    first, raw = run.starttls
    assert run.out == [f"('you@example.org',) {{}} 250 {sent.queue_id}"]
    for message in (sent, first, raw):
        assert (message.mail_from, message.rcpt_to) == ("me@example.com", ["you@example.org"])
        assert message.tls
        assert message.auth_identity == "me@example.com"
    assert [m.message["Subject"] for m in (sent, first, raw)] == ["Hello", "Hello", "raw"]
    # The session: one connection, STARTTLS before AUTH, two transactions.
    [verbs] = client_verbs(run.sandbox.starttls)
    assert verbs.index("STARTTLS") < verbs.index("AUTH") < verbs.index("MAIL")
    assert verbs.count("MAIL") == 2


@expect("README.md", "outcomes = await client.send_batch(items, window=16)")
def _readme_batch_and_pool(run: Run) -> None:
    expected = sorted(f"user{i}@example.org" for i in range(50))
    assert run.out == ["50 sent", "50 sent; 0 failed"]
    # The batch on one implicit-TLS connection, the pool's sends on the STARTTLS server.
    assert [m.rcpt_to[0] for m in run.implicit] == [f"user{i}@example.org" for i in range(50)]
    assert len(run.sandbox.implicit.transcripts) == 1
    assert sorted(m.rcpt_to[0] for m in run.starttls) == expected
    assert all(m.auth_identity == "me@example.com" for m in run.implicit + run.starttls)


# -- docs/django.md --------------------------------------------------------------------------


@expect("docs/django.md", "# settings.py")
def _django_settings(run: Run) -> None:
    settings = run.namespace
    # The port's stand-in accepts these credentials (the next block sends with them).
    assert settings["EMAIL_PORT"] == 587
    assert (
        run.sandbox.starttls.users[settings["EMAIL_HOST_USER"]] == settings["EMAIL_HOST_PASSWORD"]
    )
    assert settings["EMAIL_BACKEND"] == "smtpsubmit.contrib.django.EmailBackend"
    run.assert_no_network()  # settings only


@expect("docs/django.md", "sent = mail.send_mail(")
def _django_send_mail(run: Run) -> None:
    welcome, *reports = run.starttls
    assert run.out == []
    assert (welcome.mail_from, welcome.rcpt_to) == ("me@example.com", ["bob@example.org"])
    assert welcome.message["From"] == "Example <me@example.com>"  # DEFAULT_FROM_EMAIL
    assert welcome.message["Subject"] == "Welcome"
    assert [m.message["Subject"] for m in reports] == ["Report 0", "Report 1", "Report 2"]
    for report in reports:
        assert report.rcpt_to == ["ops@example.org"]
        [attachment] = report.message.iter_attachments()
        assert attachment.get_filename() == "report.csv"
        assert attachment.get_content() == "day,count\nmon,3\n"
    assert all(m.tls and m.auth_identity == "me@example.com" for m in run.starttls)
    # send_mail() is one connection; the three reports share the second, one AUTH.
    assert [v.count("MAIL") for v in client_verbs(run.sandbox.starttls)] == [1, 3]
    assert [v.count("AUTH") for v in client_verbs(run.sandbox.starttls)] == [1, 1]


@expect("docs/django.md", "except smtpsubmit.RecipientsRefusedError as exc:")
def _django_errors(run: Run) -> None:
    assert run.out == []  # no except branch ran: it was sent
    [sent] = run.starttls
    assert (sent.mail_from, sent.rcpt_to) == ("me@example.com", ["bob@example.org"])
    assert sent.message["Subject"] == "Hi"


# -- docs/gmail-and-microsoft-365.md ---------------------------------------------------------

GMAIL = "docs/gmail-and-microsoft-365.md"


@expect(GMAIL, "class CachedToken:")
def _gmail_oauth(run: Run) -> None:
    [sent] = run.implicit
    assert run.out == [final_reply(sent)]
    assert sent.auth_identity == "me@gmail.com"
    assert sent.message["Subject"] == "Sent with OAuth"
    assert auth_mechanisms(run.sandbox.implicit) in (["OAUTHBEARER"], ["XOAUTH2"])


@expect(GMAIL, "async def revoked_token(renew: bool) -> str:")
def _gmail_revoked_token(run: Run) -> None:
    one_line(run, r"535 5\.7\.8 .+")
    assert run.counts() == {"implicit": 0, "starttls": 0, "plain": 0}
    # The cached token, then one renewal on the same connection; no MAIL.
    [verbs] = client_verbs(run.sandbox.starttls)
    assert verbs.count("AUTH") == 2
    assert "MAIL" not in verbs
    assert run.namespace["calls"] == [False, True]


@expect(GMAIL, "def provider(renew: bool) -> str:  # a plain function works too")
def _microsoft_pool(run: Run) -> None:
    [sent] = run.starttls
    assert run.out == ["('you@example.org',)"]
    assert sent.auth_identity == "me@contoso.com"
    assert (sent.mail_from, sent.message["Subject"]) == ("me@contoso.com", "Report")
    assert run.namespace["result"].queue_id == sent.queue_id


@expect(GMAIL, 'password=os.environ["GMAIL_APP_PASSWORD"],')
def _gmail_app_password(run: Run) -> None:
    [sent] = run.implicit
    assert run.out == [final_reply(sent)]
    assert sent.auth_identity == "me@gmail.com"
    assert (sent.mail_from, sent.rcpt_to) == ("me@gmail.com", ["you@example.org"])


# -- docs/migrating.md -----------------------------------------------------------------------


@expect("docs/migrating.md", "# Before (aiosmtplib):")
def _from_aiosmtplib(run: Run) -> None:
    [sent] = run.starttls
    assert run.out == [f"('you@example.org',) {{}} 250 {sent.queue_id}"]
    assert sent.tls
    assert sent.auth_identity == "me@example.com"
    assert run.counts()["implicit"] == 0


@expect("docs/migrating.md", "# Before (smtplib):")
def _from_smtplib(run: Run) -> None:
    [sent] = run.implicit
    assert run.out == []
    assert sent.auth_identity == "me@example.com"
    assert (sent.mail_from, sent.rcpt_to) == ("me@example.com", ["you@example.org"])
    assert run.counts()["starttls"] == 0


@expect("docs/migrating.md", 'refuse_second = Fault.reply("RCPT", nth=2')
def _migrating_partial_refusal(run: Run) -> None:
    # The success path with a partial refusal ran, not one of the except branches.
    assert run.out == ["sent, but refused for nobody@example.org: 550 5.1.1 No such user"]
    run.assert_no_network()


# -- docs/protocol-core.md -------------------------------------------------------------------
# Pure protocol blocks: their own asserts are the checks; they must do no I/O and be silent.


@expect("docs/protocol-core.md", "# 1. The greeting.")
def _core_walkthrough(run: Run) -> None:
    assert run.out == []
    assert run.namespace["final"].code == 250
    run.assert_no_network()


@expect("docs/protocol-core.md", 'assert wire.endswith(b"BDAT 36 LAST\\r\\n" + body)')
def _core_bdat(run: Run) -> None:
    assert run.out == []
    run.assert_no_network()


@expect("docs/protocol-core.md", "def ready(*keywords: bytes, encrypted: bool = False)")
def _core_rules(run: Run) -> None:
    assert run.out == []
    run.assert_no_network()


@expect("docs/protocol-core.md", "def read_reply(conn: ClientConnection, sock: socket.socket)")
def _core_blocking_socket(run: Run) -> None:
    captured = run.namespace["captured"]
    assert run.out == [final_reply(captured)]
    assert (captured.mail_from, captured.rcpt_to) == ("me@example.com", ["you@example.org"])
    assert captured.via == "DATA"
    run.assert_no_network()  # its own FakeSMTPServer


# -- docs/security.md ------------------------------------------------------------------------

SECURITY = "docs/security.md"


@expect(SECURITY, 'match="port 2525 has no standard TLS mode"')
def _security_modes(run: Run) -> None:
    assert run.out == []
    run.assert_no_network()  # building a client does no I/O


@expect(SECURITY, 'server_hostname="smtp.example.com"')
def _security_ssl_context(run: Run) -> None:
    client = run.namespace["client"]
    assert (client.host, client.server_hostname) == ("10.0.0.25", "smtp.example.com")
    assert client.tls_mode.name == "IMPLICIT"
    run.assert_no_network()


@expect(SECURITY, "context = smtpsubmit.system_trust_context()")
def _security_system_trust(run: Run) -> None:
    assert run.out == ["truststore True", "TLSv1_2"]
    assert run.namespace["client"].server_hostname == "smtp.example.com"
    run.assert_no_network()


@expect(SECURITY, 'SMTPClient("smtp.Straße.example", 465)')
def _security_idna(run: Run) -> None:
    assert run.out == ["smtp.xn--strae-oqa.example smtp.xn--strae-oqa.example"]
    run.assert_no_network()


@expect(SECURITY, "drill = Fault.wrong_host_certificate()")
def _security_wrong_certificate(run: Run) -> None:
    one_line(run, r"refused: .*(certificate|hostname).*")
    run.assert_no_network()


@expect(SECURITY, "faults=[Fault.strip_starttls()]")
def _security_strip_starttls(run: Run) -> None:
    one_line(run, r"refused: .*STARTTLS.*")
    run.assert_no_network()


@expect(SECURITY, 'drill = Fault.inject_after_starttls(b"250 injected\\r\\n")')
def _security_injection(run: Run) -> None:
    one_line(run, r"refused: .*injection.*")
    run.assert_no_network()


@expect(SECURITY, "# A server that would gladly take the password in cleartext.")
def _security_cleartext_auth(run: Run) -> None:
    one_line(run, r"refused: .*(cleartext|unencrypted).*")
    run.assert_no_network()


@expect(SECURITY, 'evil = "me@example.com>\\r\\nRCPT TO:<everyone@example.net"')
def _security_command_injection(run: Run) -> None:
    one_line(run, r"refused: .+")
    run.assert_no_network()  # refused before connecting


@expect(SECURITY, "print(repr(auth))")
def _security_redaction(run: Run) -> None:
    [sent] = run.implicit
    assert run.out == ["PasswordAuth(username='me@example.com', password='********')"]
    assert sent.auth_identity == "me@example.com"
    # The log the block searched for the password really has the session in it.
    records = run.namespace["records"]
    assert any("C: MAIL FROM:<me@example.com>" in line for line in records)


@expect(SECURITY, 'drill = Fault.disconnect("END_OF_DATA")')
def _security_outcome_unknown(run: Run) -> None:
    assert run.out == ["maybe sent to ('you@example.org',)"]
    run.assert_no_network()


# -- docs/proxies.md -------------------------------------------------------------------------


@expect("docs/proxies.md", '"socks4://alice:proxy-secret@proxy.internal:1080"')
def _proxies_checked(run: Run) -> None:
    assert run.out == [
        "proxy needs the proxy's port, e.g. socks5h://proxy.internal:PORT (SOCKS proxies "
        "usually listen on 1080)",
        "proxy has https://; use one of socks5://, socks5h://, socks4://, http://",
        "proxy gives a password, but SOCKS4 has only a user id",
    ]
    assert not any("proxy-secret" in line for line in run.out)
    run.assert_no_network()  # refused before any I/O


# -- docs/testing.md -------------------------------------------------------------------------


@expect("docs/testing.md", 'users={"alice": "s3cret"}')
def _testing_async(run: Run) -> None:
    assert run.out == []
    run.assert_no_network()  # its own FakeSMTPServer, whose capture the block asserts


@expect("docs/testing.md", 'Fault.reply("GREETING", code=554')
def _testing_fault_catalogue(run: Run) -> None:
    assert run.out == []
    run.assert_no_network()


@expect("docs/testing.md", 'inbox + "api/messages"')
def _testing_web_inbox_api(run: Run) -> None:
    # Its own `serve` child process: the message went there, read back through the API.
    assert run.out[0].startswith(
        "Password reset to ['new@example.com', 'audit@example.com'] over TLSv1."
    )
    assert run.out[1:] == ["Bcc field transmitted: False"]
    assert run.namespace["serve"].returncode == 0  # stopped by SIGTERM, cleanly
    assert run.namespace["detail"]["html"].startswith("<p>Follow <a href=")
    run.assert_no_network()


@expect("docs/testing.md", "except FaultNotFiredError as exc:")
def _testing_fault_not_fired(run: Run) -> None:
    assert run.out == []
    run.assert_no_network()  # its own server; the block asserts the error's faults


# -- docs/architecture.md and docs/delivery.md ---------------------------------------------


@expect("docs/architecture.md", 'Fault.shutdown_421("MAIL", nth=2)')
def _architecture_outcome_rules(run: Run) -> None:
    assert run.out == ["['SendResult', 'TransientReplyError', 'NotSentError']"]
    run.assert_no_network()  # its own FakeSMTPServer


@expect("docs/delivery.md", "retry=smtpsubmit.RetryPolicy(attempts=3, backoff=0.1)")
def _delivery_retry(run: Run) -> None:
    assert run.out == [
        "('ann@example.org', 'bob@example.org') 2",
        "1 {'ann@example.org': 250, 'bob@example.org': 450}",
        "2 {'bob@example.org': 250}",
    ]
    run.assert_no_network()  # its own FakeSMTPServer, whose capture the block asserts


# -- docs/celery.md --------------------------------------------------------------------------


@expect("docs/celery.md", "shared_rate_limit=smtpsubmit.RateLimit(per_second=10, burst=5)")
def _celery_setup(run: Run) -> None:
    mail = run.namespace["mail"]
    assert run.namespace["app"].main == "proj"
    assert mail.name in run.namespace["app"].tasks  # registered on the user's app
    assert run.out == []
    run.assert_no_network()  # registering opens nothing: the pool opens in the worker


@expect("docs/celery.md", 'CELERY_BROKER_URL = "redis://localhost:6379/0"')
def _celery_django_settings(run: Run) -> None:
    assert run.namespace["EMAIL_PORT"] == 587
    assert run.namespace["CELERY_RESULT_BACKEND"].startswith("redis://")
    run.assert_no_network()


@expect("docs/celery.md", 'app.config_from_object("django.conf:settings", namespace="CELERY")')
def _celery_django_app(run: Run) -> None:
    assert run.namespace["mail"].name in run.namespace["app"].tasks
    run.assert_no_network()


@expect("docs/celery.md", 'msg["Message-ID"] = "<order-42@example.com>"')
def _celery_eager(run: Run) -> None:
    [first, *progress] = run.out
    [order, *batch] = run.starttls  # the port-587 stand-in got the order once, then 3 more
    assert order.message["Message-ID"] == "<order-42@example.com>"
    assert first == f"sent ['you@example.org'] {order.queue_id} 1"
    assert sorted(m.rcpt_to[0] for m in batch) == [f"user{n}@example.org" for n in range(3)]
    assert progress[-1] == "3 done"


# -- docs/dkim.md and docs/observability.md -------------------------------------------------


def dkim_verifies(data: bytes, index: int, *signers: Any) -> bool:
    """dkimpy's verdict on the ``index``-th signature of ``data`` (0: topmost)."""
    import dkim

    records = {f"{s.dns_name}.".encode(): s.dns_record().encode() for s in signers}
    return bool(dkim.DKIM(data).verify(idx=index, dnsfunc=lambda name, timeout=5: records[name]))


@expect("docs/dkim.md", 'signer = DKIMSigner(domain="example.com", selector="s2026"')
def _dkim_send(run: Run) -> None:
    signer = run.namespace["signer"]
    [sent] = run.implicit
    assert run.out[0] == (
        "DKIMSigner(domain='example.com', selector='s2026', algorithm='ed25519-sha256', "
        "private_key='********')"
    )
    assert run.out[1] == "s2026._domainkey.example.com TXT v=DKIM1; k=ed25519; p=..."
    assert run.out[2:] == ["250"]
    assert sent.data.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256;")
    assert dkim_verifies(sent.data, 0, signer)
    assert sent.auth_identity == "me@example.com"


@expect("docs/dkim.md", "class Both:")
def _dkim_both(run: Run) -> None:
    ed_signer, rsa_signer = run.namespace["ed_signer"], run.namespace["rsa_signer"]
    assert run.out == ["['SendResult', 'SendResult', 'SendResult']"]
    assert sorted(m.rcpt_to[0] for m in run.implicit) == [f"user{i}@example.org" for i in range(3)]
    for sent in run.implicit:
        assert sent.data.count(b"DKIM-Signature:") == 2
        assert b"a=ed25519-sha256" in sent.data.split(b"DKIM-Signature:")[1]
        assert dkim_verifies(sent.data, 0, ed_signer)
        assert dkim_verifies(sent.data, 1, rsa_signer)


@expect("docs/observability.md", "smtpsubmit.telemetry.instrument(")
def _observability(run: Run) -> None:
    [sent] = run.starttls
    assert run.out == [
        "smtp connect ",
        "smtp tls ",
        "smtp auth ",
        "smtp open ",
        "smtp transaction sent",
        "smtp send ",
        "250 1",
        "smtp.client.messages",
        "smtp.client.recipients",
        "smtp.client.operation.duration",
    ]
    assert sent.auth_identity == "me@example.com"
    spans = run.namespace["spans"].get_finished_spans()
    assert all("@" not in str(value) for span in spans for value in span.attributes.values())
