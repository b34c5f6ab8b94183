"""Writes: device configs, and what the server does to and learns from devices.

Every config write locks the device row, records a revision in the same transaction and,
after commit, tells the device when what it would load changed. Probes, reloads and the
device proxy go through the one device client (devices.client).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from devices import client, selectors
from devices.choices import (
    DEFAULT_PORT,
    DEFAULT_RELOAD_PORT,
    ChangeSource,
    DeviceStatus,
    ReloadStatus,
    RevisionAction,
)
from devices.configcache import config_changed
from devices.contacts import RECORD_INTERVAL as CONTACT_WRITE_INTERVAL
from devices.contacts import contacts
from devices.models import Device, DeviceHealth, DeviceRevision
from devices.validation import address_allowed, address_not_allowed_message
from edgeserver.api.addresses import ObservedAddress
from edgeserver.api.errors import ApiError, device_not_found
from edgeserver.db import write_transaction
from edgeserver.metrics import CONFIG_WRITES, PROBE_DURATION, PROBES, RELOADS

logger = logging.getLogger(__name__)
# Status changes, one line each, whichever process observed them.
health_logger = logging.getLogger("devices.health")

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


# The device's GET /config/{id} is the hottest route: its address is written only when it
# changed or this long after the last write, so most GETs stay pure reads.


def _record_contact(device_id: str, ip: str, now: datetime) -> None:
    """Store where a device called from; a no-op when nothing new would be stored."""
    DeviceHealth.objects.filter(device_id=device_id).exclude(
        observed_ip=ip, last_contact__gte=now - CONTACT_WRITE_INTERVAL
    ).update(observed_ip=ip, last_contact=now)


def _reached_at(config: DeviceConfig) -> tuple[str, int, int, str]:
    """What probes and publication depend on: a change asks the monitor to look at once."""
    return (config.ip_address, config.reload_port, config.port, config.device_type)


def _health_after_write(
    device: Device,
    current: DeviceConfig | None,
    new: DeviceConfig,
    now: datetime,
    contact_ip: str | None,
) -> None:
    """Ask for attention after a config write; the observation itself stays the probes'."""
    updates: dict[str, Any] = {}
    if current is None or _reached_at(current) != _reached_at(new):
        updates["probe_requested_at"] = now
    if current is None or current.document() != new.document():
        # The last drift check compared the device with a config no longer served.
        updates.update(config_in_sync=None, drifted_keys=[], drift_checked_at=None)
    if contact_ip:
        updates.update(observed_ip=contact_ip, last_contact=now)
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
    "version",
    "updated_at",
]


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
    contact_ip: str | None = None,
) -> WriteResult:
    """Lock, compute the new config from the current one, store it with a revision.

    `build` receives the current config (None when the device does not exist) and returns
    the new one, or raises ApiError to refuse the write. When the new config has no
    address, `adopt_ip` becomes it (the revision says so). `contact_ip` is where the
    device itself called from. A write that changes nothing stores nothing and reloads
    nothing.

    The transaction is durable: the reload below must reach the device after commit, or
    the device would fetch the old config.
    """
    for attempt in range(_CREATE_RACE_ATTEMPTS):
        try:
            with write_transaction():
                device = _locked_device(device_id)
                _check_if_match(device, if_match, device_id)
                current = DeviceConfig.of(device) if device is not None else None
                new = build(current)
                recorded_note = note
                if adopt_ip and not new.ip_address:
                    new = replace(new, ip_address=adopt_ip)
                    recorded_note = f"ip_address {adopt_ip} adopted from the device's own request"
                now = timezone.now()
                if new == current:
                    if contact_ip:
                        _record_contact(device_id, contact_ip, now)
                    return WriteResult(device=device, created=False, changed=False)
                if device is None:
                    device = Device(device_id=device_id, created_at=now)
                    device.version = _next_version(device_id)
                    recorded_action = create_action
                else:
                    device.version += 1
                    recorded_action = action
                new.apply_to(device)
                device.updated_at = now
                transaction.on_commit(config_changed)
                if current is None:
                    device.save(force_insert=True)
                else:
                    device.save(update_fields=CONFIG_FIELDS)
                _health_after_write(device, current, new, now, contact_ip)
                _record(device_id, device.version, recorded_action, new, actor, recorded_note)
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
    """Tell a device that what `GET /config/{id}` returns has changed (`POST /reload`).

    Returns True only when the device answered 200. Runs after the write committed and
    never raises: a device that is down must not fail or undo the write. A device the
    monitor last found unreachable is not waited for (a write must never wait on a dead
    device): like a reload that fails, it is left pending, and the monitor delivers it
    when the device answers again.
    """
    if not device.ip_address:
        return False
    # The observation as it was before the write (loaded with the locked row).
    health = selectors.device_health(device)
    reloaded = False
    if health.status != DeviceStatus.UNREACHABLE:
        try:
            reloaded = device_reload(device=device).status == ReloadStatus.RELOADED
        except Exception:
            logger.exception("Reload of %s after a config change failed", device.device_id)
    else:
        RELOADS.labels(result="deferred").inc()
    if health.reload_pending == reloaded:  # only a change is written
        DeviceHealth.objects.filter(pk=device.pk).update(reload_pending=not reloaded)
    return reloaded


