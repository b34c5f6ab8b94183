"""Rules for values the server accepts from clients, shared by the API and the admin."""

from __future__ import annotations

import functools
import ipaddress
import re

from django.conf import settings

DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
DEVICE_TYPE_MAX_LENGTH = 64


def device_id_problem(value: str) -> str | None:
    """Why `value` is not a valid device id, or None when it is one."""
    if not value:
        return "Device id must not be empty"
    if len(value) > 253:
        return f"Device id is {len(value)} characters long; at most 253 are allowed"
    if not DEVICE_ID_PATTERN.fullmatch(value) or ".." in value:
        return (
            "Device id must be 1-253 characters of letters, digits, '.', '_' and '-', "
            "start with a letter or digit and not contain '..'"
        )
    return None


def normalise_ip(value: str) -> str:
    """Return the canonical text of an IPv4/IPv6 literal; ValueError if it is not one.

    Zone ids (`fe80::1%eth0`) are refused: no address with a zone can be reached from,
    or published into, another host.
    """
    if not isinstance(value, str) or "%" in value or value != value.strip():
        raise ValueError(value)
    return str(ipaddress.ip_address(value))


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses that reach this host, its link or a group rather than one device: the cloud
# metadata service (169.254.169.254), the server's own ports, every host at once. A listed
# network admits them only when it lies inside the special range, i.e. when they are listed
# on purpose (`127.0.0.0/8`, `169.254.10.0/24`); `0.0.0.0/0` or `::/0` does not.
SPECIAL_RANGES: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "224.0.0.0/4",  # multicast
        "0.0.0.0/8",  # unspecified ("this host")
        "255.255.255.255/32",  # broadcast
        "::1/128",  # loopback
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
        "::/128",  # unspecified
    )
)


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


def _special_range(address: IPAddress) -> IPNetwork | None:
    for special in SPECIAL_RANGES:
        if address.version == special.version and address in special:
            return special
    return None


def address_allowed(value: str) -> bool:
    """Whether the server may contact a device at `value` (DEVICE_ALLOWED_NETWORKS)."""
    return _address_allowed(value, tuple(settings.DEVICE_ALLOWED_NETWORKS))


# Reads of the whole fleet (the Prometheus targets, the fleet gauges, every probe round)
# ask this of every device's address each time; the answer depends on nothing else.
@functools.lru_cache(maxsize=16384)
def _address_allowed(value: str, cidrs: tuple[str, ...]) -> bool:
    try:
        address = comparable_ip(value)
    except ValueError:
        return False
    special = _special_range(address)
    for network in parse_networks(cidrs):
        if address.version != network.version or address not in network:
            continue
        if special is None or network.subnet_of(special):
            return True
    return False


def address_not_allowed_message(value: str) -> str:
    """Why the server refuses to contact `value`; names the setting to change."""
    shown = value
    try:
        if str(comparable_ip(value)) != str(ipaddress.ip_address(value)):
            shown = f"{value} ({comparable_ip(value)})"
    except ValueError:
        pass
    return (
        f"{shown} is outside DEVICE_ALLOWED_NETWORKS; the server contacts devices only "
        "at addresses inside those networks"
    )
