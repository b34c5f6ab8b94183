"""Whether a device's own address, seen on its request, may become its stored address
(ADOPT_OBSERVED_IP), and when not, why (the log says)."""

from __future__ import annotations

import logging

from django.conf import settings

from devices import selectors
from devices.validation import address_allowed
from edgeserver.api.addresses import ObservedAddress
from users.actors import Actor

logger = logging.getLogger(__name__)


def adoption_allowed(device_id: str, ip: str) -> bool:
    """An observed address another device already has is not adopted: devices behind one
    NAT or proxy all call from its address, which would make them one scrape target."""
    holders = selectors.devices_with_address(ip, excluding=device_id)
    if holders:
        logger.warning(
            "Not adopting %s as the address of %s: %s already has it (are the devices "
            "behind one NAT or proxy? set their ip_address, or list the proxy in "
            "TRUSTED_PROXIES)",
            ip,
            device_id,
            ", ".join(holders),
        )
    return not holders


def adoptable(observed: ObservedAddress | None, actor: Actor) -> str | None:
    """The caller's address, when a device registering itself may have it adopted."""
    if observed is None or not actor.is_device or not settings.ADOPT_OBSERVED_IP:
        return None
    if observed.unlisted_proxy:
        logger.warning(
            "Not adopting %s as a device address: the request came through a proxy "
            "that is not in TRUSTED_PROXIES",
            observed.ip,
        )
        return None
    return observed.ip if address_allowed(observed.ip) else None
