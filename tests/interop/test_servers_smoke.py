"""Smoke tests of the interop servers themselves, using only stdlib smtplib.

They prove the infrastructure behaves as the client tests will assume (TLS
policy, AUTH, delivery byte-for-byte, fixed failure recipients), so a failing
client interop test points at the client, not at the setup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import smtplib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.interop

CLIENT_NAME = "client.interop.test"  # fixed: avoids smtplib's getfqdn() DNS wait
TIMEOUT = 15.0
SERVERS = ["postfix", "aiosmtpd"]


def _message(sender: str, rcpt: str, body: bytes) -> bytes:
    # 8-bit UTF-8 body and a leading-dot line: both must survive unchanged.
    head = (
        f"From: Interop <{sender}>\r\n"
        f"To: <{rcpt}>\r\n"
        f"Subject: interop smoke {uuid.uuid4().hex}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{CLIENT_NAME}>\r\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    ).encode()
    return head + body


BODY = "Grüße aus dem Interop-Test\r\n.leading dot line\r\n..two dots\r\nlast line\r\n".encode()


def _server(interop_servers, name):
    return getattr(interop_servers, name)


@contextmanager
def _starttls_session(interop_servers, name: str) -> Iterator[smtplib.SMTP]:
    srv = _server(interop_servers, name)
    with smtplib.SMTP(
        srv.host, srv.starttls_port, local_hostname=CLIENT_NAME, timeout=TIMEOUT
    ) as s:
        s.ehlo()
        s.starttls(context=interop_servers.ssl_context())
        s.ehlo()
        yield s


@contextmanager
def _implicit_session(interop_servers, name: str) -> Iterator[smtplib.SMTP_SSL]:
    srv = _server(interop_servers, name)
    with smtplib.SMTP_SSL(
        srv.host,
        srv.implicit_port,
        local_hostname=CLIENT_NAME,
        timeout=TIMEOUT,
        context=interop_servers.ssl_context(),
    ) as s:
        s.ehlo()
        yield s


def _auth(s: smtplib.SMTP, interop_servers, mechanism: str) -> None:
    s.user, s.password = interop_servers.user, interop_servers.password
    method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}
    code, resp = s.auth(mechanism, method[mechanism], initial_response_ok=mechanism != "LOGIN")
    assert code == 235, (code, resp)


def _delivered(interop_servers, name: str, rcpt: str) -> bytes:
    """The submitted bytes as the server recorded them."""
    if name == "postfix":
        [msg] = interop_servers.postfix.wait_for_messages(rcpt)
        # Postfix's Received header shows TLS + SASL really happened.
        assert "Authenticated sender:" in msg.received_header
        assert "using TLS" in msg.received_header
        return msg.submitted
    [cap] = interop_servers.aiosmtpd.wait_for_messages(rcpt)
    assert cap.meta["authenticated"] is True
    assert cap.meta["auth_login"] == interop_servers.user
    assert cap.meta["tls_version"]
    assert cap.rcpt_tos == [rcpt]
    assert cap.mail_from == interop_servers.sender
    return cap.raw


# --------------------------------------------------------------------------
# Both servers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVERS)
def test_starttls_auth_plain_send_is_byte_identical(interop_servers, name):
    rcpt = interop_servers.unique_address("starttls")
    sent = _message(interop_servers.sender, rcpt, BODY)
    with _starttls_session(interop_servers, name) as s:
        _auth(s, interop_servers, "PLAIN")
        refused = s.sendmail(interop_servers.sender, [rcpt], sent, mail_options=["BODY=8BITMIME"])
        assert refused == {}
    got = _delivered(interop_servers, name, rcpt)
    assert got.partition(b"\r\n\r\n")[2] == BODY
    assert got == sent


@pytest.mark.parametrize("name", SERVERS)
def test_implicit_tls_auth_login_send(interop_servers, name):
    rcpt = interop_servers.unique_address("implicit")
    sent = _message(interop_servers.sender, rcpt, BODY)
    with _implicit_session(interop_servers, name) as s:
        assert "starttls" not in s.esmtp_features  # already TLS
        _auth(s, interop_servers, "LOGIN")
        assert s.sendmail(interop_servers.sender, [rcpt], sent) == {}
    assert _delivered(interop_servers, name, rcpt) == sent


@pytest.mark.parametrize("name", SERVERS)
def test_rejected_and_tempfailed_recipients(interop_servers, name):
    ok_rcpt = interop_servers.unique_address("mixed")
    rej, tmp = interop_servers.rejected, interop_servers.tempfail
    with _starttls_session(interop_servers, name) as s:
        _auth(s, interop_servers, "PLAIN")
        assert s.mail(interop_servers.sender)[0] == 250
        code, resp = s.rcpt(rej.address)
        assert code == rej.code == 550
        assert resp.startswith(rej.enhanced.encode()), resp
        code, resp = s.rcpt(tmp.address)
        assert code == tmp.code == 450
        assert resp.startswith(tmp.enhanced.encode()), resp
        assert s.rcpt(ok_rcpt)[0] == 250
        assert s.data(_message(interop_servers.sender, ok_rcpt, b"mixed\r\n"))[0] == 250
    # The accepted recipient still gets its copy.
    _delivered(interop_servers, name, ok_rcpt)


@pytest.mark.parametrize("name", SERVERS)
def test_auth_refused_before_starttls(interop_servers, name):
    srv = _server(interop_servers, name)
    with smtplib.SMTP(
        srv.host, srv.starttls_port, local_hostname=CLIENT_NAME, timeout=TIMEOUT
    ) as s:
        s.ehlo()
        assert "starttls" in s.esmtp_features
        assert "auth" not in s.esmtp_features  # not even advertised in clear
        creds = f"\0{interop_servers.user}\0{interop_servers.password}".encode()
        code, resp = s.docmd("AUTH", "PLAIN " + base64.b64encode(creds).decode())
        assert code == 530, (code, resp)
        # And no mail either: the submission port requires TLS for everything.
        code, resp = s.docmd("MAIL", f"FROM:<{interop_servers.sender}>")
        assert code == 530, (code, resp)


@pytest.mark.parametrize("name", SERVERS)
def test_mail_refused_without_auth_after_tls(interop_servers, name):
    rcpt = interop_servers.unique_address("noauth")
    with _starttls_session(interop_servers, name) as s:
        code, resp = s.docmd("MAIL", f"FROM:<{interop_servers.sender}>")
        if code == 250:  # Postfix refuses at RCPT time (smtpd_delay_reject)
            code, resp = s.docmd("RCPT", f"TO:<{rcpt}>")
            assert code == 554, (code, resp)
        else:  # aiosmtpd refuses MAIL straight away
            assert code == 530, (code, resp)


@pytest.mark.parametrize("name", SERVERS)
def test_wrong_password_is_535(interop_servers, name):
    with _starttls_session(interop_servers, name) as s:
        s.user, s.password = interop_servers.user, interop_servers.password + "-wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as exc:
            s.auth("PLAIN", s.auth_plain)
        assert exc.value.smtp_code == 535


@pytest.mark.parametrize("name", SERVERS)
def test_advertised_extensions(interop_servers, name):
    srv = _server(interop_servers, name)
    keywords = {k.split()[0].upper(): k for k in srv.ehlo["starttls"]["after_tls"]}
    assert {"SIZE", "8BITMIME", "SMTPUTF8", "AUTH"} <= keywords.keys()
    assert int(keywords["SIZE"].split()[1]) >= 30 * 1024 * 1024
    assert {"PLAIN", "LOGIN"} <= set(srv.auth_mechanisms)
    if name == "postfix":
        assert {"PIPELINING", "CHUNKING", "DSN", "ENHANCEDSTATUSCODES"} <= keywords.keys()


# --------------------------------------------------------------------------
# Postfix only
# --------------------------------------------------------------------------


def _scram(s: smtplib.SMTP, mechanism: str, user: str, password: str) -> tuple[int, bytes]:
    """Minimal RFC 5802 client (no channel binding), just to prove the
    server side of each advertised SCRAM variant works with our sasldb."""
    hname = mechanism.removeprefix("SCRAM-").replace("-", "").lower()  # sha256
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={user},r={nonce}"
    code, resp = s.docmd(
        "AUTH", f"{mechanism} {base64.b64encode(b'n,,' + first_bare.encode()).decode()}"
    )
    assert code == 334, (code, resp)
    server_first = base64.b64decode(resp).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert attrs["r"].startswith(nonce)
    salted = hashlib.pbkdf2_hmac(
        hname, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", hname).digest()
    final_wo_proof = f"c=biws,r={attrs['r']}"
    auth_msg = f"{first_bare},{server_first},{final_wo_proof}".encode()
    sig = hmac.new(hashlib.new(hname, client_key).digest(), auth_msg, hname).digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig, strict=True))).decode()
    code, resp = s.docmd(base64.b64encode(f"{final_wo_proof},p={proof}".encode()).decode())
    if code == 334:
        # Cyrus sends the server-final (v=...) as a challenge, not with 235.
        server_key = hmac.new(salted, b"Server Key", hname).digest()
        expected = base64.b64encode(hmac.new(server_key, auth_msg, hname).digest()).decode()
        assert base64.b64decode(resp).decode() == f"v={expected}"
        code, resp = s.docmd("")
    return code, resp


def test_postfix_every_advertised_mechanism_authenticates(interop_servers):
    mechs = interop_servers.postfix.auth_mechanisms
    tried = []
    for mech in mechs:
        with _starttls_session(interop_servers, "postfix") as s:
            if mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
                _auth(s, interop_servers, mech)
            elif mech.startswith("SCRAM-") and not mech.endswith("-PLUS"):
                code, resp = _scram(s, mech, interop_servers.user, interop_servers.password)
                assert code == 235, (mech, code, resp)
            else:
                continue  # DIGEST-MD5 etc.: no stdlib client, obsolete anyway
            tried.append(mech)
    assert {"PLAIN", "LOGIN", "CRAM-MD5"} <= set(tried), (mechs, tried)


def test_postfix_cleartext_port_offers_auth_without_tls(interop_servers):
    # This port exists only so client tests can check they refuse to send
    # credentials in clear; it must keep looking tempting.
    pf = interop_servers.postfix
    with smtplib.SMTP(pf.host, pf.cleartext_port, local_hostname=CLIENT_NAME, timeout=TIMEOUT) as s:
        s.ehlo()
        assert "starttls" not in s.esmtp_features
        assert "auth" in s.esmtp_features


def test_postfix_unique_recipients_are_isolated(interop_servers):
    # Two recipients in one transaction: each helper call sees only its copy.
    a, b = interop_servers.unique_address("iso-a"), interop_servers.unique_address("iso-b")
    sent = _message(interop_servers.sender, a, b"two recipients\r\n")
    with _starttls_session(interop_servers, "postfix") as s:
        _auth(s, interop_servers, "PLAIN")
        assert s.sendmail(interop_servers.sender, [a, b], sent) == {}
    [ma] = interop_servers.postfix.wait_for_messages(a)
    # Lookup is case-insensitive, like Postfix itself.
    [mb] = interop_servers.postfix.wait_for_messages(b.upper())
    assert ma.delivered_to == a
    assert mb.delivered_to == b
    assert ma.submitted == mb.submitted == sent


@pytest.mark.parametrize("name", SERVERS)
def test_smtputf8_recipient(interop_servers, name):
    # Non-ASCII local part: exercises the helpers' UTF-8 handling of
    # Delivered-To / rcpt_tos as much as the servers.
    rcpt = interop_servers.unique_address("jörg")
    sent = _message(interop_servers.sender, rcpt, BODY)
    with _starttls_session(interop_servers, name) as s:
        _auth(s, interop_servers, "PLAIN")
        refused = s.sendmail(
            interop_servers.sender, [rcpt], sent, mail_options=["SMTPUTF8", "BODY=8BITMIME"]
        )
        assert refused == {}
    assert _delivered(interop_servers, name, rcpt) == sent
