"""Writes to device configs. Every write locks the device row, records a revision in the
same transaction and, after commit, tells the device when what it would load changed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from devices.choices import (
    DEFAULT_PORT,
    DEFAULT_RELOAD_PORT,
    ChangeSource,
    RevisionAction,
)
from devices.models import Device, DeviceHealth, DeviceRevision
from edgeserver.api.errors import ApiError, device_not_found
from edgeserver.metrics import CONFIG_WRITES

# Attempts of a write that lost a race to create the same device (PostgreSQL): the retry
# finds the row the winner committed and updates it.
_CREATE_RACE_ATTEMPTS = 3


@dataclass(frozen=True)
class Actor:
    """Who makes a change, as recorded in the revision history."""

    name: str
    source: str = ChangeSource.API
    # True when the device itself writes (anonymous device route, or its own credential).
    is_device: bool = False


@dataclass(frozen=True)
class DeviceConfig:
    """Everything a config write can change, as one comparable value."""

    device_type: str
    ip_address: str = ""
    port: int = DEFAULT_PORT
    reload_port: int = DEFAULT_RELOAD_PORT
    enabled_metrics: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, device: Device) -> DeviceConfig:
        return cls(
            device_type=device.device_type,
            ip_address=device.ip_address,
            port=device.port,
            reload_port=device.reload_port,
            enabled_metrics=device.enabled_metrics,
            extra=dict(device.extra_config),
        )

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> DeviceConfig:
        known = {"device_type", "ip_address", "port", "reload_port", "enabled_metrics"}
        return cls(
            device_type=snapshot["device_type"],
            ip_address=snapshot.get("ip_address") or "",
            port=snapshot.get("port", DEFAULT_PORT),
            reload_port=snapshot.get("reload_port", DEFAULT_RELOAD_PORT),
            enabled_metrics=snapshot.get("enabled_metrics"),
            extra={k: v for k, v in snapshot.items() if k not in known},
        )

    def apply_to(self, device: Device) -> None:
        device.device_type = self.device_type
        device.ip_address = self.ip_address
        device.port = self.port
        device.reload_port = self.reload_port
        device.enabled_metrics = self.enabled_metrics
        device.extra_config = self.extra

    def document(self) -> dict[str, Any]:
        """What `GET /config/{id}` returns for this config."""
        probe = Device()
        self.apply_to(probe)
        return probe.config_document()

    def snapshot(self) -> dict[str, Any]:
        """What a revision keeps: the served document plus the address."""
        return {**self.document(), "ip_address": self.ip_address}


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
    found = f"the current version is {current}" if current else "the device does not exist"
    raise ApiError(
        412,
        "precondition_failed",
        f"If-Match {if_match} does not match: {found}",
        device_id=device_id,
        etag=current,
    )


def _locked_device(device_id: str) -> Device | None:
    return Device.objects.select_for_update().filter(device_id=device_id).first()


def _next_version(device_id: str) -> int:
    latest = DeviceRevision.objects.filter(device_id=device_id).aggregate(v=Max("version"))["v"]
    return (latest or 0) + 1


def _record(device_id: str, version: int, action: str, config: DeviceConfig, actor: Actor) -> None:
    DeviceRevision.objects.create(
        device_id=device_id,
        version=version,
        action=action,
        config=config.snapshot(),
        actor=actor.name,
        source=actor.source,
        created_at=timezone.now(),
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
) -> WriteResult:
    """Lock, compute the new config from the current one, store it with a revision.

    `build` receives the current config (None when the device does not exist) and returns
    the new one, or raises ApiError to refuse the write. A write that changes nothing
    stores nothing and reloads nothing.
    """
    for attempt in range(_CREATE_RACE_ATTEMPTS):
        try:
            with transaction.atomic():
                device = _locked_device(device_id)
                _check_if_match(device, if_match, device_id)
                current = DeviceConfig.of(device) if device is not None else None
                new = build(current)
                if new == current:
                    return WriteResult(device=device, created=False, changed=False)
                now = timezone.now()
                if device is None:
                    device = Device(device_id=device_id, created_at=now)
                    device.version = _next_version(device_id)
                    recorded_action = create_action
                else:
                    device.version += 1
                    recorded_action = action
                new.apply_to(device)
                device.updated_at = now
                device.save(force_insert=current is None)
                if current is None:
                    DeviceHealth.objects.create(device=device)
                _record(device_id, device.version, recorded_action, new, actor)
        except IntegrityError:
            # Another transaction created this device (or its revision) first.
            if attempt == _CREATE_RACE_ATTEMPTS - 1:
                raise
            continue
        CONFIG_WRITES.labels(source=actor.source, action=recorded_action).inc()
        served_changed = current is None or new.document() != current.document()
        triggered = reload and served_changed and device_config_announce(device=device)
        return WriteResult(
            device=device, created=current is None, changed=True, reload_triggered=triggered
        )
    raise AssertionError("unreachable")


def device_config_announce(*, device: Device) -> bool:
    """Tell a device that what `GET /config/{id}` returns has changed.

    Returns True when the device acknowledged. Reload triggers arrive with the device
    runtime; until then no device is contacted and the answer is False.
    """
    return False


def _resolve_ports(data: Mapping[str, Any]) -> dict[str, Any]:
    """Port values of a write: a missing or null key means the default."""
    return {
        "port": data.get("port") or DEFAULT_PORT,
        "reload_port": data.get("reload_port") or DEFAULT_RELOAD_PORT,
    }


def device_upsert(
    *, device_id: str, data: Mapping[str, Any], actor: Actor, if_match: str | None = None
) -> WriteResult:
    """PUT /config/{id}: create or replace a device's config.

    An absent or empty `ip_address` keeps the stored one; the extra config is replaced.
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
    )


