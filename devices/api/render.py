"""Turn stored devices into the JSON documents of the contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devices.models import Device, DeviceRevision
from devices.selectors import device_health, device_status


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def config_list_item(device: Device) -> dict[str, Any]:
    return {"device_id": device.device_id, **device.config_document()}


def status_item(device: Device) -> dict[str, Any]:
    """A device status item: `error` only when not healthy, `last_seen` only when known."""
    status, error = device_status(device)
    health = device_health(device)
    item: dict[str, Any] = {
        "device_id": device.device_id,
        "device_type": device.device_type,
        "ip_address": device.ip_address,
        "port": device.port,
        "reload_port": device.reload_port,
        "status": status,
    }
    if health.last_seen is not None:
        item["last_seen"] = rfc3339(health.last_seen)
    if status != "healthy":
        item["error"] = error
    return item


def revision_item(revision: DeviceRevision) -> dict[str, Any]:
    return {
        "version": revision.version,
        "action": revision.action,
        "config": revision.config,
        "actor": revision.actor,
        "source": revision.source,
        "created_at": rfc3339(revision.created_at),
    }
