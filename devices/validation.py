"""Rules for values the server accepts from clients, shared by the API and the admin."""

from __future__ import annotations

import ipaddress
import re

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
