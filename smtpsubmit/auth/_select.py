"""Choosing the mechanism: the user's preference order wins, filtered by what the server
advertised in EHLO (RFC 4954 3) and by what the channel allows."""

from __future__ import annotations

from collections.abc import Iterable

from ._base import Authenticator, ChannelInfo, NoCompatibleMechanism


def select_mechanism(
    offered: Iterable[str], auth: Authenticator, *, channel: ChannelInfo | None = None
) -> str:
    """The first of ``auth.mechanisms()`` that the server offered (RFC 4954 3; names compare
    case-insensitively, RFC 4422 3.1).

    Names ending in ``-PLUS`` need channel binding (RFC 5802 6); they are skipped unless
    ``channel`` carries ``tls_server_end_point`` data, so a caller that passes no channel
    never ends up with a mechanism it cannot start. Raises `NoCompatibleMechanism`, naming
    both lists, when nothing matches.
    """
    offered = tuple(offered)
    server = {name.upper() for name in offered}
    can_bind = channel is not None and channel.tls_server_end_point is not None
    for name in auth.mechanisms():
        if name.upper().endswith("-PLUS") and not can_bind:
            continue
        if name.upper() in server:
            return name
    hint = ""
    if "CRAM-MD5" in server and "CRAM-MD5" not in {m.upper() for m in auth.mechanisms()}:
        hint = "CRAM-MD5 is never chosen automatically; pin it with mechanisms=('CRAM-MD5',)"
    elif any(m.upper().endswith("-PLUS") and m.upper() in server for m in auth.mechanisms()):
        hint = "the -PLUS mechanisms in common need TLS channel-binding data"
    raise NoCompatibleMechanism(offered, auth.mechanisms(), hint)
