"""DKIM signatures (RFC 6376) on the exact octets smtpsubmit sends: ``signer=DKIMSigner(...)``.

Theory of operation:

- The client calls a :class:`Signer` once per attempt, after the message was serialised
  for the server it is about to go to (Bcc stripped, CRLF line ends, 7-bit re-encoding for
  a server without 8BITMIME), and puts the returned ``DKIM-Signature`` field on top: the
  signature covers the octets on the wire (see :mod:`smtpsubmit._signing`). Signing the
  message yourself before ``send`` breaks when the library has to re-encode it.
- :class:`DKIMSigner` signs with dkimpy (the ``smtpsubmit[dkim]`` extra; Ed25519 also
  needs PyNaCl, which the extra brings): RSA-SHA256 (RFC 6376, keys of 1024 bits or more,
  RFC 8301) or Ed25519-SHA256 (RFC 8463). dkimpy is imported when a signer is made, never
  by ``import smtpsubmit`` or by this module.
- The key is checked when the signer is made (an :class:`ArgumentError` naming
  ``private_key``, before any I/O) and never shown: not in a repr, an error or a log.
- Cost: RSA-2048 in dkimpy is pure Python, about 20 ms of CPU per message on the event
  loop; Ed25519 (libsodium) is a fraction of a millisecond. The message is held in memory
  twice while it is signed.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Sequence
from typing import Any, Literal

import idna

from ._errors import ArgumentError, ArgumentTypeError, MessageError
from ._signing import Signer

__all__ = ["Algorithm", "DKIMSigner", "Signer"]

#: The signing algorithms (RFC 6376 3.3, RFC 8463 3).
Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

#: DER prefix of a PKCS#8 Ed25519 private key (RFC 8410 7); the 32-octet seed follows.
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
#: DER of the rsaEncryption AlgorithmIdentifier (RFC 8017 A.1), for the public key record.
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", re.DOTALL)
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9_-]+)*")
_CANONICAL = ("simple", "relaxed")
_NEVER_SIGNED = ("return-path", "received", "comments", "keywords", "bcc", "resent-bcc")


def _dkimpy() -> Any:
    """The ``dkim`` module of dkimpy (imported here only: the extra is optional)."""
    try:
        import dkim
        import dkim.crypto
    except ImportError as exc:
        raise ImportError(
            "DKIMSigner needs dkimpy: pip install 'smtpsubmit[dkim]'", name=exc.name
        ) from exc
    return dkim


def _nacl_signing() -> Any:
    try:
        import nacl.signing
    except ImportError as exc:
        raise ImportError(
            "Ed25519 DKIM signatures need PyNaCl: pip install 'smtpsubmit[dkim]'", name=exc.name
        ) from exc
    return nacl.signing


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _bad_key(why: str) -> ArgumentError:
    """What is wrong with the key, never what it holds."""
    return ArgumentError(f"{{private_key}} {why}", "private_key")


def _load_key(private_key: bytes | str) -> tuple[Algorithm, bytes]:
    """The algorithm a key is for and the key as dkimpy takes it (PEM for RSA, the base64
    seed for Ed25519). Errors say what is wrong, never what the key holds."""
    if isinstance(private_key, str):
        private_key = private_key.encode("ascii", "replace")
    if not isinstance(private_key, bytes | bytearray):
        raise ArgumentTypeError(
            f"{{private_key}} must be bytes or str, not {type(private_key).__name__}",
            "private_key",
        )
    data = bytes(private_key).replace(b"\r\n", b"\n").strip()
    pem = _PEM.search(data)
    if pem is None:  # the raw base64 seed dkimpy and OpenDKIM use for Ed25519
        try:
            seed = base64.b64decode(b"".join(data.split()), validate=True)
        except ValueError:
            seed = b""
        if len(seed) != 32:
            raise _bad_key(
                "is neither a PEM private key (RSA or Ed25519) nor the base64 of a "
                "32-octet Ed25519 seed"
            )
        return "ed25519-sha256", base64.b64encode(seed)
    kind = pem.group(1).decode("ascii")
    try:
        der = base64.b64decode(b"".join(pem.group(2).split()), validate=True)
    except ValueError:
        raise _bad_key(f"holds a {kind} block that is not valid base64") from None
    if kind == "PRIVATE KEY" and der.startswith(_ED25519_PKCS8) and len(der) == 48:
        return "ed25519-sha256", base64.b64encode(der[16:])
    if kind not in ("RSA PRIVATE KEY", "PRIVATE KEY"):
        raise _bad_key(f"is a {kind}, not an RSA or Ed25519 private key")
    pem_text = b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        kind.encode(),
        base64.encodebytes(der).strip(),
        kind.encode(),
    )
    dkim = _dkimpy()
    try:
        parsed = dkim.crypto.parse_pem_private_key(pem_text)
    except Exception:  # dkimpy's parse errors quote the octets: never shown
        raise _bad_key("cannot be read as an RSA or Ed25519 private key") from None
    bits = parsed["modulus"].bit_length()
    if bits < 1024:
        raise _bad_key(f"is a {bits}-bit RSA key; DKIM needs 1024 bits or more (RFC 8301)")
    return "rsa-sha256", pem_text


def _domain(domain: object) -> str:
    if not isinstance(domain, str) or not domain:
        raise ArgumentTypeError(
            f"{{domain}} must be the signing domain (a non-empty str), not {domain!r}", "domain"
        )
    try:
        return idna.encode(domain.rstrip("."), uts46=True).decode("ascii")  # DNS name: A-labels
    except idna.IDNAError as exc:
        raise ArgumentError(
            f"{{domain}} {domain!r} is not a valid domain: {exc}", "domain"
        ) from None


class DKIMSigner:
    """Signs each message with one DKIM signature (RFC 6376): ``signer=DKIMSigner(...)``.

    ``domain`` and ``selector`` say where verifiers find the public key
    (``selector._domainkey.domain``, see :attr:`dns_name` and :meth:`dns_record`).
    ``private_key`` is a PEM RSA key (PKCS#1 or PKCS#8, 1024 bits or more) or Ed25519 key
    (PKCS#8, as ``openssl genpkey -algorithm ed25519`` writes it), or the base64 Ed25519
    seed that dkimpy and OpenDKIM use; ``algorithm`` is taken from the key. ``identity``
    is the ``i=`` tag (an address or ``@domain`` at or under ``domain``). ``headers`` are
    the header fields to sign; by default those of RFC 6376 5.4.1 that the message has,
    with ``From`` signed once more than it occurs so none can be added. ``canonicalization``
    is ``(header, body)``: ``"relaxed"`` (the default for both) survives the white space
    changes servers make, ``"simple"`` does not.

    Requires the ``smtpsubmit[dkim]`` extra (dkimpy; PyNaCl for Ed25519).
    """

    def __init__(
        self,
        *,
        domain: str,
        selector: str,
        private_key: bytes | str,
        identity: str | None = None,
        headers: Sequence[str] | None = None,
        canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
    ) -> None:
        self._dkim = _dkimpy()
        self.domain = _domain(domain)
        if not isinstance(selector, str) or not _SELECTOR.fullmatch(selector):
            raise ArgumentError(
                f"{{selector}} must be a DNS label (letters, digits, - and _), not {selector!r}",
                "selector",
            )
        self.selector = selector
        algorithm, self.__key = _load_key(private_key)
        if algorithm == "ed25519-sha256":
            _nacl_signing()  # fail now, not at the first message
        self.algorithm: Algorithm = algorithm
        self.identity = None if identity is None else self._identity(identity)
        if isinstance(headers, str):
            headers = [headers]  # one name, not its letters
        if headers is not None:
            names = [h.lower() for h in headers if isinstance(h, str)]
            if len(names) != len(headers) or "from" not in names:
                raise ArgumentError(
                    "{headers} must be header field names (str) and include From (RFC 6376 5.4)",
                    "headers",
                )
            never = sorted(set(names) & set(_NEVER_SIGNED))
            if never:
                raise ArgumentError(
                    f"{{headers}} names fields that change in transit: {', '.join(never)}",
                    "headers",
                )
            headers = tuple(headers)
        self.headers: tuple[str, ...] | None = headers
        if (
            not isinstance(canonicalization, tuple)
            or len(canonicalization) != 2
            or any(c not in _CANONICAL for c in canonicalization)
        ):
            raise ArgumentError(
                "{canonicalization} must be (header, body), each 'relaxed' or 'simple', "
                f"not {canonicalization!r}",
                "canonicalization",
            )
        self.canonicalization = canonicalization

    def _identity(self, identity: object) -> str:
        """The ``i=`` tag: an address (or ``@``) at the domain or under it, with A-labels."""
        local, at, domain = identity.rpartition("@") if isinstance(identity, str) else ("", "", "")
        if at:
            try:
                domain = _domain(domain)
            except ArgumentError:
                domain = ""
            if domain == self.domain or domain.endswith("." + self.domain):
                return f"{local}@{domain}"
        raise ArgumentError(
            f"{{identity}} must be an address at {self.domain} or a subdomain of it "
            f"(RFC 6376 3.5 i=), not {identity!r}",
            "identity",
        )

    def __repr__(self) -> str:
        return (
            f"DKIMSigner(domain={self.domain!r}, selector={self.selector!r}, "
            f"algorithm={self.algorithm!r}, private_key='********')"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DKIMSigner):
            return NotImplemented
        return self._settings() == other._settings() and hmac.compare_digest(
            self.__key, other.__key
        )

    def _settings(self) -> tuple[object, ...]:
        return (
            self.domain,
            self.selector,
            self.algorithm,
            self.identity,
            self.headers,
            self.canonicalization,
        )

    @property
    def dns_name(self) -> str:
        """Where verifiers look the public key up: ``selector._domainkey.domain``."""
        return f"{self.selector}._domainkey.{self.domain}"

    def dns_record(self) -> str:
        """The TXT record to publish at :attr:`dns_name` (RFC 6376 3.6.1, RFC 8463 4)."""
        if self.algorithm == "ed25519-sha256":
            signing_key = _nacl_signing().SigningKey(base64.b64decode(self.__key))
            public = bytes(signing_key.verify_key)
            return f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
        parsed = self._dkim.crypto.parse_pem_private_key(self.__key)
        rsa_public = _der(0x30, _der_int(parsed["modulus"]) + _der_int(parsed["publicExponent"]))
        info = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\0" + rsa_public))
        return f"v=DKIM1; k=rsa; p={base64.b64encode(info).decode()}"

    def sign(self, message: bytes) -> bytes:
        """The ``DKIM-Signature`` header field for ``message`` (CRLF line ends), folded.

        Raises :class:`MessageError` when the message cannot be signed (no From field).
        """
        dkim = self._dkim
        try:
            return bytes(
                dkim.sign(
                    message,
                    self.selector.encode("ascii"),
                    self.domain.encode("ascii"),
                    self.__key,
                    identity=self.identity.encode("utf-8") if self.identity else None,
                    canonicalize=tuple(c.encode("ascii") for c in self.canonicalization),
                    signature_algorithm=self.algorithm.encode("ascii"),
                    include_headers=[h.encode("ascii") for h in self.headers]
                    if self.headers is not None
                    else None,
                    linesep=b"\r\n",
                )
            )
        except dkim.DKIMException as exc:
            raise MessageError(f"DKIM signing failed: {exc}") from None


# A DKIMSigner is a Signer (checked by mypy here, once).
_: type[Signer] = DKIMSigner
