"""Server side of the SASL mechanisms the fake server offers (RFC 4954 AUTH).

Theory of operation: each mechanism is a small object without I/O. The session calls
``start(initial_response)`` once (``None`` when the AUTH command carried no initial response)
and then ``respond(data)`` for each client line, already base64-decoded. Each call returns a
``Challenge`` (sent as ``334 <base64>``), a ``Success`` (235) or a ``Failure`` (535 and friends).
Cancellation (``*``, RFC 4954 4) and base64 errors are the session's business, not ours.

Passwords are compared after a *simplified* SASLprep: NFKC normalisation only (RFC 4013
also maps some spaces and prohibits some characters; test credentials rarely need that).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MECHANISMS", "Challenge", "Failure", "Mechanism", "SaslStep", "Success", "create"]

#: In the order the server advertises them.
MECHANISMS = (
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "XOAUTH2",
    "OAUTHBEARER",
)


@dataclass(frozen=True)
class Challenge:
    """Send ``334`` with this (raw, not yet base64) challenge."""

    data: bytes


@dataclass(frozen=True)
class Success:
    """Authentication succeeded as ``identity`` (RFC 4954 6: 235 2.7.0)."""

    identity: str


@dataclass(frozen=True)
class Failure:
    """Authentication failed with this reply."""

    code: int = 535
    enhanced: str = "5.7.8"
    text: str = "Authentication credentials invalid"


SaslStep = Challenge | Success | Failure

_BAD_SYNTAX = Failure(501, "5.5.2", "Cannot decode response")


def saslprep(text: str) -> str:
    """Simplified SASLprep (RFC 4013): NFKC normalisation only."""
    return unicodedata.normalize("NFKC", text)


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Mechanism:
    """Base class: one SASL exchange with one client."""

    def __init__(self, users: Mapping[str, str], tokens: Mapping[str, str], server: str) -> None:
        self._users = users
        self._tokens = tokens
        self._server = server

    def start(self, initial: bytes | None) -> SaslStep:
        """Begin the exchange; ``initial`` is the decoded initial response, if any."""
        if initial is None:
            return Challenge(b"")
        return self.respond(initial)

    def respond(self, data: bytes) -> SaslStep:  # pragma: no cover - abstract
        """Consume one decoded client response."""
        raise NotImplementedError

    def _check_password(self, user: str, password: str) -> SaslStep:
        expected = self._users.get(user)
        if expected is not None and hmac.compare_digest(
            saslprep(expected).encode(), saslprep(password).encode()
        ):
            return Success(user)
        return Failure()


class _Plain(Mechanism):
    """RFC 4616: ``authzid NUL authcid NUL passwd`` in one message."""

    def respond(self, data: bytes) -> SaslStep:
        text = _decode(data)
        parts = text.split("\0") if text is not None else []
        if len(parts) != 3:
            return _BAD_SYNTAX
        authzid, authcid, password = parts
        if authzid and authzid != authcid:
            # Proxy authorisation is not offered: acting as someone else is refused.
            return Failure(535, "5.7.8", "Authorization identity not permitted")
        return self._check_password(authcid, password)


class _Login(Mechanism):
    """The obsolete LOGIN mechanism (draft-murchison-sasl-login): username, then password."""

    def __init__(self, users: Mapping[str, str], tokens: Mapping[str, str], server: str) -> None:
        super().__init__(users, tokens, server)
        self._username: str | None = None

    def start(self, initial: bytes | None) -> SaslStep:
        if initial is None:
            return Challenge(b"Username:")
        return self.respond(initial)

    def respond(self, data: bytes) -> SaslStep:
        text = _decode(data)
        if text is None:
            return _BAD_SYNTAX
        if self._username is None:
            self._username = text
            return Challenge(b"Password:")
        return self._check_password(self._username, text)


class _CramMD5(Mechanism):
    """RFC 2195: HMAC-MD5 of a server challenge keyed with the password."""

    def start(self, initial: bytes | None) -> SaslStep:
        if initial is not None:
            return _BAD_SYNTAX  # RFC 2195: the server speaks first
        self._challenge = f"<{secrets.randbelow(10**10)}.{int(time.time())}@{self._server}>"
        return Challenge(self._challenge.encode())

    def respond(self, data: bytes) -> SaslStep:
        text = _decode(data)
        user, _, digest = (text or "").rpartition(" ")
        password = self._users.get(user)
        if not user or password is None:
            return Failure()
        expected = hmac.new(
            saslprep(password).encode(), self._challenge.encode(), hashlib.md5
        ).hexdigest()
        return Success(user) if hmac.compare_digest(expected, digest.lower()) else Failure()


class _XOAuth2(Mechanism):
    """Google/Microsoft XOAUTH2: ``user=U^Aauth=Bearer T^A^A``.

    A bad token gets a 334 carrying a JSON error; the client answers with an empty line and
    then gets 535 5.7.8 (the documented XOAUTH2 protocol).
    """

    _failed = False

    def respond(self, data: bytes) -> SaslStep:
        if self._failed:
            return Failure()
        fields = dict(
            part.split("=", 1) for part in (_decode(data) or "").split("\x01") if "=" in part
        )
        user = fields.get("user", "")
        auth = fields.get("auth", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else None
        expected = self._tokens.get(user)
        if token is not None and expected is not None and hmac.compare_digest(expected, token):
            return Success(user)
        self._failed = True
        error = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        return Challenge(json.dumps(error).encode())


class _OAuthBearer(Mechanism):
    """RFC 7628 OAUTHBEARER: GS2 header, then ``^A``-separated key/values.

    RFC 7628 3.2.2: on failure the server sends a JSON error as a challenge; the client must
    answer with a single ``^A`` (an empty line is accepted too) and then gets 535 5.7.8.
    """

    _failed = False

    def respond(self, data: bytes) -> SaslStep:
        if self._failed:
            return Failure()
        text = _decode(data) or ""
        gs2, sep, rest = text.partition("\x01")
        gs2_parts = gs2.split(",")
        if not sep or len(gs2_parts) < 2 or gs2_parts[0] not in ("n", "y"):
            return _BAD_SYNTAX
        authzid = next((p[2:] for p in gs2_parts[1:] if p.startswith("a=")), None)
        if authzid is not None:
            authzid = authzid.replace("=2C", ",").replace("=3D", "=")
        fields = dict(part.split("=", 1) for part in rest.split("\x01") if "=" in part)
        auth = fields.get("auth", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else ""
        for user, expected in self._tokens.items():
            if (authzid is None or authzid == user) and hmac.compare_digest(expected, token):
                return Success(user)
        self._failed = True
        error = {"status": "invalid_token", "scope": "email", "openid-configuration": ""}
        return Challenge(json.dumps(error).encode())


class _Scram(Mechanism):
    """RFC 5802 SCRAM (SHA-1) and RFC 7677 SCRAM-SHA-256, without channel binding.

    The server really verifies the ClientProof and answers with ``v=ServerSignature`` as a 334
    challenge; the client's empty response to it completes the exchange with 235.
    """

    hash_name = "sha256"
    #: Overridable so tests can replay the RFC test vectors; random by default.
    salt: bytes | None = None
    nonce: str | None = None
    iterations = 4096

    def start(self, initial: bytes | None) -> SaslStep:
        self._state = "first"
        return super().start(initial)

    def respond(self, data: bytes) -> SaslStep:
        text = _decode(data)
        if text is None:
            return _BAD_SYNTAX
        if self._state == "first":
            return self._client_first(text)
        if self._state == "final":
            return self._client_final(text)
        if self._state == "verified" and text == "":
            return Success(self._user)
        return Failure()

    def _client_first(self, text: str) -> SaslStep:
        parts = text.split(",", 2)
        if len(parts) != 3 or parts[0] not in ("n", "y"):
            # "p=" asks for channel binding, which this server does not offer (RFC 5802 5.1).
            return Failure(535, "5.7.8", "Channel binding not supported")
        bare = parts[2]
        attrs = _scram_attrs(bare)
        if "n" not in attrs or "r" not in attrs:
            return _BAD_SYNTAX
        self._user = saslprep(attrs["n"].replace("=2C", ",").replace("=3D", "="))
        self._gs2 = f"{parts[0]},{parts[1]},"
        nonce = attrs["r"] + (self.nonce or base64.b64encode(os.urandom(18)).decode())
        salt = self.salt if self.salt is not None else os.urandom(16)
        self._server_first = f"r={nonce},s={base64.b64encode(salt).decode()},i={self.iterations}"
        self._client_first_bare = bare
        self._nonce = nonce
        self._salt = salt
        self._state = "final"
        return Challenge(self._server_first.encode())

    def _client_final(self, text: str) -> SaslStep:
        without_proof, _, proof_attr = text.rpartition(",p=")
        attrs = _scram_attrs(without_proof)
        channel = base64.b64encode(self._gs2.encode()).decode()
        password = self._users.get(self._user)
        if attrs.get("r") != self._nonce or attrs.get("c") != channel or password is None:
            self._state = "failed"
            return Failure()
        salted = hashlib.pbkdf2_hmac(
            self.hash_name, saslprep(password).encode(), self._salt, self.iterations
        )
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = self._hmac(stored_key, auth_message)
        try:
            proof = base64.b64decode(proof_attr, validate=True)
        except ValueError:
            proof = b""
        recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if len(proof) != len(signature) or not hmac.compare_digest(
            hashlib.new(self.hash_name, recovered).digest(), stored_key
        ):
            self._state = "failed"
            return Failure()
        server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        self._state = "verified"
        return Challenge(b"v=" + base64.b64encode(server_signature))

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash_name).digest()


class _ScramSha1(_Scram):
    hash_name = "sha1"


def _scram_attrs(text: str) -> dict[str, str]:
    return {p[0]: p[2:] for p in text.split(",") if len(p) >= 2 and p[1] == "="}


_CLASSES: dict[str, type[Mechanism]] = {
    "PLAIN": _Plain,
    "LOGIN": _Login,
    "CRAM-MD5": _CramMD5,
    "SCRAM-SHA-1": _ScramSha1,
    "SCRAM-SHA-256": _Scram,
    "XOAUTH2": _XOAuth2,
    "OAUTHBEARER": _OAuthBearer,
}


def create(
    name: str,
    users: Mapping[str, str],
    tokens: Mapping[str, str],
    server: str,
    *,
    scram_salt: bytes | None = None,
    scram_nonce: str | None = None,
) -> Mechanism | None:
    """Create the server side of mechanism ``name``, or ``None`` if it is not offered."""
    cls = _CLASSES.get(name.upper())
    if cls is None:
        return None
    mech = cls(users, tokens, server)
    if isinstance(mech, _Scram):
        mech.salt = scram_salt
        mech.nonce = scram_nonce
    return mech
