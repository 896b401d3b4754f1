"""What ``probe`` found on each port, and what it means: facts in, findings out.

Theory of operation:

- The probe's network code (:mod:`._probe`) only records *facts* in a :class:`PortFacts`:
  timings, greeting, EHLO lines before and after TLS, the TLS session, the certificate, and
  the step that stopped the dialogue, if one did.
- :func:`assess` turns facts into findings. Every rule (what is an error, what a warning)
  lives there and nowhere else; it reads no clock and touches no socket, so each rule is
  tested with hand-made facts (an old TLS version or an expiring certificate are not
  something the fake server can produce).
- :func:`to_json` renders the stable JSON form, :data:`JSON_SCHEMA` describes it, and
  :func:`render_text` the human one.

Severity: *error* when RFC 8314 submission is unsafe or impossible on that port (no TLS,
a certificate a verifying client rejects, TLS < 1.2, STARTTLS missing or attackable);
*warning* when it works but needs attention; *info* for the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ._x509 import CertificateSummary, hostname_matches

__all__ = [
    "JSON_SCHEMA",
    "SCHEMA_ID",
    "Finding",
    "PortFacts",
    "PortReport",
    "TLSFacts",
    "assess",
    "render_text",
    "to_json",
]

SCHEMA_ID = "smtpsubmit.probe/1"
Severity = Literal["error", "warning", "info"]
Mode = Literal["implicit", "starttls"]
#: The relay port: opportunistic STARTTLS is normal there (RFC 3207), unlike on submission.
RELAY_PORT = 25
#: Negotiated versions RFC 8996 forbids; RFC 8314 4.1 asks for TLS 1.2 or later.
OBSOLETE_TLS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})
#: Mechanisms that send the password itself, RFC 4954 4 forbids them without protection.
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})
#: OpenSSL verification codes (x509_vfy.h) that name a wrong host or IP address.
_HOSTNAME_MISMATCH = frozenset({62, 64})
_EXPIRED = 10
_Add = Callable[[Severity, str, str], None]
_NOT_YET_VALID = 9


@dataclass(frozen=True)
class Finding:
    """One conclusion: ``severity`` error/warning/info, a stable ``code``, a sentence."""

    severity: Severity
    code: str
    message: str


@dataclass
class TLSFacts:
    """The TLS session as negotiated, and how the certificate fared.

    ``verified`` is True when the handshake succeeded with verification on (chain and
    host name), False when it failed verification, None when not checked (the handshake
    needed legacy settings). ``policy_error`` is set when the handshake failed with the
    library's policy (TLS 1.2+, default ciphers) and only succeeded with legacy settings.
    """

    version: str | None
    cipher: str | None
    verified: bool | None = True
    verify_code: int | None = None
    verify_error: str | None = None
    policy_error: str | None = None
    certificate: CertificateSummary | None = None
    certificate_error: str | None = None


@dataclass
class PortFacts:
    """What the dialogue with one port showed; ``failure`` is (code, message) of the step
    that stopped it. Times are milliseconds; EHLO lists hold the capability lines."""

    host: str
    port: int
    mode: Mode
    address: str | None = None
    reachable: bool = False
    connect_ms: float | None = None
    tls_ms: float | None = None
    greeting_ms: float | None = None
    greeting: str | None = None
    ehlo_before_tls: list[str] | None = None
    ehlo_after_tls: list[str] | None = None
    auth_before_tls: list[str] = field(default_factory=list)
    auth_after_tls: list[str] = field(default_factory=list)
    tls: TLSFacts | None = None
    failure: tuple[str, str] | None = None


@dataclass(frozen=True)
class PortReport:
    """Facts and the findings drawn from them."""

    facts: PortFacts
    findings: tuple[Finding, ...]
    certificate_days_left: int | None

    @property
    def verdict(self) -> Severity | Literal["ok"]:
        """The worst severity found: ``"error"``, ``"warning"``, else ``"ok"``."""
        severities = {f.severity for f in self.findings}
        if "error" in severities:
            return "error"
        return "warning" if "warning" in severities else "ok"


def assess(facts: PortFacts, *, now: datetime, expiry_warning_days: int = 14) -> PortReport:
    """Draw the findings for one port from its facts (RFC 8314, RFC 3207, RFC 4954)."""
    found: list[Finding] = []
    port, relay = facts.port, facts.port == RELAY_PORT

    def add(severity: Severity, code: str, message: str) -> None:
        found.append(Finding(severity, code, message))

    if facts.failure is not None:
        add("error", *facts.failure)
    if facts.ehlo_before_tls is not None:
        if facts.auth_before_tls:
            mechanisms = " ".join(facts.auth_before_tls)
            plain = PLAINTEXT_MECHANISMS & set(facts.auth_before_tls)
            add(
                "warning",
                "auth-before-tls",
                f"port {port} offers AUTH before STARTTLS ({mechanisms})"
                + (" including cleartext passwords" if plain else "")
                + "; a careless client could send credentials unencrypted (RFC 4954 4). "
                "Offer AUTH only after TLS (Postfix: smtpd_tls_auth_only = yes)",
            )
        if not _has(facts.ehlo_before_tls, "STARTTLS"):
            add(
                "warning" if relay else "error",
                "starttls-missing",
                f"port {port} does not offer STARTTLS"
                + (
                    "; relays will deliver in cleartext (RFC 3207)"
                    if relay
                    else ": submission would be cleartext, or an attacker stripped it "
                    "(RFC 8314 3.3, RFC 3207 6). Enable STARTTLS, or use implicit TLS on 465"
                ),
            )
    if facts.tls is not None:
        _assess_tls(facts, facts.tls, add)
    if facts.ehlo_after_tls is not None and not facts.auth_after_tls and not relay:
        add(
            "warning",
            "auth-not-offered",
            f"port {port} offers no AUTH mechanism after TLS: clients cannot authenticate "
            "(RFC 6409 4.3 expects submission to require it)",
        )
    days_left = _assess_certificate(facts, now, expiry_warning_days, add)
    if not any(f.severity in ("error", "warning") for f in found):
        mode = "implicit TLS" if facts.mode == "implicit" else "STARTTLS"
        version = facts.tls.version if facts.tls else "no TLS"
        add("info", "ok", f"port {port}: {mode} with {version}, certificate verified (RFC 8314)")
    return PortReport(facts, tuple(found), days_left)


def _has(capabilities: list[str], keyword: str) -> bool:
    return any(line.split(" ", 1)[0].upper() == keyword for line in capabilities)


def _assess_tls(facts: PortFacts, tls: TLSFacts, add: _Add) -> None:
    if tls.version in OBSOLETE_TLS:
        add(
            "error",
            "tls-version-obsolete",
            f"{tls.version} negotiated: TLS 1.0/1.1 are deprecated (RFC 8996); enable TLS 1.2 "
            "or 1.3 (RFC 8314 4.1). smtpsubmit refuses this server",
        )
    elif tls.policy_error is not None:
        add(
            "error",
            "tls-handshake-failed",
            f"the TLS handshake fails with smtpsubmit's policy ({tls.policy_error}) and only "
            f"succeeds with legacy settings ({tls.version}, {tls.cipher}): a weak cipher or key",
        )
    if tls.verified is False:
        _assess_verification(facts, tls, add)


def _assess_verification(facts: PortFacts, tls: TLSFacts, add: _Add) -> None:
    cert = tls.certificate
    names = ", ".join(cert.names) if cert and cert.names else "no name"
    reason = tls.verify_error or "verification failed"
    mismatch = tls.verify_code in _HOSTNAME_MISMATCH or (
        cert is not None and not hostname_matches(facts.host, cert)
    )
    if mismatch:
        add(
            "error",
            "certificate-hostname-mismatch",
            f"certificate is for {names}, not {facts.host}: clients that verify will refuse it",
        )
    # OpenSSL stops at the first failure: with a host-name or date error the chain itself
    # was trusted; dates are reported from the certificate, with the day count.
    if tls.verify_code not in _HOSTNAME_MISMATCH | {_EXPIRED, _NOT_YET_VALID}:
        detail = " (self-signed)" if cert is not None and cert.self_signed else ""
        add(
            "error",
            "certificate-untrusted",
            f"certificate chain does not verify{detail}: {reason}. Serve the full chain "
            "from a public CA (or pass --cafile for a private CA)",
        )


def _assess_certificate(
    facts: PortFacts, now: datetime, warning_days: int, add: _Add
) -> int | None:
    tls = facts.tls
    if tls is None:
        return None
    cert = tls.certificate
    if cert is None:
        if tls.certificate_error:
            add("warning", "certificate-unreadable", tls.certificate_error)
        return None
    days = cert.days_left(now)
    until = cert.not_after.strftime("%Y-%m-%d")
    if cert.not_after <= now:
        add("error", "certificate-expired", f"certificate expired on {until} ({-days} days ago)")
    elif cert.not_before > now:
        since = cert.not_before.strftime("%Y-%m-%d")
        add("error", "certificate-not-yet-valid", f"certificate is not valid before {since}")
    elif days <= warning_days:
        add("warning", "certificate-expiring", f"certificate expires in {days} days ({until})")
    return days


# -- output -----------------------------------------------------------------------------


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _certificate_json(report: PortReport) -> dict[str, Any] | None:
    tls = report.facts.tls
    cert = tls.certificate if tls else None
    if cert is None:
        return None
    return {
        "subject": cert.subject,
        "issuer": cert.issuer,
        "names": list(cert.names),
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "days_left": report.certificate_days_left,
        "hostname_match": hostname_matches(report.facts.host, cert),
        "self_signed": cert.self_signed,
        "sha256": cert.sha256,
    }


def port_json(report: PortReport) -> dict[str, Any]:
    """One port as a JSON-ready dict (see :data:`JSON_SCHEMA`)."""
    f, tls = report.facts, report.facts.tls
    return {
        "port": f.port,
        "mode": f.mode,
        "address": f.address,
        "reachable": f.reachable,
        "timings_ms": {
            "connect": _ms(f.connect_ms),
            "tls_handshake": _ms(f.tls_ms),
            "greeting": _ms(f.greeting_ms),
        },
        "greeting": f.greeting,
        "ehlo_before_tls": f.ehlo_before_tls,
        "ehlo_after_tls": f.ehlo_after_tls,
        "auth_before_tls": f.auth_before_tls,
        "auth_after_tls": f.auth_after_tls,
        "tls": None
        if tls is None
        else {
            "version": tls.version,
            "cipher": tls.cipher,
            "verified": tls.verified,
            "verify_error": tls.verify_error,
            "certificate": _certificate_json(report),
        },
        "verdict": report.verdict,
        "findings": [
            {"severity": x.severity, "code": x.code, "message": x.message} for x in report.findings
        ],
    }


def to_json(host: str, reports: list[PortReport]) -> dict[str, Any]:
    """The whole probe as a JSON-ready dict (see :data:`JSON_SCHEMA`)."""
    return {
        "schema": SCHEMA_ID,
        "host": host,
        "ok": all(r.verdict != "error" for r in reports),
        "ports": [port_json(r) for r in reports],
    }


def _nullable(kind: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(kind, str):
        return {"type": [kind, "null"]}
    return {"anyOf": [kind, {"type": "null"}]}


_STRINGS = {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(properties),
        "additionalProperties": False,
        "properties": properties,
    }


_CERTIFICATE = _object(
    {
        "subject": {"type": "string"},
        "issuer": {"type": "string"},
        "names": _STRINGS,
        "not_before": {"type": "string", "description": "ISO 8601, UTC"},
        "not_after": {"type": "string", "description": "ISO 8601, UTC"},
        "days_left": {"type": "integer"},
        "hostname_match": {"type": "boolean"},
        "self_signed": {"type": "boolean"},
        "sha256": {"type": "string"},
    }
)
_FINDING = _object(
    {
        "severity": {"enum": ["error", "warning", "info"]},
        "code": {"type": "string"},
        "message": {"type": "string"},
    }
)
_PORT = _object(
    {
        "port": {"type": "integer"},
        "mode": {"enum": ["implicit", "starttls"]},
        "address": _nullable("string"),
        "reachable": {"type": "boolean"},
        "timings_ms": _object(
            {k: _nullable("number") for k in ("connect", "tls_handshake", "greeting")}
        ),
        "greeting": _nullable("string"),
        "ehlo_before_tls": _nullable(_STRINGS),
        "ehlo_after_tls": _nullable(_STRINGS),
        "auth_before_tls": _STRINGS,
        "auth_after_tls": _STRINGS,
        "tls": _nullable(
            _object(
                {
                    "version": _nullable("string"),
                    "cipher": _nullable("string"),
                    "verified": _nullable("boolean"),
                    "verify_error": _nullable("string"),
                    "certificate": _nullable(_CERTIFICATE),
                }
            )
        ),
        "verdict": {"enum": ["ok", "warning", "error"]},
        "findings": {"type": "array", "items": _FINDING},
    }
)
#: JSON Schema (draft 2020-12) of ``probe --json``; printed by ``probe --json-schema``.
#: Fields are only ever added in a compatible way; a breaking change bumps ``schema``.
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "smtpsubmit probe report",
    **_object(
        {
            "schema": {"const": SCHEMA_ID},
            "host": {"type": "string"},
            "ok": {"type": "boolean", "description": "no port has an error finding"},
            "ports": {"type": "array", "items": _PORT},
        }
    ),
}


def _line(label: str, value: object) -> str:
    return f"   {label:<17}{value}"


def render_text(host: str, reports: list[PortReport]) -> str:
    """The human report: one block per port, then a summary line."""
    out = [f"smtpsubmit probe {host}"]
    for report in reports:
        f = report.facts
        mode = "implicit TLS" if f.mode == "implicit" else "STARTTLS"
        where = f" ({f.address})" if f.address else ""
        out += ["", f"== port {f.port}, {mode}{where}: {report.verdict.upper()}"]
        steps = [("connect", f.connect_ms), ("TLS", f.tls_ms), ("greeting", f.greeting_ms)]
        if f.mode == "starttls":  # the greeting comes before TLS there
            steps[1:] = steps[2:0:-1]
        timings = [f"{label} {value:.1f} ms" for label, value in steps if value is not None]
        if timings:
            out.append(_line("timing", ", ".join(timings)))
        if f.greeting is not None:
            out.append(_line("greeting", f.greeting))
        if f.ehlo_before_tls is not None:
            out.append(_line("EHLO before TLS", " | ".join(f.ehlo_before_tls) or "(none)"))
            out.append(_line("AUTH before TLS", " ".join(f.auth_before_tls) or "(none)"))
        if f.tls is not None:
            out += _tls_lines(report, f.tls)
        if f.ehlo_after_tls is not None:
            out.append(_line("EHLO after TLS", " | ".join(f.ehlo_after_tls) or "(none)"))
            out.append(_line("AUTH after TLS", " ".join(f.auth_after_tls) or "(none)"))
        for finding in report.findings:
            out.append(f"   {finding.severity.upper():<8} {finding.code}: {finding.message}")
    errors = [r.facts.port for r in reports if r.verdict == "error"]
    warnings = [r.facts.port for r in reports if r.verdict == "warning"]
    out.append("")
    if errors:
        out.append(f"verdict: problems on port {', '.join(map(str, errors))}")
    elif warnings:
        out.append(f"verdict: usable, with warnings on port {', '.join(map(str, warnings))}")
    else:
        out.append("verdict: ok")
    return "\n".join(out)


def _tls_lines(report: PortReport, tls: TLSFacts) -> list[str]:
    if tls.verified:
        verification = "chain and host name verified"
    elif tls.verified is None:
        verification = "not verified (legacy handshake)"
    else:
        verification = f"NOT VERIFIED: {tls.verify_error or 'failed'}"
    lines = [_line("TLS", f"{tls.version}, {tls.cipher}"), _line("verification", verification)]
    cert = tls.certificate
    if cert is not None:
        match = "matches" if hostname_matches(report.facts.host, cert) else "does NOT match"
        lines += [
            _line("certificate", cert.subject or "(empty subject)"),
            _line("names", f"{', '.join(cert.names) or '(none)'} ({match} {report.facts.host})"),
            _line("issuer", cert.issuer + (" (self-signed)" if cert.self_signed else "")),
            _line(
                "valid until",
                f"{cert.not_after:%Y-%m-%d %H:%M} UTC ({report.certificate_days_left} days left)",
            ),
            _line("SHA-256", cert.sha256),
        ]
    return lines
