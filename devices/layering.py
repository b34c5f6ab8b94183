"""Which profiles apply to a device, and re-layering the served config of devices when a
profile, a rollout stage or a device's labels change (a new revision and a reload each).

The layers themselves are pure (devices.layers); here they meet the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from devices import layers, selectors
from devices.choices import DeviceStatus, ReloadStatus, RevisionAction
from devices.config import DeviceConfig
from devices.generation import config_changed
from devices.labels import Selector, parse_selector
from devices.metrics import CONFIG_WRITES
from devices.models import Device, DeviceHealth, DeviceRevision, Profile, StagedDevice
from devices.runtime import devices_reload
from edgeserver.db import update_rows, write_transaction
from users.actors import Actor

logger = logging.getLogger(__name__)

# Devices re-layered per transaction: one revision each, one generation bump per batch.
RELAYER_BATCH = 500


@dataclass(frozen=True)
class _Profile:
    name: str
    priority: int
    version: int
    config: Mapping[str, Any]
    selector: Selector
    staged_version: int | None
    staged_config: Mapping[str, Any] | None
    staged_ids: frozenset[str]

    def layer_for(self, device_id: str) -> layers.ProfileLayer:
        if self.staged_config is not None and device_id in self.staged_ids:
            return layers.ProfileLayer(
                self.name, self.priority, self.staged_version or self.version, self.staged_config
            )
        return layers.ProfileLayer(self.name, self.priority, self.version, self.config)


class ProfileSet:
    """Every profile, read once: what applies to each device of a batch."""

    def __init__(self, profiles: Iterable[Profile] | None = None) -> None:
        rows = list(Profile.objects.all() if profiles is None else profiles)
        staged: dict[str, set[str]] = {}
        if any(p.staged_config is not None for p in rows):
            for name, device_id in StagedDevice.objects.values_list("profile_id", "device_id"):
                staged.setdefault(name, set()).add(device_id)
        self.profiles = [
            _Profile(
                p.name,
                p.priority,
                p.version,
                p.config,
                parse_selector(p.selector),
                p.staged_version,
                p.staged_config,
                frozenset(staged.get(p.name, ())),
            )
            for p in rows
        ]

    def __bool__(self) -> bool:
        return bool(self.profiles)

    def matching(self, labels: Mapping[str, str], device_type: str) -> list[_Profile]:
        attributes = {**labels, "device_type": device_type}
        return [p for p in self.profiles if p.selector.matches(attributes)]

    def layers_for(
        self, device_id: str, labels: Mapping[str, str], device_type: str
    ) -> list[layers.ProfileLayer]:
        return [p.layer_for(device_id) for p in self.matching(labels, device_type)]


def base_document(device: Device) -> dict[str, Any]:
    """What the device's writes built, before profiles (the served config until a
    profile or an operator's key made them differ)."""
    if device.base_config is not None:
        return dict(device.base_config)
    return device.config_document()


def base_config(device: Device) -> DeviceConfig:
    """`base_document` with the device's address: what a config write builds on."""
    if device.base_config is None:
        return DeviceConfig.of(device)
    return DeviceConfig.from_snapshot({**device.base_config, "ip_address": device.ip_address})


def operator_keys(device: Device) -> list[layers.Path]:
    return [tuple(path) for path in device.operator_keys or ()]


def device_layered(device: Device, profiles: ProfileSet | None = None) -> layers.Layered:
    """The served config of `device` as its layers give it now, with each key's origin."""
    profiles = ProfileSet() if profiles is None else profiles
    base = base_document(device)
    found = profiles.layers_for(device.device_id, device.labels or {}, base["device_type"])
    return layers.layer(base, found, operator_keys(device))


