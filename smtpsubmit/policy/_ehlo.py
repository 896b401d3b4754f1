"""The name the client gives in EHLO (RFC 5321 4.1.4)."""

from __future__ import annotations

import socket

from ..protocol import LocalProtocolError
from ..protocol._syntax import validate_domain

__all__ = ["ehlo_name"]


def ehlo_name(local_ip: str | None = None) -> str:
    """This host's name when it is a fully qualified domain, else an address literal.

    RFC 5321 4.1.4 wants the client's FQDN or, failing that, the address literal of its end
    of the connection (``local_ip``; ``[127.0.0.1]`` when unknown). No DNS lookup:
    ``socket.getfqdn()`` can stall for seconds, and that on an event loop.
    """
    name = socket.gethostname()
    if "." in name and name.isascii():
        try:
            validate_domain(name)
        except LocalProtocolError:
            pass
        else:
            return name
    if local_ip is None:
        return "[127.0.0.1]"
    return f"[IPv6:{local_ip}]" if ":" in local_ip else f"[{local_ip}]"
