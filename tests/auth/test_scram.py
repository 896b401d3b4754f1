"""SCRAM (RFC 5802, RFC 7677): failures, channel binding, and a parser that never crashes."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpsubmit.auth import (
    SASLError,
    ScramSHA1,
    ScramSHA1Plus,
    ScramSHA256,
    ScramSHA256Plus,
    ScramSHA512,
    ScramSHA512Plus,
)
from smtpsubmit.auth._scram import (
    MIN_ITERATIONS,
    ServerFirst,
    _Scram,
    parse_server_final,
    parse_server_first,
)

CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def vector_mechanism() -> ScramSHA256:
    """RFC 7677 3's client, ready for its server-first message."""
    mech = ScramSHA256("user", "pencil", _nonce=CLIENT_NONCE)
    mech.initial_response()
    return mech


class FakeScramServer:
    """The server side of RFC 5802 5, written independently of the client code, so a round
    trip checks what no published vector covers (channel binding, authzid, SASLprep)."""

    def __init__(self, hash_name: str, password: str, cbind: bytes = b"") -> None:
        self.hash_name = hash_name
        self.salt = b"pepper-salt-1234"
        self.iterations = 4096
        salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), self.salt, self.iterations)
        client_key = hmac.new(salted, b"Client Key", hash_name).digest()
        self.stored_key = hashlib.new(hash_name, client_key).digest()
        self.server_key = hmac.new(salted, b"Server Key", hash_name).digest()
        self.cbind = cbind
        self.client_first = b""
        self.server_first = b""

    def first(self, client_first: bytes) -> bytes:
        self.client_first = client_first
        nonce = client_first.split(b",r=")[1] + b"server-part"
        salt = base64.b64encode(self.salt)
        self.server_first = b"r=" + nonce + b",s=" + salt + b",i=%d" % self.iterations
        return self.server_first

    def final(self, client_final: bytes) -> bytes:
        without_proof, proof_b64 = client_final.rsplit(b",p=", 1)
        gs2_end = self.client_first.index(b",", self.client_first.index(b",") + 1) + 1
        gs2_header, bare = self.client_first[:gs2_end], self.client_first[gs2_end:]
        channel = base64.b64decode(without_proof.split(b",")[0][2:])
        assert channel == gs2_header + self.cbind, "c= must carry the gs2 header + binding"
        auth_message = b",".join((bare, self.server_first, without_proof))
        signature = hmac.new(self.stored_key, auth_message, self.hash_name).digest()
        client_key = bytes(
            a ^ b for a, b in zip(base64.b64decode(proof_b64), signature, strict=True)
        )
        assert hashlib.new(self.hash_name, client_key).digest() == self.stored_key, "bad proof"
        server_signature = hmac.new(self.server_key, auth_message, self.hash_name).digest()
        return b"v=" + base64.b64encode(server_signature)


def run_against(mech: _Scram, server: FakeScramServer) -> bytes:
    first = mech.initial_response()
    final = mech.respond(server.first(first))
    assert mech.respond(server.final(final)) == b""
    mech.success()
    return first


@pytest.mark.parametrize(
    ("cls", "hash_name"),
    [(ScramSHA512Plus, "sha512"), (ScramSHA256Plus, "sha256"), (ScramSHA1Plus, "sha1")],
)
def test_plus_binds_tls_server_end_point(cls: type[_Scram], hash_name: str) -> None:
    binding = hashlib.sha256(b"certificate").digest()
    mech = cls("user", "pencil", channel_binding=binding)
    first = run_against(mech, FakeScramServer(hash_name, "pencil", cbind=binding))
    assert first.startswith(b"p=tls-server-end-point,,n=user,r=")


@pytest.mark.parametrize("cls", [ScramSHA256Plus, ScramSHA1Plus])
def test_plus_without_binding_data_refuses_to_start(cls: type[_Scram]) -> None:
    with pytest.raises(SASLError, match="channel-binding"):
        cls("user", "pencil")


