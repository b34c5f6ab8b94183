"""Config writes: create, replace, patch, delete and roll back a device's config.

Every write locks the device row, records a revision in the same transaction and, after
commit, tells the device when what it would load changed (devices.runtime).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from devices import selectors
from devices.adoption import adoptable, adoption_allowed
from devices.choices import DEFAULT_PORT, DEFAULT_RELOAD_PORT, RevisionAction
from devices.config import DeviceConfig
from devices.contacts import device_contact_record
from devices.exceptions import (
    AddressRefused,
    DeviceExists,
    DeviceNotFound,
    NoObservedAddress,
    RevisionNotFound,
    VersionMismatch,
)
from devices.generation import config_changed
from devices.layering import base_config, layered_write
from devices.layers import Path, leaves
from devices.metrics import CONFIG_WRITES
from devices.models import Device, DeviceHealth, DeviceRevision
from devices.runtime import device_config_announce
from devices.validation import address_allowed, address_not_allowed_message
from edgeserver.api.addresses import ObservedAddress
from edgeserver.db import write_retrying_create_race, write_transaction
from users.actors import Actor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    device: Device
    created: bool
    changed: bool
    reload_triggered: bool = False


def _check_if_match(device: Device | None, if_match: str | None, device_id: str) -> None:
    """Honour an `If-Match` header (RFC 9110: strong comparison, `*` = any current config)."""
    if if_match is None:
        return
    current = device.etag if device is not None else None
    tags = [tag.strip() for tag in if_match.split(",") if tag.strip()]
    if current is not None and ("*" in tags or current in tags):
        return
    raise VersionMismatch(device_id, if_match=if_match, current=current)


def locked_device(device_id: str) -> Device | None:
    """The device, row-locked until the transaction ends (PostgreSQL; SQLite's IMMEDIATE
    transactions already hold the database's write lock), with its observation."""
    locked = (
        Device.objects.select_for_update(of=("self",))
        .select_related("health")
        .filter(device_id=device_id)
        .order_by()[:1]
    )
    return next(iter(locked), None)


def _next_version(device_id: str) -> int:
    latest = DeviceRevision.objects.filter(device_id=device_id).aggregate(v=Max("version"))["v"]
    return (latest or 0) + 1


def _record(
    device_id: str, version: int, action: str, config: DeviceConfig, actor: Actor, note: str = ""
) -> None:
    DeviceRevision.objects.create(
        device_id=device_id,
        version=version,
        action=action,
        config=config.snapshot(),
        actor=actor.name,
        source=actor.source,
        note=note,
        created_at=timezone.now(),
    )


def _reached_at(config: DeviceConfig) -> tuple[str, int, int, str]:
    """What probes and publication depend on: a change asks the monitor to look at once."""
    return (config.ip_address, config.reload_port, config.port, config.device_type)


def _health_after_write(
    device: Device, current: DeviceConfig | None, new: DeviceConfig, now: datetime
) -> None:
    """Ask for attention after a config write; the observation itself stays the probes'."""
    updates: dict[str, Any] = {}
    if current is None or _reached_at(current) != _reached_at(new):
        updates["probe_requested_at"] = now
    if current is None or current.document() != new.document():
        # The last drift check compared the device with a config no longer served.
        updates.update(config_in_sync=None, drifted_keys=[], drift_checked_at=None)
    if current is not None and not updates:
        return
    stored = current is not None and DeviceHealth.objects.filter(pk=device.pk).update(**updates)
    if not stored:
        DeviceHealth.objects.create(device=device, **updates)


# What a config write stores on the device row (the id and created_at never change).
CONFIG_FIELDS = [
    "device_type",
    "ip_address",
    "port",
    "reload_port",
    "enabled_metrics",
    "extra_config",
    "base_config",
    "operator_keys",
    "version",
    "updated_at",
]


@dataclass(frozen=True)
class _Change:
    """What one transaction of `_write` decided."""

    device: Device | None
    current: DeviceConfig | None
    new: DeviceConfig
    action: str = ""
    changed: bool = False
    # The device wrote a config other than the one it is served (a profile's or an
    # operator's key wins): it must reload to run the served one.
    device_differs: bool = False


def _store(
    device_id: str,
    build: Callable[[DeviceConfig | None], DeviceConfig],
    *,
    actor: Actor,
    action: str,
    create_action: str,
    if_match: str | None,
    note: str,
    adopt_ip: str | None,
    contact: ObservedAddress | None,
    explicit: Sequence[Path] | None,
) -> _Change:
    """Inside the write transaction: lock, build the new config on the device's base
    config, layer it (devices.layering), store it with a revision (and where the device
    itself called from)."""
    device = locked_device(device_id)
    _check_if_match(device, if_match, device_id)
    current = DeviceConfig.of(device) if device is not None else None
    written = build(base_config(device) if device is not None else None)
    if adopt_ip and not written.ip_address and adoption_allowed(device_id, adopt_ip):
        written = replace(written, ip_address=adopt_ip)
        note = f"ip_address {adopt_ip} adopted from the device's own request"
    layered = layered_write(device, written, actor, device_id=device_id, explicit=explicit)
    new = layered.served
    differs = actor.is_device and written.document() != new.document()
    if layered.stored_on(device):
        _contact(device, contact)
        return _Change(device, current, new, device_differs=differs)
    now = timezone.now()
    if device is None:
        device = Device(device_id=device_id, created_at=now, version=_next_version(device_id))
        action = create_action
    else:
        device.version += 1
    layered.apply_to(device)
    device.updated_at = now
    transaction.on_commit(config_changed)
    if current is None:
        device.save(force_insert=True)
    else:
        device.save(update_fields=CONFIG_FIELDS)
    _health_after_write(device, current, new, now)
    _contact(device, contact)
    _record(device_id, device.version, action, new, actor, note)
    return _Change(device, current, new, action, changed=True, device_differs=differs)


def _contact(device: Device | None, contact: ObservedAddress | None) -> None:
    if device is None or contact is None:
        return
    health = selectors.device_health(device)
    device_contact_record(
        device_id=device.device_id,
        observed=contact,
        known_ip=health.observed_ip,
        last_contact=health.last_contact,
        in_write=True,
    )


def _write(
    *,
    device_id: str,
    actor: Actor,
    action: str,
    build: Callable[[DeviceConfig | None], DeviceConfig],
    if_match: str | None = None,
    create_action: str = RevisionAction.CREATED,
    reload: bool = True,
    note: str = "",
    adopt_ip: str | None = None,
    contact: ObservedAddress | None = None,
    explicit: Sequence[Path] | None = None,
) -> WriteResult:
    """Lock, compute the new config from the current one, store it with a revision.

    `build` receives the current config (None when the device does not exist) and returns
    the new one, or raises a DeviceError to refuse the write. When the new config has no
    address, `adopt_ip` becomes it (the revision says so). `contact` is where the device
    itself called from. `explicit`: the key paths the request itself set (None: every
    key of the new config), those an operator's write can make theirs. A write that
    changes nothing stores nothing and reloads nothing.

    The transaction is durable: the reload below must reach the device after commit, or
    the device would fetch the old config.
    """
    # Another transaction may create this device (or its revision) first.
    change = write_retrying_create_race(
        lambda: _store(
            device_id,
            build,
            actor=actor,
            action=action,
            create_action=create_action,
            if_match=if_match,
            note=note,
            adopt_ip=adopt_ip,
            contact=contact,
            explicit=explicit,
        )
    )
    if not change.changed and not (reload and change.device_differs):
        return WriteResult(device=change.device, created=False, changed=False)
    if change.changed:
        CONFIG_WRITES.labels(source=actor.source, action=change.action).inc()
    current, new = change.current, change.new
    served_changed = current is None or new.document() != current.document()
    announce = reload and (served_changed or change.device_differs)
    triggered = announce and device_config_announce(device=change.device)
    return WriteResult(
        device=change.device,
        created=current is None,
        changed=change.changed,
        reload_triggered=triggered,
    )


def _resolve_ports(data: Mapping[str, Any]) -> dict[str, Any]:
    """Port values of a write: a missing or null key means the default."""
    return {
        "port": data.get("port") or DEFAULT_PORT,
        "reload_port": data.get("reload_port") or DEFAULT_RELOAD_PORT,
    }


def device_upsert(
    *,
    device_id: str,
    data: Mapping[str, Any],
    actor: Actor,
    if_match: str | None = None,
    observed: ObservedAddress | None = None,
) -> WriteResult:
    """PUT /config/{id}: create or replace a device's config.

    An absent or empty `ip_address` keeps the stored one; the extra config is replaced.
    When the device itself writes (`actor.is_device`), `observed` (where the request came
    from) is recorded, and becomes the device's address if it has none (ADOPT_OBSERVED_IP).
    """

    def build(current: DeviceConfig | None) -> DeviceConfig:
        ip_address = data.get("ip_address") or (current.ip_address if current else "")
        return DeviceConfig(
            device_type=data["device_type"],
            ip_address=ip_address,
            enabled_metrics=data.get("enabled_metrics"),
            extra=dict(data.get("extra", {})),
            **_resolve_ports(data),
        )

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.UPDATED,
        build=build,
        if_match=if_match,
        adopt_ip=adoptable(observed, actor),
        contact=observed if actor.is_device else None,
    )


