"""The grammar of what a client writes in a command: addresses, domains, ESMTP parameters,
SASL mechanism names and xtext (RFC 5321 4.1.2, RFC 6531 3.3, RFC 3461 4, RFC 4954 4).

Theory of operation:

- This module knows the grammar and nothing else. It answers "is this string well formed?"
  and names what is wrong; which rule applies to which command argument is decided by the
  commands in ``_commands.py``, and whether a session may carry UTF-8 by the connection.
- Every check starts with :func:`check_no_controls`: CR, LF, NUL and every other C0 or C1
  control, DEL, U+2028/U+2029 and lone surrogates are refused first, with one message, so
  no check below can let a character through that would split a command line. The
  patterns rely on it: above U+00FF they admit everything, and leave the three the grammar
  refuses there (U+2028, U+2029, lone surrogates) to that check. This keeps them cheap to
  compile at import (about 1 ms for all, where Unicode ranges cost about 50 ms).
- Addresses and domains follow RFC 5321 4.1.2 extended by RFC 6531 3.3 (UTF8-non-ascii in
  atext, qtextSMTP and sub-domain), with the RFC 5321 4.5.3.1 octet limits: 64 for a local
  part, 255 for a domain, 256 for a path (the address and its angle brackets).
- Errors are :class:`LocalProtocolError`: the caller built a bad command. The exception is
  :func:`xtext_decode`, which reads text from elsewhere and raises ``ValueError``.
- :func:`validate_address` remembers addresses it has proven valid (a bounded set): mail
  goes to the same few addresses again and again.
"""

from __future__ import annotations

import ipaddress
import re
import string

from ._errors import LocalProtocolError

__all__ = [
    "ESMTP_KEYWORD",
    "MAX_DOMAIN",
    "MAX_LOCAL_PART",
    "MAX_PATH",
    "SASL_MECHANISM",
    "check_no_controls",
    "is_esmtp_value",
    "is_ascii_address",
    "validate_address",
    "validate_domain",
    "xtext_decode",
    "xtext_encode",
]

#: RFC 5321 4.5.3.1: octets in a path (with its angle brackets), a local part, a domain.
MAX_PATH = 256
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255


# RFC 6531 3.3 adds UTF8-non-ascii to atext, qtextSMTP, sub-domain and esmtp-value. For us
# that is every character from U+00A0 up but U+2028/U+2029 (controls for our purpose) and
# lone surrogates (no UTF-8 for them), and check_no_controls refuses those three (and the
# C1 controls) before any pattern runs. So each class is written as "anything but the rest
# of Latin-1", and admits every character above U+00FF. Why not the positive class
# [...\u00a0-\u2027\u202a-\ud7ff\ue000-\U0010ffff]: sre compiles it by visiting each of its
# ~63,000 BMP code points in Python, 4-10 ms per class, 30 ms for the domain pattern and
# about 50 ms per import in all; these compile in about 1 ms together and match as fast.
def _with_utf8(ascii_members: str) -> str:
    """A regex class: the characters of ``ascii_members`` and every one above U+009F."""
    ranges: list[list[int]] = []  # of the excluded code points, as [first, last]
    for code in range(0xA0):
        if chr(code) in ascii_members:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = (f"\\x{a:02x}" + ("" if a == b else f"-\\x{b:02x}") for a, b in ranges)
    return "[^" + "".join(parts) + "]"


_ALNUM = string.ascii_letters + string.digits
_VCHAR = "".join(map(chr, range(0x21, 0x7F)))  # printable ASCII but the space
#: RFC 5322 3.2.3 atext.
_ATEXT = _with_utf8(_ALNUM + "!#$%&'*+-/=?^_`{|}~")
#: RFC 5321 4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126, all printable ASCII but '"' and
#: the backslash (which starts a quoted-pairSMTP).
_QTEXT = _with_utf8(" " + _VCHAR.replace('"', "").replace("\\", ""))
#: RFC 5321 4.1.2 Let-dig, and the inner characters of an Ldh-str.
_LETDIG = _with_utf8(_ALNUM)
_LDH = _with_utf8(_ALNUM + "-")
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED = re.compile(rf'"(?:{_QTEXT}|\\[\x20-\x7e])*"')
_SUBDOMAIN = rf"{_LETDIG}(?:{_LDH}*{_LETDIG})?"
_DOMAIN = re.compile(rf"{_SUBDOMAIN}(?:\.{_SUBDOMAIN})*")
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+")
#: RFC 5321 4.1.2 esmtp-keyword (also the ehlo-keyword of 4.1.1.1).
ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
#: RFC 5321 4.1.2 esmtp-value: %d33-60 / %d62-126, with UTF8-non-ascii (RFC 6531 3.3).
_ESMTP_VALUE = re.compile(_with_utf8(_VCHAR.replace("=", "")) + "+")
#: RFC 4954 4 sasl-mech: 1 to 20 upper-case letters, digits, "-" and "_".
SASL_MECHANISM = re.compile(r"[A-Z0-9_-]{1,20}")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def check_no_controls(what: str, value: str) -> None:
    """Refuse any control character or lone surrogate in ``value`` (the injection guard)."""
    match = _CONTROLS.search(value)
    if match:
        raise LocalProtocolError(
            f"{what} contains the control character or lone surrogate {match.group()!r}: {value!r}"
        )


