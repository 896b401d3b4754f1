"""RFC 5929 4.1 ``tls-server-end-point`` channel binding, for SCRAM-*-PLUS.

The binding is a hash of the server's DER certificate, with the hash function of the
certificate's signature algorithm, except that MD5 and SHA-1 become SHA-256. The stdlib
cannot tell the signature algorithm, so we read it from the DER ourselves: Certificate ::=
SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signature }.
"""

from __future__ import annotations

import hashlib

__all__ = ["tls_server_end_point"]

# Signature algorithm OID (dotted) -> hash name; anything unknown (Ed25519, RSASSA-PSS
# without parsing its parameters) falls back to SHA-256, as for MD5/SHA-1.
_HASH_BY_OID = {
    "1.2.840.113549.1.1.12": "sha384",  # sha384WithRSAEncryption
    "1.2.840.113549.1.1.13": "sha512",  # sha512WithRSAEncryption
    "1.2.840.10045.4.3.3": "sha384",  # ecdsa-with-SHA384
    "1.2.840.10045.4.3.4": "sha512",  # ecdsa-with-SHA512
}


def _read_tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """Return (tag, start of value, end of value) of the element at ``pos``."""
    tag = der[pos]
    length = der[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _decode_oid(raw: bytes) -> str:
    first, rest = divmod(raw[0], 40) if raw[0] < 80 else (2, raw[0] - 80)
    parts = [first, rest]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def signature_hash_name(der: bytes) -> str:
    """The hash RFC 5929 4.1 prescribes for this certificate."""
    try:
        _, cert_start, _ = _read_tlv(der, 0)
        _, _, tbs_end = _read_tlv(der, cert_start)
        _, alg_start, _ = _read_tlv(der, tbs_end)
        tag, oid_start, oid_end = _read_tlv(der, alg_start)
    except (IndexError, ValueError):
        return "sha256"
    if tag != 0x06:
        return "sha256"
    return _HASH_BY_OID.get(_decode_oid(der[oid_start:oid_end]), "sha256")


def tls_server_end_point(der: bytes) -> bytes:
    """The ``tls-server-end-point`` channel binding data for a DER certificate."""
    return hashlib.new(signature_hash_name(der), der).digest()
