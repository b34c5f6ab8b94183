"""Reads of devices, their observations and their history; nothing here writes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from devices.choices import DeviceStatus
from devices.labels import Selector, device_attributes
from devices.models import (
    Device,
    DeviceHealth,
    DeviceRevision,
    DeviceStatusChange,
    config_document,
)
from devices.validation import address_allowed, address_not_allowed_message

NO_IP_ERROR = "No IP address registered"
NOT_CHECKED_ERROR = "Not checked yet"
# Rows read at a time when a selector filters a list in Python.
_SELECTED_CHUNK = 2000


def device_get(*, device_id: str) -> Device | None:
    return Device.objects.filter(device_id=device_id).first()


def device_get_with_health(*, device_id: str) -> Device | None:
    return device_list().filter(device_id=device_id).first()


def device_list() -> QuerySet[Device]:
    return Device.objects.select_related("health").order_by("device_id")


def device_page(
    devices: QuerySet[Device],
    *,
    after: str = "",
    limit: int | None = None,
    selector: Selector | None = None,
) -> list[Device]:
    """`devices` (in device-id order) after the device id `after`: `limit + 1` of them when
    a limit is given, so that the one more tells whether a next page exists; with
    `selector`, of those it matches."""
    if after:
        devices = devices.filter(device_id__gt=after)
    if selector:
        return device_selected(selector, devices.iterator(chunk_size=_SELECTED_CHUNK), limit=limit)
    return list(devices if limit is None else devices[: limit + 1])


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """What a fleet list shows of a stored observation (the fields of DeviceHealth it
    reads; the defaults are those of a device never observed)."""

    status: str | None = None
    error: str = ""
    exporter_status: str = ""
    last_checked: Any = None
    last_seen: Any = None
    observed_ip: str = ""
    last_contact: Any = None
    config_in_sync: bool | None = None
    reload_pending: bool = False
    drifted_keys: Any = ()


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device as a fleet list shows it, read as plain values: building 10,000 model
    instances (with their observations) costs more than the rest of the answer."""

    device_id: str
    device_type: str
    ip_address: str
    port: int
    reload_port: int
    labels: dict[str, str]
    health: ObservationRow


_ROW_FIELDS = ("device_id", "device_type", "ip_address", "port", "reload_port", "labels")
_OBSERVATION_FIELDS = tuple(ObservationRow.__slots__)


def device_selected(
    selector: Selector, devices: Iterable[Device], *, limit: int | None = None
) -> list[Device]:
    """The devices (loaded with their observation) `selector` matches (`Selector.pick`)."""
    return selector.pick(
        devices,
        lambda d: device_attributes(d.labels or {}, d.device_type, device_status(d)[0]),
        limit=limit,
    )


def _row_attributes(row: DeviceRow) -> Mapping[str, str]:
    status, _ = contract_status(row.ip_address, row.health.status)
    return device_attributes(row.labels, row.device_type, status)


def device_rows(
    devices: QuerySet[Device],
    *,
    after: str = "",
    limit: int | None = None,
    selector: Selector | None = None,
) -> list[DeviceRow]:
    """`device_page` of `devices`, as rows of the fields a status item shows; with
    `selector`, of the devices it matches (read in chunks until the page is full)."""
    if after:
        devices = devices.filter(device_id__gt=after)
    columns = [*_ROW_FIELDS, "health__device_id", *(f"health__{f}" for f in _OBSERVATION_FIELDS)]
    rows: Iterable[tuple] = devices.values_list(*columns)
    if selector:
        rows = rows.iterator(chunk_size=_SELECTED_CHUNK)
    elif limit is not None:
        rows = rows[: limit + 1]
    width = len(_ROW_FIELDS)

    def row_of(row: tuple) -> DeviceRow:
        observed = row[width + 1 :]
        health = ObservationRow(*observed) if row[width] is not None else ObservationRow()
        return DeviceRow(*row[:width], health=health)

    found = (row_of(row) for row in rows)
    if selector:
        return selector.pick(found, _row_attributes, limit=limit)
    return list(found)