def device_adopt_observed_ip(*, device_id: str, actor: Actor) -> WriteResult:
    """Admin "Use observed IP": make the address the device last called from its IP."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is None:
            raise DeviceNotFound(device_id)
        observed = (
            DeviceHealth.objects.filter(device_id=device_id)
            .values_list("observed_ip", flat=True)
            .first()
        )
        if not observed:
            raise NoObservedAddress(device_id)
        if not address_allowed(observed):
            raise AddressRefused(device_id, address_not_allowed_message(observed))
        return replace(current, ip_address=observed)

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.PATCHED,
        build=build,
        note="ip_address set to the address the device called from",
    )


def device_clear_ip(*, device_id: str, actor: Actor) -> WriteResult:
    """DELETE /devices/{id}/ip: forget the device's address (it becomes `unknown`, is no
    longer probed, and leaves Kubernetes and the scrape targets at the next sync)."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is None:
            raise DeviceNotFound(device_id)
        return replace(current, ip_address="")

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.PATCHED,
        build=build,
        note="ip_address cleared",
        reload=False,
    )


def device_create(*, device_id: str, data: Mapping[str, Any], actor: Actor) -> WriteResult:
    """POST /config/{id}: create only; an existing device is a 409."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is not None:
            raise DeviceExists(device_id, "Use PUT to update existing device")
        return DeviceConfig(
            device_type=data["device_type"],
            ip_address=data["ip_address"],
            enabled_metrics=data.get("enabled_metrics"),
            extra=dict(data.get("extra", {})),
            **_resolve_ports(data),
        )

    return _write(device_id=device_id, actor=actor, action=RevisionAction.CREATED, build=build)


def _request_paths(data: Mapping[str, Any]) -> list[Path]:
    """The config key paths a partial write's body names (the address is not a key)."""
    named = {k: data[k] for k in ("device_type", "port", "reload_port") if k in data}
    if "enabled_metrics" in data:
        named["enabled_metrics"] = None  # a list is one value, not keys
    return [path for path, _ in leaves({**named, **(data.get("extra") or {})})]


