"""Every option of every entry point of smtpsubmit.sync, end to end through the fake server.

The facade only forwards to the async implementation, so what can go wrong is a keyword
that is dropped, renamed or defaulted on the way. Each test sets one option and checks what
the server received (envelope, MAIL/RCPT parameters, EHLO name, TLS, AUTH identity, peer
address, connections) or what the caller got back, against a run where the option changes
the outcome.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import anyio
import pytest
from dkim_keys import signer as dkim_signer
from dkim_keys import verifies
from proxy_servers import OUTGOING, ProxyServer, tinyproxy
from sync_helpers import (
    BOUND,
    client_lines,
    message,
    unix_relay,
    verbs_per_connection,
    wait_until,
)

import smtpsubmit
import smtpsubmit.sync
from smtpsubmit._options import ClientOptions
from smtpsubmit.testing import (
    CapturedMessage,
    Extension,
    Fault,
    Mode,
    SMTPServerFactory,
    ThreadedSMTPServer,
)
from smtpsubmit.transport import AnyIOTransport

USER, PASSWORD, TOKEN = "user@example.com", "password", "test-oauth-token"
DSN = smtpsubmit.DSN(notify=("SUCCESS", "FAILURE"), ret="HDRS", envid="run-42", orcpt=True)
#: The three blocking ways to send an EmailMessage with connection options.
MESSAGE_ENTRY_POINTS = ["client", "pool", "send"]


def tls_options(server: ThreadedSMTPServer) -> dict[str, Any]:
    """The options that reach ``server`` in its own mode, trusting its CA."""
    tls = {Mode.IMPLICIT_TLS: "implicit", Mode.STARTTLS: "starttls"}.get(
        server.mode, "insecure-cleartext"
    )
    return {"tls": tls, "ssl_context": server.client_ssl_context()}


def deliver(
    entry_point: str,
    host: str,
    port: int,
    msg: EmailMessage,
    options: dict[str, Any],
    **call: Any,
) -> smtpsubmit.SendResult:
    """Send ``msg`` through a blocking entry point; ``call`` are the per-call keywords."""
    if entry_point == "client":
        with smtpsubmit.sync.SMTPClient(host, port, **options) as client:
            return client.send_message(msg, **call)
    if entry_point == "pool":
        with smtpsubmit.sync.SMTPPool(host, port, **options) as pool:
            return pool.send_message(msg, **call)
    assert entry_point == "send"
    return smtpsubmit.sync.send(msg, host=host, port=port, **call, **options)


def transaction(captured: CapturedMessage) -> list[str]:
    """The client's lines of the captured transaction: from its MAIL to its end."""
    lines = [e.line for e in captured.transcript if e.direction == "client"]
    start = max(i for i, line in enumerate(lines) if line.upper().startswith("MAIL"))
    return lines[start:]


def assert_dsn_on_the_wire(captured: CapturedMessage) -> None:
    """``DSN`` as RFC 3461 puts it on MAIL (RET, ENVID) and on each RCPT (NOTIFY, ORCPT)."""
    assert captured.mail_from_params["RET"] == DSN.ret
    assert captured.mail_from_params["ENVID"] == DSN.envid
    for rcpt in captured.recipients:
        assert rcpt.params["NOTIFY"] == ",".join(DSN.notify)
        assert rcpt.params["ORCPT"] == f"rfc822;{rcpt.address}"
    mail, *rcpts = (line for line in transaction(captured) if line[:4].upper() in ("MAIL", "RCPT"))
    assert f"RET={DSN.ret}" in mail
    assert f"ENVID={DSN.envid}" in mail
    assert [line.split(" ")[1] for line in rcpts] == [f"TO:<{r}>" for r in captured.rcpt_to]
    assert all(f"NOTIFY={','.join(DSN.notify)}" in line for line in rcpts)


def assert_no_dsn(captured: CapturedMessage) -> None:
    assert not {"RET", "ENVID"} & captured.mail_from_params.keys()
    assert all(not {"NOTIFY", "ORCPT"} & r.params.keys() for r in captured.recipients)


