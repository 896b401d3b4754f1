"""Server side of the SASL mechanisms the fake server offers (RFC 4954 AUTH).

Theory of operation: each mechanism is a small object without I/O. The session calls
``start(initial_response)`` once (``None`` when the AUTH command carried no initial response)
and then ``respond(data)`` for each client line, already base64-decoded. Each call returns a
``Challenge`` (sent as ``334 <base64>``), a ``Success`` (235) or a ``Failure`` (535 and friends).
Cancellation (``*``, RFC 4954 4) and base64 errors are the session's business, not ours.

Channel binding: the SCRAM-*-PLUS mechanisms (RFC 5802 6) are offered only when the session
knows the ``tls-server-end-point`` data (RFC 5929 4) of the certificate it presented, that is
over TLS; `offered` is the one place that decides what a session advertises and accepts.

The AUTH drills (``Fault.scram_bad_server_signature``, ``Fault.auth_challenge``) live here too,
in `_Drilled`, which rewrites the challenges of the mechanism it wraps.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smtpsubmit.auth import tls_server_end_point

from ._codec import ascii_upper
from ._faults import Fault, FaultKind

if TYPE_CHECKING:
    from ._tls import ServerCertificates

__all__ = [
    "MECHANISMS",
    "Challenge",
    "Failure",
    "Mechanism",
    "SaslStep",
    "Success",
    "create",
    "end_point_binding",
    "offered",
]

#: In the order the server advertises them. The -PLUS ones only over TLS (see `offered`).
MECHANISMS = (
    "PLAIN",
    "LOGIN",
    "CRAM-MD5",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "XOAUTH2",
    "OAUTHBEARER",
)


@dataclass(frozen=True)
class Challenge:
    """Send ``334`` with this (raw, not yet base64) challenge."""

    data: bytes
    #: Drill only: the text sent after ``334 `` verbatim instead of ``base64(data)``.
    raw: bytes | None = None

    def line(self) -> bytes:
        """The reply line on the wire (RFC 4954 4: ``334 <base64>``)."""
        text = self.raw if self.raw is not None else base64.b64encode(self.data)
        return b"334 " + text + b"\r\n"


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


def offered(mechanisms: Sequence[str], channel_binding: bytes | None) -> tuple[str, ...]:
    """What a session advertises and accepts: ``mechanisms`` without the -PLUS ones unless
    the channel-binding data is known (RFC 5802 6: they exist only on a TLS channel)."""
    return tuple(m for m in mechanisms if channel_binding is not None or not m.endswith("-PLUS"))


def end_point_binding(certificates: ServerCertificates, *, wrong_host: bool) -> bytes | None:
    """RFC 5929 4.1 ``tls-server-end-point`` data of the certificate the server presents.

    ``ssl`` has no way to read the local certificate back from a connection, so this uses
    the certificate that ``ServerCertificates`` configured the server context with.
    """
    return tls_server_end_point(certificates._certificate_der(wrong_host=wrong_host))


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _same_secret(expected: str, given: str) -> bool:
    # Compared as UTF-8: hmac.compare_digest raises TypeError on a str that is not ASCII.
    return hmac.compare_digest(expected.encode(), given.encode())


def _bearer_token(auth: str) -> str | None:
    """The token of ``auth=Bearer <token>`` (RFC 6750 2.1: the scheme is case-insensitive)."""
    return auth[7:] if ascii_upper(auth[:7]) == "BEARER " else None


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
        if expected is not None and _same_secret(saslprep(expected), saslprep(password)):
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
        # Bytes: compare_digest raises TypeError on a str that is not ASCII.
        matches = hmac.compare_digest(expected.encode(), ascii_upper(digest).lower().encode())
        return Success(user) if matches else Failure()


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
        token = _bearer_token(auth)
        expected = self._tokens.get(user)
        if token is not None and expected is not None and _same_secret(expected, token):
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
        token = _bearer_token(auth) or ""
        for user, expected in self._tokens.items():
            if (authzid is None or authzid == user) and _same_secret(expected, token):
                return Success(user)
        self._failed = True
        error = {"status": "invalid_token", "scope": "email", "openid-configuration": ""}
        return Challenge(json.dumps(error).encode())


class _Scram(Mechanism):
    """RFC 5802 SCRAM (SHA-1) and RFC 7677 SCRAM-SHA-256, with the -PLUS variants bound to the
    certificate (RFC 5802 6, RFC 5929 4 ``tls-server-end-point``).

    The server really verifies the ClientProof and answers with ``v=ServerSignature`` as a 334
    challenge; the client's empty response to it completes the exchange with 235.

    The gs2 header (RFC 5802 6, 7) must match the mechanism: ``p=tls-server-end-point`` for
    -PLUS (other binding types are unsupported), ``n`` or ``y`` otherwise. ``y`` ("I could
    bind, but I think you cannot") while this session advertised a -PLUS mechanism means
    someone removed it on the way: a downgrade, so the exchange fails. The ``c=`` attribute
    must carry the gs2 header plus, for -PLUS, our own certificate's binding data.
    """

    hash_name = "sha256"
    plus = False
    #: Overridable so tests can replay the RFC test vectors; random by default.
    salt: bytes | None = None
    nonce: str | None = None
    iterations = 4096
    #: Set by `create`: our binding data (-PLUS only) and whether any -PLUS was advertised.
    channel_binding = b""
    plus_offered = False

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

    def _gs2_failure(self, flag: str) -> Failure | None:
        """Why the gs2 channel-binding flag is unacceptable for this mechanism, if it is."""
        if self.plus:
            if flag == "p=tls-server-end-point":
                return None
            if flag.startswith("p="):
                return Failure(535, "5.7.8", "Unsupported channel binding type")
            return Failure(535, "5.7.8", "Channel binding required by this mechanism")
        if flag == "y" and self.plus_offered:
            return Failure(535, "5.7.8", "Channel binding downgrade detected")  # RFC 5802 6
        if flag not in ("n", "y"):
            # RFC 5802 6: "p=" asks for channel binding, which only -PLUS mechanisms do.
            return Failure(535, "5.7.8", "Channel binding not supported")
        return None

    def _client_first(self, text: str) -> SaslStep:
        parts = text.split(",", 2)
        if len(parts) != 3:
            return _BAD_SYNTAX
        failure = self._gs2_failure(parts[0])
        if failure is not None:
            self._state = "failed"
            return failure
        bare = parts[2]
        attrs = _scram_attrs(bare)
        if "n" not in attrs or "r" not in attrs:
            return _BAD_SYNTAX
        self._user = saslprep(attrs["n"].replace("=2C", ",").replace("=3D", "="))
        self._cbind_input = f"{parts[0]},{parts[1]},".encode() + self.channel_binding
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
        channel = base64.b64encode(self._cbind_input).decode()
        password = self._users.get(self._user)
        if attrs.get("r") != self._nonce or password is None:
            self._state = "failed"
            return Failure()
        if attrs.get("c") != channel:
            # RFC 5802 5.1 / 6: for -PLUS, another certificate on the client's side of the
            # channel (a TLS-intercepting proxy) lands here.
            self._state = "failed"
            return Failure(535, "5.7.8", "Channel binding mismatch")
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

    @property
    def awaiting_final_ack(self) -> bool:
        """True once the server-final message (``v=``) has been produced."""
        return self._state == "verified"

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash_name).digest()


class _ScramSha1(_Scram):
    hash_name = "sha1"


class _ScramSha256Plus(_Scram):
    plus = True


class _ScramSha1Plus(_Scram):
    hash_name = "sha1"
    plus = True


class _Drilled(Mechanism):
    """Wraps a mechanism and rewrites its challenges as the AUTH drills ask.

    ``auth_challenge`` replaces the ``step``-th 334 challenge of the exchange with its bytes,
    verbatim; ``scram_bad_server_signature`` flips one bit of the ServerSignature in SCRAM's
    server-final message, so a client that checks it (RFC 5802 5.1) must give up.
    """

    def __init__(
        self, inner: Mechanism, faults: Sequence[Fault], on_fire: Callable[[Fault], None]
    ) -> None:
        super().__init__(inner._users, inner._tokens, inner._server)
        self._inner = inner
        self._faults = faults
        self._on_fire = on_fire
        self._challenges = 0

    def start(self, initial: bytes | None) -> SaslStep:
        return self._drill(self._inner.start(initial))

    def respond(self, data: bytes) -> SaslStep:
        return self._drill(self._inner.respond(data))

    def _drill(self, step: SaslStep) -> SaslStep:
        if not isinstance(step, Challenge):
            return step
        self._challenges += 1
        inner = self._inner
        flips = [f for f in self._faults if f.kind is FaultKind.SCRAM_BAD_SERVER_SIGNATURE]
        if flips and isinstance(inner, _Scram) and inner.awaiting_final_ack:
            for fault in flips:
                self._on_fire(fault)
            signature = bytearray(base64.b64decode(step.data[2:]))
            signature[0] ^= 0x01
            step = Challenge(b"v=" + base64.b64encode(bytes(signature)))
        for fault in self._faults:
            if fault.kind is FaultKind.AUTH_CHALLENGE and fault.step == self._challenges:
                self._on_fire(fault)
                return Challenge(step.data, raw=fault.data)
        return step


_DRILLS = frozenset({FaultKind.AUTH_CHALLENGE, FaultKind.SCRAM_BAD_SERVER_SIGNATURE})


def _scram_attrs(text: str) -> dict[str, str]:
    return {p[0]: p[2:] for p in text.split(",") if len(p) >= 2 and p[1] == "="}


_CLASSES: dict[str, type[Mechanism]] = {
    "PLAIN": _Plain,
    "LOGIN": _Login,
    "CRAM-MD5": _CramMD5,
    "SCRAM-SHA-1": _ScramSha1,
    "SCRAM-SHA-256": _Scram,
    "SCRAM-SHA-1-PLUS": _ScramSha1Plus,
    "SCRAM-SHA-256-PLUS": _ScramSha256Plus,
    "XOAUTH2": _XOAuth2,
    "OAUTHBEARER": _OAuthBearer,
}


def create(
    name: str,
    users: Mapping[str, str],
    tokens: Mapping[str, str],
    server: str,
    *,
    offered: Sequence[str],
    channel_binding: bytes | None = None,
    scram_salt: bytes | None = None,
    scram_nonce: str | None = None,
    faults: Sequence[Fault] = (),
    on_fire: Callable[[Fault], None] = lambda fault: None,
) -> Mechanism | None:
    """Create the server side of mechanism ``name``, or ``None`` if it is not ``offered``.

    ``offered`` is what this session advertised (see `offered`), ``channel_binding`` its
    ``tls-server-end-point`` data, ``faults`` the faults taken for this AUTH command;
    ``on_fire`` is told when a drill among them takes effect.
    """
    name = ascii_upper(name)
    cls = _CLASSES.get(name)
    if cls is None or name not in offered:
        return None
    mech = cls(users, tokens, server)
    if isinstance(mech, _Scram):
        mech.salt = scram_salt
        mech.nonce = scram_nonce
        mech.plus_offered = any(m.endswith("-PLUS") for m in offered)
        if mech.plus:
            if channel_binding is None:
                return None
            mech.channel_binding = channel_binding
    drills = [f for f in faults if f.kind in _DRILLS]
    return _Drilled(mech, drills, on_fire) if drills else mech
