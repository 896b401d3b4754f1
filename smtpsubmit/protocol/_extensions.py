"""EHLO capabilities (RFC 5321 4.1.1.1) as a typed, immutable value.

Each line after the first of a positive EHLO reply is ``keyword [SP param]*``. Keywords
are case-insensitive; unknown keywords are kept in :attr:`Extensions.keywords`. The
pre-standard ``AUTH=LOGIN PLAIN`` form some old servers send is merged into ``AUTH``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ._syntax import ESMTP_KEYWORD

__all__ = ["Extensions"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Extensions:
    """What the server advertised in its EHLO reply.

    ``size`` is ``None`` when SIZE was not advertised, ``0`` when advertised without a
    limit (RFC 1870 4), else the maximum message size in octets.
    """

    keywords: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    size: int | None = None
    auth: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, lines: Iterable[str]) -> Extensions:
        """Build from the EHLO reply's lines (the first line, the greeting text, is skipped).

        Malformed lines are ignored rather than fatal: a capability we cannot read is a
        capability we do not use.
        """
        keywords: dict[str, str] = {}
        auth: set[str] = set()
        for line in list(lines)[1:]:
            keyword, _, params = line.strip().partition(" ")
            if keyword.upper().startswith("AUTH="):
                # Old servers (pre RFC 2554) send "AUTH=LOGIN PLAIN".
                auth.update(m.upper() for m in (keyword[5:] + " " + params).split())
                continue
            if not ESMTP_KEYWORD.fullmatch(keyword):
                continue
            keyword = keyword.upper()
            keywords[keyword] = params.strip()
            if keyword == "AUTH":
                auth.update(m.upper() for m in params.split())
        if auth and "AUTH" not in keywords:
            keywords["AUTH"] = " ".join(sorted(auth))
        size: int | None = None
        if "SIZE" in keywords:
            value = keywords["SIZE"]
            # RFC 1870 4: size-value = 1*20DIGIT; also keeps int() off huge digit strings.
            wellformed = value.isascii() and value.isdigit() and len(value) <= 20
            size = int(value) if wellformed else 0
        return cls(keywords=MappingProxyType(keywords), size=size, auth=frozenset(auth))

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self.keywords

    @property
    def pipelining(self) -> bool:
        """RFC 2920 command pipelining."""
        return "PIPELINING" in self.keywords

    @property
    def chunking(self) -> bool:
        """RFC 3030 BDAT."""
        return "CHUNKING" in self.keywords

    @property
    def binarymime(self) -> bool:
        """RFC 3030 BODY=BINARYMIME."""
        return "BINARYMIME" in self.keywords

    @property
    def eightbitmime(self) -> bool:
        """RFC 6152 BODY=8BITMIME."""
        return "8BITMIME" in self.keywords

    @property
    def smtputf8(self) -> bool:
        """RFC 6531 internationalised addresses."""
        return "SMTPUTF8" in self.keywords

    @property
    def dsn(self) -> bool:
        """RFC 3461 delivery status notifications (RET, ENVID, NOTIFY, ORCPT)."""
        return "DSN" in self.keywords

    @property
    def enhancedstatuscodes(self) -> bool:
        """RFC 2034 enhanced status codes in replies."""
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def requiretls(self) -> bool:
        """RFC 8689 REQUIRETLS."""
        return "REQUIRETLS" in self.keywords

    @property
    def starttls(self) -> bool:
        """RFC 3207 STARTTLS."""
        return "STARTTLS" in self.keywords