# -- per-call keywords ---------------------------------------------------------------------


@pytest.mark.parametrize("entry_point", MESSAGE_ENTRY_POINTS)
def test_send_message_sender_and_recipients_replace_the_headers_envelope(
    entry_point: str, smtps_server: ThreadedSMTPServer
) -> None:
    msg = message(to="header-to@example.com")
    result = deliver(
        entry_point,
        smtps_server.host,
        smtps_server.port,
        msg,
        tls_options(smtps_server),
        sender="bounces@example.com",
        recipients=["one@example.org", "two@example.org"],
    )
    [captured] = smtps_server.wait_for_messages(1)
    assert captured.mail_from == "bounces@example.com" == result.sender
    assert captured.rcpt_to == ["one@example.org", "two@example.org"] == list(result.accepted)
    assert captured.message["To"] == "header-to@example.com"  # the content is untouched


@pytest.mark.parametrize("entry_point", MESSAGE_ENTRY_POINTS)
@pytest.mark.parametrize("given", ["sender", "recipients"])
def test_send_message_takes_either_envelope_keyword_alone(
    entry_point: str, given: str, smtps_server: ThreadedSMTPServer
) -> None:
    call = {"sender": "bounces@example.com"} if given == "sender" else {"recipients": ["x@o.org"]}
    deliver(
        entry_point,
        smtps_server.host,
        smtps_server.port,
        message(to="header-to@example.com"),
        tls_options(smtps_server),
        **call,
    )
    [captured] = smtps_server.wait_for_messages(1)
    expected_sender = call.get("sender", "app@example.com")
    expected_rcpts = call.get("recipients", ["header-to@example.com"])
    assert (captured.mail_from, captured.rcpt_to) == (expected_sender, expected_rcpts)


@pytest.mark.parametrize("entry_point", MESSAGE_ENTRY_POINTS)
def test_send_message_dsn_reaches_mail_and_rcpt(
    entry_point: str, smtps_server: ThreadedSMTPServer
) -> None:
    msg = message(to="a@example.org, b@example.org")
    deliver(entry_point, smtps_server.host, smtps_server.port, msg, tls_options(smtps_server))
    deliver(
        entry_point,
        smtps_server.host,
        smtps_server.port,
        msg,
        tls_options(smtps_server),
        dsn=DSN,
    )
    without, with_dsn = smtps_server.wait_for_messages(2)
    assert_no_dsn(without)
    assert_dsn_on_the_wire(with_dsn)


@pytest.mark.parametrize("entry_point", ["client", "pool"])
def test_sendmail_dsn_and_envelope(entry_point: str, smtps_server: ThreadedSMTPServer) -> None:
    data = b"Subject: raw\r\n\r\nraw body\r\n"
    options = tls_options(smtps_server)
    if entry_point == "client":
        with smtpsubmit.sync.SMTPClient(smtps_server.host, smtps_server.port, **options) as c:
            plain = c.sendmail("a@example.com", "one@example.org", data)
            with_dsn = c.sendmail("", ["one@example.org", "two@example.org"], data, dsn=DSN)
    else:
        with smtpsubmit.sync.SMTPPool(smtps_server.host, smtps_server.port, **options) as p:
            plain = p.sendmail("a@example.com", "one@example.org", data)
            with_dsn = p.sendmail("", ["one@example.org", "two@example.org"], data, dsn=DSN)
    first, second = smtps_server.wait_for_messages(2)
    # A single recipient may be a plain string; "" is the null reverse-path (RFC 5321 4.5.5).
    assert (first.mail_from, first.rcpt_to, first.data) == (
        "a@example.com",
        ["one@example.org"],
        data,
    )
    assert (second.mail_from, second.rcpt_to) == ("", ["one@example.org", "two@example.org"])
    assert plain.accepted == ("one@example.org",)
    assert with_dsn.accepted == ("one@example.org", "two@example.org")
    assert_no_dsn(first)
    assert_dsn_on_the_wire(second)


