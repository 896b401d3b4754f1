"""Server-side SCRAM-*-PLUS (RFC 5802 6, RFC 5929 4) and the AUTH drills, driven by a raw
client that computes every SCRAM step itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl

import pytest
from fake_smtp_helpers import RawClient

from smtpsubmit.auth import tls_server_end_point
from smtpsubmit.testing import Fault, Mode, SMTPServerFactory, ThreadedSMTPServer

USERS = {"user": "pencil"}
PLUS = [("SCRAM-SHA-256-PLUS", "sha256"), ("SCRAM-SHA-1-PLUS", "sha1")]


def _tls(server: ThreadedSMTPServer, context: ssl.SSLContext | None = None) -> RawClient:
    client = RawClient(server.host, server.port, ssl_context=context or server.client_ssl_context())
    assert client.reply()[0] == 220
    assert client.cmd("EHLO c")[0] == 250
    return client


def _binding(client: RawClient) -> bytes:
    """What the client sees: tls-server-end-point of the certificate it was shown."""
    assert isinstance(client.sock, ssl.SSLSocket)
    der = client.sock.getpeercert(binary_form=True)
    assert der is not None
    data = tls_server_end_point(der)
    assert data is not None
    return data


def _scram(
    client: RawClient,
    mech: str,
    hash_name: str,
    *,
    gs2: str,
    cbind_data: bytes = b"",
    password: str = "pencil",
) -> tuple[int, str, bytes | None]:
    """Run a SCRAM exchange; return the final reply and the ``v=`` challenge, if any."""
    cnonce = "clientnonce123"
    first_bare = f"n=user,r={cnonce}"
    code, texts = client.cmd(
        f"AUTH {mech} " + base64.b64encode(f"{gs2}{first_bare}".encode()).decode()
    )
    if code != 334:
        return code, texts[0], None
    server_first = base64.b64decode(texts[0]).decode()
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        hash_name, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    channel = base64.b64encode(gs2.encode() + cbind_data).decode()
    without_proof = f"c={channel},r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, hash_name).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    code, texts = client.cmd(
        base64.b64encode(f"{without_proof},p={proof.decode()}".encode()).decode()
    )
    if code != 334:
        return code, texts[0], None
    server_final = base64.b64decode(texts[0])
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    expected = b"v=" + base64.b64encode(hmac.new(server_key, auth_message, hash_name).digest())
    if server_final != expected:
        assert client.cmd("*") == (501, ["5.7.0 Authentication cancelled"])
        return 0, "server signature mismatch", server_final
    code, texts = client.cmd("")
    return code, texts[0], server_final


@pytest.fixture
def implicit(smtp_server_factory: SMTPServerFactory) -> ThreadedSMTPServer:
    return smtp_server_factory(mode=Mode.IMPLICIT_TLS, users=USERS)


@pytest.mark.parametrize(("mech", "hash_name"), PLUS)
def test_scram_plus_binds_to_the_presented_certificate(
    implicit: ThreadedSMTPServer, mech: str, hash_name: str
) -> None:
    with _tls(implicit) as client:
        code, text, _ = _scram(
            client, mech, hash_name, gs2="p=tls-server-end-point,,", cbind_data=_binding(client)
        )
        assert (code, text) == (235, "2.7.0 Authentication successful")
        assert client.cmd("MAIL FROM:<a@x>")[0] == 250
        assert client.cmd("RCPT TO:<b@x>")[0] == 250
        assert client.cmd("DATA")[0] == 354
        assert client.cmd(".")[0] == 250
    assert implicit.messages[0].auth_identity == "user"


@pytest.mark.parametrize(("mech", "hash_name"), PLUS)
def test_scram_plus_with_other_binding_data_is_refused(
    implicit: ThreadedSMTPServer, mech: str, hash_name: str
) -> None:
    # What a client behind a TLS-intercepting proxy would send: the proxy's certificate hash.
    with _tls(implicit) as client:
        wrong = hashlib.sha256(b"a proxy's certificate").digest()
        result = _scram(client, mech, hash_name, gs2="p=tls-server-end-point,,", cbind_data=wrong)
        assert result == (535, "5.7.8 Channel binding mismatch", None)
        assert client.cmd("MAIL FROM:<a@x>")[0] == 250  # not authenticated, but not required


def test_scram_plus_binding_follows_the_wrong_host_drill_certificate(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    server = smtp_server_factory(
        mode=Mode.IMPLICIT_TLS, users=USERS, faults=[Fault.wrong_host_certificate()]
    )
    context = server.client_ssl_context()
    context.check_hostname = False  # accept wrong.example to see which cert the server binds
    with _tls(server, context) as client:
        assert isinstance(client.sock, ssl.SSLSocket)
        assert ("DNS", "wrong.example") in client.sock.getpeercert()["subjectAltName"]
        result = _scram(
            client,
            "SCRAM-SHA-256-PLUS",
            "sha256",
            gs2="p=tls-server-end-point,,",
            cbind_data=_binding(client),
        )
        assert result[:2] == (235, "2.7.0 Authentication successful")


@pytest.mark.parametrize(
    ("gs2", "text"),
    [
        ("n,,", "5.7.8 Channel binding required by this mechanism"),
        ("y,,", "5.7.8 Channel binding required by this mechanism"),
        ("p=tls-unique,,", "5.7.8 Unsupported channel binding type"),
        ("p=tls-exporter,,", "5.7.8 Unsupported channel binding type"),
    ],
)
def test_scram_plus_requires_tls_server_end_point(
    implicit: ThreadedSMTPServer, gs2: str, text: str
) -> None:
    with _tls(implicit) as client:
        assert _scram(client, "SCRAM-SHA-256-PLUS", "sha256", gs2=gs2) == (535, text, None)


def test_y_flag_while_plus_is_advertised_is_a_downgrade(implicit: ThreadedSMTPServer) -> None:
    # RFC 5802 6: "y" says "I can bind, but I think you cannot"; this server offered -PLUS.
    with _tls(implicit) as client:
        assert _scram(client, "SCRAM-SHA-256", "sha256", gs2="y,,") == (
            535,
            "5.7.8 Channel binding downgrade detected",
            None,
        )
        # "n" (the client cannot bind) stays acceptable.
        assert _scram(client, "SCRAM-SHA-1", "sha1", gs2="n,,")[:2] == (
            235,
            "2.7.0 Authentication successful",
        )


def test_y_flag_without_plus_advertised_is_fine(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        mode=Mode.IMPLICIT_TLS, users=USERS, auth_mechanisms=("SCRAM-SHA-256", "PLAIN")
    )
    with _tls(server) as client:
        assert _scram(client, "SCRAM-SHA-256", "sha256", gs2="y,,")[:2] == (
            235,
            "2.7.0 Authentication successful",
        )


def test_plus_is_advertised_only_over_tls(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        mode=Mode.STARTTLS, users=USERS, allow_cleartext_auth=True, auth_before_tls_advertised=True
    )
    with RawClient(server.host, server.port) as client:
        assert client.reply()[0] == 220
        code, lines = client.cmd("EHLO c")
        assert code == 250
        [before] = [line for line in lines if line.startswith("AUTH ")]
        assert "-PLUS" not in before
        assert "SCRAM-SHA-256" in before.split()
        # Not advertised means not accepted either; "y" is no downgrade without -PLUS.
        assert client.cmd("AUTH SCRAM-SHA-256-PLUS") == (
            504,
            ["5.5.4 Unrecognized authentication type"],
        )
        assert _scram(client, "SCRAM-SHA-256", "sha256", gs2="y,,")[0] == 235
        client.starttls(server.client_ssl_context())
        code, lines = client.cmd("EHLO c")
        assert code == 250
        [after] = [line for line in lines if line.startswith("AUTH ")]
    assert after.split()[1:] == [
        "PLAIN",
        "LOGIN",
        "CRAM-MD5",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "XOAUTH2",
        "OAUTHBEARER",
    ]


def test_only_plus_mechanisms_configured_means_no_auth_keyword_before_tls(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    server = smtp_server_factory(
        mode=Mode.PLAIN,
        users=USERS,
        allow_cleartext_auth=True,
        auth_mechanisms=("SCRAM-SHA-256-PLUS",),
    )
    with RawClient(server.host, server.port) as client:
        assert client.reply()[0] == 220
        code, lines = client.cmd("EHLO c")
        assert code == 250
        assert not [line for line in lines if line.startswith("AUTH")]


def test_plus_mechanisms_are_not_offered_unless_configured(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, users=USERS, auth_mechanisms=("PLAIN",))
    with _tls(server) as client:
        assert client.cmd("AUTH SCRAM-SHA-256-PLUS")[0] == 504


# -- drills ------------------------------------------------------------------------------


@pytest.mark.parametrize(("mech", "hash_name"), [*PLUS, ("SCRAM-SHA-256", "sha256")])
def test_drill_scram_bad_server_signature(
    smtp_server_factory: SMTPServerFactory, mech: str, hash_name: str
) -> None:
    server = smtp_server_factory(
        mode=Mode.IMPLICIT_TLS, users=USERS, faults=[Fault.scram_bad_server_signature()]
    )
    with _tls(server) as client:
        gs2 = "p=tls-server-end-point,," if mech.endswith("-PLUS") else "n,,"
        binding = _binding(client) if mech.endswith("-PLUS") else b""
        code, _, server_final = _scram(client, mech, hash_name, gs2=gs2, cbind_data=binding)
        assert code == 0  # our raw client saw the wrong signature and cancelled
        assert server_final is not None
        assert server_final.startswith(b"v=")
        assert len(base64.b64decode(server_final[2:])) == hashlib.new(hash_name).digest_size
        # Cancelled means not authenticated: a second AUTH is allowed (drills fire forever).
        assert _scram(client, mech, hash_name, gs2=gs2, cbind_data=binding)[0] == 0
    assert ("client", "*") in server.transcripts[0]


def test_drill_scram_bad_server_signature_leaves_other_mechanisms_alone(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    # required=False: this drill is meant not to fire on LOGIN.
    fault = Fault.scram_bad_server_signature(required=False)
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, users=USERS, faults=[fault])
    with _tls(server) as client:
        assert client.auth("LOGIN", b"user", b"pencil") == [b"Username:", b"Password:"]
        assert client.last[0] == 235
    assert server.pending_faults == [fault]


def test_drill_auth_challenge_is_sent_verbatim(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        mode=Mode.IMPLICIT_TLS, users=USERS, faults=[Fault.auth_challenge(b"!!not base64!!")]
    )
    with _tls(server) as client:
        assert client.cmd("AUTH LOGIN") == (334, ["!!not base64!!"])
        assert client.cmd("*") == (501, ["5.7.0 Authentication cancelled"])
        # times=1: the next AUTH command is left alone.
        assert client.auth("LOGIN", b"user", b"pencil") == [b"Username:", b"Password:"]
        assert client.last[0] == 235
    assert ("server", "334 !!not base64!!") in server.transcripts[0]


def test_drill_auth_challenge_replaces_only_the_chosen_step(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    fault = Fault.auth_challenge(base64.b64encode(b"Secret word:"), step=2)
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, users=USERS, faults=[fault])
    with _tls(server) as client:
        # The exchange goes on with the real mechanism behind the replaced challenge.
        assert client.auth("LOGIN", b"user", b"pencil") == [b"Username:", b"Secret word:"]
        assert client.last[0] == 235


def test_drill_auth_challenge_on_a_scram_server_first(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    fault = Fault.auth_challenge(base64.b64encode(b"r=forged,s=c2FsdA==,i=4096"))
    server = smtp_server_factory(mode=Mode.IMPLICIT_TLS, users=USERS, faults=[fault])
    with _tls(server) as client:
        # A client that ignores the forged nonce and answers anyway fails: it's the wrong nonce.
        [challenge] = client.auth(
            "SCRAM-SHA-256", b"c=biws,r=forged,p=AAAA", initial=b"n,,n=user,r=abc"
        )
        assert challenge == b"r=forged,s=c2FsdA==,i=4096"
        assert client.last == (535, ["5.7.8 Authentication credentials invalid"])


def test_auth_drill_reprs_and_validation() -> None:
    assert repr(Fault.auth_challenge(b"!!!", step=2)) == (
        "Fault.auth_challenge(target='AUTH', nth=1, times=1, data=b'!!!', step=2)"
    )
    assert repr(Fault.scram_bad_server_signature()) == (
        "Fault.scram_bad_server_signature(target='AUTH', nth=1, times=None)"
    )
    with pytest.raises(ValueError, match="count from 1"):
        Fault.auth_challenge(b"x", step=0)
