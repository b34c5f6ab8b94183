"""`{% fleet_overview %}`: the fleet at a glance, on the admin home; `{% ago moment %}`:
a time in few characters, the exact time on hover."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import template

from devices.admin.display import short_time
from devices.selectors import fleet_overview as fleet_overview_data

register = template.Library()


@register.inclusion_tag("admin/devices/fleet_overview.html")
def fleet_overview() -> dict[str, Any]:
    return fleet_overview_data()


@register.simple_tag
def ago(moment: datetime | None) -> str:
    return short_time(moment)


@register.filter
def as_json(value: Any) -> str:
    """A config value as JSON (`true`, `{"a": 1}`), as operators write it."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