def test_client_sendmail_streams_a_binary_file(smtps_server: ThreadedSMTPServer) -> None:
    data = b"Subject: from a file\r\n\r\n" + b"line\r\n" * 5000
    options = tls_options(smtps_server)
    with smtpsubmit.sync.SMTPClient(smtps_server.host, smtps_server.port, **options) as c:
        result = c.sendmail("a@example.com", ["b@example.org"], io.BytesIO(data), dsn=DSN)
    [captured] = smtps_server.wait_for_messages(1)
    assert captured.data == data
    assert result.accepted == ("b@example.org",)
    assert_dsn_on_the_wire(captured)


class TapeTransport(AnyIOTransport):
    """Records whether each I/O was a write ("W") or a read ("R")."""

    def __init__(self, stream: anyio.abc.ByteStream, tape: list[str]) -> None:
        super().__init__(stream)
        self.tape = tape

    async def send(self, data: bytes) -> None:
        self.tape.append("W")
        await super().send(data)

    async def receive(self) -> bytes:
        data = await super().receive()
        self.tape.append("R")
        return data


@pytest.mark.parametrize("window", [1, 2, 16])
def test_send_batch_window_bounds_the_transactions_written_before_a_read(
    window: int, smtps_server: ThreadedSMTPServer
) -> None:
    tape: list[str] = []

    async def taped() -> TapeTransport:
        return TapeTransport(await anyio.connect_tcp(smtps_server.host, smtps_server.port), tape)

    items = [
        ("a@example.com", [f"r{i}@example.org"], b"Subject: %d\r\n\r\nx\r\n" % i) for i in range(5)
    ]
    options = tls_options(smtps_server)
    with smtpsubmit.sync.SMTPClient(
        smtps_server.host, smtps_server.port, transport=taped, **options
    ) as client:
        start = len(tape)
        outcomes = client.send_batch(items, window=window)
    session = tape[start:]
    # With PIPELINING and CHUNKING each transaction is one write: at most `window` go out
    # before the first reply is read.
    assert session.index("R") == min(window, len(items))
    assert [o.accepted for o in outcomes if isinstance(o, smtpsubmit.SendResult)] == [
        (f"r{i}@example.org",) for i in range(5)
    ]
    assert [m.data for m in smtps_server.wait_for_messages(5)] == [data for *_, data in items]


def test_send_batch_dsn_reaches_every_transaction_and_errors_stay_per_item(
    smtps_server: ThreadedSMTPServer,
) -> None:
    items: list[Any] = [
        message(to="one@example.org"),
        ("a@example.com", ["not an address"], b"Subject: bad\r\n\r\nx\r\n"),
        ("a@example.com", "two@example.org", b"Subject: raw\r\n\r\nx\r\n"),
    ]
    options = tls_options(smtps_server)
    with smtpsubmit.sync.SMTPClient(smtps_server.host, smtps_server.port, **options) as client:
        outcomes = client.send_batch(iter(items), dsn=DSN)  # any iterable
        undecorated = client.send_batch([message(to="three@example.org")])
    first, second, third = smtps_server.wait_for_messages(3)
    assert isinstance(outcomes[1], smtpsubmit.MessageError)
    assert [type(o) for o in (outcomes[0], outcomes[2], undecorated[0])] == [
        smtpsubmit.SendResult
    ] * 3
    assert [m.rcpt_to for m in (first, second, third)] == [
        ["one@example.org"],
        ["two@example.org"],
        ["three@example.org"],
    ]
    assert_dsn_on_the_wire(first)
    assert_dsn_on_the_wire(second)
    assert_no_dsn(third)


# -- the client's other methods ------------------------------------------------------------