def _resolve_ports(data: Mapping[str, Any]) -> dict[str, Any]:
    """Port values of a write: a missing or null key means the default."""
    return {
        "port": data.get("port") or DEFAULT_PORT,
        "reload_port": data.get("reload_port") or DEFAULT_RELOAD_PORT,
    }


def _adoptable(observed: ObservedAddress | None, actor: Actor) -> str | None:
    """The caller's address, when a device registering itself may have it adopted."""
    if observed is None or not actor.is_device or not settings.ADOPT_OBSERVED_IP:
        return None
    if observed.unlisted_proxy:
        logger.warning(
            "Not adopting %s as a device address: the request came through a proxy "
            "that is not in TRUSTED_PROXIES",
            observed.ip,
        )
        return None
    return observed.ip if address_allowed(observed.ip) else None


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
        adopt_ip=_adoptable(observed, actor),
        contact_ip=observed.ip if observed is not None and actor.is_device else None,
    )


def device_contact_record(
    *,
    device_id: str,
    observed: ObservedAddress | None,
    known_ip: str,
    last_contact: datetime | None,
) -> None:
    """GET /config/{id} by the device itself: remember where it called from.

    `known_ip`/`last_contact` are what the read loaded; with the contact buffer's own
    memory of what it stored, an unchanged address seen within the last minute costs no
    write at all (devices.contacts).
    """
    if observed is None:
        return
    now = timezone.now()
    if (
        known_ip == observed.ip
        and last_contact is not None
        and now - last_contact < CONTACT_WRITE_INTERVAL
    ):
        return
    contacts.add(device_id, observed.ip, now)


