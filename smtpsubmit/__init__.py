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
    NotSentError,
    OutcomeUnknownError,
    PermanentReplyError,
    ProtocolViolationError,
    ProxyAuthenticationError,
    ProxyConnectError,
    ProxyError,
    ProxyRefusedError,
    ProxyTargetError,
    RecipientsRefusedError,
    ReplyError,
    ResponseInjectionError,
    SecurityPolicyError,
    SMTPError,
    StartTLSUnavailableError,
    TimeoutError,
    TLSError,
    TLSModeMismatchError,
    TLSPolicyError,
    TransientReplyError,
)
from ._pool import SMTPPool
from ._results import Attempt, SendResult, Transcript, TranscriptLine
from .auth import Authenticator, OAuth2Auth, PasswordAuth
from .policy import RateLimit, RetryPolicy, Timeouts, TLSMode, system_trust_context
from .protocol import EnhancedStatus, Reply

__version__ = "0.1.0.dev0"

__all__ = [
    "DSN",
    "Attempt",
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
    "NotSentError",
    "OAuth2Auth",
    "OutcomeUnknownError",
    "PasswordAuth",
    "PermanentReplyError",
    "ProtocolViolationError",
    "ProxyAuthenticationError",
    "ProxyConnectError",
    "ProxyError",
    "ProxyRefusedError",
    "ProxyTargetError",
    "RateLimit",
    "RecipientsRefusedError",
    "Reply",
    "ReplyError",
    "ResponseInjectionError",
    "RetryPolicy",
    "SMTPClient",
    "SMTPError",
    "SMTPPool",
    "SecurityPolicyError",
    "SendResult",
    "StartTLSUnavailableError",
    "TLSError",
    "TLSMode",
    "TLSModeMismatchError",
    "TLSPolicyError",
    "TimeoutError",
    "Timeouts",
    "Transcript",
    "TranscriptLine",
    "TransientReplyError",
    "send",
    "system_trust_context",
]
