"""Pages of the fleet lists (`GET /devices`, `GET /config`, `GET /prometheus/targets`):
the whole list by default, as the contract says; `?limit=N` for a page of N devices in
device-id order, and `?cursor=` (the `next_cursor` of the page before) for the next one.

A cursor is the device id a page starts after (any valid device id is one: `?cursor=m`
starts at the first device after `m`). Pages are read by key, so a device created or
deleted between two pages neither repeats nor hides another one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drf_spectacular.utils import OpenApiParameter

from devices.validation import DEVICE_ID_MAX_LENGTH, DEVICE_ID_PATTERN, device_id_problem
from edgeserver.api.errors import ApiError

MAX_LIMIT = 1000

PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        description="A page of at most this many devices, in device-id order (default: the "
        "whole fleet in one answer)",
    ),
    OpenApiParameter(
        "cursor",
        {
            "type": "string",
            "minLength": 1,
            "maxLength": DEVICE_ID_MAX_LENGTH,
            "pattern": f"^{DEVICE_ID_PATTERN.pattern}$",
        },
        description="Where the page starts: after this device id (the `next_cursor` of the "
        "page before)",
    ),
]


@dataclass(frozen=True)
class PageRequest:
    limit: int | None = None
    # The device id this page starts after ("" from the first device).
    after: str = ""
    # A page was asked for (its answer says where the next one starts).
    paged: bool = False


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_page", message)


def page_request(query: Mapping[str, Any]) -> PageRequest:
    """The page a request asks for; raises ApiError `invalid_page` for a bad one."""
    raw_limit, cursor = query.get("limit"), query.get("cursor")
    limit = None
    if raw_limit is not None:
        if not (raw_limit.isascii() and raw_limit.isdigit()) or not (
            1 <= int(raw_limit) <= MAX_LIMIT
        ):
            raise _invalid(f"limit must be an integer from 1 to {MAX_LIMIT}; got {raw_limit!r}")
        limit = int(raw_limit)
    if cursor is not None:
        problem = device_id_problem(cursor)
        if problem:
            raise _invalid(f"cursor must be a device id (a page's next_cursor): {problem}")
    return PageRequest(limit=limit, after=cursor or "", paged=limit is not None or bool(cursor))


def cursor_after(device_id: str) -> str:
    """The cursor of the page that starts after `device_id`."""
    return device_id


def page_of(items: list[Any], request: PageRequest, key: Any) -> tuple[list[Any], str | None]:
    """The page of `items` (read with `limit + 1` rows, so that one more tells there is a
    next page) and the cursor of the next page, None on the last one."""
    if request.limit is None or len(items) <= request.limit:
        return items, None
    page = items[: request.limit]
    return page, cursor_after(key(page[-1]))
