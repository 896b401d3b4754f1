"""Just enough X.509 (RFC 5280) to show a server certificate: names, issuer, validity.

Why our own reader: the probe must describe the certificate even when verification
failed, and then ``SSLObject.getpeercert()`` returns an empty dict; only the DER bytes are
left. smtpsubmit depends on anyio and certifi alone, so no ``cryptography`` here.

Theory of operation: a DER value is tag, length, content (X.690 8.1). We walk the few
fields a person reads (subject, issuer, validity, subjectAltName) and skip the rest.
Anything malformed raises ``ValueError``; the caller shows "unreadable certificate".
Text taken from the certificate is escaped, since a hostile server chooses it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from ..policy import ascii_hostname

__all__ = ["CertificateSummary", "hostname_matches", "parse_certificate"]

_SEQUENCE = 0x30
_SET = 0x31
_OID = 0x06
_OCTET_STRING = 0x04
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXTENSIONS = 0xA3  # [3] EXPLICIT in TBSCertificate
_VERSION = 0xA0  # [0] EXPLICIT
_DNS_NAME = 0x82  # GeneralName [2] IMPLICIT IA5String
_IP_ADDRESS = 0x87  # GeneralName [7] IMPLICIT OCTET STRING
_SUBJECT_ALT_NAME = "2.5.29.17"
_COMMON_NAME = "2.5.4.3"
_ATTRIBUTE_NAMES = {
    _COMMON_NAME: "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
}
# Directory string encodings (RFC 5280 4.1.2.4) and how to decode each.
_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # TeletexString: in practice Latin-1
    0x1E: "utf-16-be",  # BMPString
    0x1C: "utf-32-be",  # UniversalString
}
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class CertificateSummary:
    """What a person checks on a server certificate."""

    subject: str
    issuer: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    sha256: str

    @property
    def names(self) -> tuple[str, ...]:
        """The identities a client checks (RFC 6125 6.4.4: the CN only without SANs)."""
        sans = self.dns_names + self.ip_addresses
        if sans:
            return sans
        return (self.common_name,) if self.common_name else ()

    @property
    def self_signed(self) -> bool:
        """Issuer and subject are the same name."""
        return self.subject == self.issuer

    def days_left(self, now: datetime) -> int:
        """Whole days until ``not_after`` (negative once expired)."""
        return (self.not_after - now).days


def parse_certificate(der: bytes) -> CertificateSummary:
    """Read a DER certificate; raises ``ValueError`` when it is not one."""
    try:
        return _parse(der)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed certificate: {exc}") from None


def hostname_matches(host: str, certificate: CertificateSummary) -> bool:
    """Whether ``host`` is one of the certificate's identities (RFC 6125 6.4).

    An IP address must match an iPAddress SAN; a name matches a dNSName exactly (ignoring
    case) or through a wildcard that covers the whole left-most label. A non-ASCII name is
    compared as its A-label (IDNA 2008), the form certificates carry (RFC 6125 6.4.2) and
    the client checks: ``straße.example`` matches ``xn--strae-oqa.example``.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return any(ipaddress.ip_address(ip) == address for ip in certificate.ip_addresses)
    try:
        wanted = ascii_hostname(host).rstrip(".").lower()
    except ValueError:  # no A-label: no certificate can name it
        return False
    for name in certificate.names:
        if name in certificate.ip_addresses:
            continue
        name = name.rstrip(".").lower()
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted:
            label, rest = wanted.split(".", 1)
            if label and rest == name[2:]:
                return True
    return False


# -- DER ------------------------------------------------------------------------------


def _read(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER value at ``pos`` (X.690 8.1)."""
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag numbers do not occur in certificates")
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("DER value runs past the end of the data")
    return tag, pos, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _read(data, start)
        items.append(item)
        start = item[2]
    if start != end:
        raise ValueError("DER value overruns its container")
    return items


def _expect(item: tuple[int, int, int], tag: int) -> tuple[int, int, int]:
    if item[0] != tag:
        raise ValueError(f"expected DER tag {tag:#x}, found {item[0]:#x}")
    return item


def _oid(content: bytes) -> str:
    if not content:
        raise ValueError("empty OID")
    first = content[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _text(tag: int, content: bytes) -> str:
    codec = _STRING_CODECS.get(tag, "latin-1")
    text = content.decode(codec, "replace")
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _name(data: bytes, item: tuple[int, int, int]) -> tuple[str, str | None]:
    """RFC 5280 Name as ``"O=..., CN=..."`` (DER order), and its last common name."""
    parts = []
    common_name = None
    for rdn in _children(data, item[1], item[2]):
        _expect(rdn, _SET)
        for attribute in _children(data, rdn[1], rdn[2]):
            oid_item, value = _children(data, attribute[1], attribute[2])[:2]
            oid = _oid(data[oid_item[1] : oid_item[2]])
            text = _text(value[0], data[value[1] : value[2]])
            parts.append(f"{_ATTRIBUTE_NAMES.get(oid, oid)}={text}")
            if oid == _COMMON_NAME:
                common_name = text
    return ", ".join(parts), common_name


def _time(data: bytes, item: tuple[int, int, int]) -> datetime:
    text = data[item[1] : item[2]].decode("ascii")
    if item[0] == _UTC_TIME:  # RFC 5280 4.1.2.5.1: YY >= 50 means 19YY
        year = int(text[:2])
        text = f"{19 if year >= 50 else 20}{text}"
    elif item[0] != _GENERALIZED_TIME:
        raise ValueError("validity is not a time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)


def _subject_alt_names(
    data: bytes, extensions: tuple[int, int, int]
) -> tuple[list[str], list[str]]:
    dns: list[str] = []
    ips: list[str] = []
    (sequence,) = _children(data, extensions[1], extensions[2])
    for extension in _children(data, sequence[1], sequence[2]):
        fields = _children(data, extension[1], extension[2])
        if _oid(data[fields[0][1] : fields[0][2]]) != _SUBJECT_ALT_NAME:
            continue
        value = _expect(fields[-1], _OCTET_STRING)
        (names,) = _children(data, value[1], value[2])
        for tag, start, end in _children(data, names[1], names[2]):
            if tag == _DNS_NAME:
                dns.append(_text(0x16, data[start:end]))
            elif tag == _IP_ADDRESS and end - start in (4, 16):
                ips.append(str(ipaddress.ip_address(data[start:end])))
    return dns, ips


def _parse(der: bytes) -> CertificateSummary:
    certificate = _expect(_read(der, 0), _SEQUENCE)
    tbs = _expect(_children(der, certificate[1], certificate[2])[0], _SEQUENCE)
    fields = _children(der, tbs[1], tbs[2])
    if fields and fields[0][0] == _VERSION:
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    issuer, _ = _name(der, _expect(fields[2], _SEQUENCE))
    validity = _children(der, fields[3][1], fields[3][2])
    subject, common_name = _name(der, _expect(fields[4], _SEQUENCE))
    dns: list[str] = []
    ips: list[str] = []
    for item in fields[6:]:
        if item[0] == _EXTENSIONS:
            dns, ips = _subject_alt_names(der, item)
    return CertificateSummary(
        subject=subject,
        issuer=issuer,
        common_name=common_name,
        dns_names=tuple(dns),
        ip_addresses=tuple(ips),
        not_before=_time(der, validity[0]),
        not_after=_time(der, validity[1]),
        sha256=hashlib.sha256(der).hexdigest(),
    )
