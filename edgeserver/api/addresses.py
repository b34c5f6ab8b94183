"""Where a request came from: the peer, or the client that trusted proxies name.

X-Forwarded-For is honoured only from peers inside TRUSTED_PROXIES: anyone can send the
header, so from anyone else it would let a caller claim any address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from edgeserver.net import IPAddress, comparable_ip, in_networks


@dataclass(frozen=True)
class ObservedAddress:
    ip: str
    # X-Forwarded-For arrived from a peer outside TRUSTED_PROXIES: probably a proxy nobody
    # listed, so `ip` may be the proxy rather than the caller.
    unlisted_proxy: bool = False


def _parse(text: str) -> IPAddress | None:
    """An address as a hop names it: `10.0.0.1`, `10.0.0.1:1234`, `[fd00::1]:80`."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    if not text or "%" in text:
        return None
    try:
        return comparable_ip(text)
    except ValueError:
        return None


def _trusted(address: IPAddress) -> bool:
    return in_networks(address, tuple(settings.TRUSTED_PROXIES))


def request_address(meta: Mapping[str, Any]) -> ObservedAddress | None:
    """The caller's address from a WSGI environ, or None when it cannot be told."""
    peer = _parse(meta.get("REMOTE_ADDR", "") or "")
    if peer is None:
        return None
    forwarded = (meta.get("HTTP_X_FORWARDED_FOR", "") or "").strip()
    if not forwarded:
        return ObservedAddress(str(peer))
    if not _trusted(peer):
        return ObservedAddress(str(peer), unlisted_proxy=True)
    # Each trusted proxy appended the address it received from; walk back to the first
    # hop that is not one of ours.
    hop: IPAddress = peer
    for text in reversed(forwarded.split(",")):
        parsed = _parse(text)
        if parsed is None:
            return None  # a chain we cannot read names nobody reliably
        hop = parsed
        if not _trusted(hop):
            break
    return ObservedAddress(str(hop))
