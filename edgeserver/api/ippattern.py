"""Regular expressions (ECMA 262, as JSON Schema has them) for the text of the addresses
inside given networks, so the OpenAPI schema says which addresses the server accepts.

IPv4 is exact: dotted decimal without leading zeros is the only form the server reads.
IPv6 has many spellings of one address; its patterns are exact in the leading group for
prefixes of up to 16 bits (`fc00::/7`), a single address is spelled out, and a longer
prefix fixes its whole leading groups (the `ipv6` format then judges the rest).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from edgeserver.net import IPNetwork

_ANY_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"


def _alternation(values: Iterable[str]) -> str:
    return "(?:" + "|".join(values) + ")"


def _octets(low: int, high: int) -> str:
    if (low, high) == (0, 255):
        return _ANY_OCTET
    return _alternation(str(value) for value in range(high, low - 1, -1))


def ipv4_pattern(network: ipaddress.IPv4Network) -> str:
    """The dotted-decimal text of every address in `network`, and of nothing else."""
    first = network.network_address.packed
    last = network.broadcast_address.packed
    return r"\.".join(_octets(low, high) for low, high in zip(first, last, strict=True))


def _nibbles(low: int, high: int) -> str:
    """One hex digit of the range low..high, either case."""
    digits = [f"{v:x}" for v in range(low, high + 1)]
    if len(digits) == 1 and digits[0].isdigit():
        return digits[0]
    return "[" + "".join(d + d.upper() if d.isalpha() else d for d in digits) + "]"


def _aligned_group(first: int, bits: int) -> str:
    """The four hex digits of a group whose top `bits` bits are those of `first`."""
    digits = []
    for shift in (12, 8, 4, 0):
        fixed = min(max(bits - (12 - shift), 0), 4)  # bits of this digit that are fixed
        value = (first >> shift) & 0xF
        span = 1 << (4 - fixed)
        low = value & ~(span - 1)
        digits.append(_nibbles(low, low + span - 1))
    return "".join(digits)


def ipv6_pattern(network: ipaddress.IPv6Network) -> str:
    """The text of the addresses of `network`: exact in the leading group for prefixes of up
    to 16 bits whose groups start at 0x1000 or above (such a group can be neither shortened
    nor compressed), the address itself for a /128, the whole leading groups of a longer
    prefix; nothing for a short prefix of small groups (only these networks' exotic
    configurations, which the schema then leaves out)."""
    groups = [int.from_bytes(network.network_address.packed[i : i + 2]) for i in range(0, 16, 2)]
    if network.prefixlen == 128:
        address = network.network_address
        spellings = {str(address), address.exploded}
        return _alternation(_case_insensitive(s) for s in sorted(spellings))
    if network.prefixlen <= 16:
        if groups[0] < 0x1000:
            return "(?!)"
        return _aligned_group(groups[0], network.prefixlen) + ":.*"
    fixed = network.prefixlen // 16
    leading = (f"0{{0,3}}{_case_insensitive(f'{g:x}')}" for g in groups[:fixed])
    return ":".join(leading) + ":.*"


def _case_insensitive(text: str) -> str:
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.isalpha() else ("\\." if c == "." else c) for c in text
    )


def addresses_pattern(networks: Iterable[IPNetwork]) -> str:
    """An anchored pattern for the addresses of any of `networks`."""
    parts = [
        ipv4_pattern(n) if isinstance(n, ipaddress.IPv4Network) else ipv6_pattern(n)
        for n in networks
    ]
    return "^" + _alternation(parts or ["(?!)"]) + "$"
