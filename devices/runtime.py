"""What the server does to devices and learns from them: reloads, probe rounds, drift checks
and folding what a probe found into the stored observation.

Every call to a device goes through the one device client (devices.client).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from devices import client, selectors
from devices.choices import DeviceStatus, ReloadStatus
from devices.exceptions import DeviceBadAnswer, DeviceUnreachable, NoAddress
from devices.metrics import PROBE_DURATION, PROBES, RELOADS
from devices.models import Device, DeviceHealth, DeviceStatusChange
from edgeserver.db import update_rows, write_transaction

logger = logging.getLogger(__name__)
# Status changes, one line each, whichever process observed them.
health_logger = logging.getLogger("devices.health")

NO_IP_MESSAGE = "Device has no IP address configured"


# ---- reloads ---------------------------------------------------------------------------


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
    return client.run_one(lambda session: _reload(session, device))


async def _reload(session: client.Session, device: Device) -> ReloadResult:
    """The reload of a device with an address, on a session of the caller's."""
    try:
        await client.send_reload(
            session, device.ip_address, device.reload_port, timeout=settings.RELOAD_TIMEOUT
        )
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

    async def reload_one(session: client.Session, device: Device) -> ReloadResult:
        if not device.ip_address:
            return _reload_counted(
                ReloadResult(device.device_id, ReloadStatus.SKIPPED, NO_IP_MESSAGE, 400)
            )
        return await _reload(session, device)

    return client.run_each(reload_one, list(devices))


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


# ---- the running config: proxy and drift -------------------------------------------------


def device_running_config(*, device: Device) -> dict[str, Any]:
    """`GET /devices/{id}/local-config`: the config the exporter is running, as it says."""
    if not device.ip_address:
        raise NoAddress(device.device_id)
    try:
        return client.get_config(
            device.ip_address, device.reload_port, timeout=settings.PROXY_TIMEOUT
        )
    except client.DeviceBadAnswer as exc:
        raise DeviceBadAnswer(device.device_id, str(exc)) from None
    except client.DeviceCallError as exc:
        raise DeviceUnreachable(device.device_id, str(exc)) from None


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


# ---- probes ----------------------------------------------------------------------------


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
    return client.host_port(device.ip_address, device.reload_port)


