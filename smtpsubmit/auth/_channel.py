"""tls-server-end-point channel binding (RFC 5929 4): the hash of the server certificate.

The hash function follows the certificate's signature algorithm (RFC 5929 4.1): MD5 and
SHA-1 are upgraded to SHA-256, any other single hash is used as is, and algorithms without
exactly one hash (Ed25519, Ed448) have no binding defined. Finding the algorithm needs a few
DER reads, done here by hand so the sans-I/O core stays stdlib-only.
"""

from __future__ import annotations

import hashlib

# The hash named by each signature-algorithm OID, after RFC 5929 4.1's MD5/SHA-1 upgrade.
_SIGNATURE_HASH = {
    "1.2.840.113549.1.1.4": "sha256",  # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": "sha256",  # sha1WithRSAEncryption
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.10045.4.1": "sha256",  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.10040.4.3": "sha256",  # dsa-with-sha1
    "2.16.840.1.101.3.4.3.1": "sha224",  # dsa-with-sha224
    "2.16.840.1.101.3.4.3.2": "sha256",  # dsa-with-sha256
}
_RSASSA_PSS = "1.2.840.113549.1.1.10"
# Hash-algorithm OIDs, for RSASSA-PSS parameters (RFC 4055 3.1).
_HASH = {
    "1.3.14.3.2.26": "sha256",  # sha1, upgraded
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}

_SEQUENCE = 0x30
_OID = 0x06
_CONTEXT_0 = 0xA0


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER element at ``pos``: (tag, content, position after it)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER element")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER element")
    return tag, data[pos : pos + length], pos + length


def _expect(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    found, content, end = _read(data, pos)
    if found != tag:
        raise ValueError(f"expected DER tag {tag:#x}, found {found:#x}")
    return content, end


def _oid(content: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, (first, arcs[0] - 40 * first, *arcs[1:])))


def _pss_hash(params: bytes) -> str | None:
    """The hash of RSASSA-PSS-params (RFC 4055 3.1); absent means SHA-1."""
    if not params:
        return _HASH["1.3.14.3.2.26"]
    tag, content, _ = _read(params, 0)
    if tag != _CONTEXT_0:
        return _HASH["1.3.14.3.2.26"]
    algorithm, _ = _expect(content, 0, _SEQUENCE)
    oid, _ = _expect(algorithm, 0, _OID)
    return _HASH.get(_oid(oid))


def tls_server_end_point(certificate: bytes) -> bytes | None:
    """The tls-server-end-point channel-binding data (RFC 5929 4.1) for a DER certificate,
    as from ``ssl.SSLObject.getpeercert(binary_form=True)``.

    Returns None when RFC 5929 leaves the binding undefined for the certificate's signature
    algorithm (e.g. Ed25519) or the algorithm is unknown. Raises ValueError if the bytes are
    not a DER certificate.
    """
    # Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    cert, _ = _expect(certificate, 0, _SEQUENCE)
    _, _, pos = _read(cert, 0)  # tbsCertificate
    algorithm, _ = _expect(cert, pos, _SEQUENCE)
    oid_content, params_pos = _expect(algorithm, 0, _OID)
    oid = _oid(oid_content)
    if oid == _RSASSA_PSS:
        params = (
            _expect(algorithm, params_pos, _SEQUENCE)[0] if params_pos < len(algorithm) else b""
        )
        name = _pss_hash(params)
    else:
        name = _SIGNATURE_HASH.get(oid)
    return None if name is None else hashlib.new(name, certificate).digest()
