"""The metric catalogue: which metric names the fleet's devices have reported, and how
many devices are served each enabled (`GET /metrics/catalogue`, the admin's checkboxes)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from devices.models import Device


def metric_catalogue(*, device_type: str | None = None) -> dict[str, Any]:
    """The metric names devices have reported (the `metrics` dict of what their own writes
    built), each with how many devices reported it and how many are served it enabled."""
    rows = Device.objects.order_by()
    if device_type is not None:
        rows = rows.filter(device_type=device_type)
    reported: Counter[str] = Counter()
    enabled: Counter[str] = Counter()
    total = 0
    for extra, base in rows.values_list("extra_config", "base_config").iterator(chunk_size=2000):
        total += 1
        served = (extra or {}).get("metrics")
        own = (base or {}).get("metrics") if base is not None else served
        reported.update(name for name in own or {} if isinstance(own, dict))
        if isinstance(served, dict):
            enabled.update(name for name, on in served.items() if on is True)
    metrics = [
        {"name": name, "devices": count, "enabled": enabled[name]}
        for name, count in sorted(reported.items())
    ]
    return {"device_type": device_type, "devices": total, "metrics": metrics}
