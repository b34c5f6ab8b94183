"""The `?selector=` of the fleet routes (`GET /devices`, `GET /config`,
`POST /devices/reload`, `GET /prometheus/targets`): a Kubernetes label selector over the
devices' labels and their `device_type` and `status` (devices.labels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import OpenApiParameter

from devices.labels import InvalidSelector, Selector, parse_selector

# The selectors parse_selector takes, as a pattern for the schema (spaces for whitespace,
# prefixes of at most three DNS labels: a little narrower than the parser, never wider).
_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_KEY = rf"(?:{_DNS_LABEL}(?:\.{_DNS_LABEL}){{0,2}}/)?{_NAME}"
_VALUE = rf"(?:{_NAME})?"
_SET = rf"\( *{_NAME}(?: *, *{_VALUE})* *\)"
_REQUIREMENT = rf"(?:! *{_KEY}|{_KEY}(?: *(?:=|==|!=) *{_VALUE}| +(?:in|notin) *{_SET})?)"
SELECTOR_PATTERN = rf"^ *(?:{_REQUIREMENT}(?: *, *{_REQUIREMENT})*)? *$"

SELECTOR = OpenApiParameter(
    "selector",
    # No maxLength: a request line over gunicorn's limit is a 414 before the server
    # could say more; parse_selector refuses one over 4096 characters.
    {"type": "string", "pattern": SELECTOR_PATTERN},
    description="Only the devices this Kubernetes label selector matches, over their labels "
    "and their `device_type` and `status`: comma-separated requirements, all of which must "
    "hold: `site=lab-3`, `rack!=r2`, `tier in (a,b)`, `tier notin (c)`, `gpu` (has the "
    "label), `!gpu` (has not); `!=` and `notin` match devices without the label. Combines "
    "with the other filters and with paging (a page holds `limit` matching devices). Empty: "
    "every device. At most 4096 characters; spaces may surround the parts (no other "
    "whitespace)",
)


def selector_request(query: Mapping[str, Any]) -> Selector:
    """The selector a request asks for (the empty one, matching all, when none); raises
    devices.labels.InvalidSelector (400 `invalid_selector`) for one that does not parse,
    or that separates its parts by whitespace other than spaces (as the schema says)."""
    text = query.get("selector")
    if text is not None and any(c.isspace() and c != " " for c in text):
        raise InvalidSelector(f"selector {text!r}: only spaces may separate its parts")
    return parse_selector(text)
