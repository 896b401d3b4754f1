"""Server-side SASL: each mechanism driven by hand-written client steps in the test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from fake_smtp_helpers import RawClient

from smtpsubmit.testing import Mode, SMTPServerFactory, ThreadedSMTPServer


def _open(server: ThreadedSMTPServer) -> RawClient:
    client = RawClient(server.host, server.port)
    assert client.reply()[0] == 220
    assert client.cmd("EHLO c")[0] == 250
    return client


@pytest.fixture
def server(smtp_server_factory: SMTPServerFactory) -> ThreadedSMTPServer:
    return smtp_server_factory(
        mode=Mode.PLAIN,
        allow_cleartext_auth=True,
        users={"user": "pencil"},
        oauth_tokens={"user@example.com": "ya29.token"},
    )


# RFC 5802 5 and RFC 7677 3 test vectors: (mechanism, salt, client nonce, server nonce part,
# client proof, server signature).
VECTORS = [
    (
        "SCRAM-SHA-1",
        "QSXCR+Q6sek8bf92",
        "fyko+d2lbbFgONRv9qkxdawL",
        "3rfcNHYJY1ZVvWVs7j",
        "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    (
        "SCRAM-SHA-256",
        "W22ZaJ0SNY7soEsUEjb6gQ==",
        "rOprNGfwEbeRWgbNEkqO",
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
]


@pytest.mark.parametrize(("mech", "salt", "cnonce", "snonce", "proof", "signature"), VECTORS)
def test_scram_rfc_test_vectors(
    smtp_server_factory: SMTPServerFactory,
    mech: str,
    salt: str,
    cnonce: str,
    snonce: str,
    proof: str,
    signature: str,
) -> None:
    server = smtp_server_factory(
        mode=Mode.PLAIN,
        allow_cleartext_auth=True,
        users={"user": "pencil"},
        scram_salt=base64.b64decode(salt),
        scram_nonce=snonce,
    )
    nonce = cnonce + snonce
    with _open(server) as client:
        challenges = client.auth(
            mech,
            f"c=biws,r={nonce},p={proof}".encode(),
            b"",
            initial=f"n,,n=user,r={cnonce}".encode(),
        )
        assert client.last == (235, ["2.7.0 Authentication successful"])
    assert challenges == [f"r={nonce},s={salt},i=4096".encode(), f"v={signature}".encode()]


def _scram_client(hash_name: str, password: str, client: RawClient, mech: str) -> tuple[int, str]:
    """A small RFC 5802 client: returns the final reply, checking the server signature."""
    cnonce = "clientnonce123"
    first_bare = f"n=user,r={cnonce}"
    code, texts = client.cmd(
        f"AUTH {mech} " + base64.b64encode(b"n,," + first_bare.encode()).decode()
    )
    assert code == 334
    server_first = base64.b64decode(texts[0]).decode()
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    assert attrs["r"].startswith(cnonce)
    salted = hashlib.pbkdf2_hmac(
        hash_name, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored_key = hashlib.new(hash_name, client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    client_sig = hmac.new(stored_key, auth_message, hash_name).digest()
    proof = base64.b64encode(
        bytes(a ^ b for a, b in zip(client_key, client_sig, strict=True))
    ).decode()
    code, texts = client.cmd(base64.b64encode(f"{without_proof},p={proof}".encode()).decode())
    if code != 334:
        return code, texts[0]
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    expected = base64.b64encode(hmac.new(server_key, auth_message, hash_name).digest())
    assert base64.b64decode(texts[0]) == b"v=" + expected
    code, texts = client.cmd("")
    return code, texts[0]


@pytest.mark.parametrize(
    ("mech", "hash_name"), [("SCRAM-SHA-1", "sha1"), ("SCRAM-SHA-256", "sha256")]
)
def test_scram_with_random_salt_and_nonce(
    server: ThreadedSMTPServer, mech: str, hash_name: str
) -> None:
    with _open(server) as client:
        assert _scram_client(hash_name, "pencil", client, mech) == (
            235,
            "2.7.0 Authentication successful",
        )
        assert client.cmd("MAIL FROM:<a@x>")[0] == 250
        client.cmd("RCPT TO:<b@x>")
        client.cmd("DATA")
        assert client.cmd(".")[0] == 250
    assert server.messages[0].auth_identity == "user"


def test_scram_wrong_password_fails(server: ThreadedSMTPServer) -> None:
    with _open(server) as client:
        assert _scram_client("sha256", "wrong", client, "SCRAM-SHA-256") == (
            535,
            "5.7.8 Authentication credentials invalid",
        )


def test_scram_channel_binding_is_refused(server: ThreadedSMTPServer) -> None:
    with _open(server) as client:
        client.auth("SCRAM-SHA-256", initial=b"p=tls-unique,,n=user,r=abc")
        assert client.last[0] == 535


def test_xoauth2_good_and_bad_token(server: ThreadedSMTPServer) -> None:
    with _open(server) as client:
        bad = b"user=user@example.com\x01auth=Bearer nope\x01\x01"
        [error] = client.auth("XOAUTH2", b"", initial=bad)
        assert json.loads(error)["status"] == "401"
        assert client.last == (535, ["5.7.8 Authentication credentials invalid"])
        good = b"user=user@example.com\x01auth=Bearer ya29.token\x01\x01"
        client.auth("XOAUTH2", initial=good)
        assert client.last[0] == 235
    transcript = server.transcripts[0]
    assert "ya29.token" not in repr(transcript)
    assert ("client", "AUTH XOAUTH2 <redacted>") in transcript
    assert ("client", "<redacted>") in transcript


def test_oauthbearer_good_and_bad_token(server: ThreadedSMTPServer) -> None:
    def payload(token: str) -> bytes:
        return (
            f"n,a=user@example.com,\x01host=x\x01port=587\x01auth=Bearer {token}\x01\x01".encode()
        )

    with _open(server) as client:
        [error] = client.auth("OAUTHBEARER", b"\x01", initial=payload("nope"))
        assert json.loads(error)["status"] == "invalid_token"
        assert client.last == (535, ["5.7.8 Authentication credentials invalid"])
        client.auth("OAUTHBEARER", initial=payload("ya29.token"))
        assert client.last == (235, ["2.7.0 Authentication successful"])


def test_login_without_initial_response(server: ThreadedSMTPServer) -> None:
    with _open(server) as client:
        challenges = client.auth("LOGIN", b"user", b"pencil")
        assert challenges == [b"Username:", b"Password:"]
        assert client.last[0] == 235


def test_plain_with_empty_challenge_and_authzid(server: ThreadedSMTPServer) -> None:
    with _open(server) as client:
        assert client.cmd("AUTH PLAIN") == (334, [""])
        assert client.cmd(base64.b64encode(b"other\0user\0pencil").decode())[0] == 535
        client.auth("PLAIN", b"user\0user\0pencil")
        assert client.last[0] == 235
        assert client.cmd("AUTH PLAIN AHVzZXIAcGVuY2ls") == (503, ["5.5.1 Already authenticated"])


def test_cancel_and_bad_base64_and_unknown_mechanism(server: ThreadedSMTPServer) -> None:
    with _open(server) as client:
        assert client.cmd("AUTH LOGIN")[0] == 334
        assert client.cmd("*") == (501, ["5.7.0 Authentication cancelled"])
        assert client.cmd("AUTH PLAIN !!!") == (501, ["5.5.2 Cannot decode response"])
        assert client.cmd("AUTH GSSAPI") == (504, ["5.5.4 Unrecognized authentication type"])
        assert client.cmd("AUTH")[0] == 501
        assert client.cmd("AUTH PLAIN =")[0] == 501  # empty initial response: bad PLAIN


def test_cram_md5_wrong_digest(server: ThreadedSMTPServer) -> None:
    with _open(server) as client:
        [challenge] = client.auth("CRAM-MD5", b"user " + b"0" * 32)
        assert challenge.startswith(b"<")
        assert challenge.endswith(b"@fake-smtp.localhost>")
        assert client.last[0] == 535


def test_saslprep_normalises_passwords(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        mode=Mode.PLAIN,
        allow_cleartext_auth=True,
        users={"u": "\u2168"},  # ROMAN NUMERAL NINE
    )
    with _open(server) as client:
        client.auth("PLAIN", initial=b"\0u\0IX")
        assert client.last[0] == 235


def test_config_repr_masks_secrets(server: ThreadedSMTPServer) -> None:
    text = repr(server.config)
    assert "pencil" not in text
    assert "ya29.token" not in text
    assert "'user': '********'" in text
