"""Probe the running interop servers and write the JSON file the tests read.

Probing (rather than writing what we *configured*) records what the servers
actually advertise -- e.g. which SASL mechanisms Cyrus really loaded -- so a
test can skip a mechanism the platform lacks without guessing. Stdlib only.

Usage: describe.py OUTPUT.json   (everything else comes from the environment
set by interop/lib.sh).
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TIMEOUT = 10.0


def _keywords(resp: bytes) -> list[str]:
    # First line is the greeting/hostname, the rest are extension keywords.
    return [line.strip() for line in resp.decode("utf-8", "replace").splitlines()[1:]]


def _auth_mechs(keywords: list[str]) -> list[str]:
    for kw in keywords:
        if kw.upper().startswith("AUTH ") or kw.upper() == "AUTH":
            return kw.split()[1:]
    return []


def _tls_ctx(ca: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca)


# smtplib verifies the certificate against the host it connected to (an IP
# here); the certificate carries IP:127.0.0.1 as well as DNS:localhost.
def probe_starttls(host: str, port: int, ca: str) -> dict[str, Any]:
    with smtplib.SMTP(host, port, local_hostname="probe.interop.test", timeout=TIMEOUT) as s:
        code, resp = s.ehlo()
        if code != 250:
            raise RuntimeError(f"{host}:{port}: EHLO -> {code} {resp!r}")
        before = _keywords(resp)
        s.starttls(context=_tls_ctx(ca))
        code, resp = s.ehlo()
        if code != 250:
            raise RuntimeError(f"{host}:{port}: EHLO after STARTTLS -> {code} {resp!r}")
        return {"before_tls": before, "after_tls": _keywords(resp)}


def probe_implicit(host: str, port: int, ca: str) -> dict[str, Any]:
    ctx = _tls_ctx(ca)
    with smtplib.SMTP_SSL(
        host, port, local_hostname="probe.interop.test", timeout=TIMEOUT, context=ctx
    ) as s:
        code, resp = s.ehlo()
        if code != 250:
            raise RuntimeError(f"{host}:{port}: EHLO -> {code} {resp!r}")
        return {"after_tls": _keywords(resp)}


def probe_cleartext(host: str, port: int) -> dict[str, Any]:
    with smtplib.SMTP(host, port, local_hostname="probe.interop.test", timeout=TIMEOUT) as s:
        code, resp = s.ehlo()
        if code != 250:
            raise RuntimeError(f"{host}:{port}: EHLO -> {code} {resp!r}")
        return {"before_tls": _keywords(resp)}


def postfix_version(conf: str) -> str:
    out = subprocess.run(
        ["postconf", "-c", conf, "-h", "mail_version"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def opendkim_version() -> str:
    out = subprocess.run(["opendkim", "-V"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()  # "opendkim: OpenDKIM Filter v2.11.0"


def main() -> int:
    out = Path(sys.argv[1])
    env = os.environ
    ca = env["INTEROP_CA_PEM"]
    domain = env["INTEROP_DOMAIN"]
    server_name = "localhost"

    pf_host = env["POSTFIX_HOST"]
    pf_ports = {
        "starttls": int(env["POSTFIX_SUBMISSION_PORT"]),
        "implicit": int(env["POSTFIX_SUBMISSIONS_PORT"]),
        "cleartext": int(env["POSTFIX_CLEARTEXT_PORT"]),
    }
    pf_ehlo = {
        "starttls": probe_starttls(pf_host, pf_ports["starttls"], ca),
        "implicit": probe_implicit(pf_host, pf_ports["implicit"], ca),
        "cleartext": probe_cleartext(pf_host, pf_ports["cleartext"]),
    }
    mail_base = Path(env["POSTFIX_MAIL_BASE"])
    mailboxes = {f"{u}@{domain}": str(mail_base / u) for u in env["INTEROP_MAILBOXES"].split()}

    ready = json.loads((Path(env["AIOSMTPD_DIR"]) / "ready.json").read_text())
    ai_host = ready["host"]
    ai_ports = {"starttls": ready["starttls_port"], "implicit": ready["implicit_tls_port"]}
    ai_ehlo = {
        "starttls": probe_starttls(ai_host, ai_ports["starttls"], ca),
        "implicit": probe_implicit(ai_host, ai_ports["implicit"], ca),
    }

    dkim_ports = {
        "postfix": int(env["POSTFIX_DKIM_PORT"]),
        "postfix_7bit": int(env["POSTFIX_DKIM_7BIT_PORT"]),
    }
    key_dir = Path(env["DKIM_KEY_DIR"])
    dkim = {
        "verifier": opendkim_version(),
        "authserv_id": env["DKIM_AUTHSERV_ID"],
        "domain": domain,
        "host": pf_host,
        # Postfix listeners (STARTTLS, AUTH as on "starttls") with OpenDKIM as milter.
        "ports": dkim_ports,
        "ehlo": {name: probe_starttls(pf_host, port, ca) for name, port in dkim_ports.items()},
        # Public keys published through OpenDKIM's resolver (see interop/opendkim/).
        "keys": {
            "rsa-sha256": {
                "selector": env["DKIM_RSA_SELECTOR"],
                "private_key_file": str(key_dir / f"{env['DKIM_RSA_SELECTOR']}.key"),
            },
            "ed25519-sha256": {
                "selector": env["DKIM_ED25519_SELECTOR"],
                "private_key_file": str(key_dir / f"{env['DKIM_ED25519_SELECTOR']}.key"),
            },
        },
        "milter": f"inet:{env['OPENDKIM_PORT']}@127.0.0.1",
        "log_file": str(Path(env["INTEROP_LOG_DIR"]) / "opendkim.log"),
    }

    data: dict[str, Any] = {
        "format": 1,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "interop_dir": env["INTEROP_DIR"],
        "log_dir": env["INTEROP_LOG_DIR"],
        "ca_file": ca,
        # Name in the server certificate (SAN has DNS:localhost and IP:127.0.0.1).
        "tls_server_name": server_name,
        "domain": domain,
        "user": env["INTEROP_USER"],
        "password": env["INTEROP_PASSWORD"],
        "sender": f"{env['INTEROP_USER']}@{domain}",
        "rejected": {"address": env["INTEROP_REJECTED_RCPT"], "code": 550, "enhanced": "5.1.1"},
        "tempfail": {"address": env["INTEROP_TEMPFAIL_RCPT"], "code": 450, "enhanced": "4.2.0"},
        "message_size_limit": int(env["INTEROP_MESSAGE_SIZE_LIMIT"]),
        "servers": {
            "postfix": {
                "version": postfix_version(env["POSTFIX_CONF"]),
                "host": pf_host,
                "ports": pf_ports,
                "ehlo": pf_ehlo,
                # What Cyrus SASL actually offered after STARTTLS.
                "auth_mechanisms": _auth_mechs(pf_ehlo["starttls"]["after_tls"]),
                "auth_required": True,
                "maildir_base": str(mail_base),
                "mailboxes": mailboxes,
                "catchall_maildir": str(mail_base / "catchall"),
                "log_file": str(Path(env["INTEROP_LOG_DIR"]) / "postfix.log"),
            },
            "aiosmtpd": {
                "version": _aiosmtpd_version(),
                "host": ai_host,
                "ports": ai_ports,
                "ehlo": ai_ehlo,
                "auth_mechanisms": _auth_mechs(ai_ehlo["starttls"]["after_tls"]),
                "auth_required": True,
                "messages_dir": ready["messages_dir"],
                "log_file": str(Path(env["INTEROP_LOG_DIR"]) / "aiosmtpd.log"),
            },
        },
        "dkim": dkim,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    print(f"postfix AUTH after TLS: {' '.join(data['servers']['postfix']['auth_mechanisms'])}")
    print(f"aiosmtpd AUTH after TLS: {' '.join(data['servers']['aiosmtpd']['auth_mechanisms'])}")
    return 0


def _aiosmtpd_version() -> str | None:
    try:
        import aiosmtpd

        return str(aiosmtpd.__version__)
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
