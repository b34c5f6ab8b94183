"""IP address helpers shared by every layer: parsing, IPv4-mapped addresses, network lists."""

from __future__ import annotations

import functools
import ipaddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def comparable_ip(value: str) -> IPAddress:
    """Parse an address; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is its IPv4."""
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=16)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """CIDR texts (from settings, already validated there) as networks, parsed once."""
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def in_networks(address: IPAddress, cidrs: tuple[str, ...]) -> bool:
    return any(
        address.version == network.version and address in network
        for network in parse_networks(cidrs)
    )