def test_client_connect_noop_quit_and_close(smtps_server: ThreadedSMTPServer) -> None:
    client = smtpsubmit.sync.SMTPClient(
        smtps_server.host, smtps_server.port, **tls_options(smtps_server)
    )
    assert repr(client).startswith("<sync <SMTPClient 127.0.0.1:")
    assert isinstance(client.async_client, smtpsubmit.SMTPClient)
    assert not client.is_connected
    client.connect()
    assert client.is_connected
    reply = client.noop()
    assert reply.code == 250
    client.quit()
    assert not client.is_connected
    client.connect()  # a closed client connects again
    client.close()
    assert not client.is_connected
    assert verbs_per_connection(smtps_server) == [["EHLO", "NOOP", "QUIT"], ["EHLO"]]


# -- connection options: the same for SMTPClient, SMTPPool and send() ----------------------


@dataclass(frozen=True)
class OptionCase:
    """One connection keyword: the server it needs, the options, and what it changes."""

    server: dict[str, Any]
    options: Callable[[ThreadedSMTPServer, Path], dict[str, Any]]
    check: Callable[[ThreadedSMTPServer, CapturedMessage], None]
    #: Where to connect instead of the server's host and port.
    address: tuple[str, int] | None = None
    #: A context the send runs in (a relay, say), given the server and a temporary path.
    around: Callable[[ThreadedSMTPServer, Path], AbstractContextManager[None]] | None = None