def device_adopt_observed_ip(*, device_id: str, actor: Actor) -> WriteResult:
    """Admin "Use observed IP": make the address the device last called from its IP."""

    def build(current: DeviceConfig | None) -> DeviceConfig:
        if current is None:
            raise device_not_found(device_id)
        observed = (
            DeviceHealth.objects.filter(device_id=device_id)
            .values_list("observed_ip", flat=True)
            .first()
        )
        if not observed:
            raise ApiError(
                400,
                "no_observed_ip",
                "The device has not called GET or PUT /config/{id} yet",
                device_id=device_id,
            )
        if not address_allowed(observed):
            raise ApiError(
                400, "ip_not_allowed", address_not_allowed_message(observed), device_id=device_id
            )
        return replace(current, ip_address=observed)

    return _write(
        device_id=device_id,
        actor=actor,
        action=RevisionAction.PATCHED,
        build=build,
        note="ip_address set to the address the device called from",
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

    def build(current: DeviceConfig | None) -> DeviceConfig:
        stored_ip = current.ip_address if current is not None else ""
        if target.ip_address not in ("", stored_ip) and not address_allowed(target.ip_address):
            raise ApiError(
                400,
                "ip_not_allowed",
                f"Revision {version} has ip_address "
                + address_not_allowed_message(target.ip_address),
                device_id=device_id,
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
        device = _locked_device(device_id)
        if device is None:
            raise device_not_found(device_id)
        _check_if_match(device, if_match, device_id)
        _record(
            device_id, device.version + 1, RevisionAction.DELETED, DeviceConfig.of(device), actor
        )
        device.delete()
    CONFIG_WRITES.labels(source=actor.source, action=RevisionAction.DELETED).inc()


# ---- Acting on devices: reload, probe, drift, proxy ---------------------------------------

NO_IP_MESSAGE = "Device has no IP address configured"


@dataclass(frozen=True)
class ReloadResult:
    device_id: str
    status: str
    error: str = ""
    # What `POST /devices/{id}/reload` answers: 400 no address, 502 refused, 503 unreachable.
    http_status: int = 200


def device_reload(*, device: Device) -> ReloadResult:
    """`POST http://{ip}:{reload_port}/reload`; "reloaded" only when the device said 200."""
    if not device.ip_address:
        return _reload_counted(
            ReloadResult(device.device_id, ReloadStatus.FAILED, NO_IP_MESSAGE, 400)
        )
    try:
        client.post_reload(device.ip_address, device.reload_port, timeout=settings.RELOAD_TIMEOUT)
    except client.DeviceBadAnswer as exc:
        result = ReloadResult(device.device_id, ReloadStatus.FAILED, str(exc), 502)
    except client.DeviceCallError as exc:
        error = f"Failed to connect to device: {exc}"
        result = ReloadResult(device.device_id, ReloadStatus.FAILED, error, 503)
    else:
        result = ReloadResult(device.device_id, ReloadStatus.RELOADED)
    logger.info(
        "Reload of %s: %s%s",
        device.device_id,
        result.status,
        f" ({result.error})" if result.error else "",
    )
    return _reload_counted(result)


def _reload_counted(result: ReloadResult) -> ReloadResult:
    """Count a reload outcome once, by the status the caller reports
    (ems_device_reloads_total)."""
    RELOADS.labels(result=result.status).inc()
    return result


def devices_reload(*, devices: Iterable[Device]) -> list[ReloadResult]:
    """`POST /devices/reload`: every device at once (bounded); no address = "skipped"."""

    def reload_one(device: Device) -> ReloadResult:
        if not device.ip_address:
            return _reload_counted(
                ReloadResult(device.device_id, ReloadStatus.SKIPPED, NO_IP_MESSAGE, 400)
            )
        return device_reload(device=device)

    return client.for_each_concurrently(reload_one, list(devices))


def device_running_config(*, device: Device) -> dict[str, Any]:
    """`GET /devices/{id}/local-config`: the config the exporter is running, as it says."""
    if not device.ip_address:
        raise ApiError(400, "No IP address", NO_IP_MESSAGE, device_id=device.device_id)
    try:
        return client.get_config(
            device.ip_address, device.reload_port, timeout=settings.PROXY_TIMEOUT
        )
    except client.DeviceBadAnswer as exc:
        raise ApiError(502, "Device error", str(exc), device_id=device.device_id) from None
    except client.DeviceCallError as exc:
        raise ApiError(
            503,
            "Device unreachable",
            f"Failed to connect to device: {exc}",
            device_id=device.device_id,
        ) from None


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true is not 1 (Python says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def config_drift(served: Mapping[str, Any], running: Mapping[str, Any]) -> list[str]:
    """Keys the server serves whose value the device is not running (missing or different).

    Keys only the device has are its own business: the server never stored them.
    """
    return sorted(
        key for key in served if key not in running or not _same_json(served[key], running[key])
    )


@dataclass(frozen=True)
class ProbeOutcome:
    """What one `GET /health` found, before flap damping."""

    status: str
    error: str = ""
    exporter_status: str = ""
    # The outbound guard refused the address: a fact of configuration, never damped.
    refused: bool = False
    # A pending reload was delivered with this probe.
    reloaded: bool = False


@dataclass(frozen=True)
class DriftOutcome:
    in_sync: bool | None
    drifted_keys: list[str]


@dataclass
class ProbeRound:
    """The result of probing some devices: they carry their new observation in `.health`."""

    devices: list[Device]
    # Ids whose stored status changed.
    changed: list[str]
    seconds: float


def _address(device: Device) -> str:
    return client.device_url(device.ip_address, device.reload_port).removeprefix("http://")


def _probe_health(device: Device) -> ProbeOutcome:
    try:
        answer = client.get_health(
            device.ip_address, device.reload_port, timeout=settings.PROBE_TIMEOUT
        )
    except client.AddressNotAllowed as exc:
        return ProbeOutcome(DeviceStatus.UNREACHABLE, str(exc), refused=True)
    except client.DeviceCallError as exc:
        return ProbeOutcome(DeviceStatus.UNREACHABLE, str(exc))
    if answer.status != 200:
        return ProbeOutcome(DeviceStatus.UNHEALTHY, f"HTTP {answer.status}")
    # The exporter answers 200 while "degraded" or "starting": it runs, so it is healthy;
    # its own word is kept beside the status.
    return ProbeOutcome(DeviceStatus.HEALTHY, exporter_status=answer.exporter_status)


def _probe_counted(device: Device) -> ProbeOutcome:
    """One probe, counted by what it found (`refused`: the outbound guard kept it from
    leaving) and, when a request went out, timed. Whoever probes (the monitor,
    `?refresh=true`, the admin) is counted here, in its own process."""
    started = time.monotonic()
    outcome = _probe_health(device)
    if outcome.refused:
        PROBES.labels(result="refused").inc()
    else:
        PROBES.labels(result=outcome.status).inc()
        PROBE_DURATION.observe(time.monotonic() - started)
    return outcome


def _check_drift(device: Device) -> DriftOutcome:
    try:
        running = client.get_config(
            device.ip_address, device.reload_port, timeout=settings.PROBE_TIMEOUT
        )
    except client.DeviceCallError:
        return DriftOutcome(None, [])
    drifted = config_drift(device.config_document(), running)
    return DriftOutcome(not drifted, drifted)


def _drift_due(device: Device, recheck: bool, now: datetime) -> bool:
    if recheck:
        return True
    checked = _health_of(device).drift_checked_at
    return checked is None or now - checked >= timedelta(seconds=settings.DRIFT_CHECK_INTERVAL)


def _health_of(device: Device) -> DeviceHealth:
    try:
        return device.health
    except DeviceHealth.DoesNotExist:
        device.health = DeviceHealth(device=device)
        return device.health


def _observe(health: DeviceHealth, outcome: ProbeOutcome, address: str, now: datetime) -> bool:
    """Fold one probe into the stored observation; True when the status changed.

    A healthy device is reported failing only after FAILURE_THRESHOLD consecutive failed
    probes of the same address (flap damping); a new address is judged on its own.
    """
    same_address = health.probed_address == address
    health.last_checked = now
    health.probed_address = address
    if outcome.status == DeviceStatus.HEALTHY:
        status, error = DeviceStatus.HEALTHY, ""
        health.consecutive_failures = 0
        health.last_seen = now
        health.exporter_status = outcome.exporter_status
    else:
        health.consecutive_failures = health.consecutive_failures + 1 if same_address else 1
        damped = (
            same_address
            and not outcome.refused
            and health.status == DeviceStatus.HEALTHY
            and health.consecutive_failures < settings.FAILURE_THRESHOLD
        )
        # While damped the failure is kept as the error of a device still reported healthy.
        status = DeviceStatus.HEALTHY if damped else outcome.status
        error = outcome.error
        if not damped:
            health.exporter_status = ""
    changed = status != health.status
    if changed:
        health_logger.info(
            "%s: %s -> %s%s",
            health.device_id,
            health.status,
            status,
            f" ({error})" if error else "",
        )
        health.status_changed_at = now
    health.status, health.error = status, error
    return changed


OBSERVATION_FIELDS = (
    "status",
    "error",
    "exporter_status",
    "last_checked",
    "last_seen",
    "status_changed_at",
    "consecutive_failures",
    "probed_address",
    "config_in_sync",
    "drifted_keys",
    "drift_checked_at",
    "reload_pending",
)
_STORE_BATCH = 500


def _store_observations(changes: list[tuple[str, dict[str, Any]]]) -> None:
    """Write each device's changed fields, one UPDATE per distinct set of new values.

    In a round most devices get the same values (the round's time, "healthy", no error),
    so a fleet of thousands is written in a handful of statements and one short
    transaction; Django's bulk_update would build a CASE per row and field instead.
    """
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for device_id, values in changes:
        if values:
            key = json.dumps(values, sort_keys=True, default=str)
            groups.setdefault(key, (values, []))[1].append(device_id)
    with write_transaction(durable=False):
        for values, device_ids in groups.values():
            for start in range(0, len(device_ids), _STORE_BATCH):
                DeviceHealth.objects.filter(pk__in=device_ids[start : start + _STORE_BATCH]).update(
                    **values
                )


def devices_probe(
    *, devices: Iterable[Device], recheck_drift: bool = False, serve_requests: bool = False
) -> ProbeRound:
    """Probe devices concurrently (at most PROBE_CONCURRENCY in flight) and store what was seen.

    Devices without an address are skipped. The running config of each healthy device is
    compared with what the server serves when its last comparison is older than
    DRIFT_CHECK_INTERVAL, or always with `recheck_drift`. Only changed fields are written,
    grouped into few statements; a device whose config changed meanwhile keeps the newer
    state (its address change asked for a fresh probe already).

    `serve_requests` (the monitor) clears the probe requests of these devices. Other
    callers leave them, so the monitor still probes and reports those devices to its
    listeners at once.
    """
    started = time.monotonic()
    devices = list(devices)
    targets = [device for device in devices if device.ip_address]
    # A device without an address has nothing to probe; its request is served all the same.
    requested = [
        Q(pk=device.pk, probe_requested_at=_health_of(device).probe_requested_at)
        for device in devices
        if serve_requests
        and not device.ip_address
        and _health_of(device).probe_requested_at is not None
    ]
    checked_at = timezone.now()
    plans = [(device, _drift_due(device, recheck_drift, checked_at)) for device in targets]

    def observe(plan: tuple[Device, bool]) -> tuple[ProbeOutcome, DriftOutcome | None]:
        device, drift_due = plan
        outcome = _probe_counted(device)
        drift = None
        if outcome.status == DeviceStatus.HEALTHY:
            if _health_of(device).reload_pending:
                # Back after missing a config change: tell it now, before comparing configs.
                reload = device_reload(device=device)
                outcome = replace(outcome, reloaded=reload.status == ReloadStatus.RELOADED)
            if drift_due:
                drift = _check_drift(device)
        return outcome, drift

    results = client.for_each_concurrently(observe, plans)
    now = timezone.now()
    current = {
        row[0]: row[1:]
        for row in Device.objects.filter(pk__in=[d.pk for d in targets]).values_list(
            "device_id", "ip_address", "reload_port", "version"
        )
    }
    changed: list[str] = []
    changes: list[tuple[str, dict[str, Any]]] = []
    for device, (outcome, drift) in zip(targets, results, strict=True):
        now_stored = current.get(device.pk)
        if now_stored is None or now_stored[:2] != (device.ip_address, device.reload_port):
            continue  # deleted, or moved to another address while we probed the old one
        health = _health_of(device)
        before = {name: getattr(health, name) for name in OBSERVATION_FIELDS}
        if serve_requests and health.probe_requested_at is not None:
            requested.append(Q(pk=device.pk, probe_requested_at=health.probe_requested_at))
            health.probe_requested_at = None
        if _observe(health, outcome, _address(device), now):
            changed.append(device.pk)
        if outcome.reloaded:
            health.reload_pending = False
        # A comparison with a config that was replaced while we fetched it is not stored.
        if drift is not None and now_stored[2] == device.version:
            health.config_in_sync = drift.in_sync
            health.drifted_keys = drift.drifted_keys
            health.drift_checked_at = now
        after = {name: getattr(health, name) for name in OBSERVATION_FIELDS}
        changes.append((device.pk, {k: v for k, v in after.items() if v != before[k]}))
    _store_observations(changes)
    # Only the requests we served: one made while we probed stays for the next look.
    for start in range(0, len(requested), 200):
        DeviceHealth.objects.filter(reduce(or_, requested[start : start + 200])).update(
            probe_requested_at=None
        )
    return ProbeRound(devices=targets, changed=changed, seconds=time.monotonic() - started)
