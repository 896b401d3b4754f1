"""SCRAM (RFC 5802; SHA-256 variant RFC 7677), client side, with tls-server-end-point
channel binding for the -PLUS variants (RFC 5802 6, RFC 5929 4).

Theory of operation: three messages and a check.

    client-first   gs2-header "n=" user ",r=" client-nonce          (initial_response)
    server-first   "r=" nonce ",s=" salt ",i=" iterations           -> respond() -> client-final
    server-final   "v=" server-signature  |  "e=" error             -> respond() -> b""
    235                                                              -> success()

In SMTP the server-final message arrives as a 334 challenge, answered by an empty line,
because RFC 4954 has no "additional data with success". `success` refuses to accept the 235
unless the server's signature has verified: a server that skips it never proved that it
knows the password, which is the point of SCRAM.

Why our own code rather than the `scramp` package: the client side is ~200 lines checked
against the RFC vectors, and it keeps the sans-I/O core free of dependencies.

Non-PLUS variants send the gs2 flag ``n`` ("client does not support channel binding") even
when binding data exists. ``y`` would let a server detect a downgrade from -PLUS (RFC 5802
6), but it is only correct when the server did not advertise -PLUS, which the mechanism
cannot know; a client that knows may pass ``client_supports_binding=True``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import ClassVar, NamedTuple

from ._base import ClientFirstMechanism, SASLError, show_server_text
from ._saslprep import saslprep

# RFC 7677 4: "at least 4096". The ceiling bounds the CPU a hostile server can make us burn
# (PBKDF2 runs synchronously); it sits far above deployed values (OWASP 2023: 600 000 for
# SHA-256, 1 300 000 for SHA-1).
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 10_000_000

# RFC 5802 7: printable = %x21-2B / %x2D-7E (visible ASCII except ",").
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_DIGITS = re.compile(r"[0-9]{1,10}")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class ServerFirst(NamedTuple):
    """The parsed server-first-message (RFC 5802 7)."""

    nonce: str
    salt: bytes
    iterations: int


def _saslname(name: str) -> str:
    """RFC 5802 5.1: "," and "=" are escaped in names as "=2C" and "=3D"."""
    return name.replace("=", "=3D").replace(",", "=2C")


def _b64decode(value: str, what: str) -> bytes:
    if not _BASE64.fullmatch(value):
        raise SASLError(f"SCRAM: {what} is not valid base64: {show_server_text(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:  # pragma: no cover -- the regex already ensures validity
        raise SASLError(f"SCRAM: {what} is not valid base64") from exc


def _attributes(message: bytes, what: str) -> list[tuple[str, str]]:
    """Split ``a=value,b=value`` (RFC 5802 7) into pairs, checking the shape of each."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SASLError(f"SCRAM: the {what} is not UTF-8: {show_server_text(message)}") from exc
    pairs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not ("a" <= part[0].lower() <= "z"):
            raise SASLError(f"SCRAM: malformed {what}: {show_server_text(message)}")
        pairs.append((part[0], part[2:]))
    return pairs


def parse_server_first(message: bytes, client_nonce: str) -> ServerFirst:
    """Parse and check a server-first-message (RFC 5802 5.1, 7).

    Raises `SASLError` for any deviation: a mandatory extension (``m=``), attributes out of
    order, a nonce that does not extend ours, bad base64, an iteration count outside
    [MIN_ITERATIONS, MAX_ITERATIONS].
    """
    pairs = _attributes(message, "server-first message")
    if pairs[0][0] == "m":
        # RFC 5802 5.1: a client that does not understand a mandatory extension must fail.
        raise SASLError("SCRAM: the server requires an extension we do not support (m=)")
    if len(pairs) < 3 or [key for key, _ in pairs[:3]] != ["r", "s", "i"]:
        raise SASLError(
            f"SCRAM: server-first message lacks r=, s=, i= in order: {show_server_text(message)}"
        )
    (_, nonce), (_, salt_b64), (_, iterations_text) = pairs[:3]
    # Anything after i= is an optional extension, which RFC 5802 5.1 says to ignore.
    if not _PRINTABLE.fullmatch(nonce) or not nonce.startswith(client_nonce):
        raise SASLError("SCRAM: the server nonce does not extend the client nonce (RFC 5802 5.1)")
    if len(nonce) == len(client_nonce):
        raise SASLError("SCRAM: the server added nothing to the nonce (RFC 5802 5.1)")
    salt = _b64decode(salt_b64, "the salt")
    if not salt:
        raise SASLError("SCRAM: the server sent an empty salt")
    if not _DIGITS.fullmatch(iterations_text):
        raise SASLError(
            f"SCRAM: the iteration count is not a number: {show_server_text(iterations_text)}"
        )
    iterations = int(iterations_text)
    if iterations < MIN_ITERATIONS:
        raise SASLError(
            f"SCRAM: iteration count {iterations} is below the minimum {MIN_ITERATIONS} "
            "(RFC 7677 4)"
        )
    if iterations > MAX_ITERATIONS:
        raise SASLError(f"SCRAM: iteration count {iterations} is above our limit {MAX_ITERATIONS}")
    return ServerFirst(nonce, salt, iterations)


