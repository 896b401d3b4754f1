"""smtpsubmit: typed async mail submission (RFC 6409) for asyncio and trio.

Secure by default: implicit TLS on 465 and required STARTTLS on 587 (RFC 8314), verified
certificates, no credentials or mail in cleartext unless explicitly allowed.

    import smtpsubmit
    result = await smtpsubmit.send(msg, host="smtp.example.com", port=465,
                                   username="me", password="secret")
"""

from ._client import DSN, SMTPClient, send
from ._errors import (
    ArgumentError,
    AuthenticationError,
    CertificateError,
    CleartextAuthError,
    ConnectError,
    ConnectionLostError,
    MessageError,
    NoCompatibleMechanismError,
    OutcomeUnknownError,
    PermanentReplyError,
    ProtocolViolationError,
    RecipientsRefusedError,
    ReplyError,
    SecurityPolicyError,
    SMTPError,
    StartTLSUnavailableError,
    TimeoutError,
    TLSError,
    TLSPolicyError,
    TransientReplyError,
)
from ._pool import SMTPPool
from ._results import SendResult, Transcript, TranscriptLine
from .auth import Authenticator, OAuth2Auth, PasswordAuth
from .policy import Timeouts, TLSMode
from .protocol import EnhancedStatus, Reply

__version__ = "0.1.0.dev0"

__all__ = [
    "DSN",
    "ArgumentError",
    "AuthenticationError",
    "Authenticator",
    "CertificateError",
    "CleartextAuthError",
    "ConnectError",
    "ConnectionLostError",
    "EnhancedStatus",
    "MessageError",
    "NoCompatibleMechanismError",
    "OAuth2Auth",
    "OutcomeUnknownError",
    "PasswordAuth",
    "PermanentReplyError",
    "ProtocolViolationError",
    "RecipientsRefusedError",
    "Reply",
    "ReplyError",
    "SMTPClient",
    "SMTPError",
    "SMTPPool",
    "SecurityPolicyError",
    "SendResult",
    "StartTLSUnavailableError",
    "TLSError",
    "TLSMode",
    "TLSPolicyError",
    "TimeoutError",
    "Timeouts",
    "Transcript",
    "TranscriptLine",
    "TransientReplyError",
    "send",
]
