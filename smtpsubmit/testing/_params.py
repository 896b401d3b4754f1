"""ESMTP parameters of MAIL and RCPT: accepted only if their extension was advertised.

Theory of operation: pure functions. The session passes what it advertised in the last EHLO
(nothing after HELO: RFC 5321 4.1.1.11 allows parameters only after EHLO) and gets back the
parameters with values normalised (upper-case keywords, xtext decoded, RFC 3461 4), or a
``ParamError`` carrying the reply. Unknown or unadvertised parameters get ``555 5.5.4``
(RFC 5321 4.1.1.11 / 4.2.3).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from ._codec import ascii_upper, decode_xtext, parse_number
from ._config import Extension

__all__ = ["Advertised", "ParamError", "check_mail_params", "check_rcpt_params"]

_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
#: RFC 1870 6: size-value ::= 1*20DIGIT
_SIZE_DIGITS = 20


@dataclass(frozen=True)
class Advertised:
    """What the client may rely on: the extensions of the last EHLO, TLS, the SIZE limit."""

    extensions: AbstractSet[Extension]
    tls: bool
    max_message_size: int | None


class ParamError(Exception):
    """A parameter is refused with this reply."""

    def __init__(self, code: int, text: str, enhanced: str) -> None:
        super().__init__(text)
        self.code, self.text, self.enhanced = code, text, enhanced


def _unsupported(key: str) -> ParamError:
    return ParamError(555, f"Unsupported parameter {key}", "5.5.4")


def check_mail_params(params: dict[str, str | None], adv: Advertised) -> dict[str, str | None]:
    """Validate MAIL FROM parameters (SIZE, BODY, SMTPUTF8, REQUIRETLS, RET, ENVID, AUTH)."""
    ext = adv.extensions
    out: dict[str, str | None] = {}
    for key, value in params.items():
        if key == "SIZE" and Extension.SIZE in ext:  # RFC 1870 6
            size = parse_number(value or "", max_digits=_SIZE_DIGITS)
            if size is None:
                raise ParamError(501, "Bad SIZE value", "5.5.4")
            if adv.max_message_size is not None and size > adv.max_message_size:
                raise ParamError(552, "Message size exceeds fixed maximum size", "5.3.4")
        elif key == "BODY" and value is not None:
            allowed = {"7BIT"}
            if Extension.EIGHTBITMIME in ext:
                allowed.add("8BITMIME")  # RFC 6152 2
            if Extension.BINARYMIME in ext and Extension.CHUNKING in ext:
                allowed.add("BINARYMIME")  # RFC 3030 3
            if ascii_upper(value) not in allowed or not ext:
                raise ParamError(555, f"Unsupported BODY type {value}", "5.5.4")
            value = ascii_upper(value)
        elif key == "SMTPUTF8" and value is None and Extension.SMTPUTF8 in ext:
            pass  # RFC 6531 3.4
        elif key == "REQUIRETLS" and value is None and Extension.REQUIRETLS in ext and adv.tls:
            pass  # RFC 8689 4.1: only offered, hence only accepted, over TLS
        elif key == "RET" and Extension.DSN in ext:
            if value is None or ascii_upper(value) not in ("FULL", "HDRS"):
                raise ParamError(501, "Bad RET value", "5.5.4")  # RFC 3461 4.3
            value = ascii_upper(value)
        elif key == "ENVID" and value is not None and Extension.DSN in ext:
            value = decode_xtext(value)  # RFC 3461 4.4
        elif key == "AUTH" and value is not None and Extension.AUTH in ext:
            value = decode_xtext(value)  # RFC 4954 5
        else:
            raise _unsupported(key)
        out[key] = value
    return out


def check_rcpt_params(params: dict[str, str | None], adv: Advertised) -> dict[str, str | None]:
    """Validate RCPT TO parameters (the DSN ones: NOTIFY, ORCPT)."""
    out: dict[str, str | None] = {}
    for key, value in params.items():
        if Extension.DSN not in adv.extensions or value is None:
            raise _unsupported(key)
        if key == "NOTIFY":
            words = ascii_upper(value).split(",")
            # RFC 3461 4.1: NEVER alone, or any of SUCCESS, FAILURE, DELAY.
            if words != ["NEVER"] and not set(words) <= _NOTIFY_VALUES:
                raise ParamError(501, "Bad NOTIFY value", "5.5.4")
            value = ",".join(words)
        elif key == "ORCPT":
            addr_type, sep, xtext = value.partition(";")
            if not sep or not addr_type:
                raise ParamError(501, "Bad ORCPT value", "5.5.4")  # RFC 3461 4.2
            value = f"{addr_type};{decode_xtext(xtext)}"
        else:
            raise _unsupported(key)
        out[key] = value
    return out
