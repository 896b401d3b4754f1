"""tls_server_end_point (RFC 5929 4.1): the hash follows the certificate's signature."""

from __future__ import annotations

import datetime
import hashlib

import pytest

from smtpsubmit.auth import tls_server_end_point

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: E402


def _certificate(key: object, algorithm: object, **sign_kwargs: object) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "smtp.example.com")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    cert = builder.sign(key, algorithm, **sign_kwargs)
    return bytes(cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def rsa_key() -> object:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (hashes.SHA256(), "sha256"),
        (hashes.SHA384(), "sha384"),
        (hashes.SHA512(), "sha512"),
    ],
)
def test_rsa_certificates(rsa_key: object, algorithm: object, expected: str) -> None:
    der = _certificate(rsa_key, algorithm)
    assert tls_server_end_point(der) == hashlib.new(expected, der).digest()


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


@pytest.mark.parametrize(
    "oid",
    [
        b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x04",  # md5WithRSAEncryption
        b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05",  # sha1WithRSAEncryption
        b"\x2a\x86\x48\xce\x3d\x04\x01",  # ecdsa-with-SHA1
    ],
)
def test_md5_and_sha1_signatures_upgrade_to_sha256(oid: bytes) -> None:
    # Built by hand: current OpenSSL builds refuse to sign with these.
    algorithm = _der(0x30, _der(0x06, oid) + b"\x05\x00")
    der = _der(0x30, _der(0x30, b"\x00" * 200) + algorithm + _der(0x03, b"\x00" * 65))
    assert tls_server_end_point(der) == hashlib.sha256(der).digest()


def test_unknown_signature_algorithm_has_no_binding() -> None:
    algorithm = _der(0x30, _der(0x06, b"\x2b\x06\x01\x04\x01"))
    der = _der(0x30, _der(0x30, b"") + algorithm + _der(0x03, b"\x00"))
    assert tls_server_end_point(der) is None


def test_rsa_pss_certificate_uses_the_parameter_hash(rsa_key: object) -> None:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
    der = _certificate(rsa_key, hashes.SHA384(), rsa_padding=pss)
    assert tls_server_end_point(der) == hashlib.sha384(der).digest()


def test_ecdsa_certificate() -> None:
    der = _certificate(ec.generate_private_key(ec.SECP384R1()), hashes.SHA384())
    assert tls_server_end_point(der) == hashlib.sha384(der).digest()


def test_ed25519_certificate_has_no_binding() -> None:
    assert tls_server_end_point(_certificate(ed25519.Ed25519PrivateKey.generate(), None)) is None


@pytest.mark.parametrize("junk", [b"", b"\x30", b"\x30\x85\x00\x00\x00\x00\x01", b"\x04\x00"])
def test_not_a_certificate_raises_value_error(junk: bytes) -> None:
    with pytest.raises(ValueError, match="DER"):
        tls_server_end_point(junk)
