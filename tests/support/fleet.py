"""Devices arranged directly in the database, with their observed status.

Devices that go into a (fake) cluster use documentation addresses (192.0.2.0/24,
2001:db8::/32) and are written through the ORM, never through the API: nothing may ever
try to contact them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from devices.choices import DeviceStatus
from devices.models import Device, DeviceHealth

_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.get_fixed_timezone(0))
_counter = 0


def add_device(
    device_id: str,
    *,
    ip: str = "192.0.2.10",
    status: str = DeviceStatus.HEALTHY,
    port: int = 9100,
    device_type: str = "jetson_orin",
    created_at: datetime | None = None,
) -> Device:
    """A registered device with a stored health observation.

    Without `created_at`, devices are registered one second apart in call order, so
    "registered first" is deterministic.
    """
    global _counter
    _counter += 1
    when = created_at or _EPOCH + timedelta(seconds=_counter)
    device = Device.objects.create(
        device_id=device_id,
        device_type=device_type,
        ip_address=ip,
        port=port,
        created_at=when,
        updated_at=when,
    )
    DeviceHealth.objects.create(
        device=device,
        status=status,
        error="" if status == DeviceStatus.HEALTHY else "HTTP 503",
        last_seen=timezone.now() if status == DeviceStatus.HEALTHY else None,
    )
    return Device.objects.select_related("health").get(pk=device_id)


def set_status(
    device_id: str, status: str, *, ip: str | None = None, port: int | None = None
) -> None:
    DeviceHealth.objects.filter(device_id=device_id).update(status=status)
    changes = {}
    if ip is not None:
        changes["ip_address"] = ip
    if port is not None:
        changes["port"] = port
    if changes:
        Device.objects.filter(device_id=device_id).update(**changes)