def _patched(current: DeviceConfig, data: Mapping[str, Any]) -> DeviceConfig:
    """Apply PATCH semantics: only present keys change; null resets a key to its default."""
    changes: dict[str, Any] = {}
    if data.get("device_type") is not None:
        changes["device_type"] = data["device_type"]
    if data.get("ip_address"):
        changes["ip_address"] = data["ip_address"]
    for key, default in (("port", DEFAULT_PORT), ("reload_port", DEFAULT_RELOAD_PORT)):
        if key in data:
            changes[key] = data[key] if data[key] is not None else default
    if "enabled_metrics" in data:
        changes["enabled_metrics"] = data["enabled_metrics"]
    if data.get("extra"):
        extra = dict(current.extra)
        for key, value in data["extra"].items():
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
        changes["extra"] = extra
    return replace(current, **changes)


def device_patch(
    *, device_id: str, data: Mapping[str, Any], actor: Actor, if_match: str | None = None
) -> WriteResult:
    """PATCH /config/{id}: partial update of an existing device."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is None:
            raise DeviceNotFound(device_id, "Use POST or PUT to create new device")
        return _patched(current, data)

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.PATCHED,
        build=build,
        if_match=if_match,
        explicit=_request_paths(data),
    )


BASIC_FIELDS = ("device_type", "ip_address", "port", "reload_port")


def device_update_basic(*, device_id: str, data: Mapping[str, Any], actor: Actor) -> WriteResult:
    """PATCH /devices/{id}: change type, address or ports only, and never reload."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is None:
            raise DeviceNotFound(device_id)
        return _patched(current, basic)

    basic = {k: v for k, v in data.items() if k in BASIC_FIELDS}
    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.PATCHED,
        build=build,
        reload=False,
        explicit=_request_paths(basic),
    )


def device_rollback(
    *, device_id: str, version: int, actor: Actor, if_match: str | None = None
) -> WriteResult:
    """Restore the config of revision `version` as a new revision (recreating a deleted device)."""
    revision = DeviceRevision.objects.filter(device_id=device_id, version=version).first()
    if revision is None:
        if not Device.objects.filter(device_id=device_id).exists() and not (
            DeviceRevision.objects.filter(device_id=device_id).exists()
        ):
            raise DeviceNotFound(device_id)
        raise RevisionNotFound(device_id, version)
    target = DeviceConfig.from_snapshot(revision.config)

    def build(current: DeviceConfig | None) -> DeviceConfig:
        stored_ip = current.ip_address if current is not None else ""
        if target.ip_address not in ("", stored_ip) and not address_allowed(target.ip_address):
            raise AddressRefused(
                device_id,
                f"Revision {version} has ip_address "
                + address_not_allowed_message(target.ip_address),
            )
        return target

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.ROLLED_BACK,
        create_action=RevisionAction.ROLLED_BACK,
        build=build,
        if_match=if_match,
    )


def device_delete(*, device_id: str, actor: Actor, if_match: str | None = None) -> None:
    """DELETE /config/{id}: remove the device; its history stays."""
    with write_transaction(durable=False):
        transaction.on_commit(config_changed)
        device = locked_device(device_id)
        if device is None:
            raise DeviceNotFound(device_id)
        _check_if_match(device, if_match, device_id)
        _record(
            device_id, device.version + 1, RevisionAction.DELETED, DeviceConfig.of(device), actor
        )
        device.delete()
    CONFIG_WRITES.labels(source=actor.source, action=RevisionAction.DELETED).inc()
