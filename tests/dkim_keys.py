"""Throwaway DKIM keys and an independent verifier (dkimpy's) for the tests that sign.

A plain module (conftest names collide between test folders); keys are made once per run
with ``cryptography`` (in the test extra through trustme), never read from the repository.
"""

from __future__ import annotations

import functools

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from smtpsubmit.dkim import DKIMSigner

__all__ = ["ed25519_pem", "rsa_pem", "signer", "verifies"]

DOMAIN = "example.com"
SELECTOR = "s2026"


@functools.cache
def rsa_pem(bits: int = 2048) -> bytes:
    """A PKCS#8 PEM RSA private key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@functools.cache
def ed25519_pem() -> bytes:
    """A PKCS#8 PEM Ed25519 private key (what ``openssl genpkey`` writes)."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def signer(algorithm: str = "rsa", **keywords: object) -> DKIMSigner:
    """A signer for ``example.com`` with a throwaway key of ``algorithm`` (rsa, ed25519)."""
    key = rsa_pem() if algorithm == "rsa" else ed25519_pem()
    options: dict[str, object] = {"domain": DOMAIN, "selector": SELECTOR, "private_key": key}
    options.update(keywords)
    return DKIMSigner(**options)  # type: ignore[arg-type]


def verifies(data: bytes, *signers: DKIMSigner) -> bool:
    """dkimpy's verdict on the topmost signature of ``data``, the signers' keys in "DNS"."""
    records = {f"{s.dns_name}.".encode(): s.dns_record().encode() for s in signers}

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return bool(dkim.verify(data, dnsfunc=lookup))
