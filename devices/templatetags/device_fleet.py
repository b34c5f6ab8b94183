"""`{% fleet_overview %}`: the fleet at a glance, on the admin home."""

from __future__ import annotations

from typing import Any

from django import template

from devices.admin import STATUS_COLOURS
from devices.selectors import fleet_overview as fleet_overview_data

register = template.Library()


@register.inclusion_tag("admin/devices/fleet_overview.html")
def fleet_overview() -> dict[str, Any]:
    overview = fleet_overview_data()
    for share in overview["by_status"]:
        share["colour"] = STATUS_COLOURS.get(share["name"], "#757575")
    for change in overview["recent_changes"]:
        change["colour"] = STATUS_COLOURS.get(change["status"], "#757575")
    return overview
