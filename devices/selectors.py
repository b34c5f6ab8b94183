"""Reads of devices, their observations and their history; nothing here writes."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Case, CharField, Count, F, Q, QuerySet, Value, When

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


def fleet_counts() -> Counter[tuple[str, str]]:
    """Number of devices per (status, device_type), counted by the database.

    The status is the contract's: a device without an address is unknown whatever was
    last observed (the same rule as `device_status`).
    """
    status = Case(
        When(Q(ip_address="") | Q(health__isnull=True), then=Value(DeviceStatus.UNKNOWN.value)),
        default=F("health__status"),
        output_field=CharField(),
    )
    rows = (
        Device.objects.annotate(contract_status=status)
        .values("contract_status", "device_type")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return Counter({(row["contract_status"], row["device_type"]): row["n"] for row in rows})


def fleet_summary() -> dict[str, Any]:
    """Counts of `GET /metrics/summary`: unhealthy is everything not healthy."""
    counts = fleet_counts()
    total = sum(counts.values())
    by_status: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    for (status, device_type), n in counts.items():
        by_status[status] += n
        by_type[device_type] += n
    return {
        "total": total,
        "healthy": by_status[DeviceStatus.HEALTHY],
        "unhealthy": total - by_status[DeviceStatus.HEALTHY],
        "by_device_type": dict(sorted(by_type.items())),
        "by_status": {status.value: by_status[status.value] for status in DeviceStatus},
    }