@dataclass(frozen=True)
class LayeredWrite:
    """What a config write stores: the served config, and its layers when they differ."""

    served: DeviceConfig
    base: dict[str, Any] | None
    operator_keys: list[layers.Path]

    def stored_on(self, device: Device | None) -> bool:
        """Whether `device` already holds exactly this."""
        return (
            device is not None
            and DeviceConfig.of(device) == self.served
            and device.base_config == self.base
            and operator_keys(device) == self.operator_keys
        )

    def apply_to(self, device: Device) -> None:
        self.served.apply_to(device)
        device.base_config = self.base
        device.operator_keys = [list(path) for path in self.operator_keys]


def layered_write(
    device: Device | None,
    written: DeviceConfig,
    actor: Actor,
    *,
    device_id: str,
    explicit: Sequence[layers.Path] | None = None,
) -> LayeredWrite:
    """The layers after a write that built `written` from the device's base config.

    What a write built is the bottom layer, except that an echo of a profile's value
    leaves that key as it was. An operator's write makes theirs every key it names
    (`explicit`; None: all) with another value than was served; a device's own change
    of an operator's key takes it back (a create makes nothing theirs: it is where the
    device starts). With no profiles the served config is `written`, exactly.
    """
    found = ProfileSet().layers_for(
        device_id, device.labels or {} if device else {}, written.device_type
    )
    document = written.document()
    if device is None:
        base, keys = document, []
    else:
        served = device.config_document()
        previous = base_document(device)
        keys = operator_keys(device)
        base = layers.device_base(
            document, previous_base=previous, served=served, profiles=found, operator_keys=keys
        )
        if actor.is_device:
            keys = layers.operator_keys_after_device_write(
                document, served=served, operator_keys=keys
            )
        else:
            keys = layers.operator_keys_after_operator_write(
                document, served=served, operator_keys=keys, explicit=explicit
            )
    result = layers.layer(base, found, keys).document
    new = (
        written
        if result == document
        else DeviceConfig.from_snapshot({**result, "ip_address": written.ip_address})
    )
    return LayeredWrite(new, None if base == result and not keys else base, keys)


def _origin(origin: str) -> dict[str, Any]:
    if origin.startswith("profile:"):
        name, _, version = origin.removeprefix("profile:").rpartition("@")
        return {"layer": "profile", "profile": name, "version": int(version)}
    return {"layer": origin}


def device_explain(device: Device) -> dict[str, Any]:
    """`GET /config/{id}?explain=true`: the served config, and for each key the layer that
    set it (the device's own writes, a profile at a version, or an operator)."""
    profiles = ProfileSet()
    base = base_document(device)
    found = profiles.layers_for(device.device_id, device.labels or {}, base["device_type"])
    layered = layers.layer(base, found, operator_keys(device))
    return {
        "device_id": device.device_id,
        "version": device.version,
        "config": device.config_document(),
        "keys": {key: _origin(origin) for key, origin in layered.explain().items()},
        "profiles": [
            {"name": p.name, "priority": p.priority, "version": p.version} for p in found
        ],
        "operator_keys": [".".join(path) for path in operator_keys(device)],
        "in_effect": layered.document == device.config_document(),
    }


def _relayer_one(device: Device, profiles: ProfileSet) -> DeviceConfig | None:
    """The device's new served config, when its layers now give another one."""
    document = device_layered(device, profiles).document
    if document == device.config_document():
        return None
    return DeviceConfig.from_snapshot({**document, "ip_address": device.ip_address})


# What re-layering changes on a device row.
_RELAYERED_FIELDS = (
    "device_type", "port", "reload_port", "enabled_metrics", "extra_config", "base_config",
    "version", "updated_at",
)  # fmt: skip


def _store_configs(devices: Sequence[Device]) -> None:
    """One statement for the batch (edgeserver.db.update_rows)."""
    rows = [(d.pk, *(getattr(d, name) for name in _RELAYERED_FIELDS)) for d in devices]
    update_rows(Device, _RELAYERED_FIELDS, rows)