async def _probe_health(session: client.Session, device: Device) -> ProbeOutcome:
    try:
        answer = await client.fetch_health(
            session, device.ip_address, device.reload_port, timeout=settings.PROBE_TIMEOUT
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


async def _probe_counted(session: client.Session, device: Device) -> ProbeOutcome:
    """One probe, counted by what it found (`refused`: the outbound guard kept it from
    leaving) and, when a request went out, timed. Whoever probes (the monitor,
    `?refresh=true`, the admin) is counted here, in its own process."""
    started = time.monotonic()
    outcome = await _probe_health(session, device)
    if outcome.refused:
        PROBES.labels(result="refused").inc()
    else:
        PROBES.labels(result=outcome.status).inc()
        PROBE_DURATION.observe(time.monotonic() - started)
    return outcome


async def _check_drift(session: client.Session, device: Device) -> DriftOutcome:
    try:
        running = await client.fetch_config(
            session, device.ip_address, device.reload_port, timeout=settings.PROBE_TIMEOUT
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


async def _look_at(
    session: client.Session, plan: tuple[Device, bool]
) -> tuple[ProbeOutcome, DriftOutcome | None]:
    """Probe one device; a healthy one also gets its pending reload and, when due, a
    comparison of its running config. Runs in the round's event loop: it reads only what
    the device was loaded with, never the database."""
    device, drift_due = plan
    outcome = await _probe_counted(session, device)
    drift = None
    if outcome.status == DeviceStatus.HEALTHY:
        if _health_of(device).reload_pending:
            # Back after missing a config change: tell it now, before comparing configs.
            reload = await _reload(session, device)
            outcome = replace(outcome, reloaded=reload.status == ReloadStatus.RELOADED)
        if drift_due:
            drift = await _check_drift(session, device)
    return outcome, drift


# ---- folding what was seen into the stored observation ----------------------------------


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
_REQUESTS_BATCH = 200
# How long status changes are kept for the admin's timelines.
STATUS_CHANGE_RETENTION = timedelta(days=30)


@dataclass
class _Folded:
    """What a round found, ready to store."""

    changed: list[str]
    changes: list[tuple[str, dict[str, Any]]]
    # Probe requests this round served, as (device id, the request's time).
    served: list[Q]
    # The stored status changes, as rows of the status timeline.
    transitions: list[DeviceStatusChange]


def _fold(
    targets: list[Device],
    results: list[tuple[ProbeOutcome, DriftOutcome | None]],
    *,
    serve_requests: bool,
) -> _Folded:
    """Each device's new observation and the fields that changed; a device deleted or moved
    while it was probed is left to the look its change asked for."""
    current = {}
    for start in range(0, len(targets), _STORE_BATCH):
        keys = [d.pk for d in targets[start : start + _STORE_BATCH]]
        rows = Device.objects.filter(pk__in=keys).values_list(
            "device_id", "ip_address", "reload_port", "version"
        )
        current.update((row[0], row[1:]) for row in rows)
    now = timezone.now()
    folded = _Folded(changed=[], changes=[], served=[], transitions=[])
    for device, (outcome, drift) in zip(targets, results, strict=True):
        stored = current.get(device.pk)
        if stored is None or stored[:2] != (device.ip_address, device.reload_port):
            continue
        health = _health_of(device)
        before = {name: getattr(health, name) for name in OBSERVATION_FIELDS}
        if serve_requests and health.probe_requested_at is not None:
            folded.served.append(Q(pk=device.pk, probe_requested_at=health.probe_requested_at))
            health.probe_requested_at = None
        if _observe(health, outcome, _address(device), now):
            folded.changed.append(device.pk)
            folded.transitions.append(
                DeviceStatusChange(
                    device_id=device.pk,
                    previous=before["status"],
                    status=health.status,
                    error=health.error,
                    changed_at=now,
                )
            )
        if outcome.reloaded:
            health.reload_pending = False
        # A comparison with a config that was replaced while we fetched it is not stored.
        if drift is not None and stored[2] == device.version:
            health.config_in_sync = drift.in_sync
            health.drifted_keys = drift.drifted_keys
            health.drift_checked_at = now
        after = {name: getattr(health, name) for name in OBSERVATION_FIELDS}
        folded.changes.append((device.pk, {k: v for k, v in after.items() if v != before[k]}))
    return folded


def _store_observations(
    changes: list[tuple[str, dict[str, Any]]], transitions: list[DeviceStatusChange]
) -> None:
    """Write each device's changed fields, one statement per batch of devices, and the
    status changes (old ones are dropped when new ones arrive).

    Devices are grouped by which fields changed (in a round almost every device changes
    the same few: the time of the probe, or that and its status), and each batch of a
    group is one `UPDATE ... FROM (VALUES ...)` (edgeserver.db.update_rows), all in one
    short transaction. Fields that did not change are not written, so a config write's
    `reload_pending` made while the round ran is kept.
    """
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for device_id, values in changes:
        if values:
            fields = tuple(sorted(values))
            groups.setdefault(fields, []).append((device_id, *(values[f] for f in fields)))
    with write_transaction(durable=False):
        for fields, rows in groups.items():
            for start in range(0, len(rows), _STORE_BATCH):
                update_rows(DeviceHealth, fields, rows[start : start + _STORE_BATCH])
        if transitions:
            DeviceStatusChange.objects.bulk_create(transitions, batch_size=_STORE_BATCH)
            DeviceStatusChange.objects.filter(
                changed_at__lt=timezone.now() - STATUS_CHANGE_RETENTION
            ).delete()


def _clear_requests(served: list[Q]) -> None:
    """Only the requests that were served: one made while we probed stays for the next look."""
    for start in range(0, len(served), _REQUESTS_BATCH):
        DeviceHealth.objects.filter(reduce(or_, served[start : start + _REQUESTS_BATCH])).update(
            probe_requested_at=None
        )


def devices_probe(
    *,
    devices: Iterable[Device],
    recheck_drift: bool = False,
    serve_requests: bool = False,
    still_leading: Callable[[], bool] | None = None,
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

    `still_leading` (the monitor of one replica among several) is asked before anything is
    stored: a replica that lost the leadership meanwhile writes nothing of this round, and
    the new leader's rounds are the only ones stored.
    """
    started = time.monotonic()
    devices = list(devices)
    targets = [device for device in devices if device.ip_address]
    checked_at = timezone.now()
    for device in targets:
        _health_of(device)  # loaded here: the calls run where the database is not used
    # Devices last found unreachable go first: each is likely to hold its call for the
    # whole PROBE_TIMEOUT, and started together those waits overlap the rest of the round.
    targets.sort(key=lambda device: _health_of(device).status != DeviceStatus.UNREACHABLE)
    plans = [(device, _drift_due(device, recheck_drift, checked_at)) for device in targets]
    results = client.run_each(_look_at, plans)
    folded = _fold(targets, results, serve_requests=serve_requests)
    if still_leading is not None and not still_leading():
        logger.info("No longer the leader: this probe round is not stored")
        return ProbeRound(devices=targets, changed=[], seconds=time.monotonic() - started)
    _store_observations(folded.changes, folded.transitions)
    if serve_requests:
        # A device without an address has nothing to probe; its request is served all the same.
        folded.served += [
            Q(pk=device.pk, probe_requested_at=_health_of(device).probe_requested_at)
            for device in devices
            if not device.ip_address and _health_of(device).probe_requested_at is not None
        ]
        _clear_requests(folded.served)
    return ProbeRound(devices=targets, changed=folded.changed, seconds=time.monotonic() - started)
