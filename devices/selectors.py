"""Reads of devices, their observations and their history; nothing here writes."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from devices.choices import DeviceStatus
from devices.configcache import served_configs
from devices.models import Device, DeviceHealth, DeviceRevision, config_document
from devices.validation import address_allowed, address_not_allowed_message

NO_IP_ERROR = "No IP address registered"
NOT_CHECKED_ERROR = "Not checked yet"


@dataclass(frozen=True)
class ServedConfig:
    """What `GET /config/{id}` answers, and what the server knew of the caller when it
    was loaded (it may be cached: see devices.configcache)."""

    document: dict[str, Any]
    version: int
    observed_ip: str
    last_contact: datetime | None

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @functools.cached_property
    def body(self) -> bytes:
        """The document as the response body, encoded once."""
        return json.dumps(self.document, separators=(",", ":"), ensure_ascii=False).encode()


@functools.cache
def _served_config_sql() -> str:
    device, health = Device._meta, DeviceHealth._meta

    quote = connection.ops.quote_name

    def column(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    # Identifiers come from the models' metadata; the device id is a bound parameter.
    return (  # noqa: S608
        "SELECT d.{type}, d.{port}, d.{reload}, d.{metrics}, d.{extra}, d.{version}, "
        "h.{observed}, h.{contact} FROM {devices} d LEFT JOIN {healths} h ON h.{fk} = d.{pk} "
        "WHERE d.{pk} = {placeholder}"
    ).format(
        # The driver's own parameter style: the statement goes to its cursor directly.
        placeholder="?" if connection.Database.paramstyle == "qmark" else "%s",
        type=column(device, "device_type"),
        port=column(device, "port"),
        reload=column(device, "reload_port"),
        metrics=column(device, "enabled_metrics"),
        extra=column(device, "extra_config"),
        version=column(device, "version"),
        observed=column(health, "observed_ip"),
        contact=column(health, "last_contact"),
        devices=quote(device.db_table),
        healths=quote(health.db_table),
        fk=column(health, "device"),
        pk=column(device, "device_id"),
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _aware(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def served_config(*, device_id: str) -> ServedConfig | None:
    """The config the exporter fetches: from this process's cache while no config write
    happened since it was loaded (SQLite), else read with one SQL statement."""
    return served_configs.get(device_id, lambda: _load_served_config(device_id))


def _load_served_config(device_id: str) -> ServedConfig | None:
    """The config the exporter fetches, read with one SQL statement.

    This is the hottest read of the server (every exporter at start and after each reload,
    thousands of them): building the ORM query costs ~0.7 ms, the statement ~0.01 ms.
    """
    # The driver's cursor, not Django's wrapper (a third of the cost of this read); the
    # connection is still Django's, with its settings, converters and lifetime.
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    try:
        cursor.execute(_served_config_sql(), (device_id,))
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is None:
        return None
    device_type, port, reload_port, metrics, extra, version, observed_ip, contact = row
    return ServedConfig(
        document=config_document(
            device_type=device_type,
            port=port,
            reload_port=reload_port,
            enabled_metrics=_json(metrics),
            extra_config=_json(extra) or {},
        ),
        version=version,
        observed_ip=observed_ip or "",
        last_contact=_aware(contact),
    )


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


def devices_due_for_probe() -> QuerySet[Device]:
    """Devices a config write asked the monitor to probe now (new address, port or type)."""
    return device_list().filter(health__probe_requested_at__isnull=False)


def contract_status(ip_address: str, observed: str | None, error: str = "") -> tuple[str, str]:
    """The contract status of a device and its error text ("" when healthy), from its
    address and its stored observation (None when never observed).

    An address outside DEVICE_ALLOWED_NETWORKS (the setting changed since it was stored)
    is never contacted, whatever was observed before.
    """
    if not ip_address:
        return DeviceStatus.UNKNOWN, NO_IP_ERROR
    if not address_allowed(ip_address):
        return DeviceStatus.UNREACHABLE, address_not_allowed_message(ip_address)
    if observed in (None, DeviceStatus.UNKNOWN):
        return DeviceStatus.UNKNOWN, error or NOT_CHECKED_ERROR
    return observed, error


def device_status(device: Device) -> tuple[str, str]:
    health = device_health(device)
    return contract_status(device.ip_address, health.status, health.error)


def revision_list(*, device_id: str) -> QuerySet[DeviceRevision]:
    return DeviceRevision.objects.filter(device_id=device_id).order_by("-version")


def revision_before(revision: DeviceRevision) -> DeviceRevision | None:
    return revision_list(device_id=revision.device_id).filter(version__lt=revision.version).first()


def fleet_counts() -> Counter[tuple[str, str]]:
    """Number of devices per (contract status, device_type).

    Reads three columns per device, not whole rows: the status rule (`contract_status`)
    needs the address, and the guard's networks are not something SQL can match.
    """
    rows = Device.objects.values_list("device_type", "ip_address", "health__status").order_by()
    return Counter(
        (contract_status(ip_address, observed)[0], device_type)
        for device_type, ip_address, observed in rows
    )


@dataclass(frozen=True)
class ScrapeTarget:
    """A device as Prometheus should scrape it: its metrics port and what it is."""

    device_id: str
    device_type: str
    ip_address: str
    port: int
    reload_port: int
    status: str


def scrape_targets(*, status: str | None = None) -> list[ScrapeTarget]:
    """Every device with an address inside DEVICE_ALLOWED_NETWORKS, by device id, with
    its contract status; only those of `status` when it is given.

    Devices that are down stay in the list, so Prometheus reports them as `up == 0`
    instead of forgetting them. One query of six columns, whatever the fleet's size:
    Prometheus asks for this on every refresh, from every replica.
    """
    rows = (
        Device.objects.exclude(ip_address="")
        .order_by("device_id")
        .values_list(
            "device_id", "device_type", "ip_address", "port", "reload_port", "health__status"
        )
    )
    targets = []
    for device_id, device_type, ip_address, port, reload_port, observed in rows:
        # Outside the networks the server may contact: not a device of this fleet any
        # more (the setting changed), so not something Prometheus should be sent to.
        if not address_allowed(ip_address):
            continue
        current, _ = contract_status(ip_address, observed)
        if status is None or current == status:
            targets.append(
                ScrapeTarget(device_id, device_type, ip_address, port, reload_port, current)
            )
    return targets


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


# How far back the admin's fleet overview lists status changes, and how many.
RECENT_CHANGE_WINDOW = timedelta(hours=24)
OVERVIEW_ROWS = 10


def _shares(counts: Mapping[str, int], total: int) -> list[dict[str, Any]]:
    return [
        {"name": name, "count": count, "percent": round(100 * count / total) if total else 0}
        for name, count in counts.items()
    ]


def fleet_overview() -> dict[str, Any]:
    """What the admin home shows: devices by status and by type, recent status changes and
    devices whose running config differs from the served one."""
    devices = list(device_list())
    statuses = {device.device_id: device_status(device) for device in devices}
    by_status = Counter({status.value: 0 for status in DeviceStatus})
    by_status.update(status for status, _ in statuses.values())
    since = timezone.now() - RECENT_CHANGE_WINDOW
    recent = sorted(
        (
            device
            for device in devices
            if (changed := device_health(device).status_changed_at) and changed >= since
        ),
        key=lambda device: device_health(device).status_changed_at,
        reverse=True,
    )
    drifted = [device for device in devices if device_health(device).config_in_sync is False]
    return {
        "total": len(devices),
        "by_status": _shares(by_status, len(devices)),
        "by_type": _shares(
            dict(Counter(d.device_type for d in devices).most_common()), len(devices)
        ),
        "recent_changes": [
            {
                "device": device,
                "status": statuses[device.device_id][0],
                "error": statuses[device.device_id][1],
                "changed_at": device_health(device).status_changed_at,
            }
            for device in recent[:OVERVIEW_ROWS]
        ],
        "recent_total": len(recent),
        "drifted": [
            {"device": device, "keys": device_health(device).drifted_keys}
            for device in drifted[:OVERVIEW_ROWS]
        ],
        "drifted_total": len(drifted),
    }