def parse_server_final(message: bytes) -> bytes:
    """Return the ServerSignature from a server-final-message (RFC 5802 7).

    Raises `SASLError` carrying the server's ``e=`` value if it reported an error.
    """
    pairs = _attributes(message, "server-final message")
    key, value = pairs[0]
    if key == "e":
        raise SASLError(f"SCRAM: the server reported an error: {show_server_text(value)}")
    if key != "v":
        raise SASLError(f"SCRAM: malformed server-final message: {show_server_text(message)}")
    return _b64decode(value, "the server signature")


class _Scram(ClientFirstMechanism):
    """Shared SCRAM client; subclasses pick the hash and whether to bind the channel."""

    _hash: ClassVar[str]
    _plus: ClassVar[bool] = False

    def __init__(
        self,
        username: str,
        password: str,
        *,
        authzid: str | None = None,
        channel_binding: bytes | None = None,
        client_supports_binding: bool = False,
        _nonce: str | None = None,
    ) -> None:
        # RFC 5802 5.1: the user name is prepared as a query string; the password is the
        # input of Normalize() (2.2). Both treated as queries: a stored-string check here
        # could only turn a possible login into a certain failure.
        user = saslprep(username, what="SCRAM user name")
        if not user:
            raise SASLError("SCRAM: the user name is empty after SASLprep (RFC 5802 5.1)")
        self._password = saslprep(password, what="SCRAM password").encode("utf-8")
        if self._plus:
            if not channel_binding:
                raise SASLError(
                    f"{self.name} needs tls-server-end-point channel-binding data (RFC 5929 4)"
                )
            flag = "p=tls-server-end-point"
        else:
            flag = "y" if client_supports_binding else "n"
            channel_binding = b""
        authz = "a=" + _saslname(saslprep(authzid, what="SCRAM authzid")) if authzid else ""
        self._gs2_header = f"{flag},{authz},".encode()
        self._cbind_input = self._gs2_header + channel_binding
        if _nonce is None:
            # 18 random bytes -> 24 base64 characters, all "printable" in the RFC's sense.
            _nonce = base64.b64encode(secrets.token_bytes(18)).decode("ascii")
        elif not _PRINTABLE.fullmatch(_nonce):
            raise ValueError("a SCRAM nonce is printable ASCII without ',' (RFC 5802 7)")
        self._client_nonce = _nonce
        self._client_first_bare = f"n={_saslname(user)},r={_nonce}".encode()
        self._server_signature: bytes | None = None
        self._verified = False

    def _first_message(self) -> bytes:
        return self._gs2_header + self._client_first_bare

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()

    def _client_final(self, server_first_message: bytes) -> bytes:
        server_first = parse_server_first(server_first_message, self._client_nonce)
        salted = hashlib.pbkdf2_hmac(
            self._hash, self._password, server_first.salt, server_first.iterations
        )
        without_proof = (
            b"c=" + base64.b64encode(self._cbind_input) + b",r=" + server_first.nonce.encode()
        )
        auth_message = b",".join((self._client_first_bare, server_first_message, without_proof))
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        client_signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def respond(self, challenge: bytes) -> bytes:
        first = self._initial_for(challenge)
        if first is not None:
            return first
        if self._server_signature is None:
            return self._client_final(challenge)
        if self._verified:
            raise SASLError(
                f"{self.name}: unexpected challenge after the server-final message: "
                f"{show_server_text(challenge)}"
            )
        received = parse_server_final(challenge)
        # Constant-time: a timing oracle on the signature would help forge one.
        if not hmac.compare_digest(received, self._server_signature):
            raise SASLError(f"{self.name}: the server signature does not verify (RFC 5802 5.1)")
        self._verified = True
        return b""

    def success(self) -> None:
        if not self._verified:
            raise SASLError(
                f"{self.name}: the server reported success without a valid server signature "
                "(RFC 5802 5.1)"
            )


class ScramSHA1(_Scram):
    """SCRAM-SHA-1 (RFC 5802), without channel binding."""

    name = "SCRAM-SHA-1"
    _hash = "sha1"


class ScramSHA256(_Scram):
    """SCRAM-SHA-256 (RFC 7677), without channel binding."""

    name = "SCRAM-SHA-256"
    _hash = "sha256"


class ScramSHA1Plus(_Scram):
    """SCRAM-SHA-1-PLUS (RFC 5802 6) bound to the TLS certificate (tls-server-end-point,
    RFC 5929 4): a TLS-intercepting proxy cannot relay the exchange."""

    name = "SCRAM-SHA-1-PLUS"
    _hash = "sha1"
    _plus = True


class ScramSHA256Plus(_Scram):
    """SCRAM-SHA-256-PLUS (RFC 7677, RFC 5802 6) bound to the TLS certificate
    (tls-server-end-point, RFC 5929 4)."""

    name = "SCRAM-SHA-256-PLUS"
    _hash = "sha256"
    _plus = True


class ScramSHA512(_Scram):
    """SCRAM-SHA-512 (RFC 5802 with SHA-512, as registered with IANA for SASL), without
    channel binding; Cyrus SASL servers (e.g. Postfix) offer it."""

    name = "SCRAM-SHA-512"
    _hash = "sha512"


class ScramSHA512Plus(_Scram):
    """SCRAM-SHA-512-PLUS, bound to the TLS certificate (tls-server-end-point, RFC 5929 4)."""

    name = "SCRAM-SHA-512-PLUS"
    _hash = "sha512"
    _plus = True