def is_esmtp_value(value: str) -> bool:
    """Whether ``value`` is an RFC 5321 4.1.2 esmtp-value (RFC 6531 3.3: UTF-8 allowed)."""
    if _ESMTP_VALUE.fullmatch(value) is None:
        return False
    # The class already refuses every ASCII and C1 control; above U+00FF it admits all.
    return value.isascii() or _CONTROLS.search(value) is None


def _octets(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _check_address_literal(literal: str) -> bool:
    inner = literal[1:-1]
    if inner.lower().startswith("ipv6:"):
        if "%" in inner:  # ipaddress accepts zone ids; RFC 5321 4.1.3 IPv6-addr has none
            return False
        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return False
        return True
    try:
        ipaddress.IPv4Address(inner)
    except ValueError:
        return _GENERAL_LITERAL.fullmatch(inner) is not None and ":" in inner
    return True


def validate_domain(domain: str, *, what: str = "domain") -> None:
    """Check a domain or address literal (RFC 5321 4.1.2, RFC 6531 U-labels allowed)."""
    check_no_controls(what, domain)
    if domain.startswith("[") and domain.endswith("]"):
        if not _check_address_literal(domain):
            raise LocalProtocolError(f"malformed address literal in {what}: {domain!r}")
        return
    if not _DOMAIN.fullmatch(domain):
        raise LocalProtocolError(f"malformed {what}: {domain!r}")
    if _octets(domain) > MAX_DOMAIN:
        raise LocalProtocolError(f"{what} longer than {MAX_DOMAIN} octets (RFC 5321 4.5.3.1.2)")


#: Addresses already proven valid: mail goes to the same few addresses again and again,
#: and the grammar's Unicode classes make a check cost microseconds. Cleared when full.
_VALID_ADDRESSES: set[str] = set()
_VALID_CACHE_SIZE = 4096


def validate_address(address: str, *, what: str = "address") -> None:
    """Check ``local-part@domain`` against RFC 5321 4.1.2 (with RFC 6531 UTF-8).

    Raises :class:`LocalProtocolError` naming the problem. The empty string (null
    reverse-path) is the caller's special case, not accepted here.
    """
    if address in _VALID_ADDRESSES:
        return
    _check_address(address, what)
    if len(_VALID_ADDRESSES) >= _VALID_CACHE_SIZE:
        _VALID_ADDRESSES.clear()
    _VALID_ADDRESSES.add(address)


def _check_address(address: str, what: str) -> None:
    check_no_controls(what, address)
    local, at, domain = address.rpartition("@")
    if not at:
        raise LocalProtocolError(f"{what} has no '@': {address!r}")
    if not (_DOT_STRING.fullmatch(local) or _QUOTED.fullmatch(local)):
        raise LocalProtocolError(f"malformed local part in {what}: {address!r}")
    if _octets(local) > MAX_LOCAL_PART:
        raise LocalProtocolError(
            f"local part of {what} longer than {MAX_LOCAL_PART} octets (RFC 5321 4.5.3.1.1)"
        )
    validate_domain(domain, what=what)
    if _octets(address) + 2 > MAX_PATH:
        raise LocalProtocolError(f"{what} longer than {MAX_PATH} octets (RFC 5321 4.5.3.1.3)")


def is_ascii_address(address: str) -> bool:
    """True when the address needs no SMTPUTF8 (RFC 6531)."""
    return address.isascii()


def xtext_encode(text: str) -> str:
    """RFC 3461 4: encode as xtext ("+" and "=" and anything outside 33..126 as +HH)."""
    out = []
    for byte in text.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*")


def xtext_decode(text: str) -> str:
    """Inverse of :func:`xtext_encode`; raises ``ValueError`` on malformed xtext."""
    if not _XTEXT.fullmatch(text):
        raise ValueError(f"malformed xtext: {text!r}")
    raw = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "+":
            raw.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(text[i]))
            i += 1
    return raw.decode("utf-8", "surrogateescape")
