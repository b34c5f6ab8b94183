"""`{% fleet_overview %}`: the fleet at a glance, on the admin home."""

from __future__ import annotations

from typing import Any

from django import template

from devices.selectors import fleet_overview as fleet_overview_data

register = template.Library()


@register.inclusion_tag("admin/devices/fleet_overview.html")
def fleet_overview() -> dict[str, Any]:
    return fleet_overview_data()
