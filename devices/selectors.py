"""Reads of devices, their observations and their history; nothing here writes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import QuerySet

from devices.choices import DeviceStatus
from devices.models import Device, DeviceHealth, DeviceRevision

NO_IP_ERROR = "No IP address registered"
NOT_CHECKED_ERROR = "Not checked yet"


def device_get(*, device_id: str) -> Device | None:
    return Device.objects.filter(device_id=device_id).first()


def device_get_with_health(*, device_id: str) -> Device | None:
    return device_list().filter(device_id=device_id).first()


def device_list() -> QuerySet[Device]:
    return Device.objects.select_related("health").order_by("device_id")


def device_health(device: Device) -> DeviceHealth:
    """The stored observation of a device; a device never observed reads as unknown."""
    try:
        return device.health
    except DeviceHealth.DoesNotExist:
        return DeviceHealth(device=device)


def device_status(device: Device) -> tuple[str, str]:
    """The contract status of a device and its error text ("" when healthy)."""
    if not device.ip_address:
        return DeviceStatus.UNKNOWN, NO_IP_ERROR
    health = device_health(device)
    if health.status == DeviceStatus.UNKNOWN:
        return DeviceStatus.UNKNOWN, health.error or NOT_CHECKED_ERROR
    return health.status, health.error


def revision_list(*, device_id: str) -> QuerySet[DeviceRevision]:
    return DeviceRevision.objects.filter(device_id=device_id).order_by("-version")


def fleet_summary(devices: list[Device]) -> dict[str, Any]:
    """Counts of `GET /metrics/summary`: unhealthy is everything not healthy."""
    statuses = Counter(device_status(device)[0] for device in devices)
    healthy = statuses[DeviceStatus.HEALTHY]
    return {
        "total": len(devices),
        "healthy": healthy,
        "unhealthy": len(devices) - healthy,
        "by_device_type": dict(sorted(Counter(d.device_type for d in devices).items())),
        "by_status": {status.value: statuses[status.value] for status in DeviceStatus},
    }