def check_implicit(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.tls
    assert "STARTTLS" not in client_lines(server)
    assert captured.via == "BDAT"  # the default with CHUNKING (compare "chunking")


def check_starttls(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.tls
    assert "STARTTLS" in client_lines(server)


def check_cleartext(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert not captured.tls
    assert captured.auth_identity is None


def check_auth(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.auth_identity == USER


def check_oauth(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.auth_identity == USER
    [auth] = [line.split(" ")[1] for line in client_lines(server) if line.startswith("AUTH")]
    assert auth in ("OAUTHBEARER", "XOAUTH2")


def check_ehlo_name(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.client_name == "client.example"


def check_tls(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.tls


def check_cleartext_auth(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert not captured.tls
    assert captured.auth_identity == USER


def check_data(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert Extension.CHUNKING in server.config.extensions
    assert captured.via == "DATA"


def check_one_connection(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert len(server.transcripts) == 1


def check_two_transactions(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert [line.split(" ")[0] for line in client_lines(server)].count("MAIL") == 2


def check_source(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.peer[0] == "127.0.0.2"


def check_signed(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
    assert captured.data.startswith(b"DKIM-Signature: ")
    assert verifies(captured.data, dkim_signer("ed25519"))


def transport_case() -> OptionCase:
    opened: list[tuple[str, int]] = []

    def options(server: ThreadedSMTPServer, _: Path) -> dict[str, Any]:
        async def factory() -> AnyIOTransport:
            opened.append((server.host, server.port))
            return AnyIOTransport(await anyio.connect_tcp(server.host, server.port))

        return {**tls_options(server), "transport": factory}

    def check(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
        assert opened == [(server.host, server.port)]
        assert len(server.transcripts) == 1

    return OptionCase({"mode": Mode.IMPLICIT_TLS}, options, check)


def unix_socket_case() -> OptionCase:
    # The host resolves nowhere (RFC 6761 .invalid): only the Unix socket leads to the server.
    return OptionCase(
        {"mode": Mode.PLAIN},
        lambda s, tmp: {"tls": "insecure-cleartext", "unix_socket": str(tmp / "smtp.sock")},
        check_one_connection,
        address=("unix-only.invalid", 25),
        around=lambda s, tmp: unix_relay(str(tmp / "smtp.sock"), (s.host, s.port)),
    )


def proxy_case() -> OptionCase:
    # A real HTTP CONNECT proxy (tinyproxy) that resolves "localhost" and connects out from
    # 127.0.0.2: the server seeing that address proves the message went through it.
    started: list[ProxyServer] = []

    @contextlib.contextmanager
    def around(server: ThreadedSMTPServer, _: Path) -> Iterator[None]:
        with tinyproxy(connect_ports=[server.port]) as proxy:
            started.append(proxy)
            yield

    def options(server: ThreadedSMTPServer, _: Path) -> dict[str, Any]:
        return {**tls_options(server), "proxy": started[-1].url()}

    def check(server: ThreadedSMTPServer, captured: CapturedMessage) -> None:
        assert captured.peer[0] == OUTGOING

    return OptionCase(
        {"mode": Mode.IMPLICIT_TLS}, options, check, address=("localhost", 0), around=around
    )


AUTHED = {"mode": Mode.IMPLICIT_TLS, "require_auth": True}

#: Named after the option they set (before any "-"); each checks the option's effect.
OPTION_CASES: dict[str, Callable[[], OptionCase]] = {
    "tls-implicit": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS}, lambda s, _: tls_options(s), check_implicit
    ),
    "tls-starttls": lambda: OptionCase(
        {"mode": Mode.STARTTLS}, lambda s, _: tls_options(s), check_starttls
    ),
    "tls-insecure-cleartext": lambda: OptionCase(
        {"mode": Mode.PLAIN}, lambda s, _: {"tls": "insecure-cleartext"}, check_cleartext
    ),
    "username-password": lambda: OptionCase(
        {**AUTHED, "users": {USER: PASSWORD}},
        lambda s, _: {**tls_options(s), "username": USER, "password": PASSWORD},
        check_auth,
    ),
    "auth-password": lambda: OptionCase(
        {**AUTHED, "users": {USER: PASSWORD}},
        lambda s, _: {**tls_options(s), "auth": smtpsubmit.PasswordAuth(USER, PASSWORD)},
        check_auth,
    ),
    "auth-oauth2": lambda: OptionCase(
        {**AUTHED, "oauth_tokens": {USER: TOKEN}},
        lambda s, _: {**tls_options(s), "auth": smtpsubmit.OAuth2Auth(USER, TOKEN)},
        check_oauth,
    ),
    "local_hostname": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS},
        lambda s, _: {**tls_options(s), "local_hostname": "client.example"},
        check_ehlo_name,
    ),
    # The drill's certificate names wrong.example only: it verifies with that name alone.
    "server_hostname": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS, "faults": [Fault.wrong_host_certificate()]},
        lambda s, _: {**tls_options(s), "server_hostname": "wrong.example"},
        check_tls,
    ),
    "allow_cleartext_auth": lambda: OptionCase(
        {"mode": Mode.PLAIN, "users": {USER: PASSWORD}, "allow_cleartext_auth": True},
        lambda s, _: {
            "tls": "insecure-cleartext",
            "username": USER,
            "password": PASSWORD,
            "allow_cleartext_auth": True,
        },
        check_cleartext_auth,
    ),
    "chunking": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS},
        lambda s, _: {**tls_options(s), "chunking": False},
        check_data,
    ),
    "transport": transport_case,
    "unix_socket": unix_socket_case,
    "source_address": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS},
        lambda s, _: {**tls_options(s), "source_address": "127.0.0.2"},
        check_source,
    ),
    # The fake CA as a PEM file instead of a context: the certificate verifies with it.
    "cafile": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS},
        lambda s, _: {"tls": "implicit", "cafile": s.ca_pem_path},
        check_tls,
    ),
    # The recipient is refused with 451 once: a second transaction delivers it.
    "retry": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS, "faults": [Fault.reply("RCPT", code=451, text="Later")]},
        lambda s, _: {**tls_options(s), "retry": smtpsubmit.RetryPolicy(attempts=2, backoff=0)},
        check_two_transactions,
    ),
    # Signed on the way out (a new signer with the same key verifies it).
    "signer": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS},
        lambda s, _: {**tls_options(s), "signer": dkim_signer("ed25519")},
        check_signed,
    ),
    # One message passes a limiter with a token to spare (pacing: tests/client/test_rate_limit).
    "proxy": proxy_case,
    "rate_limit": lambda: OptionCase(
        {"mode": Mode.IMPLICIT_TLS},
        lambda s, _: {**tls_options(s), "rate_limit": smtpsubmit.RateLimit(per_second=100)},
        check_one_connection,
    ),
}