def test_authzid_and_special_user_names_are_escaped() -> None:
    mech = ScramSHA256("a,b=c", "pencil", authzid="x=y,z")
    first = run_against(mech, FakeScramServer("sha256", "pencil"))
    assert first.startswith(b"n,a=x=3Dy=2Cz,n=a=2Cb=3Dc,r=")


def test_password_is_saslprepped_before_hashing() -> None:
    # U+2168 ROMAN NUMERAL NINE prepares to "IX"; the server stored the prepared form.
    run_against(ScramSHA1("user", "\u2168"), FakeScramServer("sha1", "IX"))


def test_y_flag_when_client_supports_binding_but_server_does_not() -> None:
    mech = ScramSHA256("user", "pencil", client_supports_binding=True)
    assert run_against(mech, FakeScramServer("sha256", "pencil")).startswith(b"y,,n=user")


def test_random_nonce_is_fresh_and_printable() -> None:
    nonces = {ScramSHA256("u", "p").initial_response() for _ in range(20)}
    assert len(nonces) == 20
    assert all(b"," not in n.split(b",r=")[1] for n in nonces)


def test_no_initial_response_sent_server_asks_with_empty_challenge() -> None:
    mech = ScramSHA256("user", "pencil", _nonce=CLIENT_NONCE)
    assert mech.respond(b"") == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mech.respond(SERVER_FIRST).endswith(b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")


def test_server_signature_mismatch_raises() -> None:
    mech = vector_mechanism()
    mech.respond(SERVER_FIRST)
    forged = b"v=" + base64.b64encode(bytes(32))
    with pytest.raises(SASLError, match="server signature does not verify"):
        mech.respond(forged)
    with pytest.raises(SASLError, match="without a valid server signature"):
        mech.success()


def test_success_without_server_final_raises() -> None:
    mech = vector_mechanism()
    mech.respond(SERVER_FIRST)
    with pytest.raises(SASLError, match="without a valid server signature"):
        mech.success()


def test_success_before_anything_raises() -> None:
    with pytest.raises(SASLError):
        ScramSHA256("user", "pencil").success()


def test_server_final_error_attribute_raises_with_server_text() -> None:
    mech = vector_mechanism()
    mech.respond(SERVER_FIRST)
    with pytest.raises(SASLError, match="invalid-proof"):
        mech.respond(b"e=invalid-proof")


def test_challenge_after_server_final_raises() -> None:
    mech = vector_mechanism()
    mech.respond(SERVER_FIRST)
    mech.respond(SERVER_FINAL)
    with pytest.raises(SASLError, match="unexpected challenge"):
        mech.respond(SERVER_FINAL)


@pytest.mark.parametrize("iterations", [0, 1, 4095])
def test_low_iteration_count_rejected(iterations: int) -> None:
    mech = vector_mechanism()
    challenge = SERVER_FIRST.replace(b"i=4096", b"i=%d" % iterations)
    with pytest.raises(SASLError, match="below the minimum 4096"):
        mech.respond(challenge)


def test_huge_iteration_count_rejected_without_computing() -> None:
    with pytest.raises(SASLError, match="above our limit"):
        parse_server_first(SERVER_FIRST.replace(b"i=4096", b"i=2000000000"), CLIENT_NONCE)


@pytest.mark.parametrize(
    ("challenge", "reason"),
    [
        (b"m=ext," + SERVER_FIRST, "extension"),
        (SERVER_FIRST.replace(b"r=rOpr", b"r=XXpr"), "does not extend"),
        (b"r=" + CLIENT_NONCE.encode() + b",s=W22Z,i=4096", "added nothing"),
        (SERVER_FIRST.replace(b"s=W22ZaJ0SNY7soEsUEjb6gQ==", b"s=!!!"), "base64"),
        (SERVER_FIRST.replace(b"s=W22ZaJ0SNY7soEsUEjb6gQ==", b"s="), "empty salt"),
        (SERVER_FIRST.replace(b"i=4096", b"i=4k"), "not a number"),
        (SERVER_FIRST.replace(b"i=4096", b"i=\xd9\xa4\xd9\xa0\xd9\xa9\xd9\xa6"), "not a number"),
        (b"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" + CLIENT_NONCE.encode() + b"x,i=4096", "in order"),
        (b"r=" + CLIENT_NONCE.encode() + b"x,s=W22ZaJ0SNY7soEsUEjb6gQ==", "in order"),
        (b"\xff\xfe", "not UTF-8"),
        (b"garbage", "malformed"),
        (b"", "malformed"),
    ],
)
def test_malformed_server_first_rejected(challenge: bytes, reason: str) -> None:
    with pytest.raises(SASLError, match=reason):
        vector_mechanism().respond(challenge)


def test_server_first_extensions_after_iterations_ignored() -> None:
    parsed = parse_server_first(SERVER_FIRST + b",x=whatever", CLIENT_NONCE)
    assert parsed.iterations == 4096


@pytest.mark.parametrize("challenge", [b"x=1", b"v=not base64!", b"", b"verifier", b"\x80"])
def test_malformed_server_final_rejected(challenge: bytes) -> None:
    mech = vector_mechanism()
    mech.respond(SERVER_FIRST)
    with pytest.raises(SASLError):
        mech.respond(challenge)


def test_challenge_before_initial_response_rejected() -> None:
    with pytest.raises(SASLError, match="before the initial response"):
        ScramSHA256("user", "pencil").respond(SERVER_FIRST)


@pytest.mark.parametrize(("username", "password"), [("", "p"), ("\u0007", "p"), ("u", "\x00")])
def test_credentials_failing_saslprep_refuse_to_start(username: str, password: str) -> None:
    with pytest.raises(SASLError):
        ScramSHA256(username, password)


def test_injected_nonce_must_be_printable_without_comma() -> None:
    with pytest.raises(ValueError, match="nonce"):
        ScramSHA256("user", "pencil", _nonce="a,b")


# Property tests: the parsers see attacker-controlled bytes. Whatever arrives, the result is
# a SASLError or a parse that satisfies the RFC's constraints -- never another exception.


def _check_server_first(message: bytes) -> None:
    try:
        parsed = parse_server_first(message, CLIENT_NONCE)
    except SASLError:
        return
    assert isinstance(parsed, ServerFirst)
    assert parsed.nonce.startswith(CLIENT_NONCE)
    assert len(parsed.nonce) > len(CLIENT_NONCE)
    assert "," not in parsed.nonce
    assert parsed.salt
    assert parsed.iterations >= MIN_ITERATIONS


@given(st.binary(max_size=200))
def test_server_first_parser_random_bytes(message: bytes) -> None:
    _check_server_first(message)


_fragment = st.sampled_from(
    [
        b"r=",
        b"s=",
        b"i=",
        b"m=",
        b",",
        b"=",
        CLIENT_NONCE.encode(),
        b"W22ZaJ0SNY7soEsUEjb6gQ==",
        b"4096",
        b"99999999999",
        b"-1",
        b"\x00",
        b"\xc3",
        b"==",
        b"x",
        b"%",
    ]
)


@given(st.lists(_fragment, max_size=14).map(b"".join))
def test_server_first_parser_near_valid_messages(message: bytes) -> None:
    _check_server_first(message)


@given(st.binary(max_size=120))
def test_server_final_parser_random_bytes(message: bytes) -> None:
    try:
        signature = parse_server_final(message)
    except SASLError:
        return
    assert message.startswith(b"v=")
    assert isinstance(signature, bytes)


@given(st.binary(max_size=200))
def test_mechanism_random_challenges_raise_only_sasl_error(challenge: bytes) -> None:
    mech = vector_mechanism()
    try:
        response = mech.respond(challenge)
    except SASLError:
        return
    assert response.startswith(b"c=biws,r=" + CLIENT_NONCE.encode())


def test_scram_sha_512_round_trip_verifies_the_server() -> None:
    mech = ScramSHA512("user", "pencil")
    first = run_against(mech, FakeScramServer("sha512", "pencil"))
    assert first.startswith(b"n,,n=user,r=")
    mech.success()