def config_rows(
    *, after: str = "", limit: int | None = None, selector: Selector | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(device id, served config) of each device in device-id order, read as plain values;
    with `selector`, of the devices it matches."""
    columns = ["device_id", "device_type", "port", "reload_port", "enabled_metrics", "extra_config"]
    if selector:
        columns += ["labels", "ip_address", "health__status"]
    rows: Iterable[tuple] = (
        Device.objects.filter(device_id__gt=after).order_by("device_id").values_list(*columns)
    )
    if selector:

        def attributes(row: tuple) -> Mapping[str, str]:
            labels, ip_address, observed = row[6:]
            return device_attributes(labels or {}, row[1], contract_status(ip_address, observed)[0])

        rows = selector.pick(rows.iterator(chunk_size=_SELECTED_CHUNK), attributes, limit=limit)
    elif limit is not None:
        rows = rows[: limit + 1]
    return [
        (
            device_id,
            config_document(
                device_type=device_type,
                port=port,
                reload_port=reload_port,
                enabled_metrics=metrics,
                extra_config=extra or {},
            ),
        )
        for device_id, device_type, port, reload_port, metrics, extra, *_ in rows
    ]


def device_health(device: Device) -> DeviceHealth:
    """The stored observation of a device; a device never observed reads as unknown."""
    try:
        return device.health
    except DeviceHealth.DoesNotExist:
        return DeviceHealth(device=device)


def devices_with_address(ip: str, *, excluding: str = "") -> list[str]:
    """Ids of the devices stored with this address (but `excluding`), in order."""
    if not ip:
        return []
    return list(
        Device.objects.filter(ip_address=ip)
        .exclude(device_id=excluding)
        .order_by("device_id")
        .values_list("device_id", flat=True)
    )


def shared_addresses(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """From (device id, address) pairs: each address more than one device has, with their
    ids in order. Two exporters on one host are a legitimate reason; devices behind one
    NAT that all got its address are not, and both are worth a look."""
    holders: dict[str, list[str]] = {}
    for device_id, ip in pairs:
        if ip:
            holders.setdefault(ip, []).append(device_id)
    return {ip: sorted(ids) for ip, ids in holders.items() if len(ids) > 1}


def shared_addresses_among(ips: Iterable[str]) -> dict[str, list[str]]:
    """`shared_addresses` of these addresses only (a page's): one query of the devices at
    them, instead of grouping the whole fleet by address."""
    wanted = {ip for ip in ips if ip}
    if not wanted:
        return {}
    rows = Device.objects.filter(ip_address__in=wanted).values_list("device_id", "ip_address")
    return shared_addresses(rows)


def fleet_shared_addresses() -> dict[str, list[str]]:
    """`shared_addresses` over the whole fleet, in one query."""
    shared = (
        Device.objects.exclude(ip_address="")
        .values("ip_address")
        .annotate(holders=Count("device_id"))
        .filter(holders__gt=1)
        .values("ip_address")
    )
    rows = Device.objects.filter(ip_address__in=shared).values_list("device_id", "ip_address")
    return shared_addresses(rows)


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
class DeviceObservation:
    """What `GET /metrics` says of one device: its contract status and the observations
    the alerts read (None where nothing was observed)."""

    device_id: str
    device_type: str
    status: str
    last_seen: datetime | None
    config_in_sync: bool | None
    reload_pending: bool


def device_observations() -> list[DeviceObservation]:
    """Every device's observation, by device id, in one query of seven columns (no whole
    rows): Prometheus asks for this on every scrape of every replica."""
    rows = Device.objects.order_by("device_id").values_list(
        "device_id",
        "device_type",
        "ip_address",
        "health__status",
        "health__last_seen",
        "health__config_in_sync",
        "health__reload_pending",
    )
    return [
        DeviceObservation(
            device_id,
            device_type,
            contract_status(ip_address, observed)[0],
            last_seen,
            in_sync,
            bool(pending),
        )
        for device_id, device_type, ip_address, observed, last_seen, in_sync, pending in rows
    ]


@dataclass(frozen=True)
class ScrapeTarget:
    """A device as Prometheus should scrape it: its metrics port, what it is, its labels."""

    device_id: str
    device_type: str
    ip_address: str
    port: int
    reload_port: int
    status: str
    labels: Mapping[str, str] = field(default_factory=dict)


def scrape_targets(
    *,
    status: str | None = None,
    after: str = "",
    limit: int | None = None,
    selector: Selector | None = None,
) -> list[ScrapeTarget]:
    """Every device with an address inside DEVICE_ALLOWED_NETWORKS, by device id, with
    its contract status; only those of `status` when it is given, and those `selector`
    matches; with `limit`, the first `limit + 1` after the device id `after` (the one
    more tells that a next page exists).

    Devices that are down stay in the list, so Prometheus reports them as `up == 0`
    instead of forgetting them. One query of seven columns, whatever the fleet's size:
    Prometheus asks for this on every refresh, from every replica.
    """
    rows = (
        Device.objects.exclude(ip_address="")
        .filter(device_id__gt=after)
        .order_by("device_id")
        .values_list(
            "device_id",
            "device_type",
            "ip_address",
            "port",
            "reload_port",
            "health__status",
            "labels",
        )
    )
    targets: list[ScrapeTarget] = []
    for device_id, device_type, ip_address, port, reload_port, observed, labels in rows.iterator(
        chunk_size=2000
    ):
        if limit is not None and len(targets) > limit:
            break
        # Outside the networks the server may contact: not a device of this fleet any
        # more (the setting changed), so not something Prometheus should be sent to.
        if not address_allowed(ip_address):
            continue
        current, _ = contract_status(ip_address, observed)
        labels = labels or {}
        if status is not None and current != status:
            continue
        if selector and not selector.matches(device_attributes(labels, device_type, current)):
            continue
        targets.append(
            ScrapeTarget(device_id, device_type, ip_address, port, reload_port, current, labels)
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


# How far back the admin's fleet overview lists status changes, and how many rows of each
# list it shows (each links to the whole list).
RECENT_CHANGE_WINDOW = timedelta(hours=24)
OVERVIEW_ROWS = 8
DOWN = (DeviceStatus.UNHEALTHY, DeviceStatus.UNREACHABLE)


def _shares(counts: Mapping[str, int], total: int) -> list[dict[str, Any]]:
    return [
        {"name": name, "count": count, "percent": round(100 * count / total) if total else 0}
        for name, count in counts.items()
    ]


def status_changes(*, device_id: str) -> QuerySet[DeviceStatusChange]:
    """A device's status timeline, newest first."""
    return DeviceStatusChange.objects.filter(device_id=device_id).order_by("-changed_at", "-id")


def changes_that_matter(*, since: datetime) -> QuerySet[DeviceStatusChange]:
    """Status changes since `since`, newest first, without first probes (from `unknown`)."""
    return (
        DeviceStatusChange.objects.filter(changed_at__gte=since)
        .exclude(previous=DeviceStatus.UNKNOWN)
        .order_by("-changed_at", "-id")
    )


def down_since(device_ids: Iterable[str]) -> dict[str, datetime]:
    """When each device last went down from healthy (or from its first probe)."""
    rows = (
        DeviceStatusChange.objects.filter(
            device_id__in=list(device_ids),
            previous__in=[DeviceStatus.HEALTHY, DeviceStatus.UNKNOWN],
            status__in=DOWN,
        )
        .values("device_id")
        .annotate(since=Max("changed_at"))
        .values_list("device_id", "since")
    )
    return dict(rows)


def fleet_overview() -> dict[str, Any]:
    """What the admin home shows: devices by status and by type, the devices down now,
    status changes that matter, drifted devices and pending reloads."""
    devices = list(device_list())
    statuses = {device.device_id: device_status(device) for device in devices}
    by_status = Counter({status.value: 0 for status in DeviceStatus})
    by_status.update(status for status, _ in statuses.values())
    down = [d for d in devices if statuses[d.device_id][0] in DOWN]
    since = down_since(d.device_id for d in down)
    down_rows = sorted(
        (
            {
                "device": device,
                "status": statuses[device.device_id][0],
                "error": statuses[device.device_id][1],
                "since": since.get(device.device_id) or device_health(device).status_changed_at,
                "last_seen": device_health(device).last_seen,
            }
            for device in down
        ),
        key=lambda row: (row["since"] is None, row["since"] or timezone.now()),
    )
    changes = changes_that_matter(since=timezone.now() - RECENT_CHANGE_WINDOW)
    drifted = [d for d in devices if device_health(d).config_in_sync is False]
    pending = [d for d in devices if device_health(d).reload_pending]
    return {
        "total": len(devices),
        "by_status": _shares(by_status, len(devices)),
        "by_type": _shares(
            dict(Counter(d.device_type for d in devices).most_common()), len(devices)
        ),
        "down": down_rows[:OVERVIEW_ROWS],
        "down_total": len(down_rows),
        "recent_changes": list(changes[:OVERVIEW_ROWS]),
        "recent_total": changes.count(),
        "drifted": [
            {"device": device, "keys": device_health(device).drifted_keys}
            for device in drifted[:OVERVIEW_ROWS]
        ],
        "drifted_total": len(drifted),
        "pending": [
            {"device": device, "status": statuses[device.device_id][0]}
            for device in pending[:OVERVIEW_ROWS]
        ],
        "pending_total": len(pending),
    }
