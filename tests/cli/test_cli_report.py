"""The probe's rules, from hand-made facts: what the fake server cannot produce."""

from __future__ import annotations

import ssl
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import trustme

from smtpsubmit.cli._report import (
    JSON_SCHEMA,
    PortFacts,
    TLSFacts,
    assess,
    render_text,
    to_json,
)
from smtpsubmit.cli._x509 import CertificateSummary, hostname_matches, parse_certificate

from .helpers import schema_errors

NOW = datetime(2030, 6, 1, tzinfo=timezone.utc)
CERT = CertificateSummary(
    subject="CN=mail.example.com",
    issuer="O=Example CA, CN=Example CA R1",
    common_name="mail.example.com",
    dns_names=("mail.example.com",),
    ip_addresses=(),
    not_before=NOW - timedelta(days=80),
    not_after=NOW + timedelta(days=10, hours=3),
    sha256="00" * 32,
)
#: The same certificate, far from expiry: isolates the finding under test.
FRESH = replace(CERT, not_after=NOW + timedelta(days=90))
CAPS = ["PIPELINING", "SIZE 35882577", "AUTH PLAIN LOGIN"]


def facts(**changes: object) -> PortFacts:
    """A healthy port 465 unless told otherwise."""
    base = PortFacts(
        "mail.example.com",
        465,
        "implicit",
        address="192.0.2.1",
        reachable=True,
        connect_ms=12.0,
        tls_ms=30.0,
        greeting_ms=5.0,
        greeting="220 mail.example.com ESMTP",
        ehlo_after_tls=CAPS,
        auth_after_tls=["LOGIN", "PLAIN"],
        tls=TLSFacts("TLSv1.3", "TLS_AES_256_GCM_SHA384", certificate=CERT),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def findings(port: PortFacts, **kwargs: int) -> dict[str, tuple[str, str]]:
    report = assess(port, now=NOW, **kwargs)
    return {f.code: (f.severity, f.message) for f in report.findings}


def test_a_healthy_port_is_ok() -> None:
    report = assess(facts(), now=NOW, expiry_warning_days=5)
    assert report.verdict == "ok"
    assert report.certificate_days_left == 10
    assert [f.code for f in report.findings] == ["ok"]


def test_certificate_expiring_soon_is_a_warning_with_the_day_count() -> None:
    assert findings(facts()) == {
        "certificate-expiring": ("warning", "certificate expires in 10 days (2030-06-11)")
    }


def test_expired_and_not_yet_valid_certificates_are_errors() -> None:
    expired = replace(CERT, not_after=NOW - timedelta(days=3))
    found = findings(
        facts(
            tls=TLSFacts(
                "TLSv1.3",
                "X",
                verified=False,
                verify_code=10,
                verify_error="certificate has expired",
                certificate=expired,
            )
        )
    )
    assert found == {
        "certificate-expired": ("error", "certificate expired on 2030-05-29 (3 days ago)")
    }
    future = replace(CERT, not_before=NOW + timedelta(days=1))
    assert set(findings(facts(tls=TLSFacts("TLSv1.3", "X", certificate=future)))) == {
        "certificate-not-yet-valid"
    }


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1.1", "SSLv3"])
def test_tls_below_1_2_is_an_error(version: str) -> None:
    tls = TLSFacts(
        version, "ECDHE-RSA-AES128-SHA", verified=None, policy_error="x", certificate=FRESH
    )
    severity, message = findings(facts(tls=tls))["tls-version-obsolete"]
    assert severity == "error"
    assert message.startswith(f"{version} negotiated: TLS 1.0/1.1")


def test_a_handshake_that_needs_legacy_settings_is_an_error() -> None:
    tls = TLSFacts(
        "TLSv1.2", "RC4-SHA", verified=None, policy_error="no shared cipher", certificate=FRESH
    )
    assert set(findings(facts(tls=tls))) == {"tls-handshake-failed"}


def test_self_signed_and_wrong_host_report_both() -> None:
    cert = replace(CERT, issuer=CERT.subject, not_after=NOW + timedelta(days=90))
    tls = TLSFacts(
        "TLSv1.3",
        "X",
        verified=False,
        verify_code=18,
        verify_error="self-signed certificate",
        certificate=cert,
    )
    found = findings(facts(host="smtp.example.net", tls=tls))
    assert found["certificate-hostname-mismatch"][1].startswith(
        "certificate is for mail.example.com, not smtp.example.net"
    )
    assert "(self-signed): self-signed certificate" in found["certificate-untrusted"][1]


def test_port_25_is_judged_as_a_relay() -> None:
    relay = facts(
        port=25,
        mode="starttls",
        tls=None,
        ehlo_after_tls=None,
        auth_after_tls=[],
        ehlo_before_tls=["PIPELINING", "8BITMIME"],
    )
    assert findings(relay) == {
        "starttls-missing": (
            "warning",
            "port 25 does not offer STARTTLS; relays will deliver in cleartext (RFC 3207)",
        )
    }
    submission = replace(relay, port=587)
    assert findings(submission)["starttls-missing"][0] == "error"


def test_auth_before_tls_mentions_cleartext_passwords_and_missing_auth_after() -> None:
    port = facts(
        port=587,
        mode="starttls",
        ehlo_before_tls=["STARTTLS", "AUTH PLAIN"],
        auth_before_tls=["PLAIN"],
        auth_after_tls=[],
        tls=TLSFacts("TLSv1.3", "X", certificate=FRESH),
    )
    found = findings(port)
    assert found["auth-before-tls"][0] == "warning"
    assert "including cleartext passwords" in found["auth-before-tls"][1]
    assert found["auth-not-offered"][0] == "warning"


def test_unreadable_certificate_is_a_warning() -> None:
    tls = TLSFacts("TLSv1.3", "X", certificate=None, certificate_error="unreadable: junk")
    assert findings(facts(tls=tls)) == {"certificate-unreadable": ("warning", "unreadable: junk")}


def test_json_and_text_render_every_field() -> None:
    reports = [
        assess(facts(), now=NOW),
        assess(
            facts(
                port=587,
                mode="starttls",
                ehlo_before_tls=["STARTTLS"],
                failure=("timeout", "EHLO timed out after 10 s"),
            ),
            now=NOW,
        ),
        assess(
            PortFacts("mail.example.com", 25, "starttls", failure=("unreachable", "refused")),
            now=NOW,
        ),
    ]
    document = to_json("mail.example.com", reports)
    assert schema_errors(document, JSON_SCHEMA) == []
    assert document["ok"] is False
    assert [p["verdict"] for p in document["ports"]] == ["warning", "error", "error"]
    assert document["ports"][0]["tls"]["certificate"]["days_left"] == 10
    text = render_text("mail.example.com", reports)
    assert "timing           connect 12.0 ms, TLS 30.0 ms, greeting 5.0 ms" in text
    assert "valid until      2030-06-11 03:00 UTC (10 days left)" in text
    assert "ERROR    timeout: EHLO timed out after 10 s" in text
    assert text.endswith("verdict: problems on port 587, 25")


def test_schema_checker_rejects_what_it_should() -> None:
    document = to_json("h", [assess(facts(), now=NOW)])
    document["ports"][0]["verdict"] = "fine"
    document["ports"][0]["extra"] = 1
    del document["host"]
    assert len(schema_errors(document, JSON_SCHEMA)) == 3


# -- the X.509 reader ------------------------------------------------------------------


def _der(cert: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def test_x509_reader_gets_names_issuer_and_dates() -> None:
    ca = trustme.CA(organization_name="Test CA")
    leaf = ca.issue_cert(
        "mail.example.com",
        "*.example.org",
        "192.0.2.7",
        "2001:db8::1",
        common_name="mail.example.com",
    )
    summary = parse_certificate(_der(leaf))
    assert summary.dns_names == ("mail.example.com", "*.example.org")
    assert summary.ip_addresses == ("192.0.2.7", "2001:db8::1")
    assert summary.common_name == "mail.example.com"
    assert "CN=mail.example.com" in summary.subject
    assert summary.issuer.startswith("O=Test CA")
    assert summary.not_before.year == 2000
    assert summary.not_after.year == 3000
    assert not summary.self_signed
    for host, expected in [
        ("MAIL.example.com.", True),
        ("a.example.org", True),
        ("a.b.example.org", False),
        ("example.org", False),
        ("192.0.2.7", True),
        ("[2001:db8::1]", True),
        ("192.0.2.8", False),
        ("other.example.com", False),
    ]:
        assert hostname_matches(host, summary) is expected, host


def test_x509_reader_falls_back_to_the_common_name_without_sans() -> None:
    summary = replace(CERT, dns_names=(), common_name="legacy.example")
    assert summary.names == ("legacy.example",)
    assert hostname_matches("legacy.example", summary)


@pytest.mark.parametrize("junk", [b"", b"\x30\x82\xff\xff", b"\x04\x01x", b"\x30\x03\x02\x01"])
def test_x509_reader_rejects_junk_with_value_error(junk: bytes) -> None:
    with pytest.raises(ValueError, match=r"certificate|DER|expected"):
        parse_certificate(junk)


def test_x509_reader_reads_every_certifi_root() -> None:
    import certifi

    with open(certifi.where(), encoding="ascii") as bundle:
        text = bundle.read()
    pems = [p + "-----END CERTIFICATE-----\n" for p in text.split("-----END CERTIFICATE-----")]
    roots = [
        parse_certificate(ssl.PEM_cert_to_DER_cert(p[p.index("-----BEGIN") :]))
        for p in pems
        if "-----BEGIN" in p
    ]
    assert len(roots) > 50
    assert sum(r.self_signed for r in roots) > 50


def test_every_finding_code_is_documented_in_help() -> None:
    import inspect
    import re

    from smtpsubmit.cli import _probe, _report

    source = inspect.getsource(_probe) + inspect.getsource(_report)
    used = set(re.findall(r'(?:_Stop\(|add\(\s*"\w+",|failure = \()\s*"([a-z0-9-]+)"', source))
    epilog = _probe._EPILOG.split("Findings (severity, code):")[1].split("--json")[0]
    documented = set(re.findall(r"[a-z][a-z0-9-]*[a-z0-9]", epilog))
    assert len(used) >= 18
    assert used <= documented
