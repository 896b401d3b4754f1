"""Commands as frozen values, validated when built and rendered to exact bytes.

Theory of operation:

- A command object that exists is a valid command: every argument is checked in
  ``__post_init__`` and a bad one raises :class:`LocalProtocolError`, so no byte of an
  invalid command can reach the wire.
- No argument may contain CR, LF, NUL or any other control character; this is what makes
  SMTP command injection impossible.
- Line limits come from RFC 5321 4.5.3.1.4: 512 octets per command line including CRLF.
  AUTH lines may be longer (RFC 4954 4: 12288 octets), and the DSN parameters ENVID and
  ORCPT bring their own allowance (RFC 3461 4.4 and 4.2: 100 and 500 characters).
- The grammar (addresses, domains, ESMTP parameters, xtext, with their octet limits)
  lives in ``_syntax.py``; this module decides which rule applies to which argument.
  Whether the session may carry a UTF-8 address is the connection's business.
- ``log_line()`` is what may be logged: AUTH payloads are redacted there and in ``repr``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal

from ._errors import LocalProtocolError
from ._syntax import (
    ESMTP_KEYWORD,
    SASL_MECHANISM,
    check_no_controls,
    is_esmtp_value,
    validate_address,
    validate_domain,
    xtext_encode,
)

__all__ = [
    "Auth",
    "AuthCancel",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "Ehlo",
    "EndOfData",
    "Helo",
    "Mail",
    "MessageData",
    "Noop",
    "Quit",
    "Rcpt",
    "Rset",
    "StartTLS",
]

MAX_COMMAND_LINE = 512
MAX_AUTH_LINE = 12288
MAX_ENVID = 100
MAX_ORCPT = 500


def _check_params(params: Mapping[str, str | None], typed: frozenset[str]) -> None:
    """Check the extra ESMTP parameters; ``typed`` are keywords with their own field."""
    if not params:
        return
    seen: set[str] = set()
    for keyword, value in params.items():
        if not ESMTP_KEYWORD.fullmatch(keyword):
            raise LocalProtocolError(f"malformed ESMTP parameter keyword: {keyword!r}")
        if value is not None and not is_esmtp_value(value):
            raise LocalProtocolError(f"malformed value for ESMTP parameter {keyword}: {value!r}")
        # Keywords are case-insensitive (RFC 5321 4.1.2); a typed one in params would
        # bypass the checks made on the typed field (e.g. REQUIRETLS needs TLS).
        upper = keyword.upper()
        if upper in typed:
            raise LocalProtocolError(
                f"ESMTP parameter {keyword} has its own field; don't put it in params"
            )
        if upper in seen:
            raise LocalProtocolError(f"ESMTP parameter {keyword} given twice")
        seen.add(upper)


def _render_params(params: Mapping[str, str | None]) -> str:
    return "".join(f" {k}" if v is None else f" {k}={v}" for k, v in params.items())


class Command:
    """Base class of everything a client can send."""

    #: RFC 2920 3.1: a command after which nothing may be pipelined until its reply.
    ends_group: ClassVar[bool] = False
    #: Whether the server answers this command with a reply.
    expects_reply: ClassVar[bool] = True
    verb: ClassVar[str] = ""

    def render(self) -> bytes:
        """The exact bytes to write."""
        raise NotImplementedError

    def log_line(self) -> str:
        """What may be logged or shown: secrets redacted, never CRLF-terminated."""
        return self.render().decode("utf-8", "backslashreplace").rstrip("\r\n")

    def _line(self, text: str, limit: int = MAX_COMMAND_LINE) -> bytes:
        data = text.encode("utf-8") + b"\r\n"
        if len(data) > limit:
            raise LocalProtocolError(
                f"{self.verb} command line of {len(data)} octets exceeds {limit} "
                "(RFC 5321 4.5.3.1.4)"
            )
        return data


@dataclass(frozen=True)
class Ehlo(Command):
    """``EHLO domain`` (RFC 5321 4.1.1.1)."""

    domain: str
    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "EHLO"

    def __post_init__(self) -> None:
        validate_domain(self.domain, what="EHLO domain")
        self.render()  # an address literal is not bounded by MAX_DOMAIN

    def render(self) -> bytes:
        return self._line(f"{self.verb} {self.domain}")


@dataclass(frozen=True)
class Helo(Ehlo):
    """``HELO domain``, the fallback when EHLO is not recognised (RFC 5321 3.2)."""

    verb: ClassVar[str] = "HELO"


@dataclass(frozen=True)
class _Simple(Command):
    def render(self) -> bytes:
        return self._line(self.verb)


@dataclass(frozen=True)
class StartTLS(_Simple):
    """``STARTTLS`` (RFC 3207 4)."""

    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True)
class Rset(_Simple):
    """``RSET``: abort the current transaction (RFC 5321 4.1.1.5)."""

    verb: ClassVar[str] = "RSET"


@dataclass(frozen=True)
class Noop(_Simple):
    """``NOOP`` (RFC 5321 4.1.1.9)."""

    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "NOOP"


@dataclass(frozen=True)
class Quit(_Simple):
    """``QUIT`` (RFC 5321 4.1.1.10)."""

    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "QUIT"


@dataclass(frozen=True)
class Data(_Simple):
    """``DATA``; the body follows only after a 354 reply (RFC 5321 4.1.1.4)."""

    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "DATA"


@dataclass(frozen=True, repr=False)
class Auth(Command):
    """``AUTH mechanism [initial-response]`` (RFC 4954 4).

    ``initial_response=None`` sends none; ``b""`` sends the empty response ``=``.
    """

    mechanism: str
    initial_response: bytes | None = None
    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "AUTH"

    def __post_init__(self) -> None:
        if not SASL_MECHANISM.fullmatch(self.mechanism):
            raise LocalProtocolError(f"malformed SASL mechanism name: {self.mechanism!r}")
        self.render()  # the line limit

    def render(self) -> bytes:
        text = f"AUTH {self.mechanism}"
        if self.initial_response is not None:
            encoded = base64.b64encode(self.initial_response).decode("ascii")
            text += " " + (encoded or "=")
        return self._line(text, MAX_AUTH_LINE)

    def log_line(self) -> str:
        hidden = "" if self.initial_response is None else " <redacted>"
        return f"AUTH {self.mechanism}{hidden}"

    def __repr__(self) -> str:
        return f"Auth(mechanism={self.mechanism!r}, initial_response=<redacted>)"


@dataclass(frozen=True, repr=False)
class AuthResponse(Command):
    """A client response to a 334 challenge, base64-encoded on the wire (RFC 4954 4)."""

    data: bytes
    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "AUTH response"

    def __post_init__(self) -> None:
        self.render()  # the line limit

    def render(self) -> bytes:
        return self._line(base64.b64encode(self.data).decode("ascii"), MAX_AUTH_LINE)

    def log_line(self) -> str:
        return "<redacted>"

    def __repr__(self) -> str:
        return "AuthResponse(<redacted>)"


@dataclass(frozen=True)
class AuthCancel(_Simple):
    """``*``: the client cancels the exchange (RFC 4954 4); the server answers 501."""

    ends_group: ClassVar[bool] = True
    verb: ClassVar[str] = "*"


BodyType = Literal["7BIT", "8BITMIME", "BINARYMIME"]
_MAIL_TYPED = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "REQUIRETLS"})
_RCPT_TYPED = frozenset({"NOTIFY", "ORCPT"})


@dataclass(frozen=True)
class Mail(Command):
    """``MAIL FROM:<sender> [params]`` (RFC 5321 4.1.1.2).

    ``sender=""`` is the null reverse-path. Typed parameters: ``size`` (RFC 1870),
    ``body`` (RFC 6152, RFC 3030), ``smtputf8`` (RFC 6531), ``ret`` and ``envid``
    (RFC 3461; ``envid`` is xtext-encoded here), ``requiretls`` (RFC 8689); anything else
    goes in ``params`` as keyword to value (``None`` for a bare keyword).
    """

    sender: str
    size: int | None = None
    body: BodyType | None = None
    smtputf8: bool = False
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    requiretls: bool = False
    params: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    verb: ClassVar[str] = "MAIL"

    def __post_init__(self) -> None:
        if self.sender:
            validate_address(self.sender, what="sender")
        if self.size is not None and self.size < 0:
            raise LocalProtocolError(f"SIZE must not be negative: {self.size}")
        if self.body not in (None, "7BIT", "8BITMIME", "BINARYMIME"):
            raise LocalProtocolError(f"unknown BODY type: {self.body!r}")
        if self.ret not in (None, "FULL", "HDRS"):
            raise LocalProtocolError(f"RET must be FULL or HDRS: {self.ret!r}")
        if self.envid is not None:
            check_no_controls("ENVID", self.envid)
            if len(xtext_encode(self.envid)) > MAX_ENVID:
                raise LocalProtocolError(f"ENVID longer than {MAX_ENVID} characters (RFC 3461)")
        _check_params(self.params, _MAIL_TYPED)
        if not self.smtputf8 and not self.sender.isascii():
            raise LocalProtocolError(
                f"sender {self.sender!r} is not ASCII: it needs smtputf8=True (RFC 6531)"
            )
        params = self.all_params()
        allowance = len(params.get("ENVID") or "")
        # Built once: it checks the line limit now, and send() reuses the bytes.
        wire = self._line(
            f"MAIL FROM:<{self.sender}>{_render_params(params)}", MAX_COMMAND_LINE + allowance
        )
        object.__setattr__(self, "_wire", wire)

    def all_params(self) -> dict[str, str | None]:
        """Every ESMTP parameter, typed ones first, in rendering order."""
        out: dict[str, str | None] = {}
        if self.size is not None:
            out["SIZE"] = str(self.size)
        if self.body is not None:
            out["BODY"] = self.body
        if self.smtputf8:
            out["SMTPUTF8"] = None
        if self.ret is not None:
            out["RET"] = self.ret
        if self.envid is not None:
            out["ENVID"] = xtext_encode(self.envid)
        if self.requiretls:
            out["REQUIRETLS"] = None
        if self.params:
            out.update(self.params)
        return out

    def render(self) -> bytes:
        wire: bytes = self.__dict__["_wire"]
        return wire


Notify = Literal["NEVER", "SUCCESS", "FAILURE", "DELAY"]


@dataclass(frozen=True)
class Rcpt(Command):
    """``RCPT TO:<recipient> [params]`` (RFC 5321 4.1.1.3).

    ``notify`` is a tuple of RFC 3461 4.1 conditions (``("NEVER",)`` alone, or any of
    SUCCESS, FAILURE, DELAY); ``orcpt`` is the original recipient, sent as
    ``ORCPT=rfc822;<xtext>`` (RFC 3461 4.2).
    """

    recipient: str
    notify: tuple[Notify, ...] = ()
    orcpt: str | None = None
    params: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    verb: ClassVar[str] = "RCPT"

    def __post_init__(self) -> None:
        validate_address(self.recipient, what="recipient")
        if self.notify:
            allowed = {"NEVER", "SUCCESS", "FAILURE", "DELAY"}
            if not set(self.notify) <= allowed or len(set(self.notify)) != len(self.notify):
                raise LocalProtocolError(f"invalid NOTIFY: {self.notify!r}")
            if "NEVER" in self.notify and len(self.notify) > 1:
                raise LocalProtocolError("NOTIFY=NEVER cannot be combined (RFC 3461 4.1)")
        if self.orcpt is not None:
            check_no_controls("ORCPT", self.orcpt)
            if len(self._orcpt_value()) > MAX_ORCPT:
                raise LocalProtocolError(f"ORCPT longer than {MAX_ORCPT} characters (RFC 3461)")
        _check_params(self.params, _RCPT_TYPED)
        params = self.all_params()
        allowance = len(params.get("ORCPT") or "")
        # Built once: it checks the line limit now, and send() reuses the bytes.
        wire = self._line(
            f"RCPT TO:<{self.recipient}>{_render_params(params)}", MAX_COMMAND_LINE + allowance
        )
        object.__setattr__(self, "_wire", wire)

    def _orcpt_value(self) -> str:
        return "rfc822;" + xtext_encode(self.orcpt or "")

    def all_params(self) -> dict[str, str | None]:
        """Every ESMTP parameter, typed ones first, in rendering order."""
        out: dict[str, str | None] = {}
        if self.notify:
            out["NOTIFY"] = ",".join(self.notify)
        if self.orcpt is not None:
            out["ORCPT"] = self._orcpt_value()
        if self.params:
            out.update(self.params)
        return out

    def render(self) -> bytes:
        wire: bytes = self.__dict__["_wire"]
        return wire


@dataclass(frozen=True, repr=False)
class MessageData(Command):
    """A piece of the message body after a 354 reply; encoded by the connection."""

    data: bytes
    expects_reply: ClassVar[bool] = False
    verb: ClassVar[str] = "message data"

    def render(self) -> bytes:  # the connection encodes it; see _data.DataEncoder
        return self.data

    def log_line(self) -> str:
        return f"<{len(self.data)} octets of message data>"

    def __repr__(self) -> str:
        return f"MessageData(<{len(self.data)} octets>)"


@dataclass(frozen=True)
class EndOfData(Command):
    """The end of the body: ``CRLF . CRLF`` (RFC 5321 4.1.1.4); answered by the final reply."""

    verb: ClassVar[str] = "end of data"

    def render(self) -> bytes:  # the connection's encoder produces the exact terminator
        return b".\r\n"

    def log_line(self) -> str:
        return "."


@dataclass(frozen=True, repr=False)
class Bdat(Command):
    """``BDAT size [LAST]`` followed by exactly ``size`` octets (RFC 3030 2)."""

    data: bytes
    last: bool = False
    verb: ClassVar[str] = "BDAT"

    def render(self) -> bytes:
        return self.header() + bytes(self.data)

    def header(self) -> bytes:
        """The command line alone, without the chunk."""
        return _bdat_line(len(self.data), self.last)

    def log_line(self) -> str:
        return self.header().decode("ascii").rstrip("\r\n")

    def __repr__(self) -> str:
        return f"Bdat(<{len(self.data)} octets>, last={self.last})"

    def sent(self) -> BdatSent:
        """What a reply to this command records: its size and LAST flag, not the chunk."""
        return BdatSent(len(self.data), self.last)


@dataclass(frozen=True)
class BdatSent(Command):
    """A BDAT command as it is remembered once written: ``BDAT size [LAST]`` without the
    chunk. ``Reply.command`` holds one for a BDAT reply, so keeping a reply (or a
    ``SendResult``) never keeps message content alive."""

    size: int
    last: bool = False
    verb: ClassVar[str] = "BDAT"

    def render(self) -> bytes:  # the command line only: the chunk is gone
        return _bdat_line(self.size, self.last)


def _bdat_line(size: int, last: bool) -> bytes:
    """``BDAT size [LAST]`` CRLF (RFC 3030 2)."""
    return f"BDAT {size}{' LAST' if last else ''}\r\n".encode("ascii")
