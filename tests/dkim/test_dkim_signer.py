"""DKIMSigner: keys in every usual form, checked when made, never shown; records that verify."""

from __future__ import annotations

import base64
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim_keys import DOMAIN, SELECTOR, ed25519_pem, rsa_pem, signer, verifies

import smtpsubmit
from smtpsubmit.dkim import DKIMSigner, Signer

MESSAGE = (
    b"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hi\r\n"
    b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nHello  there \r\n\r\n\r\n"
)


def public_spki(pem: bytes) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_rsa_record_is_the_subject_public_key_info_openssl_would_publish() -> None:
    dkim_signer = signer("rsa")
    assert dkim_signer.algorithm == "rsa-sha256"
    assert dkim_signer.dns_name == f"{SELECTOR}._domainkey.{DOMAIN}"
    assert dkim_signer.dns_record() == f"v=DKIM1; k=rsa; p={public_spki(rsa_pem())}"


def test_ed25519_record_is_the_raw_public_key() -> None:
    dkim_signer = signer("ed25519")
    key = serialization.load_pem_private_key(ed25519_pem(), password=None)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert dkim_signer.algorithm == "ed25519-sha256"
    assert dkim_signer.dns_record() == f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def rsa_pkcs1(bits: int = 2048) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _prime(bits: int) -> int:
    """A random prime of ``bits`` bits (Miller-Rabin, 32 rounds)."""
    while True:
        n = secrets.randbits(bits) | (3 << (bits - 2)) | 1  # top bits set: p * q has 2 * bits
        d, r = n - 1, 0
        while d % 2 == 0:
            d, r = d // 2, r + 1
        for _ in range(32):
            x = pow(secrets.randbelow(n - 3) + 2, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                break
        else:
            return n


def weak_rsa_pkcs1(bits: int = 512) -> bytes:
    """An RSA key too short for DKIM (cryptography will not generate one: built by hand)."""
    e = 65537
    while True:
        p, q = _prime(bits // 2), _prime(bits // 2)
        if p != q and (p - 1) % e and (q - 1) % e:
            break
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p,
        q,
        d,
        rsa.rsa_crt_dmp1(d, p),
        rsa.rsa_crt_dmq1(d, q),
        rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def ed25519_seed() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    "form",
    ["rsa-pkcs8", "rsa-pkcs1", "rsa-pkcs1-crlf-str", "ed25519-pkcs8", "ed25519-seed-base64"],
)
def test_every_usual_key_form_signs_a_message_that_verifies(form: str) -> None:
    key: bytes | str
    if form == "rsa-pkcs8":
        key = rsa_pem()
    elif form == "rsa-pkcs1":
        key = rsa_pkcs1()
    elif form == "rsa-pkcs1-crlf-str":
        key = rsa_pkcs1().decode().replace("\n", "\r\n")
    elif form == "ed25519-pkcs8":
        key = ed25519_pem()
    else:
        key = base64.b64encode(ed25519_seed())  # dkimpy's and OpenDKIM's own format
    dkim_signer = DKIMSigner(domain=DOMAIN, selector=SELECTOR, private_key=key)
    field = dkim_signer.sign(MESSAGE)
    assert field.startswith(b"DKIM-Signature: v=1; a=" + dkim_signer.algorithm.encode())
    assert field.endswith(b"\r\n")
    assert all(len(line) <= 998 for line in field.split(b"\r\n"))
    assert verifies(field + MESSAGE, dkim_signer)
    assert not verifies(field + MESSAGE.replace(b"Hello", b"Hallo"), dkim_signer)


def test_relaxed_canonicalisation_is_the_default_and_survives_white_space_changes() -> None:
    dkim_signer = signer()
    field = dkim_signer.sign(MESSAGE)
    assert b"c=relaxed/relaxed" in field
    rewrapped = MESSAGE.replace(b"Subject: hi", b"Subject:   hi").replace(
        b"there \r\n", b"there\r\n"
    )
    assert verifies(field + rewrapped, dkim_signer)
    simple = signer(canonicalization=("simple", "simple"))
    assert not verifies(simple.sign(MESSAGE) + rewrapped, simple)


def test_headers_identity_and_oversigning() -> None:
    dkim_signer = signer(headers=["From", "Subject", "Reply-To"], identity="alice@mail.example.com")
    field = dkim_signer.sign(MESSAGE)
    unfolded = field.replace(b"\r\n ", b" ").decode()
    assert "h=from : subject : reply-to;" in unfolded
    assert "i=alice@mail.example.com;" in unfolded
    assert verifies(field + MESSAGE, dkim_signer)
    # Reply-To was signed absent: adding one breaks the signature.
    assert not verifies(field + b"Reply-To: evil@example.net\r\n" + MESSAGE, dkim_signer)
    default = signer().sign(MESSAGE).replace(b"\r\n ", b" ")
    assert b"h=from : to : subject : date : from;" in default  # From once more than present


def test_an_internationalised_domain_is_signed_with_its_a_labels() -> None:
    dkim_signer = signer(domain="bücher.example", identity="info@bücher.example")
    assert dkim_signer.domain == "xn--bcher-kva.example"
    assert dkim_signer.identity == "info@xn--bcher-kva.example"
    message = MESSAGE.replace(b"alice@example.com", b"alice@xn--bcher-kva.example")
    assert verifies(dkim_signer.sign(message) + message, dkim_signer)


TRUNCATED = b"-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkq\n-----END PRIVATE KEY-----"
BAD_KEYWORDS: dict[str, tuple[dict[str, object], str, str]] = {
    "garbage-key": ({"private_key": b"not a key"}, "private_key", "neither a PEM"),
    "public-key": (
        {"private_key": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
        "private_key",
        "PUBLIC KEY, not an RSA or Ed25519 private key",
    ),
    "broken-pem": (
        {"private_key": TRUNCATED},
        "private_key",
        "cannot be read",
    ),
    "short-rsa": ({"private_key": None}, "private_key", "512-bit RSA key"),
    "key-type": ({"private_key": 42}, "private_key", "bytes or str"),
    "selector": ({"selector": "bad selector"}, "selector", "DNS label"),
    "domain": ({"domain": ""}, "domain", "signing domain"),
    "identity": ({"identity": "alice@example.org"}, "identity", "address at example.com"),
    "identity-lookalike": ({"identity": "a@notexample.com"}, "identity", "subdomain"),
    "headers-without-from": ({"headers": ["To", "Subject"]}, "headers", "include From"),
    "headers-received": ({"headers": ["From", "Received"]}, "headers", "received"),
    "canonicalization": (
        {"canonicalization": ("relaxed", "loose")},
        "canonicalization",
        "'simple'",
    ),
}


@pytest.mark.parametrize("name", list(BAD_KEYWORDS))
def test_a_bad_keyword_is_refused_when_the_signer_is_made_naming_it(name: str) -> None:
    keywords, argument, complaint = BAD_KEYWORDS[name]
    if keywords.get("private_key", "") is None:
        keywords = {"private_key": weak_rsa_pkcs1(512)}
    with pytest.raises(smtpsubmit.ArgumentError, match=complaint) as caught:
        signer(**keywords)
    assert caught.value.arguments == (argument,)


def test_no_error_about_a_key_shows_any_of_it() -> None:
    lines = rsa_pkcs1(2048).splitlines(keepends=True)
    damaged = b"".join(lines[:5] + lines[6:])  # a line of the DER gone: lengths disagree
    with pytest.raises(smtpsubmit.ArgumentError) as caught:
        DKIMSigner(domain=DOMAIN, selector=SELECTOR, private_key=damaged)
    text = str(caught.value)
    assert not any(chunk.decode() in text for chunk in damaged.splitlines()[1:-1])
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_signers_compare_by_settings_and_key() -> None:
    assert signer() == signer()
    assert signer() != signer(selector="other")
    assert signer("rsa") != signer("ed25519")
    assert signer() != DKIMSigner(domain=DOMAIN, selector=SELECTOR, private_key=rsa_pkcs1())
    assert isinstance(signer(), Signer)
