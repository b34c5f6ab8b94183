"""The device list's columns: which an operator may choose, and the cells that refresh in
place (their HTML ids are what the live refresh swaps them in by)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from devices import selectors
from devices.admin.display import EMPTY, live_id, short_time, status_badge
from devices.models import Device

# The columns an operator may choose (the device id is always shown), in display order,
# and those shown until they choose.
COLUMNS = {
    "kind": "type",
    "address": "address",
    "status": "status",
    "last_seen": "last seen",
    "failures": "failures",
    "reload_pending": "reload pending",
    "config_in_sync": "config in sync",
    "observed_ip": "observed IP",
    "last_checked": "last checked",
    "exporter_status": "exporter says",
    "label_list": "labels",
    "updated": "updated",
}
DEFAULT_COLUMNS = [c for c in COLUMNS if c not in ("last_checked", "exporter_status", "label_list")]
COLUMNS_KEY = "ems_device_columns"


def chosen_columns(request: HttpRequest) -> list[str]:
    """The operator's choice; until they choose, the defaults, and the labels once some
    device has labels (a fleet without any spends no column of its 1280 px on them)."""
    chosen = request.session.get(COLUMNS_KEY)
    if not chosen:
        labelled = Device.objects.exclude(labels={}).exists()
        chosen = [*DEFAULT_COLUMNS, "label_list"] if labelled else DEFAULT_COLUMNS
    return [column for column in COLUMNS if column in chosen]


def _failures(device: Device) -> str:
    count = selectors.device_health(device).consecutive_failures
    return format_html("{}", count if count else EMPTY)


def _pending(device: Device) -> str:
    if selectors.device_health(device).reload_pending:
        return format_html('<span class="ems-flag">{}</span>', "pending")
    return format_html("{}", EMPTY)


def _in_sync(device: Device) -> str:
    health = selectors.device_health(device)
    if health.config_in_sync is None:
        return format_html("{}", EMPTY)
    if health.config_in_sync:
        return format_html('<span class="ems-yes">{}</span>', "yes")
    return format_html(
        '<span class="ems-no" title="drifted: {}">{}</span>',
        ", ".join(health.drifted_keys),
        "drifted",
    )


# The cells the list refreshes in place (console.live_view), by the name in their HTML id.
LIVE_CELLS = {
    "status": lambda device: status_badge(*selectors.device_status(device)),
    "seen": lambda device: short_time(selectors.device_health(device).last_seen),
    "failures": _failures,
    "pending": _pending,
    "sync": _in_sync,
}


def live_cell(device: Device, column: str, *, oob: bool = False) -> str:
    """A live cell: its content in a span whose id the refresh swaps it in by."""
    return format_html(
        '<span id="{}"{}>{}</span>',
        live_id(device.device_id, column),
        mark_safe(' hx-swap-oob="true"') if oob else "",
        LIVE_CELLS[column](device),
    )
