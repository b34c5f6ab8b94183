"""Rules for values the server accepts from clients, shared by the API and the admin."""

from __future__ import annotations

import functools
import ipaddress
import re

from django.conf import settings

from edgeserver.net import IPAddress, IPNetwork, comparable_ip, parse_networks

# Letters, digits, `.`, `_`, `-`, starting with a letter or digit, no `..` (written so
# that the OpenAPI schema can carry it as it is); at most 253 characters.
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\.?")
DEVICE_ID_MAX_LENGTH = 253
DEVICE_TYPE_MAX_LENGTH = 64


# A profile name: a DNS label (what Kubernetes names objects with).
PROFILE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def device_id_problem(value: str) -> str | None:
    """Why `value` is not a valid device id, or None when it is one."""
    if not value:
        return "Device id must not be empty"
    if len(value) > DEVICE_ID_MAX_LENGTH:
        return f"Device id is {len(value)} characters long; at most 253 are allowed"
    if not DEVICE_ID_PATTERN.fullmatch(value):
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


def allowed_networks(cidrs: tuple[str, ...]) -> list[IPNetwork]:
    """The networks of exactly the addresses `address_allowed` admits: the listed ones, less
    the special ranges a network is not inside of (for the OpenAPI schema's pattern)."""
    allowed: list[IPNetwork] = []
    for network in parse_networks(cidrs):
        pieces = [network]
        for special in SPECIAL_RANGES:
            if special.version != network.version or network.subnet_of(special):
                continue
            pieces = [rest for piece in pieces for rest in _without(piece, special)]
        allowed += pieces
    return sorted(set(allowed), key=lambda n: (n.version, n))


def _without(network: IPNetwork, cut: IPNetwork) -> list[IPNetwork]:
    if not network.overlaps(cut):
        return [network]
    if network.subnet_of(cut):
        return []
    return list(network.address_exclude(cut))


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