def test_every_connection_option_has_a_test() -> None:
    covered = {name.split("-")[0] for name in OPTION_CASES}
    # password goes with username; every TLS case trusts the fake CA through ssl_context;
    # timeout has its own test below.
    covered |= {"password", "ssl_context", "timeout"}
    assert covered == ClientOptions.__optional_keys__ | ClientOptions.__required_keys__


@pytest.mark.parametrize("entry_point", MESSAGE_ENTRY_POINTS)
@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_connection_option_reaches_the_server(
    name: str,
    entry_point: str,
    smtp_server_factory: SMTPServerFactory,
    tmp_path: Path,
) -> None:
    case = OPTION_CASES[name]()
    server = smtp_server_factory(**case.server)
    host, port = case.address or (server.host, server.port)
    port = port or server.port
    with case.around(server, tmp_path) if case.around else contextlib.nullcontext():
        result = deliver(entry_point, host, port, message(), case.options(server, tmp_path))
        [captured] = server.wait_for_messages(1)
    assert result.accepted == ("user@example.com",)
    assert result.queue_id == captured.queue_id
    case.check(server, captured)


@pytest.mark.parametrize("entry_point", MESSAGE_ENTRY_POINTS)
def test_timeout_option_bounds_each_reply(
    entry_point: str, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(
        mode=Mode.IMPLICIT_TLS, faults=[Fault.delay("GREETING", seconds=BOUND)]
    )
    # Seconds for every phase: waiting for the greeting stops long before the server's delay.
    options = {**tls_options(server), "timeout": 0.5}
    with pytest.raises(smtpsubmit.TimeoutError):
        deliver(entry_point, server.host, server.port, message(), options)
    assert server.messages == []


# -- the pool's own options ------------------------------------------------------------------


def pool_for(server: ThreadedSMTPServer, **options: Any) -> smtpsubmit.sync.SMTPPool:
    return smtpsubmit.sync.SMTPPool(server.host, server.port, **tls_options(server), **options)


def send_in_turn(pool: smtpsubmit.sync.SMTPPool, count: int) -> None:
    for i in range(count):
        result = pool.sendmail("a@example.com", [f"r{i}@example.org"], b"x\r\n")
        assert result.accepted == (f"r{i}@example.org",)


def mails_per_connection(server: ThreadedSMTPServer) -> list[int]:
    return [verbs.count("MAIL") for verbs in verbs_per_connection(server)]


@pytest.mark.parametrize(("limit", "expected"), [(2, [2, 2, 1]), (None, [5])])
def test_pool_max_messages_per_connection(
    limit: int | None, expected: list[int], smtps_server: ThreadedSMTPServer
) -> None:
    with pool_for(smtps_server, max_messages_per_connection=limit) as pool:
        send_in_turn(pool, 5)
    assert mails_per_connection(smtps_server) == expected


@pytest.mark.parametrize("option", ["max_connection_age", "idle_timeout"])
@pytest.mark.parametrize(("seconds", "expected"), [(0.0, [1, 1, 1]), (None, [3])])
def test_pool_age_and_idle_limits_retire_connections(
    option: str, seconds: float | None, expected: list[int], smtps_server: ThreadedSMTPServer
) -> None:
    # 0 s: a connection is too old / idle too long by its next message, so each message
    # gets a fresh one; None: no limit, one connection carries all three.
    with pool_for(smtps_server, **{option: seconds}) as pool:
        send_in_turn(pool, 3)
    assert mails_per_connection(smtps_server) == expected
    assert all(verbs[-1] == "QUIT" for verbs in verbs_per_connection(smtps_server))


@pytest.mark.parametrize(("seconds", "noops"), [(0.0, 2), (None, 0)])
def test_pool_health_check_after(
    seconds: float | None, noops: int, smtps_server: ThreadedSMTPServer
) -> None:
    with pool_for(smtps_server, health_check_after=seconds) as pool:
        send_in_turn(pool, 3)
    [verbs] = verbs_per_connection(smtps_server)
    assert verbs.count("NOOP") == noops
    if noops:  # each reuse is preceded by its NOOP
        assert [v for v in verbs if v in ("MAIL", "NOOP")] == [
            "MAIL",
            "NOOP",
            "MAIL",
            "NOOP",
            "MAIL",
        ]


class HeldConnections:
    """A transport factory whose connections open only when ``release`` is set."""

    def __init__(self, server: ThreadedSMTPServer) -> None:
        self.server = server
        self.opened: list[int] = []
        self.release = threading.Event()
        self.first = threading.Event()

    async def __call__(self) -> AnyIOTransport:
        self.opened.append(1)
        self.first.set()
        await anyio.to_thread.run_sync(self.release.wait, BOUND, abandon_on_cancel=True)
        return AnyIOTransport(await anyio.connect_tcp(self.server.host, self.server.port))


@pytest.mark.parametrize(("window", "rounds"), [(1, [1] * 7), (2, [1, 2, 2, 2]), (16, [1, 6])])
def test_pool_max_connections_and_window_drain_a_queue(
    window: int, rounds: list[int], smtps_server: ThreadedSMTPServer
) -> None:
    """Six requests queue behind a connection being opened: with max_connections=1 no
    other connection opens, and the one connection takes them ``window`` at a time."""
    held = HeldConnections(smtps_server)
    pool = pool_for(smtps_server, transport=held, max_connections=1, window=window)
    results: dict[int, smtpsubmit.SendResult] = {}

    def send(i: int) -> None:
        results[i] = pool.sendmail("a@example.com", [f"r{i}@example.org"], b"x\r\n")

    callers = [threading.Thread(target=send, args=(i,)) for i in range(7)]
    callers[0].start()
    assert held.first.wait(BOUND)  # the first request, alone, is on its way: it took no other
    for caller in callers[1:]:
        caller.start()

    def queued() -> int:  # the sync facade has no stats: ask the async pool's queue
        stream = pool._async._send
        assert stream is not None
        statistics = stream.statistics()
        return statistics.current_buffer_used + statistics.tasks_waiting_send

    try:
        wait_until(lambda: queued() == 6 or len(held.opened) > 1, "six queued requests")
        assert len(held.opened) == 1  # a second worker would have opened a second connection
    finally:
        held.release.set()
        for caller in callers:
            caller.join(BOUND)
        pool.close()
    assert {i: r.accepted for i, r in results.items()} == {
        i: (f"r{i}@example.org",) for i in range(7)
    }
    # One connection; in each round every message after the first starts with RSET.
    [verbs] = verbs_per_connection(smtps_server)
    assert verbs.count("MAIL") == 7
    assert verbs.count("RSET") == sum(size - 1 for size in rounds)


def test_pool_close_is_idempotent_and_refuses_later_sends(
    smtps_server: ThreadedSMTPServer,
) -> None:
    pool = pool_for(smtps_server)
    assert repr(pool).startswith("<sync <SMTPPool 127.0.0.1:")
    with pool as entered:
        assert entered is pool
        pool.send_message(message())
    pool.close()
    with pytest.raises(smtpsubmit.SMTPError, match="closed"):
        pool.send_message(message())
    assert mails_per_connection(smtps_server) == [1]
    assert verbs_per_connection(smtps_server)[0][-1] == "QUIT"


# -- what the mutation run found unpinned (tests/MUTATION.md) -------------------------------


@pytest.mark.parametrize("entry_point", ["client", "pool"])
@pytest.mark.parametrize("method", ["send_message", "sendmail"])
def test_requiretls_reaches_mail_from_each_send_method(
    entry_point: str, method: str, smtps_server: ThreadedSMTPServer
) -> None:
    options = tls_options(smtps_server)
    cls = smtpsubmit.sync.SMTPClient if entry_point == "client" else smtpsubmit.sync.SMTPPool
    raw = b"From: app@example.com\r\nSubject: s\r\n\r\nx\r\n"
    with cls(smtps_server.host, smtps_server.port, **options) as sender:  # type: ignore[attr-defined]
        for keywords in ({"requiretls": True}, {}):  # then the default: False
            if method == "send_message":
                sender.send_message(message(), **keywords)
            else:
                sender.sendmail("app@example.com", ["user@example.com"], raw, **keywords)
    required, plain = smtps_server.wait_for_messages(2)
    assert "REQUIRETLS" in required.mail_from_params
    assert "REQUIRETLS" not in plain.mail_from_params


def test_pool_send_batch_gives_one_outcome_per_item_in_order_with_dsn(
    smtps_server: ThreadedSMTPServer,
) -> None:
    items: list[Any] = [
        message(to="one@example.org"),
        ("a@example.com", ["not an address"], b"Subject: bad\r\n\r\nx\r\n"),
        ("a@example.com", "two@example.org", b"Subject: raw\r\n\r\nx\r\n"),
    ]
    with smtpsubmit.sync.SMTPPool(
        smtps_server.host, smtps_server.port, **tls_options(smtps_server)
    ) as pool:
        outcomes = pool.send_batch(iter(items), dsn=DSN)
        undecorated = pool.send_batch([message(to="three@example.org")])
    assert isinstance(outcomes[1], smtpsubmit.MessageError)
    sent = [outcomes[0], outcomes[2], undecorated[0]]
    assert [o.accepted for o in sent] == [  # type: ignore[union-attr]
        ("one@example.org",),
        ("two@example.org",),
        ("three@example.org",),
    ]
    by_rcpt = {m.rcpt_to[0]: m for m in smtps_server.wait_for_messages(3)}
    assert_dsn_on_the_wire(by_rcpt["one@example.org"])
    assert_dsn_on_the_wire(by_rcpt["two@example.org"])
    assert_no_dsn(by_rcpt["three@example.org"])


def test_send_batch_default_window_is_sixteen(smtps_server: ThreadedSMTPServer) -> None:
    tape: list[str] = []

    async def taped() -> TapeTransport:
        return TapeTransport(await anyio.connect_tcp(smtps_server.host, smtps_server.port), tape)

    items = [
        ("a@example.com", [f"r{i}@example.org"], b"Subject: s\r\n\r\nx\r\n") for i in range(17)
    ]
    options = tls_options(smtps_server)
    with smtpsubmit.sync.SMTPClient(
        smtps_server.host, smtps_server.port, transport=taped, **options
    ) as client:
        start = len(tape)
        outcomes = client.send_batch(items)
    assert tape[start:].index("R") == 16  # as the async client's default
    assert all(isinstance(o, smtpsubmit.SendResult) for o in outcomes)


@pytest.mark.parametrize(
    "call",
    [
        lambda: smtpsubmit.sync.send(message(), host=42, port=465),  # type: ignore[arg-type]
        lambda: smtpsubmit.sync.SMTPPool(42, 465),  # type: ignore[arg-type]
    ],
    ids=["send", "pool"],
)
def test_a_bad_host_is_refused_in_the_callers_thread_before_the_portal(
    call: Callable[[], object], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_portal() -> None:
        raise AssertionError("the portal was used before the arguments were checked")

    monkeypatch.setattr(smtpsubmit.sync, "_get_portal", no_portal)
    with pytest.raises(smtpsubmit.ArgumentError, match="host") as caught:
        call()
    assert caught.value.arguments == ("host",)


def test_the_portal_runs_in_one_named_daemon_thread() -> None:
    """Daemon: interpreter exit never waits for the portal's loop."""
    smtpsubmit.sync._get_portal()
    threads = [t for t in threading.enumerate() if t.name == "smtpsubmit-sync"]
    assert [t.daemon for t in threads] == [True]
