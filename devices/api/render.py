"""Turn stored devices into the JSON documents of the contract."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devices.client import host_port
from devices.models import Device, DeviceRevision
from devices.selectors import ScrapeTarget, device_health, device_status


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def config_list_item(device: Device) -> dict[str, Any]:
    return {"device_id": device.device_id, **device.config_document()}


def status_item(device: Device) -> dict[str, Any]:
    """A device status item: `error` only when not healthy, `last_seen` only when known.

    Beyond the contract: `last_checked`, `observed_ip`, `last_contact` and `config_in_sync`
    (null when unknown), `drifted_keys` when out of sync, `exporter_status` when known,
    `reload_pending` (a config change the device has not been told about yet).
    """
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
    item["last_checked"] = rfc3339(health.last_checked)
    item["observed_ip"] = health.observed_ip or None
    item["last_contact"] = rfc3339(health.last_contact)
    item["config_in_sync"] = health.config_in_sync
    item["reload_pending"] = health.reload_pending
    if health.config_in_sync is False:
        item["drifted_keys"] = health.drifted_keys
    if health.exporter_status and status == "healthy":
        item["exporter_status"] = health.exporter_status
    return item


def revision_item(revision: DeviceRevision) -> dict[str, Any]:
    return {
        "version": revision.version,
        "action": revision.action,
        "config": revision.config,
        "actor": revision.actor,
        "source": revision.source,
        "note": revision.note,
        "created_at": rfc3339(revision.created_at),
    }


def target_group(target: ScrapeTarget) -> dict[str, Any]:
    """One target group of Prometheus HTTP service discovery: the device's metrics address
    and its labels (all values strings, as the format requires).

    `device_id` and `device_type` stay on every series scraped from the device;
    `__meta_edge_*` exist for relabelling only (Prometheus drops labels starting with `__`
    once relabelling is done).
    """
    return {
        "targets": [host_port(target.ip_address, target.port)],
        "labels": {
            "device_id": target.device_id,
            "device_type": target.device_type,
            "__meta_edge_status": target.status,
            "__meta_edge_reload_port": str(target.reload_port),
        },
    }