def device_create(*, device_id: str, data: Mapping[str, Any], actor: Actor) -> WriteResult:
    """POST /config/{id}: create only; an existing device is a 409."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is not None:
            raise ApiError(
                409,
                "Device already exists",
                "Use PUT to update existing device",
                device_id=device_id,
            )
        return DeviceConfig(
            device_type=data["device_type"],
            ip_address=data["ip_address"],
            enabled_metrics=data.get("enabled_metrics"),
            extra=dict(data.get("extra", {})),
            **_resolve_ports(data),
        )

    return _write(device_id=device_id, actor=actor, action=RevisionAction.CREATED, build=build)


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
            raise device_not_found(device_id, "Use POST or PUT to create new device")
        return _patched(current, data)

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.PATCHED,
        build=build,
        if_match=if_match,
    )


BASIC_FIELDS = ("device_type", "ip_address", "port", "reload_port")


def device_update_basic(*, device_id: str, data: Mapping[str, Any], actor: Actor) -> WriteResult:
    """PATCH /devices/{id}: change type, address or ports only, and never reload."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is None:
            raise device_not_found(device_id)
        return _patched(current, {k: v for k, v in data.items() if k in BASIC_FIELDS})

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.PATCHED,
        build=build,
        reload=False,
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
            raise device_not_found(device_id)
        raise ApiError(
            404,
            "Revision not found",
            f"Device {device_id} has no revision {version}",
            device_id=device_id,
        )
    target = DeviceConfig.from_snapshot(revision.config)
    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.ROLLED_BACK,
        create_action=RevisionAction.ROLLED_BACK,
        build=lambda current: target,
        if_match=if_match,
    )


def device_delete(*, device_id: str, actor: Actor, if_match: str | None = None) -> None:
    """DELETE /config/{id}: remove the device; its history stays."""
    with transaction.atomic():
        device = _locked_device(device_id)
        if device is None:
            raise device_not_found(device_id)
        _check_if_match(device, if_match, device_id)
        _record(
            device_id, device.version + 1, RevisionAction.DELETED, DeviceConfig.of(device), actor
        )
        device.delete()