def _relayer_batch(device_ids: Sequence[str], actor: Actor, note: str) -> list[Device]:
    """One transaction: re-layer these devices, store the changed ones with a revision."""
    changed: list[Device] = []
    with write_transaction():
        profiles = ProfileSet()
        rows = (
            Device.objects.select_for_update(of=("self",))
            .select_related("health")
            .filter(device_id__in=device_ids)
        )
        now = timezone.now()
        revisions = []
        for device in rows.order_by("device_id"):
            new = _relayer_one(device, profiles)
            if new is None:
                continue
            if device.base_config is None:
                device.base_config = device.config_document()
            new.apply_to(device)
            device.version += 1
            device.updated_at = now
            changed.append(device)
            revisions.append(
                DeviceRevision(
                    device_id=device.device_id,
                    version=device.version,
                    action=RevisionAction.PROFILE,
                    config=new.snapshot(),
                    actor=actor.name,
                    source=actor.source,
                    note=note[:200],
                    created_at=now,
                )
            )
        if changed:
            _store_configs(changed)
            DeviceRevision.objects.bulk_create(revisions)
            DeviceHealth.objects.filter(device_id__in=[d.device_id for d in changed]).update(
                config_in_sync=None, drifted_keys=[], drift_checked_at=None
            )
            transaction.on_commit(config_changed)
    return changed


def devices_relayer(
    *, device_ids: Iterable[str], actor: Actor, note: str, reload: bool = True
) -> list[str]:
    """Re-layer the served config of these devices; those whose config changed get a
    revision (`profile`) and are told to reload (an unreachable one is reloaded by the
    monitor when it answers again). Returns the ids whose served config changed."""
    ids = sorted(set(device_ids))
    changed: list[Device] = []
    for start in range(0, len(ids), RELAYER_BATCH):
        changed.extend(_relayer_batch(ids[start : start + RELAYER_BATCH], actor, note))
    if changed:
        CONFIG_WRITES.labels(source=actor.source, action=RevisionAction.PROFILE).inc(len(changed))
        logger.info("%d device configs changed: %s", len(changed), note)
    if reload and changed:
        devices_announce(devices=changed)
    return [d.device_id for d in changed]


def devices_announce(*, devices: Sequence[Device]) -> None:
    """`device_config_announce` for many devices at once: a device last seen unreachable
    is not waited for, and each one not told is left for the monitor (reload_pending)."""
    told = [
        d
        for d in devices
        if d.ip_address and selectors.device_health(d).status != DeviceStatus.UNREACHABLE
    ]
    reloaded = {
        r.device_id for r in devices_reload(devices=told) if r.status == ReloadStatus.RELOADED
    }
    pending = [d.device_id for d in devices if d.ip_address and d.device_id not in reloaded]
    DeviceHealth.objects.filter(device_id__in=pending).update(reload_pending=True)
    DeviceHealth.objects.filter(device_id__in=reloaded, reload_pending=True).update(
        reload_pending=False
    )


@dataclass(frozen=True)
class KeyChange:
    """One key path of a served config, before and after (`had`/`has`: present)."""

    path: str
    before: Any
    after: Any
    had: bool
    has: bool


def _key_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[KeyChange]:
    old, new = dict(layers.leaves(before)), dict(layers.leaves(after))
    return [
        KeyChange(".".join(path), old.get(path), new.get(path), path in old, path in new)
        for path in sorted(old.keys() | new.keys())
        if path not in old or path not in new or old[path] != new[path]
    ]


def profile_preview(candidate: Profile) -> dict[str, list[KeyChange]]:
    """What saving `candidate` (an unsaved profile, maybe replacing the stored one of its
    name) would change in each device's served config: `{device_id: [KeyChange]}`."""
    stored = [p for p in Profile.objects.all() if p.name != candidate.name]
    now = ProfileSet()
    then = ProfileSet([*stored, candidate])
    changes: dict[str, list[KeyChange]] = {}
    for device in Device.objects.order_by("device_id").iterator(chunk_size=2000):
        if not (
            now.matching(device.labels or {}, device.device_type)
            or then.matching(device.labels or {}, device.device_type)
        ):
            continue
        before = device.config_document()
        after = device_layered(device, then).document
        found = _key_changes(before, after)
        if found:
            changes[device.device_id] = found
    return changes
